"""Reductions: sum, mean, prod, max/min, norm, all/any, median, ... as in PyTorch (var/std in reduce_var.py).

Each takes ``dim`` as an int, a tuple/list or None (all dims; an empty list means all too) and
``keepdim``; a 0-d input accepts dim 0 or -1. Gradients of max/min/amax/amin/median without a dim
are split evenly among tied elements, as PyTorch does; with a dim they go to the returned index.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _dtype as D
from .. import _parallel as P
from .. import _tensor as T
from ..amp._state import fp32_op as _autocast_fp32
from .. import return_types as R
from ..autograd.op import RESULT
from ._helpers import quiet, tensor_arg
from ._reduce_base import (_F32, _LOW, _Reduction, _const, _expand_back, _keep_shape,
                           _rdims, _sum_dtype, _torch_name)
from .reduce_var import std, std_mean, var, var_mean
from ._prod_grad import prod_grad
from .sort import (MaxBackward0, MedianBackward1, MinBackward0, ModeBackward0, NanmedianBackward1, _as_1d,
                   _values_indices, argsort_array, order_array)

__all__ = ["sum", "mean", "nansum", "nanmean", "prod", "max", "min", "amax", "amin", "argmax", "argmin", "aminmax",
           "var", "std", "var_mean", "std_mean", "norm", "all", "any", "count_nonzero", "median", "nanmedian",
           "mode"]

def _asum(xp, arr, dims: tuple, keepdim: bool, dtype=None):
    """``arr.sum(axis=dims, keepdims=keepdim, dtype=dtype)``; large NumPy sums over the trailing axes of a
    C-contiguous array are split over its rows on the intra-op pool. Each row is then summed by the same NumPy
    loop in the same order as on one thread (bitwise equal). Sums over leading axes (column pieces read
    strided, measured 3x slower split) and over every axis (partial sums would be added in another order)
    stay on one thread."""
    if arr.size >= P.MIN_STREAM and xp is np and 0 < len(dims) < arr.ndim and arr.flags.c_contiguous:
        nd, k = arr.ndim, len(dims)
        ds = tuple(sorted(dims))
        if ds == tuple(range(nd - k, nd)):  # one sum per row of a (kept, reduced) view
            kept = arr.shape[:nd - k]
            a2 = arr.reshape(math.prod(kept), -1)
            out = np.empty(a2.shape[0], dtype=np.add.reduce(a2[:0], axis=1, dtype=dtype).dtype)
            P.run_ranges(a2.shape[0], lambda i, j: np.add.reduce(a2[i:j], axis=1, dtype=dtype, out=out[i:j]))
            return out.reshape(_keep_shape(arr.shape, ds) if keepdim else kept)
    return arr.sum(axis=dims, keepdims=keepdim, dtype=dtype)


def _sum_array(xp, arr, dims: tuple, keepdim: bool, out_np):
    if out_np.kind in "iu":
        return _asum(xp, arr, dims, keepdim, out_np)
    with quiet(xp):  # inf + -inf and overflow give IEEE results silently
        if arr.dtype in _LOW or out_np in _LOW:
            return _asum(xp, arr, dims, keepdim, _F32).astype(out_np)
        return _asum(xp, arr, dims, keepdim, out_np)


class SumBackward0(_Reduction):
    op_name = "sum"

    def forward(self, xp, arr, dims, keepdim, out_np):
        self._keep(arr, dims, keepdim)
        return _sum_array(xp, arr, dims, keepdim, out_np)  # complex too: the backward is the same expand

    def backward(self, g):
        return _expand_back(g, self.shape, self.dims, self.keepdim)


class SumBackward1(SumBackward0):
    """PyTorch's name for the node of ``sum(dim=...)``."""


def sum(input, dim=None, keepdim: bool = False, *, dtype=None):  # noqa: A001
    """Sum over ``dim`` (all dims when None); bool and int inputs sum in int64 as PyTorch does."""
    x = tensor_arg(input, "sum")
    arr = x._data
    dims = _rdims(dim, arr.ndim, "sum")
    return (SumBackward0 if dim is None else SumBackward1).apply(x, dims, keepdim, _sum_dtype(arr, dtype))


class MeanBackward0(_Reduction):
    op_name = "mean"

    def forward(self, xp, arr, dims, keepdim):
        self._keep(arr, dims, keepdim)
        self.count = count = math.prod(arr.shape[d] for d in dims)
        with quiet(xp):
            if arr.dtype in _LOW:
                return (_asum(xp, arr, dims, keepdim, _F32) / count).astype(arr.dtype)
            return _asum(xp, arr, dims, keepdim) / arr.dtype.type(count)

    def backward(self, g):
        return _expand_back(g / self.count, self.shape, self.dims, self.keepdim)


