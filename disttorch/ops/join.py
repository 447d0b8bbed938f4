"""Joining and splitting: cat, stack, hstack/vstack/dstack, split, chunk, tensor_split, unbind, meshgrid.

Splits return views of the input (one multi-output node whose backward concatenates the pieces'
gradients); joins copy, promoting dtypes across their inputs as PyTorch does.
"""
from __future__ import annotations

import warnings

from .. import _dtype as D
from .. import _tensor as T
from ..autograd import op as _op
from ..autograd.function import Node
from ..autograd.op import Op, write_out
from ._helpers import tensor_arg
from .index import _put
from .shape import atleast_1d, atleast_2d, atleast_3d, expand, narrow, reshape

__all__ = ["cat", "concat", "concatenate", "stack", "hstack", "vstack", "row_stack", "dstack", "column_stack",
           "split", "chunk", "tensor_split", "hsplit", "vsplit", "dsplit", "unbind", "meshgrid", "cartesian_prod"]


def _tensor_list(tensors, op: str) -> list:
    if isinstance(tensors, T.Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}(): argument 'tensors' (position 1) must be tuple of Tensors, not "
                        f"{type(tensors).__name__}")
    out = []
    for i, t in enumerate(tensors):
        if not isinstance(t, T.Tensor):
            raise TypeError(f"expected Tensor as element {i} in argument 0, but got {type(t).__name__}")
        out.append(t)
    return out


def _common(ts: list, op: str):
    """The promoted dtype of ``ts`` (all on one device), as PyTorch's cat/stack promote."""
    cls = ts[0]._data.__class__
    dt = ts[0].dtype
    for t in ts[1:]:
        if t._data.__class__ is not cls:
            raise RuntimeError(f"{op}: Expected all tensors to be on the same device, but found at least two "
                               f"devices, {ts[0].device} and {t.device}!")
        if t.dtype is not dt:
            dt = D.promote_types(dt, t.dtype)
    return dt


def _cast(arr, dt):
    return arr if arr.dtype == dt.np else arr.astype(dt.np)


class CatBackward0(Op):
    op_name = "cat"

    def forward(self, xp, *arrays, dim=0, dt=None, pieces=()):
        if self.next_functions:
            self.pieces, self.dim = pieces, dim
        return xp.concatenate([_cast(a, dt) for a, p in zip(arrays, pieces) if p[2] is not None], axis=dim)

    def backward(self, g):
        grads = []
        for (shape, dt, off), (fn, _) in zip(self.pieces, self.next_functions):
            if fn is None:
                grads.append(None)
                continue
            if off is None:  # a skipped (0,)-shaped input
                gi = T._wrap(g._xp.zeros(shape, dtype=dt.np))
            else:
                gi = narrow(g, self.dim, off, shape[self.dim])
                if gi.dtype is not dt:
                    gi = gi.to(dt)
            grads.append(gi)
        return tuple(grads)


def cat(tensors, dim: int = 0, *, out=None):
    """Concatenate ``tensors`` along existing dim ``dim`` (1-d empty tensors are skipped, as PyTorch does)."""
    ts = _tensor_list(tensors, "cat")
    if not ts:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    dt = _common(ts, "cat")
    ref = None
    for i, t in enumerate(ts):
        if t._data.ndim == 0:
            raise RuntimeError(f"zero-dimensional tensor (at position {i}) cannot be concatenated")
        if ref is None and not (t._data.ndim == 1 and t._data.shape[0] == 0):
            ref = t
    if ref is None:  # every input is a skipped (0,) tensor
        r = T._wrap(ts[0]._xp.zeros((0,), dtype=dt.np))
        return r if out is None else write_out(r, out, "cat")
    nd = ref._data.ndim
    d = T._wrap_dim(dim, nd, "cat")
    rs = ref._data.shape
    pieces, off = [], 0
    for i, t in enumerate(ts):
        s = t._data.shape
        if len(s) == 1 and s[0] == 0:
            pieces.append((s, t.dtype, None))
            continue
        if len(s) != nd:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {nd} and {len(s)}")
        for k in range(nd):
            if k != d and s[k] != rs[k]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. Expected size {rs[k]} but "
                                   f"got size {s[k]} for tensor number {i} in the list.")
        pieces.append((s, t.dtype, off))
        off += s[d]
    return CatBackward0.apply(*ts, dim=d, dt=dt, pieces=pieces, out=out)


