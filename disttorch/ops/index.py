"""Indexing: ``__getitem__``/``__setitem__``, masked_fill/scatter/select, nonzero/argwhere.

Keys follow NumPy's rules, which PyTorch shares: basic keys (ints, slices, None, ...) give views,
advanced keys (integer or bool tensors, lists) give copies. Two primitives carry the gradients:
``_index`` (read ``x[key]``; backward scatters into zeros, accumulating repeated indices) and
``_put`` (a copy of ``x`` with ``x[key] = value`` or ``+= value``; backward zeroes the written
region for ``x`` and reads it for ``value``). Keys are normalised in index_keys.py; scatter_ops.py builds
gather/scatter/index_*/take on the same two primitives; this module re-exports them.
"""
from __future__ import annotations

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from .._device import to_host
from .._internals import bump_version
from ..autograd.function import Node
from ..autograd.grad_mode import STATE as _GRAD
from ..autograd.op import Op, apply_view, inplace_node, set_history
from ._helpers import scalar_array, sum_to, tensor_arg
from .index_keys import _index_error, _norm_key, _norm_slice
from .inplace import _type_name, inplace, needs_graph

__all__ = ["masked_fill", "masked_scatter", "masked_select", "nonzero", "argwhere"]

# The C++ names PyTorch prints for a mask's dtype in masked_fill's error.
_CPP_NAMES = {"float32": "float", "float64": "double", "float16": "c10::Half", "bfloat16": "c10::BFloat16",
              "int64": "long int", "int32": "int", "int16": "short int", "int8": "signed char",
              "uint8": "unsigned char", "complex64": "c10::complex<float>", "complex128": "c10::complex<double>"}
_OVERLAP = ("unsupported operation: more than one element of the written-to tensor refers to a single memory "
            "location. Please clone() the tensor before performing the operation.")


# ------------------------------------------------------------------------------------------
# the two primitives
# ------------------------------------------------------------------------------------------
class _IndexBackwardBase(Op):
    """``x[key]`` (a normalised key); backward writes the gradient into zeros at ``key``."""

    op_name = "index"

    def forward(self, xp, x, key=(), adv=False):
        try:
            res = x[key]
        except IndexError as e:
            raise _index_error(e, x.shape) from None
        if self.next_functions:
            self.shape, self.key, self.accumulate = x.shape, key, adv and _has_int_array(key)
        return res

    def backward(self, g):
        z = T._wrap(g._xp.zeros(self.shape, dtype=g._data.dtype))
        return _put(z, self.key, g, self.accumulate, fresh=True)


class IndexBackward0(_IndexBackwardBase):
    op_name = "index"


class SelectBackward0(_IndexBackwardBase):
    op_name = "select"
    view, tensor_args = True, 1  # a basic key: a view of x


class SliceBackward0(_IndexBackwardBase):
    op_name = "slice"
    view, tensor_args = True, 1


class IndexSelectBackward0(_IndexBackwardBase):
    op_name = "index_select"


class GatherBackward0(_IndexBackwardBase):
    op_name = "gather"


class TakeBackward0(_IndexBackwardBase):
    op_name = "take"


def _has_int_array(key) -> bool:
    return any(hasattr(k, "dtype") and k.dtype.kind != "b" for k in key)


def _index(x, key: tuple, adv: bool, node_cls=None):
    """``x[key]`` for a normalised key: a view for basic keys, a copy for advanced ones."""
    if adv:
        return (node_cls or IndexBackward0).apply(x, key=key, adv=True)
    if Ellipsis not in key:
        key = key + (Ellipsis,)  # keeps a full integer key a 0-d view instead of a NumPy scalar
    if node_cls is None:
        node_cls = SelectBackward0 if any(k.__class__ is int for k in key) else SliceBackward0
    return node_cls.apply(x, key)  # Select/Slice: views (Op.view)


def getitem(self, key):
    """``self[key]`` with PyTorch's (NumPy's) indexing rules."""
    c = key.__class__
    if c is int:  # the common keys skip the normalisation and the node-class choice
        return apply_view(SelectBackward0, self, (key, Ellipsis))
    if c is slice:
        return apply_view(SliceBackward0, self, (_norm_slice(key), Ellipsis))
    k, adv = _norm_key(self, key)
    return _index(self, k, adv)


class _PutGrads:
    """Backward of ``x[key] = value`` (or ``+=``): inputs (x, value)."""

    def backward(self, g):
        gx = gv = None
        if self.next_functions[0][0] is not None:
            gx = g if self.accumulate else _put(g, self.key, 0)
        if self.next_functions[1][0] is not None:
            gv = _value_grad(_index(g, self.key, self.adv), self.vshape, self.vdtype)
        return gx, gv