class MeanBackward1(MeanBackward0):
    """PyTorch's name for the node of ``mean(dim=...)``."""


def _float_only(x, dtype, op: str):
    """``x`` cast to ``dtype`` (differentiably), or an error for integer input without one."""
    if dtype is not None:
        return x.to(D.to_dtype(dtype))
    if x._data.dtype.kind in "biu":
        raise RuntimeError(f"{op}(): could not infer output dtype. Input dtype must be either a floating point or "
                           f"complex dtype. Got: {_torch_name(x)}")
    return x


def mean(input, dim=None, keepdim: bool = False, *, dtype=None):
    """Arithmetic mean over ``dim`` (nan for an empty reduction); integer inputs need a floating ``dtype``."""
    x = _float_only(tensor_arg(input, "mean"), dtype, "mean")
    dims = _rdims(dim, x._data.ndim, "mean")
    return (MeanBackward0 if dim is None else MeanBackward1).apply(x, dims, keepdim)


class NansumBackward0(_Reduction):
    op_name = "nansum"

    def forward(self, xp, arr, dims, keepdim, out_np):
        self._keep(arr, dims, keepdim)
        keep = ~xp.isnan(arr)
        if self.next_functions:
            self.weight = keep
        return _sum_array(xp, xp.where(keep, arr, 0).astype(arr.dtype, copy=False), dims, keepdim, out_np)

    def backward(self, g):
        return _expand_back(g, self.shape, self.dims, self.keepdim) * _const(g._data.dtype, self.weight)


def nansum(input, dim=None, keepdim: bool = False, *, dtype=None):
    """Sum treating NaN as zero."""
    x = tensor_arg(input, "nansum")
    arr = x._data
    if arr.dtype.kind in "biu":
        return sum(x, dim, keepdim, dtype=dtype)
    dims = _rdims(dim, arr.ndim, "nansum")
    return NansumBackward0.apply(x, dims, keepdim, _sum_dtype(arr, dtype))


def nanmean(input, dim=None, keepdim: bool = False, *, dtype=None):
    """Mean of the non-NaN elements."""
    x = _float_only(tensor_arg(input, "nanmean"), dtype, "nanmean")
    arr = x._data
    dims = _rdims(dim, arr.ndim, "nanmean")
    keep = ~x._xp.isnan(arr)
    count = keep.sum(axis=dims, keepdims=keepdim)
    return nansum(x, dim, keepdim) / T._wrap(count.astype(arr.dtype))


class ProdBackward0(_Reduction):
    op_name = "prod"

    def forward(self, xp, arr, dims, keepdim, out_np, dim):
        self._keep(arr, dims, keepdim)
        self.dim = dim
        self.save(0, RESULT)
        with quiet(xp):
            if arr.dtype in _LOW or out_np in _LOW:
                return arr.prod(axis=dims, keepdims=keepdim, dtype=_F32).astype(out_np)
            return arr.prod(axis=dims, keepdims=keepdim, dtype=out_np)

    def backward(self, g):
        x, r = self.saved_tensors
        if x._data.ndim == 0:
            return g
        return prod_grad(x, _expand_back(g, self.shape, self.dims, self.keepdim),
                         _expand_back(r, self.shape, self.dims, self.keepdim), self.dims, self.dim)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def prod(input, dim: int | None = None, keepdim: bool = False, *, dtype=None):
    """Product over ``dim`` (all elements when None); bool and int inputs multiply in int64."""
    x = tensor_arg(input, "prod")
    if isinstance(dim, (list, tuple)):
        raise TypeError(f"prod(): argument 'dim' must be int, not {type(dim).__name__}")
    out_np = _sum_dtype(x._data, dtype)
    if x._data.dtype != out_np and out_np.kind in "fcV" and T.needs_grad(x):
        x = x.to(D._FROM_NP[out_np])
    dims = _rdims(dim, x._data.ndim, "prod")
    return ProdBackward0.apply(x, dims, keepdim, out_np, dims[0] if dim is not None and dims else None)


