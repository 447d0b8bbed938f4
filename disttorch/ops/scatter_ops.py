"""Reads and writes along one dim: gather/scatter/scatter_reduce, index_select/add/copy/fill/put, take.

Each is an advanced-index read or write built on index.py's primitives: ``_along_key`` turns an
index tensor into the NumPy key pairing ``index[i][j][k]`` with position ``(i, index[i][j][k], k)``
(for ``dim=1``), so gather is ``_index`` (backward: scatter_add into zeros) and scatter is ``_put``.
index.py re-exports these functions and its mixin inherits ``ScatterMethods``.
"""
from __future__ import annotations

import numpy as np

from .. import _tensor as T
from .._device import array_module_of, to_host
from ..cuda import _checks
from ..amp import _state as _amp
from ..autograd.op import RESULT, Op, write_out
from ._helpers import broadcast_error, tensor_arg
from .inplace import _type_name
from .index import (GatherBackward0, IndexAddBackward0, IndexCopyBackward0, IndexFillBackward0, IndexSelectBackward0,
                    ScatterAddBackward0, ScatterBackward0, SliceBackward0, TakeBackward0, _index, _inplace_op, _put,
                    _ufunc_at, masked_fill)
from .index_keys import _norm_key, _norm_slice

__all__ = ["gather", "scatter", "scatter_add", "scatter_reduce", "index_select", "index_add", "index_copy",
           "index_fill", "index_put", "put", "take", "take_along_dim", "select_scatter", "slice_scatter"]

# "max" and "min" are PyTorch's forward-only aliases of "amax" and "amin" (its backward rejects them).
_REDUCE_UFUNC = {"sum": "add", "mean": "add", "prod": "multiply", "amax": "maximum", "amin": "minimum",
                 "max": "maximum", "min": "minimum"}


def _out(r, out, name: str):
    return r if out is None else write_out(r, out, name)


def _along_key(xp, idx, dim: int) -> tuple:
    nd = idx.ndim
    key = []
    for d in range(nd):
        if d == dim:
            key.append(idx)
        else:
            key.append(xp.arange(idx.shape[d]).reshape(tuple(-1 if i == d else 1 for i in range(nd))))
    return tuple(key)


def _index_arg(index, op: str, xp):
    idx = tensor_arg(index, op, "index")
    if idx._data.dtype != np.int64 and idx._data.dtype != np.int32:
        if op == "gather":
            raise RuntimeError("gather(): Expected dtype int32/int64 for index")
        raise RuntimeError("scatter(): Expected dtype int32/int64 for index")  # scatter_add/scatter_reduce too
    arr = idx._data
    if idx._xp is not xp:
        arr = xp.asarray(arr) if xp is not np else to_host(arr)
    return arr


def _bounds(idx, n: int, dim: int, op: str):
    """``idx`` checked to lie in [0, n): at once on the CPU; on a device without a host sync (reported at the next
    synchronisation, disttorch.cuda._checks) and returned clipped into range meanwhile."""
    if not idx.size:
        return idx
    if array_module_of(idx) is not np:
        return _checks.defer_range(array_module_of(idx), idx, 0, n, lambda: _bounds_error(idx, n, dim))
    err = _bounds_error(idx, n, dim)
    if err is not None:
        raise err
    return idx


def _bounds_error(idx, n: int, dim: int):
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= n:
        return RuntimeError(f"index {lo if lo < 0 else hi} is out of bounds for dimension {dim} with size {n}")
    return None


def gather(input, dim: int, index, *, sparse_grad: bool = False, out=None):
    """``out[i][j][k] = input[i][index[i][j][k]][k]`` for ``dim=1`` (an int64 ``index`` of input's ndim)."""
    x = tensor_arg(input, "gather")
    idx = _index_arg(index, "gather", x._xp)
    x1 = x if x._data.ndim else x.reshape(1)
    i1 = idx if idx.ndim else idx.reshape(1)
    nd = x1._data.ndim
    if i1.ndim != nd:
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    d = T._wrap_dim(dim, nd, "gather")
    xs = x1._data.shape
    for i in range(nd):
        if i != d and i1.shape[i] > xs[i]:
            raise RuntimeError(f"Size does not match at dimension {i} expected index {list(i1.shape)} to be no larger "
                               f"than self {list(xs)} apart from dimension {d}")
    i1 = _bounds(i1, xs[d], d, "gather")
    r = _index(x1, _along_key(x._xp, i1, d), True, GatherBackward0)
    return _out(r if idx.ndim else r.reshape(()), out, "gather")