class IndexPutBackward0(_PutGrads, Op):
    """A copy of ``x`` (``x`` itself when ``fresh``) with ``varr`` written (added) at ``key``."""

    op_name = "index_put"

    def forward(self, xp, x, v, key=(), varr=None, accumulate=False, adv=False, fresh=False, vdtype=None,
                op="index_put"):
        out = x if fresh else x.copy()
        _write(out, key, varr, accumulate, op, xp)
        if self.next_functions:
            self.key, self.accumulate, self.adv = key, accumulate, adv
            self.vshape, self.vdtype = (v.shape, vdtype) if v is not None else ((), None)
        return out


class IndexAddBackward0(IndexPutBackward0):
    op_name = "index_add"


class IndexCopyBackward0(IndexPutBackward0):
    op_name = "index_copy"


class IndexFillBackward0(IndexPutBackward0):
    op_name = "index_fill"


class ScatterBackward0(IndexPutBackward0):
    op_name = "scatter"


class ScatterAddBackward0(IndexPutBackward0):
    op_name = "scatter_add"


class MaskedScatterBackward0(IndexPutBackward0):
    op_name = "masked_scatter"


class CopySlices(_PutGrads, Node):
    """``self[key] = value`` written into ``self``'s own memory (``__setitem__``): a node over ``self``'s history
    before the write and ``value``, attached to ``self`` afterwards (in-place, so not through ``Op.apply``)."""


def _value_grad(gv, vshape: tuple, vdtype):
    """The region's gradient reduced to the shape (and dtype) of the value broadcast into it."""
    if gv._data.shape != vshape:
        extra = len(vshape) - gv._data.ndim
        if extra > 0:  # NumPy drops leading 1s of a value with more dims than the region
            gv = gv.reshape((1,) * extra + gv._data.shape)
        gv = sum_to(gv, vshape)
    if gv.dtype is not vdtype:
        gv = gv.to(vdtype)
    return gv


def _value_array(x, value, op: str):
    """``value`` (Tensor, number or array-like) as an array of ``x``'s dtype on ``x``'s device."""
    xp = x._xp
    nd = x._data.dtype
    if isinstance(value, T.Tensor):
        arr = value._data
        if value._xp is not xp:
            arr = xp.asarray(arr) if xp is not np else to_host(arr)
        return arr if arr.dtype == nd else arr.astype(nd)
    if isinstance(value, (bool, int, float, complex, np.number, np.bool_)):
        return scalar_array(xp, value, nd)
    try:
        return xp.asarray(np.asarray(value).astype(nd))
    except (TypeError, ValueError):
        raise TypeError(f"can't assign a {type(value).__name__} to a {x.type()}") from None


def _size_error(a: tuple, b: tuple) -> RuntimeError:
    """PyTorch's error for shapes ``a`` and ``b`` that do not broadcast (a: the mask, b: self in masked ops)."""
    nd = max(len(a), len(b))
    pa, pb = (1,) * (nd - len(a)) + tuple(a), (1,) * (nd - len(b)) + tuple(b)
    i = next(i for i in range(nd) if pa[i] != pb[i] and pa[i] != 1 and pb[i] != 1)
    return RuntimeError(f"The size of tensor a ({pa[i]}) must match the size of tensor b ({pb[i]}) at non-singleton "
                        f"dimension {i}")


def _expand_error(src: tuple, target: tuple, type_name: str) -> RuntimeError:
    """PyTorch's error for expanding a tensor of shape ``src`` to ``target`` (``type_name``: its ``type()``)."""
    src = tuple(src)
    while src and src[0] == 1 and len(src) > len(target):  # PyTorch drops a value's leading 1s first
        src = src[1:]
    if len(src) > len(target):
        return RuntimeError(f"expand({type_name}{{{list(src)}}}, size={list(target)}): the number of sizes provided "
                            f"({len(target)}) must be greater or equal to the number of dimensions in the tensor "
                            f"({len(src)})")
    lead = len(target) - len(src)
    i = next(i for i in range(len(src)) if src[i] != 1 and src[i] != target[lead + i])
    return RuntimeError(f"The expanded size of the tensor ({target[lead + i]}) must match the existing size "
                        f"({src[i]}) at non-singleton dimension {lead + i}.  Target sizes: {list(target)}.  Tensor "
                        f"sizes: {list(src)}")


