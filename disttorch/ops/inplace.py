"""The in-place mechanism behind ``add_``, ``mul_``, ``copy_``, ``fill_`` ... (the methods live in the family mixins).

An in-place op writes into ``self``'s memory and bumps its version counter, so a backward that saved
the old value raises instead of using corrupted data.

- No graph to record (grad mode off, or nothing involved requires grad): the family's fast path
  computes straight into ``self``'s array with the ufunc's ``out=`` (``ufunc_into``); optimizers live here.
- A graph to record: the out-of-place op runs on the old ``self`` (a snapshot when its backward reads
  the old values), the result is copied into ``self``, and ``self`` takes the new node as its grad_fn.
"""
from __future__ import annotations

import threading

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from ..autograd import op as _op
from ..autograd.function import Node
from ..autograd.grad_mode import STATE as _GRAD
from ._helpers import _check_scalar, broadcast_error, quiet, quiet_call, sum_to  # noqa: F401 - quiet_call: re-exported

__all__ = []


def needs_graph(self, op: str, *others) -> bool:
    """Validate an in-place op on ``self``; True when it must record a graph node.

    Raises for a leaf that requires grad (allowed under no_grad, as optimizers do).
    """
    if not _GRAD.enabled:
        return False
    if self._requires_grad:
        if self.grad_fn is None:
            raise RuntimeError(f"{op}: a leaf Variable that requires grad is being used in an in-place operation.")
        _check_view(self, op)
        return True
    for o in others:
        if isinstance(o, T.Tensor) and o._requires_grad:
            _check_view(self, op)
            return True
    return False


def _check_view(self, op: str) -> None:
    base = self._base
    if base is None:
        return
    if base._requires_grad and base.grad_fn is None:
        raise RuntimeError(f"{op}: a view of a leaf Variable that requires grad is being used in an in-place "
                           "operation.")


def refuse_view(self, op: str) -> None:
    """For in-place ops that cannot rewrite a view's base history: raise rather than leave it stale."""
    if self._base is not None:
        raise RuntimeError(f"{op}: in-place operations on a view (shape {list(self._data.shape)}) are not "
                           "supported yet when autograd records them; apply the op to the base tensor or clone() "
                           "the view first")


def _through_base(self, res):
    """Write ``res`` into the view ``self`` as ``self[...] = res``: that rewrites the base's history too
    (PyTorch's CopySlices), so the base and the view both see the op in backward."""
    from .index import setitem

    setitem(self, (Ellipsis,), res)
    return self


# ---- fused updates without temporaries ---------------------------------------------------------------
_CHUNK = 1 << 14  # 16K elements (64 KB of float32): the two passes over a chunk stay in cache


class _Scratch(threading.local):
    def __init__(self) -> None:
        self.bufs = {}


_SCRATCH = _Scratch()


def _scratch(dtype) -> np.ndarray:
    buf = _SCRATCH.bufs.get(dtype)
    if buf is None:
        buf = _SCRATCH.bufs[dtype] = np.empty(_CHUNK, dtype=dtype)
    return buf


def can_fuse(self, *arrays) -> bool:
    """True when ``self`` and ``arrays`` are same-shape, same-dtype, C-contiguous NumPy float arrays."""
    sd = self._data
    if sd.__class__ is not np.ndarray or sd.dtype.kind != "f" or not sd.flags.c_contiguous:
        return False
    for a in arrays:
        if a.__class__ is not np.ndarray or a.shape != sd.shape or a.dtype != sd.dtype or not a.flags.c_contiguous:
            return False
    return True


def fused_into(self, first, value) -> None:
    """``self += value * first(a, b)`` chunk by chunk through a small scratch buffer, for ``can_fuse`` operands.

    ``first`` is ``(ufunc, a, b)`` (e.g. multiply for addcmul_, divide for addcdiv_) or ``(None, a, None)``
    for ``self += value * a`` (add_ with alpha). A whole-array temporary would cost a fresh allocation and
    a trip through memory for each pass; chunking keeps both passes in cache (used by optimizer updates).
    """
    ufunc, a, b = first
    s = self._data.reshape(-1)
    a = a.reshape(-1)
    b = None if b is None else b.reshape(-1)
    tmp = _scratch(s.dtype)
    n = s.size
    with quiet(np):
        for i in range(0, n, _CHUNK):
            j = min(i + _CHUNK, n)
            t = tmp[:j - i]
            if ufunc is None:
                np.multiply(a[i:j], value, out=t)
            else:
                ufunc(a[i:j], b[i:j], out=t)
                if value != 1:
                    np.multiply(t, value, out=t)
            np.add(s[i:j], t, out=s[i:j])
    self._vc[0] += 1