def _prep(x, dim, index, src, op: str):
    """Validate a scatter; returns (x as >=1-d, dim, key, src cut to index's shape or None)."""
    idx = _index_arg(index, op, x._xp)
    x1 = x if x._data.ndim else x.reshape(1)
    i1 = idx if idx.ndim else idx.reshape(1)
    nd = x1._data.ndim
    if i1.ndim != nd:
        raise RuntimeError("Index tensor must have the same number of dimensions as self tensor")
    d = T._wrap_dim(dim, nd, op)
    s1 = ss = None
    if src is not None:
        s1 = src if src._data.ndim else src.reshape(1)
        ss = s1._data.shape
        if len(ss) != nd:
            raise RuntimeError("Index tensor must have the same number of dimensions as src tensor")
        if src.dtype is not x.dtype:
            raise RuntimeError("scatter(): Expected self.dtype to be equal to src.dtype")
    xs = x1._data.shape
    for i in range(nd):
        if (i != d and i1.shape[i] > xs[i]) or (ss is not None and i1.shape[i] > ss[i]):
            raise RuntimeError(f"Expected index {list(i1.shape)} to be no larger than self {list(xs)} apart from "
                               f"dimension {d}" + (f" and to be no larger size than src {list(ss)}" if ss else ""))
    i1 = _bounds(i1, xs[d], d, op)
    part = None
    if s1 is not None:
        part = s1 if ss == i1.shape else _index(s1, tuple(slice(0, n) for n in i1.shape), False, SliceBackward0)
    return x1, i1, d, _along_key(x._xp, i1, d), part


def scatter(input, dim: int, index, src=None, *, value=None, reduce=None, _into: bool = False):
    """A copy of ``input`` with ``src`` (or the number ``value``) written at ``index`` along ``dim``.

    ``reduce='add'`` or ``'multiply'`` combines instead of overwriting (see ``scatter_reduce``).
    """
    x = tensor_arg(input, "scatter")
    if src is not None and not isinstance(src, T.Tensor):
        src, value = None, src
    if src is None and value is None:
        raise TypeError("scatter: expected a 'src' tensor or a 'value' number")
    if reduce is not None:
        if reduce not in ("add", "multiply"):
            raise RuntimeError("reduce argument must be either add or multiply.")
        if src is None:
            shape = tensor_arg(index, "scatter", "index")._data.shape
            src = T._wrap(x._xp.full(shape, value, dtype=x._data.dtype))
        return scatter_reduce(x, dim, index, src, "sum" if reduce == "add" else "prod", _into=_into)
    if isinstance(value, T.Tensor):
        value = value.item()
    x1, _, _, key, part = _prep(x, dim, index, src, "scatter")
    r = _put(x1, key, part if src is not None else value, False, fresh=_into, adv=True, node_cls=ScatterBackward0,
             op="scatter")
    return r if x._data.ndim or _into else r.reshape(())


def scatter_add(input, dim: int, index, src, *, _into: bool = False):
    """A copy of ``input`` with ``src`` added at ``index`` along ``dim`` (repeated indices accumulate)."""
    x = tensor_arg(input, "scatter_add")
    x1, _, _, key, part = _prep(x, dim, index, tensor_arg(src, "scatter_add", "src"), "scatter_add")
    r = _put(x1, key, part, True, fresh=_into, adv=True, node_cls=ScatterAddBackward0, op="scatter_add")
    return r if x._data.ndim or _into else r.reshape(())


def _identity(reduce: str, dt):
    if reduce in ("sum", "mean"):
        return 0
    if reduce == "prod":
        return 1
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return info.min if reduce in ("amax", "max") else info.max
    if dt.kind == "b":
        return reduce in ("amin", "min")
    return -np.inf if reduce in ("amax", "max") else np.inf