# ---- max / min family ---------------------------------------------------------------------------
class _EvenlyBackward(_Reduction):
    """A value-selecting reduction without indices; ``compute(xp, arr)`` gives the value. The gradient is split
    evenly among the ties."""

    def forward(self, xp, arr, dims, keepdim, compute):
        self._keep(arr, dims, keepdim)
        self.save(0, RESULT)
        return compute(xp, arr)

    def backward(self, g):
        x, r = self.saved_tensors
        xp, xa = x._xp, x._data
        ra = r._data if self.keepdim else r._data.reshape(_keep_shape(xa.shape, self.dims))
        mask = xa == ra
        if xa.dtype.kind == "f" or xa.dtype == D.bfloat16.np:
            mask |= xp.isnan(xa) & xp.isnan(ra)
        w = mask / mask.sum(axis=self.dims, keepdims=True)
        return _expand_back(g, xa.shape, self.dims, self.keepdim) * _const(x._data.dtype, w)


class MaxBackward1(_EvenlyBackward):
    op_name = "max"


class MinBackward1(_EvenlyBackward):
    op_name = "min"


class AmaxBackward0(_EvenlyBackward):
    op_name = "amax"


class AminBackward0(_EvenlyBackward):
    op_name = "amin"


class MedianBackward0(_EvenlyBackward):
    op_name = "median"


class NanmedianBackward0(_EvenlyBackward):
    op_name = "nanmedian"


def _no_identity(op: str) -> RuntimeError:
    return RuntimeError(f"{op}(): Expected reduction dim to be specified for input.numel() == 0. Specify the "
                        "reduction dim with the 'dim' argument.")


def _check_dims_nonempty(arr, dims: tuple, op: str) -> None:
    for d in dims:
        if arr.shape[d] == 0:
            raise IndexError(f"{op}(): Expected reduction dim {d} to have non-zero size.")


def _extreme(input, dim, keepdim: bool, other, high: bool):
    op = "max" if high else "min"
    x = tensor_arg(input, op)
    if other is not None or isinstance(dim, T.Tensor):
        from . import pointwise  # written alongside; imported lazily to keep files independent

        return (pointwise.maximum if high else pointwise.minimum)(x, dim if other is None else other)
    xp, arr = x._xp, x._data
    if dim is None:
        if arr.size == 0:
            raise _no_identity(op)

        def compute(xp, a):
            with quiet(xp):
                return xp.asarray(a.max() if high else a.min(), dtype=a.dtype)

        return (MaxBackward1 if high else MinBackward1).apply(x, tuple(range(arr.ndim)), False, compute)
    if isinstance(dim, (list, tuple)):
        raise TypeError(f"{op}(): argument 'dim' must be int, not {type(dim).__name__}")
    was_0d = arr.ndim == 0
    x1 = _as_1d(x)
    d = T._wrap_dim(dim, arr.ndim, op)
    _check_dims_nonempty(x1._data, (d,), op)
    ordered = order_array(x1._data)
    idx = (xp.argmax if high else xp.argmin)(ordered, axis=d, keepdims=True)
    return _values_indices(R.max if high else R.min, x1, idx, d, keepdim or was_0d,
                           MaxBackward0 if high else MinBackward0, was_0d)


def max(input, dim=None, keepdim: bool = False, *, other=None):  # noqa: A001
    """The maximum: of all elements (0-d), ``return_types.max(values, indices)`` along ``dim``, or
    elementwise ``maximum(input, other)`` when the second argument is a tensor.

    The gradient of the full reduction is split evenly among tied maxima.
    """
    return _extreme(input, dim, keepdim, other, True)


def min(input, dim=None, keepdim: bool = False, *, other=None):  # noqa: A001
    """The minimum (see ``max`` for the three call forms)."""
    return _extreme(input, dim, keepdim, other, False)


def _amax(input, dim, keepdim: bool, high: bool):
    op = "amax" if high else "amin"
    x = tensor_arg(input, op)
    arr = x._data
    dims = _rdims(dim, arr.ndim, op)
    if arr.size == 0:
        if dim is None or (isinstance(dim, (list, tuple)) and not dim):
            raise _no_identity(op)
        _check_dims_nonempty(arr, dims, op)

    def compute(xp, a):
        with quiet(xp):
            res = a.max(axis=dims, keepdims=keepdim) if high else a.min(axis=dims, keepdims=keepdim)
        return xp.asarray(res, dtype=a.dtype)

    return (AmaxBackward0 if high else AminBackward0).apply(x, dims, keepdim, compute)


def amax(input, dim=(), keepdim: bool = False):
    """Maximum over ``dim`` (an int or tuple; all dims by default); ties share the gradient evenly."""
    return _amax(input, dim, keepdim, True)


def amin(input, dim=(), keepdim: bool = False):
    """Minimum over ``dim`` (an int or tuple; all dims by default); ties share the gradient evenly."""
    return _amax(input, dim, keepdim, False)


