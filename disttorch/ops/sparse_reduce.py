"""``torch.sparse.sum``, ``torch.sparse.softmax`` and ``torch.sparse.log_softmax`` on sparse COO tensors.

Both work on the coalesced form. ``sum`` over some sparse dims gives a sparse result (dense once every
sparse dim is reduced); ``softmax`` runs over the *specified* elements only: along a sparse dim, each
line of elements that share the other sparse indices is normalised on its own and unspecified elements
count as -inf (they stay unspecified). Gradients are sparse on the input's pattern, as in PyTorch.
Both are ``Op``s (autograd/op.py): the public functions check the arguments, ``forward`` computes on the
input's ``SparseCOO``.
"""
from __future__ import annotations

import numpy as np

from .. import _tensor as T
from ..autograd.grad_mode import STATE as _GRAD
from ..autograd.op import Op
from ._helpers import quiet, tensor_arg
from ._sparse_data import SparseCOO, _keys, gather_dense, lookup
from .sparse import first_order, is_sparse, sparse_tensor, values_grad

__all__: list = []


def _need(x, op: str) -> SparseCOO:
    if not is_sparse(x):
        raise RuntimeError(f"torch.sparse.{op}: expected a sparse COO tensor, got a dense tensor of shape "
                           f"{list(x.shape)}; use torch.{op} for dense tensors")
    return x._data


def _np_dtype(dtype):
    """The NumPy dtype of a ``dtype=`` argument (None stays None)."""
    if dtype is None:
        return None
    from .. import _dtype as D

    return D.to_dtype(dtype).np


def _cast(h: SparseCOO, npd) -> SparseCOO:
    return h if npd is None or h.values.dtype == npd else h.astype(npd)


# ---- sum ---------------------------------------------------------------------------------------------
class SparseSumBackward0(Op):
    op_name = "_sparse_sum"

    def forward(self, xp, h0, dims, npd):
        c = _cast(h0, npd).coalesced_form()
        sd, nd = c.sparse_dim, c.ndim
        keep = tuple(d for d in range(sd) if d not in dims)
        red_axes = tuple(d - sd + 1 for d in dims if d >= sd)
        kept_dense = tuple(c.shape[d] for d in range(sd, nd) if d not in dims)
        with quiet(c.xp):
            vals = _sum_values(c.values, red_axes) if red_axes else c.values
            if keep:
                part = SparseCOO(c.indices[list(keep)], vals, tuple(c.shape[d] for d in keep) + kept_dense, False)
                out = part.coalesced_form()
            else:
                out = c.xp.asarray(_sum_values(vals, 0))
        if self.next_functions:
            self.c, self.keep, self.red_axes, self.kept_dense = c, keep, red_axes, kept_dense
            self.in_dtype = h0.values.dtype
        return out

    def backward(self, g):
        first_order("sparse.sum", g)
        c, keep, red_axes = self.c, self.keep, self.red_axes
        gd = g._data
        if keep:
            kidx = c.indices[list(keep)]
            kept_dense = self.kept_dense
            gv = lookup(gd, kidx, kept_dense) if gd.__class__ is SparseCOO else gather_dense(gd, kidx)
        else:
            gv = gd[None]
        xp = c.xp
        for ax in red_axes:  # values axes, ascending: put each reduced dense dim back
            gv = xp.expand_dims(gv, ax)
        gv = xp.ascontiguousarray(xp.broadcast_to(gv, c.values.shape)).astype(self.in_dtype, copy=False)
        return sparse_tensor(SparseCOO(c.indices, gv, c.shape, True))


def _sum_values(vals, axes):
    kind = vals.dtype.kind
    return vals.sum(axis=axes, dtype=np.int64 if kind in "biu" else None)


def sparse_sum(input, dim=None, dtype=None):
    """Sum of a sparse tensor's elements, over all dims or over ``dim`` (an int or a tuple of ints).

    Returns a dense tensor when every sparse dim is reduced, else a coalesced sparse tensor.

    Example:
        >>> s = disttorch.sparse_coo_tensor([[0, 1, 1], [2, 0, 2]], [3., 4., 5.], (2, 3))
        >>> disttorch.sparse.sum(s, 1).to_dense()
        tensor([3., 9.])
    """
    x = tensor_arg(input, "sparse.sum")
    h0 = _need(x, "sum")
    nd = h0.ndim
    if dim is None:
        dims = tuple(range(nd))
    else:
        dl = dim if isinstance(dim, (list, tuple)) else (dim,)
        dims = tuple(sorted({T._wrap_dim(d, nd, "sparse.sum") for d in dl}))
    return SparseSumBackward0.apply(x, dims, _np_dtype(dtype))


