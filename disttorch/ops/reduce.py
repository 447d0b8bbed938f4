"""Reductions: sum, mean, ... (each with dim, keepdim and dtype as in PyTorch)."""
from __future__ import annotations

from .. import _dtype as D
from .. import _tensor as T
from ..autograd.function import Node
from ._helpers import dims_arg, tensor_arg

__all__ = ["sum", "mean"]


def _expand_back(g, shape: tuple, dims: tuple, keepdim: bool):
    """Broadcast a reduced gradient back to the input's shape (differentiable)."""
    if not keepdim and dims:
        g = g.reshape(tuple(1 if i in dims else s for i, s in enumerate(shape)))
    return g.expand(shape)


class SumBackward0(Node):
    def backward(self, g):
        return _expand_back(g, self.shape, self.dims, self.keepdim)


def sum(input, dim=None, keepdim: bool = False, *, dtype=None):  # noqa: A001
    """Sum over ``dim`` (all dims when None); bool and int inputs sum in int64 as PyTorch does."""
    x = tensor_arg(input, "sum")
    arr = x._data
    nd = arr.ndim
    dims = dims_arg(dim, nd, "sum") if not (isinstance(dim, (list, tuple)) and len(dim) == 0) else tuple(range(nd))
    if dtype is not None:
        out_np = D.to_dtype(dtype).np
    elif arr.dtype.kind in "biu":
        out_np = D.int64.np
    else:
        out_np = arr.dtype
    if arr.dtype == D.bfloat16.np or arr.dtype == D.float16.np:
        res = arr.sum(axis=dims, keepdims=keepdim, dtype=D.float32.np).astype(out_np)
    else:
        res = arr.sum(axis=dims, keepdims=keepdim, dtype=out_np)
    r = T._wrap(res)
    if T.needs_grad(x):
        node = SumBackward0(x)
        node.shape, node.dims, node.keepdim = arr.shape, dims, keepdim
        r._requires_grad = True
        r.grad_fn = node
    return r


class MeanBackward0(Node):
    def backward(self, g):
        return _expand_back(g / self.count, self.shape, self.dims, self.keepdim)


def mean(input, dim=None, keepdim: bool = False, *, dtype=None):
    """Arithmetic mean over ``dim``; integer inputs need an explicit floating ``dtype``."""
    x = tensor_arg(input, "mean")
    arr = x._data
    if dtype is not None:
        arr = arr.astype(D.to_dtype(dtype).np)
    elif arr.dtype.kind in "biu":
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be either a floating point or "
                           f"complex dtype. Got: {x.dtype.name.capitalize()}")
    nd = arr.ndim
    dims = dims_arg(dim, nd, "mean") if not (isinstance(dim, (list, tuple)) and len(dim) == 0) else tuple(range(nd))
    count = 1
    for d in dims:
        count *= arr.shape[d]
    xp = x._xp
    with _quiet(xp):
        if arr.dtype == D.bfloat16.np or arr.dtype == D.float16.np:
            res = arr.astype(D.float32.np).mean(axis=dims, keepdims=keepdim).astype(arr.dtype)
        else:
            res = arr.mean(axis=dims, keepdims=keepdim)
    r = T._wrap(res)
    if T.needs_grad(x):
        node = MeanBackward0(x)
        node.shape, node.dims, node.keepdim, node.count = arr.shape, dims, keepdim, count
        r._requires_grad = True
        r.grad_fn = node
    return r


def _quiet(xp):
    from ._helpers import quiet

    return quiet(xp)


class ReduceMethods:
    __slots__ = ()

    sum = sum
    mean = mean