def _ufunc_at(xp, name: str, out, key, v) -> None:
    if xp is np:
        getattr(np, name).at(out, key, v)
        return
    try:
        getattr(xp, name).at(out, key, v)
    except (AttributeError, NotImplementedError, TypeError):
        import cupyx

        getattr(cupyx, {"add": "scatter_add", "maximum": "scatter_max", "minimum": "scatter_min"}[name])(out, key, v)


def _write(out, key, varr, accumulate: bool, op: str, xp) -> None:
    """``out[key] = varr`` (or ``+=``, accumulating repeated indices) with PyTorch's errors."""
    try:
        if accumulate:
            _ufunc_at(xp, "add", out, key, varr)
        else:
            out[key] = varr
    except IndexError as e:
        raise _index_error(e, out.shape) from None
    except ValueError as e:
        if "read-only" in str(e):
            raise RuntimeError(f"{op}: {_OVERLAP}") from None
        region = out[key].shape
        if not any(hasattr(k, "dtype") or k.__class__ is bool for k in key):  # a basic key: PyTorch copies into a view
            raise _expand_error(varr.shape, region, _tensor_type(varr)) from None
        raise RuntimeError(f"shape mismatch: value tensor of shape {list(varr.shape)} cannot be broadcast to "
                           f"indexing result of shape {list(region)}") from None


def _tensor_type(arr) -> str:
    """``Tensor.type()`` of a tensor over ``arr`` (as PyTorch names it in errors)."""
    return T._wrap(arr).type()


def _put(x, key: tuple, value, accumulate: bool = False, *, fresh: bool = False, adv=None,
         node_cls=IndexPutBackward0, op: str = "index_put"):
    """A copy of ``x`` with ``value`` written (``accumulate``: added) at ``key``; into ``x`` itself if ``fresh``."""
    vt = value if isinstance(value, T.Tensor) else None
    if adv is None:
        adv = any(hasattr(k, "dtype") or k.__class__ is bool for k in key)
    return node_cls.apply(x, vt, key=key, varr=_value_array(x, value, op), accumulate=accumulate, adv=adv,
                          fresh=fresh, vdtype=None if vt is None else vt.dtype, op=op)


# ------------------------------------------------------------------------------------------
# __setitem__
# ------------------------------------------------------------------------------------------
def setitem(self, key, value) -> None:
    """``self[key] = value`` in place; with autograd, ``self`` takes a node routing gradients to ``value``."""
    nkey, adv = _norm_key(self, key)
    vt = value if isinstance(value, T.Tensor) else None
    record = _GRAD.enabled and (self._requires_grad or (vt is not None and vt._requires_grad))
    if record and self._requires_grad and self.grad_fn is None:
        # An integer in a basic key makes PyTorch write through a select() view of the leaf.
        view = not adv and any(k.__class__ is int for k in nkey)
        raise RuntimeError(("a view of a leaf Variable" if view else "a leaf Variable") + " that requires grad is "
                           "being used in an in-place operation.")
    if record and (self.dtype.is_floating_point or self.dtype.is_complex):
        if self._base is not None:
            _setitem_view(self, nkey, value)
            return
        node = inplace_node(CopySlices, self, vt)
        _write(self._data, nkey, _value_array(self, value, "__setitem__"), False, "__setitem__", self._xp)
        bump_version(self)
        node.key, node.accumulate, node.adv = nkey, False, adv
        node.vshape, node.vdtype = (vt._data.shape, vt.dtype) if vt is not None else ((), None)
        set_history(self, node)
        return
    _write(self._data, nkey, _value_array(self, value, "__setitem__"), False, "__setitem__", self._xp)
    bump_version(self)


