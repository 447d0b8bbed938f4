"""Shape ops: reshape/view, expand, transpose, cat/stack, split, ... (views share memory and version)."""
from __future__ import annotations

import math

from .. import _tensor as T
from ..autograd.function import Node
from ._helpers import sum_to, tensor_arg

__all__ = ["reshape", "unbind"]


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


class ShapeMethods:
    __slots__ = ()

    def reshape(self, *shape):
        return reshape(self, *shape)

    view = view
    expand = expand
    unbind = unbind
    sum_to_size = sum_to_size

    def view_as(self, other):
        return view(self, other.shape)

    def reshape_as(self, other):
        return reshape(self, other.shape)

    def expand_as(self, other):
        return expand(self, other.shape)
