"""sort, argsort, topk, kthvalue, unique and friends, plus the gather/scatter pair behind them.

Selection ops return values that are differentiable (the gradient is scattered back to the
selected positions) and int64 indices that are not. ``take_along``/``put_along`` are that
differentiable gather/scatter pair; reductions with indices (max, median, cummax, ...) use them too.
"""
from __future__ import annotations

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from .. import return_types as R
from ..autograd.op import Op
from ._helpers import tensor_arg
from .elementwise import _out

__all__ = ["bincount", "sort", "argsort", "msort", "topk", "kthvalue", "unique", "unique_consecutive", "searchsorted",
           "bucketize"]

_BF16 = D.bfloat16.np
_I64 = np.int64


def order_array(arr):
    """``arr`` in a dtype NumPy orders correctly (its bfloat16 sorts mishandle NaN)."""
    return arr.astype(np.float32) if arr.dtype == _BF16 else arr


def argsort_array(xp, arr, axis: int, descending: bool = False, stable: bool = True):
    """Argsort with NaN as the largest value; when ``stable``, equal elements keep input order
    (also descending). The unstable sort is several times faster on floats.
    """
    arr = order_array(arr)
    if not stable:
        idx = xp.argsort(arr, axis=axis)
        return xp.flip(idx, axis) if descending else idx
    if not descending:
        return xp.argsort(arr, axis=axis, kind="stable")
    # Sorting the reversed array and reversing the permutation keeps equal elements in input order.
    n = arr.shape[axis]
    idx = xp.argsort(xp.flip(arr, axis), axis=axis, kind="stable")
    return (n - 1) - xp.flip(idx, axis)


def _index_tuple(xp, idx, axis: int) -> tuple:
    """Advanced-index tuple addressing ``idx`` along ``axis`` and every position elsewhere."""
    nd = idx.ndim
    out = []
    for i in range(nd):
        if i == axis:
            out.append(idx)
        else:
            shp = [1] * nd
            shp[i] = idx.shape[i]
            out.append(xp.arange(idx.shape[i]).reshape(shp))
    return tuple(out)


class GatherBackward0(Op):
    """``x`` gathered at integer array ``idx`` along ``dim`` (see ``take_along``)."""

    op_name = "gather"

    def forward(self, xp, x, idx=None, dim=0, unique=True, squeeze=False):
        if self.next_functions:
            self.idx, self.dim, self.shape, self.unique, self.squeeze = idx, dim, x.shape, unique, squeeze
        res = xp.take_along_axis(x, idx, axis=dim)
        return res.squeeze(dim) if squeeze else res

    def backward(self, g):
        if self.squeeze:
            g = g.unsqueeze(self.dim)
        return put_along(g, self.idx, self.dim, self.shape, self.unique)


# PyTorch's node names for the ops whose values are a gather of the input.
class SortBackward0(GatherBackward0):
    op_name = "sort"


class TopkBackward0(GatherBackward0):
    op_name = "topk"


class KthvalueBackward0(GatherBackward0):
    op_name = "kthvalue"


class MaxBackward0(GatherBackward0):
    op_name = "max"


class MinBackward0(GatherBackward0):
    op_name = "min"


class MedianBackward1(GatherBackward0):
    op_name = "median"


class NanmedianBackward1(GatherBackward0):
    op_name = "nanmedian"


class ModeBackward0(GatherBackward0):
    op_name = "mode"


class CummaxBackward0(GatherBackward0):
    op_name = "cummax"


class CumminBackward0(GatherBackward0):
    op_name = "cummin"


def take_along(x, idx, dim: int, node_cls=GatherBackward0, unique: bool = True, squeeze: bool = False):
    """``x`` gathered at integer array ``idx`` along ``dim`` (differentiable in ``x``).

    ``unique`` says no index repeats along ``dim`` (the backward can assign instead of add);
    ``squeeze`` drops ``dim`` from the result (``idx`` must then have size 1 there).
    """
    return node_cls.apply(x, idx=idx, dim=dim, unique=unique, squeeze=squeeze)


class ScatterBackward0(Op):
    """Zeros of ``shape`` with ``g`` added at ``idx`` along ``dim`` (see ``put_along``)."""

    op_name = "scatter"

    def forward(self, xp, g, idx=None, dim=0, shape=(), unique=True):
        if self.next_functions:
            self.idx, self.dim, self.unique = idx, dim, unique
        out = xp.zeros(shape, dtype=g.dtype)
        where = _index_tuple(xp, idx, dim)
        if unique:
            out[where] = g
        elif xp is np:
            np.add.at(out, where, g)
        else:  # pragma: no cover - CUDA only
            import cupyx

            cupyx.scatter_add(out, where, g)
        return out

    def backward(self, g):
        return take_along(g, self.idx, self.dim, unique=self.unique)