def concat(tensors, dim: int = 0, *, out=None):
    """Alias of ``cat``."""
    return cat(tensors, dim, out=out)


def concatenate(tensors, axis: int = 0, out=None, *, dim=None):
    """Alias of ``cat`` (NumPy's ``axis`` name)."""
    return cat(tensors, axis if dim is None else dim, out=out)


class StackBackward0(Op):
    op_name = "stack"

    def forward(self, xp, *arrays, dim=0, dt=None):
        if self.next_functions:
            self.dim, self.dtypes = dim, [D._FROM_NP[a.dtype] for a in arrays]
        return xp.stack([_cast(a, dt) for a in arrays], axis=dim)

    def backward(self, g):
        grads = unbind(g, self.dim)
        return tuple(None if fn is None else (gi if gi.dtype is dt else gi.to(dt))
                     for gi, dt, (fn, _) in zip(grads, self.dtypes, self.next_functions))


def stack(tensors, dim: int = 0, *, out=None):
    """Join same-shaped ``tensors`` along a new dim ``dim``."""
    ts = _tensor_list(tensors, "stack")
    if not ts:
        raise RuntimeError("stack expects a non-empty TensorList")
    dt = _common(ts, "stack")
    s0 = ts[0]._data.shape
    for i, t in enumerate(ts[1:], 1):
        if t._data.shape != s0:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(s0)} at entry 0 and "
                               f"{list(t.shape)} at entry {i}")
    d = T._wrap_dim(dim, len(s0) + 1, "stack")
    return StackBackward0.apply(*ts, dim=d, dt=dt, out=out)


def hstack(tensors, *, out=None):
    """Concatenate horizontally: along dim 0 for 1-d inputs, else dim 1."""
    ts = atleast_1d(_tensor_list(tensors, "hstack"))
    return cat(ts, 0 if ts and ts[0]._data.ndim == 1 else 1, out=out)


def vstack(tensors, *, out=None):
    """Concatenate vertically (dim 0) after making every input at least 2-d."""
    return cat(atleast_2d(_tensor_list(tensors, "vstack")), 0, out=out)


row_stack = vstack


def dstack(tensors, *, out=None):
    """Concatenate depth-wise (dim 2) after making every input at least 3-d."""
    return cat(atleast_3d(_tensor_list(tensors, "dstack")), 2, out=out)


def column_stack(tensors, *, out=None):
    """Stack as columns: 0-d and 1-d inputs become ``(n, 1)`` columns, then concatenate along dim 1."""
    ts = _tensor_list(tensors, "column_stack")
    cols = [reshape(t, (t._data.size, 1)) if t._data.ndim <= 1 else t for t in ts]
    return cat(cols, 1, out=out)


# ------------------------------------------------------------------------------------------
# splitting: views of the input
# ------------------------------------------------------------------------------------------
class SplitBackward0(Node):
    def backward(self, *grads):
        if self.contiguous:
            return cat(list(grads), self.dim)
        # Overlapping or gapped pieces (tensor_split with unsorted indices): add each into place.
        acc = T._wrap(grads[0]._xp.zeros(self.shape, dtype=grads[0]._data.dtype))
        for (a, b), gi in zip(self.bounds, grads):
            if b > a:
                acc = _put(acc, (slice(None),) * self.dim + (slice(a, b), Ellipsis), gi, True, adv=False)
        return acc


class SplitWithSizesBackward0(SplitBackward0):
    pass


class UnbindBackward0(Node):
    def backward(self, *grads):
        return stack(list(grads), self.dim)