def _positions(view, base):
    """Flat positions in ``base`` of each element of ``view`` (None when not expressible)."""
    b, v = base._data, view._data
    xp = view._xp
    if not b.flags.c_contiguous or b.dtype.itemsize != v.dtype.itemsize:
        return None
    if v.size == 0:
        return xp.zeros(v.shape, dtype=np.int64)
    isz = b.dtype.itemsize
    off = view.data_ptr() - base.data_ptr()
    if off % isz or any(s % isz for s in v.strides) or not 0 <= off // isz < b.size:
        return None
    flat = xp.arange(b.size, dtype=np.int64)
    return xp.lib.stride_tricks.as_strided(flat[off // isz:], v.shape, tuple(s // isz * 8 for s in v.strides))


def _setitem_view(view, nkey: tuple, value) -> None:
    # PyTorch rebases a written view onto its base (CopySlices): write the same elements through
    # the base with an index into the base's memory, then let the view read the base's new history.
    base = view._base
    if base._requires_grad and base.grad_fn is None:
        raise RuntimeError("a view of a leaf Variable that requires grad is being used in an in-place operation.")
    if view._xp is np and not view._data.flags.writeable:
        raise RuntimeError(f"__setitem__: {_OVERLAP}")
    pos = _positions(view, base)
    if pos is None:
        raise RuntimeError("__setitem__: writing into this view of a tensor that is part of the autograd graph is not "
                           "supported (its base is not contiguous); clone() the view first")
    try:
        region = pos[nkey]
    except IndexError as e:
        raise _index_error(e, pos.shape) from None
    xp = view._xp
    bshape = base._data.shape
    setitem(base, tuple(xp.unravel_index(region, bshape)) if bshape else (), value)
    if base._requires_grad:
        v = _index(base, tuple(xp.unravel_index(pos, bshape)), True) if bshape else base.reshape(view._data.shape)
        set_history(view, v.grad_fn)


def _inplace_op(self, op: str, fn, *args, **kwargs):
    """Run out-of-place ``fn`` in place: straight into ``self``'s memory unless autograd must record it."""
    if needs_graph(self, op, *args, *kwargs.values()):
        return inplace(self, op, fn, *args, **kwargs)
    fn(self, *args, _into=True, **kwargs)
    bump_version(self)
    return self


# ------------------------------------------------------------------------------------------
# masks
# ------------------------------------------------------------------------------------------
def _mask_arg(mask, op: str, xp):
    m = tensor_arg(mask, op, "mask")
    if m._data.dtype != np.bool_:
        if op == "masked_select":
            raise RuntimeError("masked_select: expected BoolTensor for mask")
        name = _CPP_NAMES.get(m.dtype.name, m.dtype.name) if op == "masked_fill_" else _type_name(m.dtype)
        raise RuntimeError(f"{op} only supports boolean masks, but got mask with dtype {name}")
    arr = m._data
    if m._xp is not xp:
        arr = xp.asarray(arr) if xp is not np else to_host(arr)
    return arr


class MaskedFillBackward0(Op):
    """``value`` where ``mask`` is True, else ``x``: inputs (x, value)."""

    op_name = "masked_fill"

    def forward(self, xp, x, v, mask=None, varr=None, vdtype=None):
        try:
            res = xp.where(mask, varr, x)
        except ValueError:
            raise _size_error(mask.shape, x.shape) from None
        if self.next_functions:
            self.mask, self.shape, self.vdtype = mask, x.shape, vdtype
        return res

    def backward(self, g):
        gx = gv = None
        m = T._wrap(self.mask)
        if self.next_functions[0][0] is not None:
            gx = sum_to(masked_fill(g, m, 0), self.shape)
        if self.next_functions[1][0] is not None:
            gv = masked_fill(g, T._wrap(~self.mask), 0).sum()
            if gv.dtype is not self.vdtype:
                gv = gv.to(self.vdtype)
        return gx, gv


def masked_fill(input, mask, value, *, _into: bool = False):
    """``value`` (a number or 0-d tensor) where the bool ``mask`` (broadcast) is True, else ``input``."""
    x = tensor_arg(input, "masked_fill")
    xp = x._xp
    m = _mask_arg(mask, "masked_fill_", xp)
    vt = value if isinstance(value, T.Tensor) else None
    if vt is not None and vt._data.ndim:
        raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                           f"{vt._data.ndim} dimension(s).")
    v = _value_array(x, value, "masked_fill")
    if _into:  # the in-place form outside autograd (see _inplace_op)
        try:
            xp.copyto(x._data, v, where=m)
        except ValueError:
            raise _expand_error(m.shape, x._data.shape, "torch.BoolTensor") from None
        return x
    return MaskedFillBackward0.apply(x, vt, mask=m, varr=v, vdtype=None if vt is None else vt.dtype)


def _broadcast_mask(x, m, op: str):
    xs, ms = x._data.shape, m.shape
    if xs == ms:
        return x, m
    try:
        shape = tuple(np.broadcast_shapes(xs, ms))
    except ValueError:
        raise _size_error(ms, xs) from None
    return (x if xs == shape else x.expand(shape)), (m if ms == shape else x._xp.broadcast_to(m, shape))


def masked_scatter(input, mask, source, *, _into: bool = False):
    """A copy of ``input`` with consecutive elements of ``source`` written where ``mask`` is True."""
    x = tensor_arg(input, "masked_scatter")
    s = tensor_arg(source, "masked_scatter", "source")
    m = _mask_arg(mask, "masked_scatter_", x._xp)
    if s.dtype is not x.dtype:
        # (sic: PyTorch's message has no space after "got")
        raise RuntimeError(f"masked_scatter: expected self and source to have same dtypes but got"
                           f"{_type_name(x.dtype)} and {_type_name(s.dtype)}")
    if _into and m.shape != x._data.shape:
        try:
            m = x._xp.broadcast_to(m, x._data.shape)
        except ValueError:
            raise _expand_error(m.shape, x._data.shape, "torch.BoolTensor") from None
    xb, mb = _broadcast_mask(x, m, "masked_scatter")
    n = int(mb.sum())
    if s._data.size < n:
        raise RuntimeError("Number of elements of source < number of ones in mask")
    part = s.reshape(-1)
    if part._data.size != n:
        part = _index(part, (slice(0, n),), False, SliceBackward0)
    return _put(xb, (mb,), part, False, fresh=_into, adv=True, node_cls=MaskedScatterBackward0, op="masked_scatter")


def masked_select(input, mask, *, out=None):
    """A 1-d tensor of the elements of ``input`` where ``mask`` (broadcast together) is True."""
    x = tensor_arg(input, "masked_select")
    if out is not None:
        if _GRAD.enabled and (x._requires_grad or out._requires_grad):
            raise RuntimeError("masked_select(): functions with out=... arguments don't support automatic "
                               "differentiation, but one of the arguments requires grad.")
        if out._data.dtype != x._data.dtype:
            raise RuntimeError("masked_select(): self and result must have the same scalar type")
    xb, mb = _broadcast_mask(x, _mask_arg(mask, "masked_select", x._xp), "masked_select")
    if not xb._data.ndim:
        xb, mb = xb.reshape(1), mb.reshape(1)
    return _out(_index(xb, (mb,), True), out)


def nonzero(input, *, out=None, as_tuple: bool = False):
    """Indices of the non-zero elements: an ``(n, ndim)`` int64 tensor, or one 1-d tensor per dim."""
    x = tensor_arg(input, "nonzero")
    arr = x._data
    xp = x._xp
    if arr.dtype == D.bfloat16.np:
        arr = arr.astype(np.float32)
    if as_tuple:
        return tuple(T._wrap(i.astype(np.int64, copy=False)) for i in xp.nonzero(arr.reshape(-1) if not arr.ndim
                                                                                  else arr))
    if not arr.ndim:
        res = xp.zeros((int(bool(arr)), 0), dtype=np.int64)
    else:
        res = xp.stack(xp.nonzero(arr), axis=1).astype(np.int64, copy=False) if arr.size else \
            xp.zeros((0, arr.ndim), dtype=np.int64)
    return _out(T._wrap(res), out)


def argwhere(input):
    """The ``(n, ndim)`` int64 indices of the non-zero elements (``nonzero(input)``)."""
    return nonzero(input)


def _out(r, out):
    if out is None:
        return r
    if out._requires_grad and T.needs_grad(out):
        raise RuntimeError("functions with out=... arguments don't support automatic differentiation, but one "
                           "of the arguments requires grad.")
    if out._data.shape != r._data.shape:
        out._data = out._xp.empty(r._data.shape, dtype=out._data.dtype)
    out._xp.copyto(out._data, r._data, casting="unsafe")
    bump_version(out)
    return out


# gather/scatter live in scatter_ops.py, which builds on the primitives above; ops/__init__ exports both and
# Tensor takes its methods from IndexMethods and ScatterMethods.
class IndexMethods:
    __slots__ = ()

    __getitem__ = getitem
    __setitem__ = setitem
    masked_select = masked_select
    nonzero = nonzero
    argwhere = argwhere

    def __contains__(self, element) -> bool:
        if isinstance(element, T.Tensor):
            other = element._data
        elif isinstance(element, (bool, int, float, complex)):
            other = element
        else:
            raise RuntimeError(f"Tensor.__contains__ only supports Tensor or scalar, but you passed in a "
                               f"{type(element)}.")
        return bool((self._data == other).any())

    def masked_fill(self, mask, value):
        return masked_fill(self, mask, value)

    def masked_fill_(self, mask, value):
        return _inplace_op(self, "masked_fill_", masked_fill, mask, value)

    def masked_scatter(self, mask, source):
        return masked_scatter(self, mask, source)

    def masked_scatter_(self, mask, source):
        return _inplace_op(self, "masked_scatter_", masked_scatter, mask, source)