def ufunc_into(self, op: str, ufunc, *arrays) -> None:
    """``ufunc(*arrays, out=self's array)`` plus a version bump: the no-graph fast path."""
    try:
        quiet_call(_into, ufunc, arrays, self._data)
    except ValueError as e:
        raise write_error(self, op, [getattr(a, "shape", ()) for a in arrays], e) from None
    self._vc[0] += 1


def _into(ufunc, arrays, out) -> None:
    ufunc(*arrays, out=out)


def write_error(self, op: str, shapes, err: Exception) -> RuntimeError:
    """The PyTorch error for a failed write into ``self`` (read-only memory or a shape mismatch)."""
    if "read-only" in str(err):
        return RuntimeError(f"{op}: unsupported operation: more than one element of the written-to tensor refers "
                            "to a single memory location. Please clone() the tensor before performing the "
                            "operation.")
    shapes = [tuple(s) for s in shapes]
    try:
        b = np.broadcast_shapes(*shapes)
    except ValueError:
        return broadcast_error(op, *shapes)
    return RuntimeError(f"{op}: output with shape {list(self._data.shape)} doesn't match the broadcast shape "
                        f"{list(b)}")


_LOW_FLOATS = (np.dtype(np.float16), D.bfloat16.np)  # kind "f" covers the others


def unary_(self, op: str, ufunc_name, fn, light: bool, **kwargs):
    """Shared body of exp_, sqrt_, floor_, ...: ``xp.<ufunc_name>`` straight into a floating ``self`` when no
    graph is needed, else the general path with out-of-place ``fn``.

    ``light`` says the op's backward never reads the old ``self`` (no snapshot when recording).
    """
    sd = self._data
    if ufunc_name is not None and (sd.dtype.kind == "f" or sd.dtype in _LOW_FLOATS) and not needs_graph(self, op):
        ufunc_into(self, op, getattr(self._xp, ufunc_name), sd)
        return self
    return (inplace_light if light else inplace)(self, op, fn, **kwargs)


def unary_method(op: str, ufunc_name, fn, light: bool):
    """The Tensor method ``op`` (e.g. ``exp_``): ``unary_`` with its arguments bound."""
    def method(self):
        return unary_(self, op, ufunc_name, fn, light)

    method.__name__ = method.__qualname__ = op
    method.__doc__ = f"In-place version of ``{fn.__name__}``."
    return method


def inplace(self, op: str, fn, *args, **kwargs):
    """``self`` overwritten with out-of-place ``fn(self, *args, **kwargs)`` (the general path).

    When a graph is recorded, ``fn`` runs on a snapshot of the old ``self`` because its backward
    reads the old values (``mul_``, ``pow_``, ``clamp_``...).

    Example: ``inplace(x, "mul_", mul, y)`` is ``x.mul_(y)``.
    """
    if needs_graph(self, op, *args, *kwargs.values()):
        res = fn(_op.snapshot(self), *args, **kwargs)
        if self._base is not None:
            return _through_base(self, _checked(self, res, op))
        write_result(self, res, op)
        rebase(self, res)
        return self
    write_result(self, fn(self, *args, **kwargs), op)
    return self


def inplace_light(self, op: str, fn, *args, **kwargs):
    """Like ``inplace`` for ops whose backward never reads the old ``self`` (add_, exp_, ...): no snapshot."""
    record = needs_graph(self, op, *args, *kwargs.values())
    res = fn(self, *args, **kwargs)
    if record and self._base is not None:
        return _through_base(self, _checked(self, res, op))
    write_result(self, res, op)
    if record:
        rebase(self, res)
    return self


ZeroGradBackward0 = _op.ZeroGradBackward0
rebase = _op.rebase


def _checked(self, res, op: str):
    """``res`` after the shape and dtype checks ``write_result`` makes, for writes routed through a base."""
    if res._data.shape != self._data.shape:
        try:
            ok = np.broadcast_shapes(self._data.shape, res._data.shape) == self._data.shape
        except ValueError:
            ok = False
        if not ok:
            raise RuntimeError(f"{op}: output with shape {list(self._data.shape)} doesn't match the broadcast shape "
                               f"{list(res._data.shape)}")
    if res._data.dtype != self._data.dtype:
        check_cast(D._FROM_NP[res._data.dtype], D._FROM_NP[self._data.dtype], op)
    return res