def _pieces(x, d: int, bounds: list, node_cls=SplitBackward0) -> tuple:
    """Views ``x[..., a:b, ...]`` along ``d`` for each ``(a, b)`` in ``bounds``, sharing one backward node."""
    arr = x._data
    pre = (slice(None),) * d
    outs = tuple(T._view_of(x, arr[pre + (slice(a, b),)]) for a, b in bounds)
    if T.needs_grad(x) and outs:
        node = node_cls(x)
        n = arr.shape[d]
        node.dim, node.shape, node.bounds = d, arr.shape, bounds
        node.contiguous = all(bounds[i][1] == bounds[i + 1][0] for i in range(len(bounds) - 1)) and \
            bounds[0][0] == 0 and bounds[-1][1] == n and all(b >= a for a, b in bounds)
        node.set_outputs(*outs)  # not Op.apply: views of x sharing its version counter
    if _op.OBSERVERS:  # tracers (ONNX) and profilers see the split, which skips Op.apply
        _op.notify_untimed("split", (x,), {"dim": d, "bounds": tuple(bounds)}, outs)
    return outs


def _dim_of(x, dim: int, op: str) -> int:
    if x._data.ndim == 0:
        raise RuntimeError(f"{op} expects at least a 1-dimensional tensor")
    return T._wrap_dim(dim, x._data.ndim, op)


