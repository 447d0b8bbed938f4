"""Distance functionals: normalize, cosine_similarity, pairwise_distance, pdist.

Each is a short composition of differentiable Tensor ops (norm, division, indexing), so autograd,
double backward and half-precision handling come from those ops.
"""
from __future__ import annotations

import numpy as np  # index bookkeeping only (triu_indices)

from .. import _dtype as D
from .. import _tensor as T
from .elementwise import div
from ._helpers import broadcast_shapes, tensor_arg

__all__ = ["cosine_similarity", "pairwise_distance", "pdist"]
FUNCTIONAL = ("normalize", "cosine_similarity", "pairwise_distance", "pdist")


def normalize(input, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out=None):
    """``input / max(||input||_p, eps)`` along ``dim``.

    Example:
        >>> normalize(disttorch.tensor([[3., 4.]]))
        tensor([[0.6000, 0.8000]])
    """
    x = tensor_arg(input, "normalize")
    denom = x.norm(p, dim, keepdim=True).clamp_min(eps)
    return x / denom if out is None else div(x, denom, out=out)


def _float_pair(x1, x2, op: str):
    a, b = tensor_arg(x1, op, "x1"), tensor_arg(x2, op, "x2")
    dt = D.result_type(a, b)
    if not dt.is_floating_point:
        raise RuntimeError(f"{op}: expected common dtype to be floating point, yet common dtype is {dt} "
                           f"(x1: {a.dtype}, x2: {b.dtype})")
    if a.dtype is not dt:
        a = a.to(dt)
    if b.dtype is not dt:
        b = b.to(dt)
    return a, b


def _clamped(n, eps: float):
    """``n`` with its value clamped below at ``eps`` but its gradient unchanged (PyTorch clamps under no_grad)."""
    arr = n._data
    low = arr < eps
    if not low.any():
        return n
    xp = n._xp
    return n + T._wrap(xp.where(low, xp.asarray(eps, dtype=arr.dtype) - arr, xp.zeros((), dtype=arr.dtype)))


def cosine_similarity(x1, x2, dim: int = 1, eps: float = 1e-8):
    """Cosine similarity along ``dim`` of broadcast ``x1`` and ``x2``.

    Computed as PyTorch does: ``sum((x1 / max(||x1||, eps)) * (x2 / max(||x2||, eps)))``.
    """
    op = "cosine_similarity"
    a, b = _float_pair(x1, x2, op)
    shape = broadcast_shapes(tuple(a._data.shape), tuple(b._data.shape), op=op)
    if tuple(a._data.shape) != shape:
        a = a.expand(shape)
    if tuple(b._data.shape) != shape:
        b = b.expand(shape)
    d = T._wrap_dim(dim, len(shape), op)
    na = _clamped(a.norm(2, d, keepdim=True), eps)
    nb = _clamped(b.norm(2, d, keepdim=True), eps)
    return ((a / na) * (b / nb)).sum(d)


def pairwise_distance(x1, x2, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
    """``||x1 - x2 + eps||_p`` over the last dimension of the broadcast inputs."""
    op = "pairwise_distance"
    a, b = tensor_arg(x1, op, "x1"), tensor_arg(x2, op, "x2")
    nd = max(a._data.ndim, b._data.ndim)
    diff = a - b + eps
    if not diff.dtype.is_floating_point:
        diff = diff.to(D.get_default_dtype())
    return diff.norm(p, nd - 1 if nd else None, keepdim=keepdim)


def pdist(input, p: float = 2.0):
    """The ``p``-norm distances between all pairs of rows ``i < j`` of a 2-D input, as a vector."""
    x = tensor_arg(input, "pdist")
    if x._data.ndim != 2:
        raise RuntimeError(f"pdist only supports 2D tensors, got: {x._data.ndim}D")
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"pdist only supports floating-point dtypes, got {x.dtype}")
    if p < 0:
        raise RuntimeError(f"pdist only supports non-negative p values, got {p}")
    n = x._data.shape[0]
    i, j = np.triu_indices(n, 1)
    xp = x._xp
    ii, jj = T._wrap(xp.asarray(i)), T._wrap(xp.asarray(j))
    diff = x.index_select(0, ii) - x.index_select(0, jj)
    return diff.norm(p, 1)