def _reduce_into(xp, out, key, src, reduce: str, include_self: bool):
    """Combine array ``src`` into array ``out`` at ``key`` by ``reduce``, in place; returns the per-position counts
    for 'mean' (else None)."""
    if not include_self:
        out[key] = _identity(reduce, out.dtype)
    _ufunc_at(xp, _REDUCE_UFUNC[reduce], out, key, src)
    if reduce != "mean":
        return None
    cnt = xp.zeros(out.shape, dtype=np.int64)
    _ufunc_at(xp, "add", cnt, key, 1)
    if include_self:
        cnt += 1
    cnt = xp.maximum(cnt, 1)
    out[...] = out // cnt if out.dtype.kind in "iu" else (out / cnt).astype(out.dtype)
    return cnt


class ScatterReduceBackward0(Op):
    op_name = "scatter_reduce"

    def forward(self, xp, xa, src, key=(), reduce="sum", include_self=True, dim=0, index=None):
        out = xa.copy()
        cnt = _reduce_into(xp, out, key, src, reduce, include_self)
        if self.next_functions:
            self.reduce, self.include_self, self.key, self.dim, self.index, self.cnt = (reduce, include_self, key, dim,
                                                                                        index, cnt)
            self.save(0, 1, RESULT)
        return out

    def backward(self, g):
        x, src, res = self.saved_tensors
        xp, gd = g._xp, g._data.dtype
        key, red, inc = self.key, self.reduce, self.include_self
        if red in ("max", "min"):
            raise RuntimeError(f"Expected 'reduce' to be one of 'sum', 'prod', 'mean', 'amax', 'amin' but got {red}.")
        need_x, need_s = self.next_functions[0][0] is not None, self.next_functions[1][0] is not None
        sc = xp.zeros(g._data.shape, dtype=bool)
        sc[key] = True
        gx = gs = None
        if red in ("sum", "mean"):
            gg = g if red == "sum" else g * T._wrap((1.0 / self.cnt).astype(gd))
            if need_x:
                gx = gg if inc else masked_fill(gg, T._wrap(sc), 0)
            if need_s:
                gs = _index(gg, key, True)
        elif red in ("amax", "amin"):
            # The gradient is shared evenly among the values equal to the result (self and/or sources).
            xa, sa, ra = x._data, src._data, res._data
            self_is = xa == ra
            if not inc:
                self_is &= ~sc
            src_is = sa == ra[key]
            n = self_is.astype(gd)
            _ufunc_at(xp, "add", n, key, src_is.astype(gd))
            n[n == 0] = 1
            if need_x:
                gx = g * T._wrap((self_is / n).astype(gd))
            if need_s:
                gs = _index(g / T._wrap(n), key, True) * T._wrap(src_is.astype(gd))
        else:
            gx, gs = self._prod(g, x, src, res, sc, need_x, need_s)
        return gx, gs

    def _prod(self, g, x, src, res, sc, need_x, need_s):
        # PyTorch's formula: divide the product by the factor, except where that factor is zero.
        key, inc, d, index = self.key, self.include_self, self.dim, T._wrap(self.index)
        gx = gs = None
        if need_x:
            if inc:
                masked_self = masked_fill(x, T._wrap(x._data == 0), 1)
                gx = g * scatter_reduce(masked_self, d, index, src, "prod") / masked_self
            else:
                gx = masked_fill(g, T._wrap(sc), 0)
        if need_s:
            zero = src._data == 0
            nz = g._xp.zeros(g._data.shape, dtype=np.int64)
            _ufunc_at(g._xp, "add", nz, key, zero.astype(np.int64))
            single = zero & (nz[key] == 1)
            masked_src = masked_fill(src, T._wrap(single), 1)
            a = _index(g * scatter_reduce(x, d, index, masked_src, "prod", include_self=inc), key, True)
            b = _index(g * res, key, True) / masked_fill(src, T._wrap(zero), 1)
            gs = masked_fill(a, T._wrap(~single), 0) + masked_fill(b, T._wrap(single), 0)
        return gx, gs


