"""Shared plumbing for ops: argument checks, dtype promotion for binary ops, unbroadcasting."""
from __future__ import annotations

import contextvars
import numbers

import numpy as np

from .. import _dtype as D
from .. import _tensor as T

_SCALARS = (bool, int, float, complex, numbers.Number)


def is_tensor(x) -> bool:
    return isinstance(x, T.Tensor)


def tensor_arg(x, op: str, name: str = "input"):
    """``x`` if it is a Tensor, else a TypeError naming the op and argument."""
    if isinstance(x, T.Tensor):
        return x
    raise TypeError(f"{op}(): argument '{name}' must be Tensor, not {type(x).__name__}")


def scalar_array(xp, value, np_dtype):
    """A 0-d array of ``np_dtype`` holding a Python number, wrapping out-of-range ints as PyTorch does."""
    try:
        if xp is np:
            return np.asarray(value, dtype=np_dtype)
        return xp.full((), value, dtype=np_dtype)  # filled on the device: no host-to-device copy per call
    except (OverflowError, TypeError, ValueError):
        wrapped = np.asarray(value).astype(np_dtype)
        return wrapped if xp is np else xp.full((), wrapped[()], dtype=np_dtype)


def binary(a, b, op: str, out_dtype=None):
    """Promote two operands (Tensors or Python numbers) for a binary op.

    Returns ``(xp, a_array, b_array)`` cast to the common dtype (``out_dtype`` overrides the
    promoted one). Raises the PyTorch error types for mismatched devices or non-numbers.
    """
    a_t = a.__class__ is T.Tensor or isinstance(a, T.Tensor)
    b_t = b.__class__ is T.Tensor or isinstance(b, T.Tensor)
    if a_t and b_t:
        ad, bd = a._data, b._data
        if ad.__class__ is not bd.__class__ and not (getattr(ad, "sparse_dim", None) is not None
                                                    or getattr(bd, "sparse_dim", None) is not None):
            # (a sparse COO operand has another array class; its ufuncs decide what they support)
            raise RuntimeError(f"{op}: Expected all tensors to be on the same device, but found at least two "
                               f"devices, {a.device} and {b.device}!")
        xp = a._xp
        if out_dtype is None:
            if ad.dtype is bd.dtype or ad.dtype == bd.dtype:
                return xp, ad, bd
            out_dtype = D.result_type(a, b)
        nd = out_dtype.np
        return xp, (ad if ad.dtype == nd else ad.astype(nd)), (bd if bd.dtype == nd else bd.astype(nd))
    if a_t:
        _check_scalar(b, op)
        xp = a._xp
        nd = (out_dtype or D.result_type(a, b)).np
        ad = a._data
        return xp, (ad if ad.dtype == nd else ad.astype(nd)), scalar_array(xp, b, nd)
    if b_t:
        _check_scalar(a, op)
        xp = b._xp
        nd = (out_dtype or D.result_type(a, b)).np
        bd = b._data
        return xp, scalar_array(xp, a, nd), (bd if bd.dtype == nd else bd.astype(nd))
    raise TypeError(f"{op}(): argument 'input' (position 1) must be Tensor, not {type(a).__name__}")


def promote(xp, x, y, op: str, out_dtype=None):
    """``binary`` for the entry point's arguments: arrays (tensor operands) and Python numbers.

    Returns ``(x, y)`` as arrays of the common dtype (``out_dtype`` overrides the promoted one).
    """
    if x.__class__ is y.__class__ is np.ndarray and out_dtype is None and x.dtype is y.dtype:
        return x, y
    x_a = hasattr(x, "shape") and not isinstance(x, np.generic)
    y_a = hasattr(y, "shape") and not isinstance(y, np.generic)
    if x_a and y_a:
        if out_dtype is None:
            if x.dtype is y.dtype or x.dtype == y.dtype:
                return x, y
            out_dtype = D.result_type(x, y)
        nd = out_dtype.np
        return (x if x.dtype == nd else x.astype(nd)), (y if y.dtype == nd else y.astype(nd))
    if x_a:
        _check_scalar(y, op)
        nd = (out_dtype or D.result_type(x, y)).np
        return (x if x.dtype == nd else x.astype(nd)), scalar_array(xp, y, nd)
    if y_a:
        _check_scalar(x, op)
        nd = (out_dtype or D.result_type(x, y)).np
        return scalar_array(xp, x, nd), (y if y.dtype == nd else y.astype(nd))
    raise TypeError(f"{op}(): argument 'input' (position 1) must be Tensor, not {type(x).__name__}")


def meta(x):
    """(shape, NumPy dtype) of an array operand, None for a number (what ``reduce_grad`` needs)."""
    if x.__class__ is np.ndarray or (hasattr(x, "shape") and not isinstance(x, np.generic)):
        return x.shape, x.dtype
    return None


def _check_scalar(x, op: str) -> None:
    if not isinstance(x, _SCALARS):
        raise TypeError(f"{op}: unsupported operand type {type(x).__name__}; expected a Tensor or a number")


def shape_of(x) -> tuple:
    return tuple(x._data.shape) if isinstance(x, T.Tensor) else ()