def write_result(self, res, op: str) -> None:
    """Copy ``res`` into ``self`` in place, with PyTorch's rules on shape and dtype."""
    sd, rd = self._data, res._data
    if rd.shape != sd.shape:
        try:
            bshape = np.broadcast_shapes(sd.shape, rd.shape)
        except ValueError:
            bshape = None
        if bshape != sd.shape:
            raise RuntimeError(f"{op}: output with shape {list(sd.shape)} doesn't match the broadcast shape "
                               f"{list(rd.shape) if bshape is None else list(bshape)}")
    if rd.dtype != sd.dtype:
        check_cast(D._FROM_NP[rd.dtype], D._FROM_NP[sd.dtype], op)
    try:
        self._xp.copyto(sd, rd, casting="unsafe")
    except ValueError as e:
        raise write_error(self, op, [rd.shape], e) from None
    self._vc[0] += 1


def check_cast(result: D.dtype, target: D.dtype, op: str) -> None:
    """Raise PyTorch's error when an op's ``result`` dtype may not be written into a ``target`` tensor."""
    if not D.can_cast(result, target):
        raise RuntimeError(f"{op}: result type {_type_name(result)} can't be cast to the desired output type "
                           f"{_type_name(target)}")


def _type_name(d: D.dtype) -> str:
    return {"float32": "Float", "float64": "Double", "float16": "Half", "bfloat16": "BFloat16", "int64": "Long",
            "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool",
            "complex64": "ComplexFloat", "complex128": "ComplexDouble"}[d.name]


# ---- fill_, zero_, copy_ ------------------------------------------------------------------------
class FillBackward0(Node):
    def backward(self, g):
        gs = T._wrap(g._xp.zeros_like(g._data)) if self.next_functions[0][0] is not None else None
        gv = None
        if self.next_functions[1][0] is not None:
            gv = g.sum()
            if gv._data.dtype != self.value_dtype:
                gv = gv.to(D._FROM_NP[self.value_dtype])
        return gs, gv


def fill_(self, value):
    """Fill ``self`` with a number or a 0-d tensor (differentiable w.r.t. a tensor ``value``)."""
    vt = value if isinstance(value, T.Tensor) else None
    if vt is not None:
        if vt._data.ndim:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor with {vt._data.ndim} "
                               "dimensions.")
        value = vt._data
    else:
        _check_scalar(value, "fill_")
    record = needs_graph(self, "fill_", vt)
    if record and self._base is not None:
        return _through_base(self, vt if vt is not None else value)
    if record:
        node = _op.inplace_node(FillBackward0, self, vt)
        node.value_dtype = None if vt is None else vt._data.dtype
    try:
        self._xp.copyto(self._data, value, casting="unsafe")
    except OverflowError:
        raise RuntimeError(f"value cannot be converted to type {_FILL_TYPES.get(self._data.dtype.name, self.dtype.name)} "
                           f"without overflow (got {value})") from None
    except ValueError as e:
        raise write_error(self, "fill_", [()], e) from None
    self._vc[0] += 1
    if record:
        _op.set_history(self, node)
    return self


def zero_(self):
    """Fill ``self`` with zeros."""
    return fill_(self, 0)


class CopyBackwards(Node):
    def backward(self, g):
        gs = T._wrap(g._xp.zeros_like(g._data)) if self.next_functions[0][0] is not None else None
        gsrc = None
        if self.next_functions[1][0] is not None:
            gsrc = sum_to(g, self.src_shape)
            if gsrc._data.dtype != self.src_dtype:
                gsrc = gsrc.to(D._FROM_NP[self.src_dtype])
        return gs, gsrc


# The C++ element types PyTorch's fill_ overflow message names.
_FILL_TYPES = {"uint8": "uint8_t", "int8": "int8_t", "int16": "int16_t", "int32": "int", "int64": "int64_t",
               "float16": "c10::Half", "bfloat16": "c10::BFloat16", "float32": "float", "float64": "double"}


def copy_(self, src, non_blocking: bool = False):
    """Copy ``src`` (broadcast to ``self``'s shape, cast to its dtype, moved to its device) into ``self``."""
    if not isinstance(src, T.Tensor):
        raise TypeError(f"copy_(): argument 'other' (position 1) must be Tensor, not {type(src).__name__}")
    sd = self._data
    if src._data.__class__ is not sd.__class__ or src.device != self.device:
        from .convert import _convert

        src = _convert(src, None, self.device)
    record = needs_graph(self, "copy_", src)
    if record and self._base is not None:
        return _through_base(self, src)
    if record:
        node = _op.inplace_node(CopyBackwards, self, src)
        node.src_shape, node.src_dtype = src._data.shape, src._data.dtype
    try:
        self._xp.copyto(sd, src._data, casting="unsafe")
    except ValueError as e:
        raise write_error(self, "copy_", [sd.shape, src._data.shape], e) from None
    self._vc[0] += 1
    if record:
        _op.set_history(self, node)
    return self