# ---- softmax / log_softmax -----------------------------------------------------------------------------
class _Groups:
    """Which elements share a softmax line: ``gid`` per element, and ``order``/``starts`` for reduceat."""

    __slots__ = ("gid", "order", "starts")

    def __init__(self, c: SparseCOO, d: int) -> None:
        xp = c.xp
        others = [k for k in range(c.sparse_dim) if k != d]
        (key,) = _keys([c.indices[others]], tuple(c.shape[k] for k in others))
        self.order = xp.argsort(key, kind="stable")
        ks = key[self.order]
        first = xp.empty(key.shape[0], dtype=bool)
        first[:1] = True
        xp.not_equal(ks[1:], ks[:-1], out=first[1:])
        self.starts = xp.flatnonzero(first)
        self.gid = xp.empty_like(key)
        self.gid[self.order] = xp.cumsum(first) - 1

    def reduce(self, ufunc, z):
        """``ufunc`` over each line, broadcast back to every element of the line."""
        return ufunc.reduceat(z[self.order], self.starts, axis=0)[self.gid]


def _line_sum(groups, axis, z):
    return groups.reduce(np.add, z) if groups is not None else z.sum(axis=axis, keepdims=True)


class SparseSoftmaxBackward0(Op):
    op_name = "_sparse_softmax"

    def forward(self, xp, h0, d, npd, log):
        c = _cast(h0, npd).coalesced_form()
        xp, vals = c.xp, c.values
        groups = axis = None
        with quiet(xp):
            if c.nnz == 0:
                y = vals.copy()
            elif d >= c.sparse_dim:  # a dense dim: an ordinary softmax inside each value block
                axis = d - c.sparse_dim + 1
                sh = vals - vals.max(axis=axis, keepdims=True)
                lse = xp.log(xp.exp(sh).sum(axis=axis, keepdims=True))
                y = sh - lse if log else xp.exp(sh - lse)
            else:
                groups = _Groups(c, d)
                sh = vals - groups.reduce(np.maximum, vals)
                lse = xp.log(groups.reduce(np.add, xp.exp(sh)))
                y = sh - lse if log else xp.exp(sh - lse)
        if self.next_functions:
            self.c, self.y, self.groups, self.axis, self.log = c, y, groups, axis, log
            self.in_dtype = h0.values.dtype
        return SparseCOO(c.indices, y, c.shape, True)

    def backward(self, g):
        if _GRAD.enabled:  # the formula also depends on the output, which depends on the input
            raise NotImplementedError("sparse.softmax: double backward (create_graph=True) is not supported")
        c, y, groups, axis = self.c, self.y, self.groups, self.axis
        gv = values_grad(g, c)
        with quiet(c.xp):
            if self.log:
                gx = gv - c.xp.exp(y) * _line_sum(groups, axis, gv)
            else:
                gx = y * (gv - _line_sum(groups, axis, gv * y))
        return sparse_tensor(SparseCOO(c.indices, gx.astype(self.in_dtype, copy=False), c.shape, True))


class SparseLogSoftmaxBackward0(SparseSoftmaxBackward0):
    op_name = "_sparse_log_softmax"


def _softmax(input, dim: int, dtype, log: bool):
    op = "log_softmax" if log else "softmax"
    x = tensor_arg(input, f"sparse.{op}")
    h0 = _need(x, op)
    npd = _np_dtype(dtype)
    if (h0.values.dtype if npd is None else npd).kind not in "fcV":
        raise RuntimeError(f"torch.sparse.{op}: expected a floating-point sparse tensor, got {x.dtype}")
    d = T._wrap_dim(dim, h0.ndim, f"sparse.{op}")
    return (SparseLogSoftmaxBackward0 if log else SparseSoftmaxBackward0).apply(x, d, npd, log)


def sparse_softmax(input, dim: int, *, dtype=None):
    """Softmax over ``dim`` of the specified elements only (unspecified ones count as -inf); sparse result.

    Example:
        >>> s = disttorch.sparse_coo_tensor([[0, 1, 1], [2, 0, 2]], [3., 4., 5.], (2, 3))
        >>> disttorch.sparse.softmax(s, 1).values()
        tensor([1.0000, 0.2689, 0.7311])
    """
    return _softmax(input, dim, dtype, log=False)


def sparse_log_softmax(input, dim: int, *, dtype=None):
    """Log of ``sparse.softmax`` over ``dim`` (computed stably); sparse result."""
    return _softmax(input, dim, dtype, log=True)