def scatter_reduce(input, dim: int, index, src, reduce: str, *, include_self: bool = True, _into: bool = False):
    """A copy of ``input`` with ``src`` combined at ``index`` along ``dim`` by ``reduce``.

    ``reduce`` is 'sum', 'prod', 'mean', 'amax' or 'amin' ('max' and 'min' too, without a backward, as in
    PyTorch); ``include_self=False`` leaves the
    original values out of positions that receive at least one source value.
    """
    x = tensor_arg(input, "scatter_reduce")
    s = tensor_arg(src, "scatter_reduce", "src")
    if reduce not in _REDUCE_UFUNC:
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}")
    x1, i1, d, key, part = _prep(x, dim, index, s, "scatter_reduce")
    if _into:  # the in-place form outside autograd (see index.py's _inplace_op)
        _reduce_into(x._xp, x1._data, key, part._data, reduce, include_self)
        return x
    r = ScatterReduceBackward0.apply(x1, part, key=key, reduce=reduce, include_self=include_self, dim=d, index=i1)
    return r if x._data.ndim else r.reshape(())


# ------------------------------------------------------------------------------------------
# index_* along one dim, put and take
# ------------------------------------------------------------------------------------------
# PyTorch's wording of a bad index vector, per op ({0}: the index's dtype; {0}, {1}, {2}: its ndim, dtype, shape).
_VECTOR_DTYPE_ERRORS = {
    "index_select": "index_select(): Expected dtype int32 or int64 for index",
    "index_add": "index_add_(): Expected dtype int32/int64 for index but got: {0}",
    "index_copy": "index_copy_(): Expected a long tensor for index, but got {0}",
    "index_fill": "index_fill_(): Expected dtype int64 for index.",
}
_VECTOR_DIM_ERRORS = {
    "index_select": "index_select(): Index is supposed to be a vector",
    "index_add": "index_add_(): Index is supposed to be a vector, but got dim: {0} with type: {1} and size: {2}",
    "index_copy": "index_copy_(): Index should have dimension 1 or 0 (got {0})",
    "index_fill": "Index has to be a vector/scalar",
}


def _index_vector(index, op: str, xp):
    idx = tensor_arg(index, op, "index")
    arr = idx._data
    if arr.dtype != np.int64 and arr.dtype != np.int32:
        raise RuntimeError(_VECTOR_DTYPE_ERRORS[op].format(_type_name(idx.dtype)))
    if arr.ndim > 1:
        raise IndexError(_VECTOR_DIM_ERRORS[op].format(arr.ndim, _type_name(idx.dtype), list(arr.shape)))
    if idx._xp is not xp:
        arr = xp.asarray(arr) if xp is not np else to_host(arr)
    return arr.reshape(-1)


def _bounds_vec(idx, n: int, dim: int, op: str, negative_ok: bool = False):
    """PyTorch's out-of-range IndexError for ``op``'s index vector (each op words it its own way): at once on the
    CPU; on a device deferred to the next synchronisation (disttorch.cuda._checks), ``idx`` clipped meanwhile.
    Returns the index to use."""
    if not idx.size:
        return idx
    low = -n if negative_ok else 0
    if array_module_of(idx) is not np:
        return _checks.defer_range(array_module_of(idx), idx, low, n,
                                   lambda: _bounds_vec_error(idx, n, dim, op, low))
    err = _bounds_vec_error(idx, n, dim, op, low)
    if err is not None:
        raise err
    return idx


def _bounds_vec_error(idx, n: int, dim: int, op: str, low: int):
    lo, hi = int(idx.min()), int(idx.max())
    if not (lo < low or hi >= n):
        return None
    bad = lo if lo < low else hi
    if op in ("index_select", "index_add"):
        return IndexError("index out of range in self")
    if op in ("put", "take"):
        return IndexError(f"out of range: tried to access index {bad} on a tensor of {n} elements.")
    prefix = "index_copy_(): " if op == "index_copy" else ""
    return IndexError(f"{prefix}index {bad} is out of bounds for dimension {dim} with size {n}")