def broadcast_error(op: str, *shapes) -> RuntimeError:
    """The PyTorch-style error for shapes that do not broadcast, naming the first bad dimension."""
    nd = max(len(s) for s in shapes)
    padded = [(1,) * (nd - len(s)) + tuple(s) for s in shapes]
    for i in range(nd):
        sizes = [p[i] for p in padded]
        big = [s for s in sizes if s != 1]
        if big and any(s != big[0] for s in big):
            ia = next(k for k, s in enumerate(sizes) if s != 1)
            ib = next(k for k, s in enumerate(sizes) if s != 1 and s != big[0])
            return RuntimeError(
                f"{op}: The size of tensor {chr(97 + ia)} ({sizes[ia]}) must match the size of tensor "
                f"{chr(97 + ib)} ({sizes[ib]}) at non-singleton dimension {i} "
                f"(shapes {', '.join(str(list(s)) for s in shapes)})")
    return RuntimeError(f"{op}: shapes {', '.join(str(list(s)) for s in shapes)} are not broadcastable")


def broadcast_shapes(*shapes, op: str = "broadcast_shapes") -> tuple:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise broadcast_error(op, *shapes) from None


def sum_to(g, shape: tuple):
    """Reduce gradient ``g`` to ``shape`` by summing the broadcast dimensions (differentiable)."""
    gshape = g._data.shape
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    dims = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and gshape[i + lead] != 1)
    if dims:
        g = g.sum(dims, keepdim=True)
    if lead:
        g = g.reshape(shape)
    elif g._data.shape != shape:
        g = g.reshape(shape)
    return g


def float_dtype(x) -> "D.dtype":
    """The dtype a float-only op (exp, sqrt, mean...) computes in: ints and bool go to the default float."""
    d = x.dtype
    return d if d.is_floating_point or d.is_complex else D.get_default_dtype()


def as_float_array(x):
    """``x``'s array, cast to the default float dtype when it is an integer or bool tensor."""
    arr = x._data
    if arr.dtype.kind in "fcV":  # V: ml_dtypes' bfloat16 is a void-kind dtype
        return arr
    return arr.astype(D.get_default_dtype().np)


def dim_arg(dim, ndim: int, op: str) -> int:
    return T._wrap_dim(dim, ndim, op)


def dims_arg(dim, ndim: int, op: str) -> tuple:
    """Normalise ``dim`` (int, sequence or None) to a sorted tuple of non-negative dims."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (list, tuple)):
        out = tuple(sorted({T._wrap_dim(d, ndim, op) for d in dim}))
        if len(out) != len(dim):
            raise RuntimeError(f"{op}: dim {list(dim)} appears multiple times in the list of dims")
        return out
    return (T._wrap_dim(dim, ndim, op),)


try:  # NumPy 2 keeps its floating-point error state in a context variable; setting it costs ~0.1 us
    from numpy._core._ufunc_config import _extobj_contextvar as ERRSTATE
    from numpy._core.umath import _make_extobj

    IGNORE = _make_extobj(all="ignore")
except ImportError:  # pragma: no cover - other NumPy layouts fall back to np.errstate (~0.8 us)
    ERRSTATE = IGNORE = None


if ERRSTATE is not None:
    # A context whose only variable is NumPy's error state, set to "ignore": running a ufunc in it costs ~30 ns
    # where setting and resetting the variable costs ~250 ns (measured on the build machine). A context can be
    # entered by one thread at a time (and not recursively): then it raises RuntimeError and callers fall back
    # to ``quiet_slow``.
    _QUIET_CTX = contextvars.Context()
    _QUIET_CTX.run(ERRSTATE.set, IGNORE)
    QUIET_RUN = _QUIET_CTX.run
else:  # pragma: no cover - other NumPy layouts
    def QUIET_RUN(fn, *args):
        with np.errstate(all="ignore"):
            return fn(*args)


def quiet_slow(fn, *args):
    """``fn(*args)`` with NumPy's floating-point warnings off, setting the error state for the call."""
    if ERRSTATE is None:  # pragma: no cover - other NumPy layouts
        return QUIET_RUN(fn, *args)
    tok = ERRSTATE.set(IGNORE)
    try:
        return fn(*args)
    finally:
        ERRSTATE.reset(tok)


def context_busy(e: RuntimeError) -> bool:
    """True when ``e`` is ``QUIET_RUN`` refusing to enter its context (in use by another thread, or re-entered),
    as opposed to an error raised by the function it runs."""
    return str(e).startswith("cannot enter context")


def quiet_call(fn, *args):
    """``fn(*args)`` with NumPy's floating-point warnings off (PyTorch returns IEEE results silently)."""
    try:
        return QUIET_RUN(fn, *args)
    except RuntimeError as e:
        if not context_busy(e):
            raise
        return quiet_slow(fn, *args)


class _Quiet:
    __slots__ = ("tok",)

    def __enter__(self):
        self.tok = ERRSTATE.set(IGNORE)
        return self

    def __exit__(self, *exc):
        ERRSTATE.reset(self.tok)
        return False


class _NullCtx:
    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NULL = _NullCtx()


def quiet(xp):
    """A context that silences NumPy's floating warnings (PyTorch returns IEEE results silently)."""
    if xp is not np:
        return _NULL
    return _Quiet() if ERRSTATE is not None else np.errstate(all="ignore")