def _arg_extreme(input, dim, keepdim: bool, high: bool):
    op = "argmax" if high else "argmin"
    x = tensor_arg(input, op)
    xp, arr = x._xp, x._data
    fn = xp.argmax if high else xp.argmin
    ordered = order_array(arr)
    if dim is None:
        if arr.size == 0:  # PyTorch raises IndexError here (RuntimeError for max/min)
            raise IndexError(str(_no_identity(op)))
        res = fn(ordered.reshape(-1))
        res = xp.asarray(res).reshape((1,) * arr.ndim if keepdim else ())
    else:
        d = T._wrap_dim(dim, arr.ndim, op)
        if arr.ndim == 0:
            return T._wrap(xp.zeros((), dtype=np.int64))
        _check_dims_nonempty(arr, (d,), op)
        res = fn(ordered, axis=d, keepdims=keepdim)
    return T._wrap(res.astype(np.int64, copy=False))


def argmax(input, dim: int | None = None, keepdim: bool = False):
    """Index of the (first) maximum, over the flattened input when ``dim`` is None."""
    return _arg_extreme(input, dim, keepdim, True)


def argmin(input, dim: int | None = None, keepdim: bool = False):
    """Index of the (first) minimum, over the flattened input when ``dim`` is None."""
    return _arg_extreme(input, dim, keepdim, False)


def aminmax(input, *, dim: int | None = None, keepdim: bool = False):
    """``return_types.aminmax(min, max)`` over ``dim`` (all elements when None)."""
    x = tensor_arg(input, "aminmax")
    if x._data.size == 0 and (dim is None or x._data.shape[T._wrap_dim(dim, x._data.ndim, "aminmax")] == 0):
        raise RuntimeError("aminmax(): cannot compute aminmax over an empty dimension as the operation has no "
                           "identity.")
    dims = () if dim is None else dim
    return R.aminmax((_amax(x, dims, keepdim, False), _amax(x, dims, keepdim, True)))


# ---- norms ---------------------------------------------------------------------------------------
def norm(input, p="fro", dim=None, keepdim: bool = False, out=None, dtype=None):
    """``torch.norm``: the Frobenius/2-norm by default, any vector ``p``-norm, or ``'nuc'`` over 2 dims."""
    # The norms live in disttorch.linalg, which imports this module.
    from ..linalg import _vector_norm, matrix_norm

    x = tensor_arg(input, "norm")
    if not (x.dtype.is_floating_point or x.dtype.is_complex):
        raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor as input. Got "
                           f"{_torch_name(x)}")
    if isinstance(p, str):
        if p == "fro" and (dim is None or isinstance(dim, int) or len(dim) <= 2):
            return _vector_norm(x, 2, dim, keepdim, dtype, "norm")
        if p == "nuc":
            return matrix_norm(x, "nuc", (-2, -1) if dim is None else dim, keepdim, dtype=dtype)
        if p in ("fro", "nuc"):
            raise RuntimeError(f"linalg.matrix_norm: dim must be a 2-tuple. Got {' '.join(str(d) for d in dim)}")
        raise RuntimeError(f"linalg.matrix_norm: Order {p} not supported.")
    return _vector_norm(x, 2 if p is None else p, dim, keepdim, dtype, "norm")


# ---- logical reductions --------------------------------------------------------------------------
def _logical(input, dim, keepdim: bool, op: str):
    x = tensor_arg(input, op)
    xp, arr = x._xp, x._data
    dims = _rdims(dim, arr.ndim, op)
    truth = arr if arr.dtype.kind == "b" else arr != 0
    res = truth.all(axis=dims, keepdims=keepdim) if op == "all" else truth.any(axis=dims, keepdims=keepdim)
    res = xp.asarray(res)
    return T._wrap(res.astype(np.uint8) if arr.dtype == np.uint8 else res)


def all(input, dim=None, keepdim: bool = False):  # noqa: A001
    """True where every element over ``dim`` is nonzero (uint8 input gives uint8, as PyTorch)."""
    return _logical(input, dim, keepdim, "all")


def any(input, dim=None, keepdim: bool = False):  # noqa: A001
    """True where some element over ``dim`` is nonzero (uint8 input gives uint8, as PyTorch)."""
    return _logical(input, dim, keepdim, "any")


def count_nonzero(input, dim=None):
    """Number of nonzero elements over ``dim`` (int64)."""
    x = tensor_arg(input, "count_nonzero")
    arr = x._data
    dims = _rdims(dim, arr.ndim, "count_nonzero")
    return T._wrap(x._xp.asarray((arr != 0).sum(axis=dims, dtype=np.int64)))