def index_select(input, dim: int, index, *, out=None):
    """The entries of ``input`` at positions ``index`` (1-d int tensor) along ``dim``."""
    x = tensor_arg(input, "index_select")
    if x._data.ndim == 0:
        x = x.reshape(1)
        r = index_select(x, 0, index).reshape(())
        return _out(r, out, "index_select")
    d = T._wrap_dim(dim, x._data.ndim, "index_select")
    idx = _index_vector(index, "index_select", x._xp)
    idx = _bounds_vec(idx, x._data.shape[d], d, "index_select")
    return _out(_index(x, (slice(None),) * d + (idx,), True, IndexSelectBackward0), out, "index_select")


def _dim_put_args(x, dim, index, source, op: str):
    """Validate index_add/index_copy arguments; returns the key and the (possibly reshaped) source."""
    d = T._wrap_dim(dim, x._data.ndim, op)
    idx = _index_vector(index, op, x._xp)
    n = x._data.shape[d] if x._data.ndim else 1
    idx = _bounds_vec(idx, n, d, op)
    if source is None:
        return (slice(None),) * d + (idx,), None
    s = tensor_arg(source, op, "source")
    sshape = s._data.shape if s._data.ndim else (1,)
    xshape = x._data.shape if x._data.ndim else (1,)
    add = op == "index_add"
    if len(sshape) != len(xshape):
        if add:
            raise RuntimeError(_add_shape_error(x, s))
        raise RuntimeError(f"index_copy_(): When source and destination are not scalars, their dimensionality must "
                           f"match. Source dimensionality ({len(sshape)}), destination dimensionality ({len(xshape)})")
    if sshape[d] != idx.size:
        raise RuntimeError(f"index_add_(): Number of indices ({idx.size}) should be equal to source.size(dim): "
                           f"({sshape[d]}), for dim: {d}" if add else
                           f"index_copy_(): Number of indices ({idx.size}) should be equal to source.size(dim) "
                           f"({sshape[d]})")
    for i, (a, b) in enumerate(zip(xshape, sshape)):
        if i != d and a != b:
            if add:
                raise RuntimeError(_add_shape_error(x, s))
            j = i if i < d else i - 1  # the dimension within the slice
            raise RuntimeError(f"index_copy_(): Source/destination tensor must have same slice shapes. Destination "
                               f"slice shape: {a} at dimension {j} and source slice shape: {b} at dimension {j}.")
    if x._data.ndim == 0:
        return (), s.reshape(())
    return (slice(None),) * d + (idx,), s


def _add_shape_error(x, s) -> str:
    return (f"source tensor shape must match self tensor shape, excluding the specified dimension. Got self.shape = "
            f"{list(x.shape)} source.shape = {list(s.shape)}")


def index_add(input, dim: int, index, source, *, alpha=1, _into: bool = False):
    """A copy of ``input`` with ``alpha * source`` added at ``index`` along ``dim`` (repeats accumulate)."""
    x = tensor_arg(input, "index_add")
    key, s = _dim_put_args(x, dim, index, source, "index_add")
    if s.dtype is not x.dtype:
        raise RuntimeError(f"index_add_(): self ({_type_name(x.dtype)}) and source ({_type_name(s.dtype)}) must have "
                           f"the same scalar type")
    if alpha != 1:
        s = s * alpha
    return _put(x, key, s, True, fresh=_into, adv=True, node_cls=IndexAddBackward0, op="index_add")


def index_copy(input, dim: int, index, source, *, _into: bool = False):
    """A copy of ``input`` with the slices of ``source`` written at ``index`` along ``dim``."""
    x = tensor_arg(input, "index_copy")
    if _amp.STATE.active and not _into:  # index_copy is on autocast's promote list
        x, source = _amp.cast_promote(x, source)
    key, s = _dim_put_args(x, dim, index, source, "index_copy")
    if s.dtype is not x.dtype:
        raise RuntimeError(f"index_copy_(): self and source expected to have the same dtype, but got (self) "
                           f"{_type_name(x.dtype)} and (source) {_type_name(s.dtype)}")
    return _put(x, key, s, False, fresh=_into, adv=True, node_cls=IndexCopyBackward0, op="index_copy")