def put_along(g, idx, dim: int, shape: tuple, unique: bool = True):
    """Zeros of ``shape`` with ``g`` added at ``idx`` along ``dim``: the adjoint of ``take_along``."""
    return ScatterBackward0.apply(g, idx=idx, dim=dim, shape=shape, unique=unique)


def _as_1d(x):
    """A 0-d tensor as a 1-element vector (selection ops treat 0-d input as one slice)."""
    return x.reshape(1) if x._data.ndim == 0 else x


def _back_to_0d(t, was_0d: bool):
    return t.reshape(()) if was_0d else t


def sort(input, dim: int = -1, descending: bool = False, stable: bool = False):
    """Sort along ``dim``; returns ``return_types.sort(values, indices)``.

    NaN sorts as the largest value; ``stable=True`` keeps equal elements in input order.

    Example:
        >>> disttorch.sort(disttorch.tensor([3., 1., 2.])).indices
        tensor([1, 2, 0])
    """
    x = tensor_arg(input, "sort")
    was_0d = x._data.ndim == 0
    x = _as_1d(x)
    d = T._wrap_dim(dim, x._data.ndim, "sort")
    idx = argsort_array(x._xp, x._data, d, bool(descending), bool(stable))
    values = take_along(x, idx, d, SortBackward0)
    return R.sort((_back_to_0d(values, was_0d), _back_to_0d(T._wrap(idx.astype(_I64, copy=False)), was_0d)))


def argsort(input, dim: int = -1, descending: bool = False, stable: bool = False):
    """The indices that sort ``input`` along ``dim`` (int64; see ``sort``)."""
    x = tensor_arg(input, "argsort")
    arr = x._data
    if arr.ndim == 0:
        T._wrap_dim(dim, 0, "argsort")
        return T._wrap(x._xp.zeros((), dtype=_I64))
    d = T._wrap_dim(dim, arr.ndim, "argsort")
    return T._wrap(argsort_array(x._xp, arr, d, bool(descending), bool(stable)).astype(_I64, copy=False))


def msort(input):
    """``input`` sorted along its first dimension."""
    return sort(tensor_arg(input, "msort"), 0).values


