"""Shape ops: reshape/view, expand, transpose, cat/stack, split, ... (views share memory and version)."""
from __future__ import annotations

import math

from .. import _tensor as T
from ..autograd.function import Node
from ._helpers import sum_to, tensor_arg

__all__ = ["reshape", "unbind", "transpose", "permute", "t", "squeeze", "unsqueeze", "flatten", "swapaxes",
           "swapdims", "movedim", "moveaxis"]


def _shape_arg(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def _infer_shape(shape: tuple, numel: int, op: str, src: tuple) -> tuple:
    neg = [i for i, s in enumerate(shape) if s == -1]
    if len(neg) > 1:
        raise RuntimeError(f"{op}: only one dimension can be inferred (shape {list(shape)})")
    known = math.prod(s for s in shape if s != -1)
    if neg:
        if known == 0 or numel % known:
            raise RuntimeError(f"{op}: shape '{list(shape)}' is invalid for input of size {numel} "
                               f"(input shape {list(src)})")
        shape = shape[:neg[0]] + (numel // known,) + shape[neg[0] + 1:]
    elif known != numel:
        raise RuntimeError(f"{op}: shape '{list(shape)}' is invalid for input of size {numel} "
                           f"(input shape {list(src)})")
    return shape


class ViewBackward0(Node):
    def backward(self, g):
        return g.reshape(self.shape)


def reshape(input, *shape):
    """The same elements in a new shape; a view when the memory layout allows, else a copy."""
    x = tensor_arg(input, "reshape")
    arr = x._data
    new = _infer_shape(_shape_arg(shape), arr.size, "reshape", arr.shape)
    res = arr.reshape(new)
    r = T._view_of(x, res) if res.base is not None and _shares(res, arr) else T._wrap(res)
    if T.needs_grad(x):
        node = ViewBackward0(x)
        node.shape = arr.shape
        r._requires_grad = True
        r.grad_fn = node
    return r


def _shares(res, arr) -> bool:
    return res.base is arr or (arr.base is not None and res.base is arr.base)


def view(self, *shape):
    """Like reshape, but raises when the result cannot share memory with ``self``."""
    if len(shape) == 1 and not isinstance(shape[0], (list, tuple, int)):
        from .. import _dtype as D

        dt = D.to_dtype(shape[0])
        if dt.itemsize != self._data.dtype.itemsize:
            raise RuntimeError("view(dtype) with a different element size is not implemented yet")
        return T._view_of(self, self._data.view(dt.np))
    arr = self._data
    new = _infer_shape(_shape_arg(shape), arr.size, "view", arr.shape)
    if not arr.flags.c_contiguous and arr.size > 1:
        try:
            res = arr.view()
            res.shape = new  # raises when a copy would be needed
        except AttributeError:
            raise RuntimeError(f"view size is not compatible with input tensor's size and stride (input shape "
                               f"{list(arr.shape)}, requested {list(new)}): at least one dimension spans across "
                               "two contiguous subspaces. Use .reshape(...) instead.") from None
    return reshape(self, new)


class ExpandBackward0(Node):
    def backward(self, g):
        return sum_to(g, self.shape)


def expand(self, *sizes):
    """A broadcast view of ``self`` with size-1 dims stretched (``-1`` keeps a size)."""
    sizes = _shape_arg(sizes)
    arr = self._data
    if len(sizes) < arr.ndim:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal to the "
                           f"number of dimensions in the tensor ({arr.ndim})")
    lead = len(sizes) - arr.ndim
    target = []
    for i, s in enumerate(sizes):
        if i < lead:
            if s < 0:
                raise RuntimeError(f"expand: the expanded size of the tensor (-1) isn't allowed in a leading, "
                                   f"non-existing dimension {i}")
            target.append(s)
            continue
        cur = arr.shape[i - lead]
        if s == -1:
            s = cur
        elif cur != s and cur != 1:
            raise RuntimeError(f"expand: The expanded size of the tensor ({s}) must match the existing size ({cur}) "
                               f"at non-singleton dimension {i}.  Target sizes: {list(sizes)}.  Tensor sizes: "
                               f"{list(arr.shape)}")
        target.append(s)
    target = tuple(target)
    if target == arr.shape:
        res = arr.view()
    else:
        res = self._xp.broadcast_to(arr, target)
    r = T._view_of(self, res)
    if T.needs_grad(self):
        node = ExpandBackward0(self)
        node.shape = arr.shape
        r._requires_grad = True
        r.grad_fn = node
    return r


class UnbindBackward0(Node):
    def backward(self, *grads):
        from .. import ops

        return ops.shape_more.stack(grads, self.dim) if hasattr(ops, "shape_more") else _stack(grads, self.dim)


def _stack(grads, dim):
    xp = grads[0]._xp
    return T._wrap(xp.stack([g._data for g in grads], axis=dim))


def unbind(input, dim: int = 0):
    """A tuple of views, one per index along ``dim``."""
    x = tensor_arg(input, "unbind")
    arr = x._data
    d = T._wrap_dim(dim, arr.ndim, "unbind")
    outs = tuple(T._view_of(x, arr[(slice(None),) * d + (i,)]) for i in range(arr.shape[d]))
    if T.needs_grad(x) and outs:
        node = UnbindBackward0(x)
        node.dim = d
        node.set_outputs(*outs)
    return outs


class SumToSizeBackward(Node):
    def backward(self, g):
        return g.expand(self.shape)


def sum_to_size(self, *size):
    """Sum ``self`` down to ``size`` (which ``self`` must be expandable from)."""
    size = _shape_arg(size)
    try:
        import numpy as np

        if tuple(np.broadcast_shapes(size, self._data.shape)) != self._data.shape:
            raise ValueError
    except ValueError:
        raise RuntimeError(f"sum_to_size: size {list(size)} is not expandable to size {list(self.shape)}") from None
    return sum_to(self, size)


class PermuteBackward0(Node):
    def backward(self, g):
        inv = [0] * len(self.dims)
        for i, d in enumerate(self.dims):
            inv[d] = i
        return permute(g, inv)


def permute(input, *dims):
    """A view with dimensions reordered: ``permute(x, (2, 0, 1))``."""
    x = tensor_arg(input, "permute")
    dims = _shape_arg(dims)
    nd = x._data.ndim
    if len(dims) != nd:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not match the "
                           f"length of the desired ordering of dimensions i.e. input.dim() = {nd} is not equal to "
                           f"len(dims) = {len(dims)}")
    dims = tuple(T._wrap_dim(d, nd, "permute") for d in dims)
    if len(set(dims)) != nd:
        raise RuntimeError(f"permute: repeated dim in {list(dims)}")
    r = T._view_of(x, x._data.transpose(dims))
    if T.needs_grad(x):
        node = PermuteBackward0(x)
        node.dims = dims
        r._requires_grad = True
        r.grad_fn = node
    return r