def index_fill(input, dim: int, index, value, *, _into: bool = False):
    """A copy of ``input`` with ``value`` (a number or 0-d tensor) at ``index`` along ``dim``."""
    x = tensor_arg(input, "index_fill")
    if isinstance(value, T.Tensor) and value._data.ndim:
        raise RuntimeError(f"index_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                           f"{value._data.ndim} dimension(s).")
    key, _ = _dim_put_args(x, dim, index, None, "index_fill")
    if x._data.ndim == 0:
        key = ()
    else:  # each position once: the value's gradient counts the filled positions
        key = key[:-1] + (x._xp.unique(key[-1] % max(x._data.shape[len(key) - 1], 1)),)
    return _put(x, key, value, False, fresh=_into, adv=True, node_cls=IndexFillBackward0, op="index_fill")


def index_put(input, indices, values, accumulate: bool = False, *, _into: bool = False):
    """A copy of ``input`` with ``input[indices] = values`` (``+=`` with repeats summed when ``accumulate``)."""
    x = tensor_arg(input, "index_put")
    if not isinstance(indices, (list, tuple)):
        raise TypeError(f"index_put(): argument 'indices' (position 1) must be tuple of Tensors, not "
                        f"{type(indices).__name__}")
    if not isinstance(values, T.Tensor):
        raise TypeError(f"index_put(): argument 'values' (position 2) must be Tensor, not {type(values).__name__}")
    key, adv = _norm_key(x, tuple(slice(None) if i is None else i for i in indices))
    if values.dtype is not x.dtype:
        raise RuntimeError(f"Index put requires the source and destination dtypes match, got {_type_name(x.dtype)} for "
                           f"the destination and {_type_name(values.dtype)} for the source.")
    return _put(x, key, values, bool(accumulate), fresh=_into, adv=adv, op="index_put")


def put(input, index, source, accumulate: bool = False, *, _into: bool = False):
    """A copy of ``input`` with ``source`` written at the flat positions ``index`` (as if ``input`` were 1-d)."""
    x = tensor_arg(input, "put")
    idx = tensor_arg(index, "put", "index")
    if idx._data.dtype != np.int64:
        raise RuntimeError(f"put_(): Expected a long tensor for index, but got {_type_name(idx.dtype)}")
    n = x._data.size
    ia = _bounds_vec(idx._data, n, 0, "put", negative_ok=True)
    flat = ia.reshape(-1) % max(n, 1)
    key = tuple(x._xp.unravel_index(flat, x._data.shape)) if x._data.ndim else ()
    src = tensor_arg(source, "put", "source")
    if src._data.size != flat.size:
        raise RuntimeError(f"put_(): Expected source and index to have the same number of elements, but got "
                           f"source.numel() = {src._data.size}, index.numel() = {flat.size}")
    return _put(x, key, src.reshape(-1) if x._data.ndim else src.reshape(()), bool(accumulate), fresh=_into,
                adv=True, op="put")


def take(input, index, *, out=None):
    """``input`` read as 1-d at the positions ``index`` (any shape; negative positions count from the end)."""
    x = tensor_arg(input, "take")
    idx = tensor_arg(index, "take", "index")
    if idx._data.dtype.kind not in "iu":
        raise RuntimeError(f"take(): Expected a long tensor for index, but got {_type_name(idx.dtype)}")
    n = x._data.size
    ia = _bounds_vec(idx._data, n, 0, "take", negative_ok=True)
    return _out(_index(x.reshape(-1), (ia,), True, TakeBackward0), out, "take")


def take_along_dim(input, indices, dim=None, *, out=None):
    """Values of ``input`` at ``indices`` along ``dim`` (broadcasting the other dims); flattened when None."""
    x = tensor_arg(input, "take_along_dim")
    idx = tensor_arg(indices, "take_along_dim", "indices")
    if idx._data.dtype != np.int64:
        raise RuntimeError(f"take_along_dim: dtype of indices should be Long but got {_type_name(idx.dtype)}")
    if dim is None:
        return _out(gather(x.reshape(-1), 0, idx.reshape(-1)), out, "take_along_dim")
    if x._data.ndim != idx._data.ndim:
        raise RuntimeError(f"torch.take_along_dim(): input and indices should have the same number of dimensions, "
                           f"but got {x._data.ndim} dimensions for input, and {idx._data.ndim} dimensions for indices")
    d = T._wrap_dim(dim, x._data.ndim, "take_along_dim")
    xs, ins = list(x._data.shape), list(idx._data.shape)
    try:
        common = [0 if i == d else np.broadcast_shapes((a,), (b,))[0] for i, (a, b) in enumerate(zip(xs, ins))]
    except ValueError:
        raise broadcast_error("take_along_dim", tuple(xs), tuple(ins)) from None
    xs_b = tuple(c if i != d else xs[d] for i, c in enumerate(common))
    is_b = tuple(c if i != d else ins[d] for i, c in enumerate(common))
    return _out(gather(x.expand(xs_b), d, idx.expand(is_b)), out, "take_along_dim")


def select_scatter(input, src, dim: int, index: int):
    """A copy of ``input`` with ``src`` written at ``input.select(dim, index)``."""
    x = tensor_arg(input, "select_scatter")
    d = T._wrap_dim(dim, x._data.ndim, "select_scatter")
    return _put(x, (slice(None),) * d + (int(index), Ellipsis), tensor_arg(src, "select_scatter", "src"), adv=False,
                op="select_scatter")


def slice_scatter(input, src, dim: int = 0, start=None, end=None, step: int = 1):
    """A copy of ``input`` with ``src`` written at ``input[..., start:end:step, ...]`` along ``dim``."""
    x = tensor_arg(input, "slice_scatter")
    d = T._wrap_dim(dim, x._data.ndim, "slice_scatter")
    return _put(x, (slice(None),) * d + (_norm_slice(slice(start, end, step)), Ellipsis),
                tensor_arg(src, "slice_scatter", "src"), adv=False, op="slice_scatter")


class ScatterMethods:
    __slots__ = ()

    gather = gather

    def scatter(self, dim, index, src=None, *, value=None, reduce=None):
        return scatter(self, dim, index, src, value=value, reduce=reduce)

    def scatter_(self, dim, index, src=None, *, value=None, reduce=None):
        return _inplace_op(self, "scatter_", scatter, dim, index, src, value=value, reduce=reduce)

    def scatter_add(self, dim, index, src):
        return scatter_add(self, dim, index, src)

    def scatter_add_(self, dim, index, src):
        return _inplace_op(self, "scatter_add_", scatter_add, dim, index, src)

    def scatter_reduce(self, dim, index, src, reduce, *, include_self=True):
        return scatter_reduce(self, dim, index, src, reduce, include_self=include_self)

    def scatter_reduce_(self, dim, index, src, reduce, *, include_self=True):
        return _inplace_op(self, "scatter_reduce_", scatter_reduce, dim, index, src, reduce,
                           include_self=include_self)

    index_select = index_select
    take = take
    take_along_dim = take_along_dim
    select_scatter = select_scatter
    slice_scatter = slice_scatter

    def index_add(self, dim, index, source, *, alpha=1):
        return index_add(self, dim, index, source, alpha=alpha)

    def index_add_(self, dim, index, source, *, alpha=1):
        return _inplace_op(self, "index_add_", index_add, dim, index, source, alpha=alpha)

    def index_copy(self, dim, index, source):
        return index_copy(self, dim, index, source)

    def index_copy_(self, dim, index, source):
        return _inplace_op(self, "index_copy_", index_copy, dim, index, source)

    def index_fill(self, dim, index, value):
        return index_fill(self, dim, index, value)

    def index_fill_(self, dim, index, value):
        return _inplace_op(self, "index_fill_", index_fill, dim, index, value)

    def index_put(self, indices, values, accumulate=False):
        return index_put(self, indices, values, accumulate)

    def index_put_(self, indices, values, accumulate=False):
        return _inplace_op(self, "index_put_", index_put, indices, values, accumulate)

    def put(self, index, source, accumulate=False):
        return put(self, index, source, accumulate)

    def put_(self, index, source, accumulate=False):
        return _inplace_op(self, "put_", put, index, source, accumulate)