def topk(input, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
    """The ``k`` largest (or smallest) elements along ``dim``: ``return_types.topk(values, indices)``.

    Results come sorted (largest first when ``largest``) whatever ``sorted`` says.
    """
    x = tensor_arg(input, "topk")
    was_0d = x._data.ndim == 0
    x = _as_1d(x)
    xp, arr = x._xp, x._data
    d = T._wrap_dim(dim if dim is not None else -1, arr.ndim, "topk")
    n = arr.shape[d]
    k = int(k)
    if not 0 <= k <= n:
        raise RuntimeError(f"selected index k out of range (k = {k}, dimension {d} has size {n})")
    ordered = order_array(arr)
    if 0 < k < n // 8 and n > 64:
        # Partition first: only the k selected elements get sorted.
        part = xp.argpartition(ordered, n - k if largest else k - 1, axis=d)
        sl = [slice(None)] * arr.ndim
        sl[d] = slice(n - k, None) if largest else slice(0, k)
        part = part[tuple(sl)]
        sub = xp.take_along_axis(ordered, part, axis=d)
        idx = xp.take_along_axis(part, argsort_array(xp, sub, d, bool(largest), False), axis=d)
    else:
        idx = argsort_array(xp, ordered, d, bool(largest), False)
        sl = [slice(None)] * arr.ndim
        sl[d] = slice(0, k)
        idx = idx[tuple(sl)]
    values = take_along(x, idx, d, TopkBackward0)
    return R.topk((_back_to_0d(values, was_0d), _back_to_0d(T._wrap(idx.astype(_I64, copy=False)), was_0d)))


def kthvalue(input, k: int, dim: int = -1, keepdim: bool = False):
    """The ``k``-th smallest element (1-based) along ``dim``: ``return_types.kthvalue(values, indices)``."""
    x = tensor_arg(input, "kthvalue")
    was_0d = x._data.ndim == 0
    x = _as_1d(x)
    xp, arr = x._xp, x._data
    d = T._wrap_dim(dim, arr.ndim, "kthvalue")
    n = arr.shape[d]
    if n == 0:
        raise IndexError(f"kthvalue(): Expected reduction dim {d} to have non-zero size.")
    k = int(k)
    if not 1 <= k <= n:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {d} (k = {k}, size {n})")
    idx = take_slice(argsort_array(xp, arr, d, stable=False), d, k - 1)
    return _values_indices(R.kthvalue, x, idx, d, keepdim or was_0d, KthvalueBackward0, was_0d)


def take_slice(arr, axis: int, i: int):
    """``arr[..., i:i+1, ...]`` along ``axis`` (keeps the dimension)."""
    sl = [slice(None)] * arr.ndim
    sl[axis] = slice(i, i + 1)
    return arr[tuple(sl)]


def _values_indices(cls, x, idx, d: int, keepdim: bool, node_cls, was_0d: bool = False):
    """``cls(values, indices)`` for a reduction that selected ``idx`` (size 1 along ``d``)."""
    values = take_along(x, idx, d, node_cls, squeeze=not keepdim)
    ind = idx.astype(_I64, copy=False)
    if not keepdim:
        ind = ind.squeeze(d)
    if was_0d:
        values, ind = values.reshape(()), ind.reshape(())
    return cls((values, T._wrap(ind)))


def _unique_flat(xp, arr, return_inverse: bool, return_counts: bool):
    flat = order_array(arr.reshape(-1))
    perm = xp.argsort(flat, kind="stable")
    s = flat[perm]
    # NaNs never compare equal, so each one stays its own unique value, as in PyTorch.
    new = xp.empty(s.shape, dtype=bool)
    if s.size:
        new[0] = True
        new[1:] = s[1:] != s[:-1]
    starts = xp.nonzero(new)[0]
    values = arr.reshape(-1)[perm[starts]]
    inverse = counts = None
    if return_inverse:
        inv_sorted = xp.cumsum(new) - 1
        inverse = xp.empty(flat.shape, dtype=_I64)
        inverse[perm] = inv_sorted
        inverse = inverse.reshape(arr.shape)
    if return_counts:
        counts = xp.diff(xp.append(starts, s.size)).astype(_I64)
    return values, inverse, counts


def unique(input, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False,  # noqa: A002
           dim: int | None = None):
    """The sorted unique elements (or unique slices along ``dim``) of ``input``.

    Returns a tensor, or a tuple ``(output, inverse_indices?, counts?)`` when asked for the extras.
    """
    x = tensor_arg(input, "unique")
    xp, arr = x._xp, x._data
    if dim is None:
        values, inverse, counts = _unique_flat(xp, arr, return_inverse, return_counts)
    else:
        d = T._wrap_dim(dim, arr.ndim, "unique")
        if arr.ndim == 0:
            raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
        work = order_array(arr)
        res = xp.unique(work, return_inverse=True, return_counts=True, axis=d, equal_nan=False)
        values = res[0].astype(arr.dtype, copy=False)
        inverse = res[1].reshape(-1).astype(_I64)
        counts = res[2].astype(_I64)
    out = T._wrap(values)
    if not (return_inverse or return_counts):
        return out
    extras = (out,)
    if return_inverse:
        extras += (T._wrap(inverse),)
    if return_counts:
        extras += (T._wrap(counts),)
    return extras


def unique_consecutive(input, return_inverse: bool = False, return_counts: bool = False, dim: int | None = None):
    """Collapse runs of equal consecutive elements (or slices along ``dim``) to one."""
    x = tensor_arg(input, "unique_consecutive")
    xp, arr = x._xp, x._data
    if dim is None:
        work = arr.reshape(-1)
        n = work.shape[0]
        changed = work[1:] != work[:-1]
    else:
        d = T._wrap_dim(dim, arr.ndim, "unique_consecutive")
        work = xp.moveaxis(arr, d, 0) if arr.ndim else arr.reshape(1)
        n = work.shape[0]
        rows = work.reshape(n, -1)
        changed = (rows[1:] != rows[:-1]).any(axis=1)
    new = xp.empty((n,), dtype=bool)
    if n:
        new[0] = True
        new[1:] = changed
    starts = xp.nonzero(new)[0]
    values = work[starts]
    if dim is not None and arr.ndim:
        values = xp.moveaxis(values, 0, d)
    out = T._wrap(xp.ascontiguousarray(values))
    if not (return_inverse or return_counts):
        return out
    extras = (out,)
    if return_inverse:
        inv = (xp.cumsum(new) - 1).astype(_I64)
        extras += (T._wrap(inv.reshape(arr.shape) if dim is None else inv),)
    if return_counts:
        extras += (T._wrap(xp.diff(xp.append(starts, n)).astype(_I64)),)
    return extras


def _values_arg(values, like, op: str):
    if isinstance(values, T.Tensor):
        return values, values._data
    if isinstance(values, (bool, int, float)):
        return None, like._xp.asarray(values)
    raise TypeError(f"{op}(): argument 'input' must be Tensor or Number, not {type(values).__name__}")


def searchsorted(sorted_sequence, input, *, out_int32: bool = False, right: bool = False, side: str | None = None,
                 sorter=None, out=None):
    """Indices where ``input`` values would be inserted into the innermost dim of ``sorted_sequence``.

    ``right=True`` (or ``side='right'``) returns the index after equal elements.
    """
    seq = tensor_arg(sorted_sequence, "searchsorted", "sorted_sequence")
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"torch.searchsorted(): side can only be 'left' or 'right' but got {side}")
        if right and side == "left":
            raise RuntimeError("torch.searchsorted(): side and right can't be set to opposites, got side of left while "
                               "right was True")
        right = side == "right"
    vt, vals = _values_arg(input, seq, "searchsorted")
    xp, s = seq._xp, seq._data
    if s.ndim == 0:
        raise RuntimeError("torch.searchsorted(): boundaries tensor should have positive dimension, but got 0 dimension")
    if sorter is not None:
        s = xp.take_along_axis(s, (sorter._data if isinstance(sorter, T.Tensor) else xp.asarray(sorter)), axis=-1)
    s, vals = order_array(s), order_array(vals)
    how = "right" if right else "left"
    if s.ndim == 1:
        res = xp.searchsorted(s, vals, side=how)
    else:
        if vals.ndim != s.ndim or vals.shape[:-1] != s.shape[:-1]:
            raise RuntimeError(f"torch.searchsorted(): boundaries tensor should be 1 dimension or the first N-1 dimensions "
                               f"of boundaries tensor and input value tensor must match, but we got boundaries "
                               f"tensor {list(s.shape)} and input value tensor {list(vals.shape)}")
        s2, v2 = s.reshape(-1, s.shape[-1]), vals.reshape(-1, vals.shape[-1])
        res = xp.stack([xp.searchsorted(s2[i], v2[i], side=how) for i in range(s2.shape[0])]).reshape(vals.shape) \
            if s2.shape[0] else xp.zeros(vals.shape, dtype=_I64)
    res = T._wrap(xp.asarray(res).astype(np.int32 if out_int32 else _I64))
    return res if out is None else _out(res, out)