class TransposeBackward0(Node):
    def backward(self, g):
        return transpose(g, self.d0, self.d1)


def transpose(input, dim0: int, dim1: int):
    """A view with ``dim0`` and ``dim1`` swapped."""
    x = tensor_arg(input, "transpose")
    nd = x._data.ndim
    d0, d1 = T._wrap_dim(dim0, nd, "transpose"), T._wrap_dim(dim1, nd, "transpose")
    r = T._view_of(x, x._data.swapaxes(d0, d1) if nd else x._data.view())
    if T.needs_grad(x):
        node = TransposeBackward0(x)
        node.d0, node.d1 = d0, d1
        r._requires_grad = True
        r.grad_fn = node
    return r


swapaxes = swapdims = transpose


def t(input):
    """Transpose of a tensor with at most 2 dims."""
    x = tensor_arg(input, "t")
    if x._data.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {x._data.ndim}D")
    return transpose(x, 0, 1) if x._data.ndim == 2 else transpose(x, 0, 0)


def movedim(input, source, destination):
    x = tensor_arg(input, "movedim")
    nd = x._data.ndim
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({src} dims) should contain the "
                           f"same number of dims as destination ({dst} dims)")
    src = [T._wrap_dim(d, nd, "movedim") for d in src]
    dst = [T._wrap_dim(d, nd, "movedim") for d in dst]
    order = [d for d in range(nd) if d not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute(x, order)


moveaxis = movedim


def unsqueeze(input, dim: int):
    """A view with a size-1 dimension inserted at ``dim``."""
    x = tensor_arg(input, "unsqueeze")
    nd = x._data.ndim
    d = T._wrap_dim(dim, nd + 1, "unsqueeze")
    return reshape(x, x._data.shape[:d] + (1,) + x._data.shape[d:])


def squeeze(input, dim=None):
    """A view without size-1 dimensions (only those in ``dim`` when given)."""
    x = tensor_arg(input, "squeeze")
    shape = x._data.shape
    nd = len(shape)
    if dim is None:
        dims = {i for i, s in enumerate(shape) if s == 1}
    else:
        dl = dim if isinstance(dim, (list, tuple)) else (dim,)
        dims = {T._wrap_dim(d, nd, "squeeze") for d in dl}
        dims = {d for d in dims if nd and shape[d] == 1}
    return reshape(x, tuple(s for i, s in enumerate(shape) if i not in dims))


def flatten(input, start_dim: int = 0, end_dim: int = -1):
    """Merge dims ``start_dim..end_dim`` into one (a 0-d tensor becomes 1-d)."""
    x = tensor_arg(input, "flatten")
    shape = x._data.shape
    if not shape:
        return reshape(x, (1,))
    s = T._wrap_dim(start_dim, len(shape), "flatten")
    e = T._wrap_dim(end_dim, len(shape), "flatten")
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    return reshape(x, shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:])


class ShapeMethods:
    __slots__ = ()

    def reshape(self, *shape):
        return reshape(self, *shape)

    view = view
    expand = expand
    permute = permute
    transpose = transpose
    swapaxes = swapdims = transpose
    t = t
    movedim = moveaxis = movedim
    unsqueeze = unsqueeze
    squeeze = squeeze
    flatten = flatten

    @property
    def T(self):
        if self._data.ndim not in (0, 2):
            import warnings

            warnings.warn("The use of `x.T` on tensors of dimension other than 2 to reverse their shape is "
                          "deprecated and it will throw an error in a future release.", UserWarning, stacklevel=2)
        return permute(self, tuple(range(self._data.ndim - 1, -1, -1)))

    @property
    def mT(self):
        if self._data.ndim < 2:
            raise RuntimeError(f"tensor.mT is only supported on matrices or batches of matrices. Got "
                               f"{self._data.ndim}-D tensor.")
        return transpose(self, -2, -1)
    unbind = unbind
    sum_to_size = sum_to_size

    def view_as(self, other):
        return view(self, other.shape)

    def reshape_as(self, other):
        return reshape(self, other.shape)

    def expand_as(self, other):
        return expand(self, other.shape)