# ---- median / mode -------------------------------------------------------------------------------
def _median(input, dim, keepdim: bool, ignore_nan: bool):
    op = "nanmedian" if ignore_nan else "median"
    x = tensor_arg(input, op)
    xp, arr = x._xp, x._data
    is_float = arr.dtype.kind == "f" or arr.dtype == D.bfloat16.np
    if dim is None:
        def compute(xp, a):
            flat = order_array(a.reshape(-1))
            n = flat.shape[0]
            nan = int(xp.isnan(flat).sum()) if is_float else 0
            m = n - nan if ignore_nan else n
            if n == 0 or m == 0 or (nan and not ignore_nan):
                val = xp.asarray(math.nan if is_float else np.iinfo(a.dtype).min if a.dtype.kind in "iu" else 0)
            else:
                k = (m - 1) // 2
                val = xp.partition(flat, k)[k]
            return xp.asarray(val).astype(a.dtype)

        return (NanmedianBackward0 if ignore_nan else MedianBackward0).apply(x, tuple(range(arr.ndim)), False,
                                                                             compute)
    was_0d = arr.ndim == 0
    x1 = _as_1d(x)
    a1 = x1._data
    d = T._wrap_dim(dim, arr.ndim, op)
    n = a1.shape[d]
    _check_dims_nonempty(a1, (d,), op)
    order = argsort_array(xp, a1, d)
    keep = _keep_shape(a1.shape, (d,))
    if is_float:
        # NaNs sort last, in input order: median picks the first NaN; nanmedian skips them.
        cnt = xp.isnan(order_array(a1)).sum(axis=d, keepdims=True)
        k = xp.maximum((n - cnt - 1) // 2, 0) if ignore_nan else xp.where(cnt > 0, n - cnt, (n - 1) // 2)
    else:
        k = xp.full(keep, (n - 1) // 2)
    idx = xp.take_along_axis(order, k.astype(np.int64), axis=d)
    return _values_indices(R.nanmedian if ignore_nan else R.median, x1, idx, d, keepdim or was_0d,
                           NanmedianBackward1 if ignore_nan else MedianBackward1, was_0d)


def median(input, dim: int | None = None, keepdim: bool = False):
    """The lower median: of all elements (NaN if any is NaN), or ``return_types.median`` along ``dim``."""
    return _median(input, dim, keepdim, False)


def nanmedian(input, dim: int | None = None, keepdim: bool = False):
    """Like ``median`` but ignoring NaNs (NaN only where a whole slice is NaN)."""
    return _median(input, dim, keepdim, True)


def mode(input, dim: int = -1, keepdim: bool = False):
    """The most frequent value along ``dim`` (the smallest on ties) and the index of its last occurrence."""
    x = tensor_arg(input, "mode")
    was_0d = x._data.ndim == 0
    x1 = _as_1d(x)
    xp, a1 = x._xp, x1._data
    d = T._wrap_dim(dim, x._data.ndim, "mode")
    n = a1.shape[d]
    _check_dims_nonempty(a1, (d,), "mode")
    order = xp.moveaxis(argsort_array(xp, a1, d), d, -1)
    s = xp.take_along_axis(xp.moveaxis(order_array(a1), d, -1), order, axis=-1)
    new = xp.ones(s.shape, dtype=bool)
    new[..., 1:] = s[..., 1:] != s[..., :-1]
    last = xp.ones(s.shape, dtype=bool)
    last[..., :-1] = new[..., 1:]
    pos = xp.arange(n)
    start = xp.maximum.accumulate(xp.where(new, pos, 0), axis=-1)
    run = xp.where(last, pos - start + 1, 0)
    best = xp.argmax(run, axis=-1, keepdims=True)  # first longest run = smallest value
    idx = xp.moveaxis(xp.take_along_axis(order, best, axis=-1), -1, d)
    return _values_indices(R.mode, x1, idx, d, keepdim or was_0d, ModeBackward0, was_0d)


class ReduceMethods:
    __slots__ = ()

    sum = sum
    mean = mean
    nansum = nansum
    nanmean = nanmean
    prod = prod
    max = max
    min = min
    amax = amax
    amin = amin
    argmax = argmax
    argmin = argmin
    aminmax = aminmax
    var = var
    std = std
    norm = norm
    all = all
    any = any
    count_nonzero = count_nonzero
    median = median
    nanmedian = nanmedian
    mode = mode