def bucketize(input, boundaries, *, out_int32: bool = False, right: bool = False, out=None):
    """The bucket of each element of ``input`` given sorted 1-D ``boundaries``.

    With ``right=False`` an element ``v`` lands in ``i`` such that ``boundaries[i-1] < v <= boundaries[i]``.
    """
    b = tensor_arg(boundaries, "bucketize", "boundaries")
    if b._data.ndim != 1:
        raise RuntimeError(f"boundaries tensor must be 1 dimension, but got dim({b._data.ndim})")
    return searchsorted(b, input, out_int32=out_int32, right=right, out=out)


class SortMethods:
    __slots__ = ()

    def bincount(self, weights=None, minlength: int = 0):
        return bincount(self, weights, minlength)

    sort = sort
    argsort = argsort
    msort = msort
    topk = topk
    kthvalue = kthvalue
    unique = unique
    unique_consecutive = unique_consecutive


def bincount(input, weights=None, minlength: int = 0):
    """Counts of each value in a 1-D non-negative integer tensor (weighted sums with ``weights``).

    Example:
        >>> disttorch.bincount(disttorch.tensor([0, 2, 2]))
        tensor([1, 0, 2])
    """
    x = tensor_arg(input, "bincount")
    arr = x._data
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise RuntimeError(f"bincount only supports 1-d non-negative integral inputs, got a {arr.ndim}-d "
                           f"{x.dtype} tensor")
    if arr.size and int(arr.min()) < 0:
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs (found a negative value)")
    if minlength < 0:
        raise RuntimeError(f"minlength should be >= 0 (got {minlength})")
    w = None
    if weights is not None:
        wt = tensor_arg(weights, "bincount", "weights")
        if wt._data.shape != arr.shape:
            raise RuntimeError(f"weights should be 1-d and have the same length as input "
                               f"({list(wt.shape)} vs {list(x.shape)})")
        w = wt._data
    res = x._xp.bincount(arr, weights=w, minlength=minlength)
    if w is None:
        res = res.astype(np.int64)
    elif w.dtype == np.float32:
        res = res.astype(np.float32)
    return T._wrap(res)