def split(tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Views of ``split_size`` elements along ``dim`` (the last may be smaller), or of the given sizes."""
    x = tensor_arg(tensor, "split", "tensor")
    d = _dim_of(x, dim, "split")
    n = x._data.shape[d]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [int(s) for s in split_size_or_sections]
        if any(s < 0 for s in sizes) or sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size at "
                               f"dimension {d}), but got split_sizes={sizes}")
        bounds, a = [], 0
        for s in sizes:
            bounds.append((a, a + s))
            a += s
        return _pieces(x, d, bounds, SplitWithSizesBackward0)
    size = int(split_size_or_sections)
    if size < 0:
        raise RuntimeError(f"split expects split_size be non-negative, but got split_size={size}")
    if size == 0 and n != 0:
        raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension size of {n}")
    count = max((n + size - 1) // size, 1) if size else 1
    return _pieces(x, d, [(i * size, min((i + 1) * size, n)) for i in range(count)])


def chunk(input, chunks: int, dim: int = 0) -> tuple:
    """Split into ``chunks`` views of ``ceil(n / chunks)`` elements (possibly fewer chunks)."""
    x = tensor_arg(input, "chunk")
    d = _dim_of(x, dim, "chunk")
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    n = x._data.shape[d]
    size = (n + chunks - 1) // chunks
    if n == 0:
        return _pieces(x, d, [(0, 0)] * chunks)
    return split(x, size, d)


def tensor_split(input, indices_or_sections, dim: int = 0) -> tuple:
    """Views split into ``sections`` near-equal parts, or at the positions ``indices`` (NumPy's array_split)."""
    x = tensor_arg(input, "tensor_split")
    d = _dim_of(x, dim, "tensor_split")
    n = x._data.shape[d]
    ios = indices_or_sections
    if isinstance(ios, T.Tensor):
        if ios._data.dtype.kind not in "iu" or ios._data.ndim > 1:
            raise RuntimeError("tensor_split expected tensor_indices_or_sections to be a zero-dimensional or "
                               f"one-dimensional tensor, but got a tensor with {ios._data.ndim} dims")
        ios = int(ios) if ios._data.ndim == 0 else [int(v) for v in ios.tolist()]
    if isinstance(ios, (list, tuple)):
        points = [0] + [min(max(int(i) + (n if int(i) < 0 else 0), 0), n) for i in ios] + [n]
        return _pieces(x, d, [(points[k], max(points[k], points[k + 1])) for k in range(len(points) - 1)])
    sections = int(ios)
    if sections <= 0:
        raise RuntimeError(f"number of sections must be larger than 0, got {sections}")
    base, extra = divmod(n, sections)
    bounds, a = [], 0
    for k in range(sections):
        b = a + base + (1 if k < extra else 0)
        bounds.append((a, b))
        a = b
    return _pieces(x, d, bounds)


def _xsplit(x, ios, d: int, op: str) -> tuple:
    if not isinstance(ios, (list, tuple, T.Tensor)):
        n = x._data.shape[d]
        if ios == 0 or n % int(ios):
            raise RuntimeError(f"torch.{op} attempted to split along dimension {d}, but the size of the dimension "
                               f"{n} is not divisible by the split_size {ios}!")
    return tensor_split(x, ios, d)


def hsplit(input, indices_or_sections) -> tuple:
    """Split along dim 1 (dim 0 for 1-d tensors); an int must divide the size evenly."""
    x = tensor_arg(input, "hsplit")
    if x._data.ndim < 1:
        raise RuntimeError("torch.hsplit requires a tensor with at least 1 dimension, but got a tensor with 0 "
                           "dimensions!")
    return _xsplit(x, indices_or_sections, 0 if x._data.ndim == 1 else 1, "hsplit")


def vsplit(input, indices_or_sections) -> tuple:
    """Split along dim 0 of a tensor with at least 2 dims."""
    x = tensor_arg(input, "vsplit")
    if x._data.ndim < 2:
        raise RuntimeError(f"torch.vsplit requires a tensor with at least 2 dimension, but got a tensor with "
                           f"{x._data.ndim} dimensions!")
    return _xsplit(x, indices_or_sections, 0, "vsplit")


def dsplit(input, indices_or_sections) -> tuple:
    """Split along dim 2 of a tensor with at least 3 dims."""
    x = tensor_arg(input, "dsplit")
    if x._data.ndim < 3:
        raise RuntimeError(f"torch.dsplit requires a tensor with at least 3 dimension, but got a tensor with "
                           f"{x._data.ndim} dimensions!")
    return _xsplit(x, indices_or_sections, 2, "dsplit")


def unbind(input, dim: int = 0) -> tuple:
    """A tuple of views, one per index along ``dim`` (which is removed)."""
    x = tensor_arg(input, "unbind")
    arr = x._data
    d = T._wrap_dim(dim, arr.ndim, "unbind")
    if arr.ndim == 0:
        raise RuntimeError("Dimension specified as 0 but tensor has no dimensions")
    pre = (slice(None),) * d
    outs = tuple(T._view_of(x, arr[pre + (i, Ellipsis)]) for i in range(arr.shape[d]))
    if T.needs_grad(x) and outs:
        node = UnbindBackward0(x)
        node.dim = d
        node.set_outputs(*outs)  # not Op.apply: views of x sharing its version counter
    if _op.OBSERVERS:
        _op.notify_untimed("unbind", (x,), {"dim": d}, outs)
    return outs


def meshgrid(*tensors, indexing: str | None = None) -> tuple:
    """Coordinate grids (expanded views) from 0-d/1-d ``tensors``; ``indexing`` is 'ij' (default) or 'xy'."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    ts = _tensor_list(list(tensors), "meshgrid")
    if indexing is None:
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass the indexing argument.",
                      UserWarning, stacklevel=2)
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise ValueError(f"torch.meshgrid: indexing must be one of \"xy\" or \"ij\", but received: {indexing}")
    if not ts:
        raise RuntimeError("meshgrid expects a non-empty TensorList")
    for t in ts:
        if t._data.ndim > 1:
            raise RuntimeError(f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list but got: "
                               f"{t._data.ndim}D tensor")
        if t.dtype is not ts[0].dtype:
            raise RuntimeError("meshgrid expects all tensors to have the same dtype")
    sizes = [t._data.size for t in ts]
    order = list(range(len(ts)))
    if indexing == "xy" and len(ts) >= 2:
        order[0], order[1] = 1, 0  # the first input varies along dim 1
    shape = tuple(sizes[order[k]] for k in range(len(ts)))
    outs = []
    for i, t in enumerate(ts):
        pos = order.index(i)
        outs.append(expand(reshape(t, tuple(-1 if k == pos else 1 for k in range(len(ts)))), shape))
    return tuple(outs)


def cartesian_prod(*tensors):
    """The Cartesian product of 1-d tensors as an ``(N, k)`` tensor (the tensor itself when k == 1)."""
    ts = _tensor_list(list(tensors), "cartesian_prod")
    for t in ts:
        if t._data.ndim != 1:
            raise RuntimeError(f"Expect a 1D vector, but got shape {list(t.shape)}")
    if len(ts) == 1:
        return ts[0]
    grids = meshgrid(*ts, indexing="ij")
    return stack([reshape(g, -1) for g in grids], 1)


class JoinMethods:
    __slots__ = ()

    split = split
    chunk = chunk
    tensor_split = tensor_split
    hsplit = hsplit
    vsplit = vsplit
    dsplit = dsplit
    unbind = unbind
