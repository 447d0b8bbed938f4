"""Linear algebra: kron, cross, trace, cdist and the Tensor's linear-algebra methods.

The matrix products (matmul, mm, bmm, mv, dot, ..., tensordot) live in matmul_ops.py, the ``beta * input +
alpha * product`` family (addmm, ...) in addmm_ops.py and ``einsum`` in _einsum.py; all are re-exported here.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import _tensor as T
from ..amp._state import fp32_op as _autocast_fp32
from ..autograd.op import Op
from ._helpers import broadcast_shapes, promote, sum_to, tensor_arg
from ._einsum import einsum
from .addmm_ops import addbmm, addmm, addmv, addr, baddbmm
from .elementwise import _cj, _out
from .inplace import inplace
from .matmul_ops import _F32, _LOW, bmm, dot, ger, inner, matmul, mm, mv, outer, tensordot, vdot

__all__ = ["cdist", "matmul", "mm", "bmm", "mv", "dot", "vdot", "inner", "outer", "ger", "addmm", "addmv", "addbmm",
           "baddbmm", "addr", "einsum", "tensordot", "kron", "cross", "trace"]


def kron(input, other, *, out=None):
    """Kronecker product: block ``(i, j)`` of the result is ``input[i, j] * other``."""
    a, b = tensor_arg(input, "kron"), tensor_arg(other, "kron", "other")
    nd = max(a._data.ndim, b._data.ndim)
    sa = (1,) * (nd - a._data.ndim) + tuple(a._data.shape)
    sb = (1,) * (nd - b._data.ndim) + tuple(b._data.shape)
    ai = a.reshape(tuple(v for s in sa for v in (s, 1)))
    bi = b.reshape(tuple(v for s in sb for v in (1, s)))
    r = (ai * bi).reshape(tuple(p * q for p, q in zip(sa, sb)))
    return r if out is None else _out(r, out)


_warned = {"cross": False}


class LinalgCrossBackward0(Op):
    op_name = "cross"

    def forward(self, xp, a, b, dim=-1):
        x, y = promote(xp, a, b, "cross")
        if self.next_functions:
            self.dim, self.a_shape, self.b_shape = dim, tuple(a.shape), tuple(b.shape)
            self.save(0, 1)
        return xp.cross(x, y, axis=dim)

    def backward(self, g):
        a, b = self.saved_tensors
        nig = self._nig
        ga = sum_to(cross(_cj(b), g, dim=self.dim), self.a_shape) if nig[0] else None
        gb = sum_to(cross(g, _cj(a), dim=self.dim), self.b_shape) if nig[1] else None
        return ga, gb


def cross(input, other, dim=None, *, out=None):
    """Cross product of 3-vectors along ``dim`` (default: the first dimension of size 3), broadcasting."""
    a, b = tensor_arg(input, "cross"), tensor_arg(other, "cross", "other")
    shape = broadcast_shapes(a._data.shape, b._data.shape, op="cross")
    if dim is None:
        if not _warned["cross"]:
            _warned["cross"] = True
            warnings.warn("Using disttorch.cross without specifying the dim arg is deprecated. Please either pass "
                          "the dim explicitly or simply use disttorch.linalg.cross. The default value of dim will "
                          "change to agree with that of linalg.cross in a future release.", UserWarning,
                          stacklevel=2)
        dim = next((i for i, s in enumerate(shape) if s == 3), None)
        if dim is None:
            raise RuntimeError(f"no dimension of size 3 in input (shape {list(shape)})")
    if a._data.ndim != b._data.ndim:
        raise RuntimeError(f"linalg.cross: inputs must have the same number of dimensions. (got {a._data.ndim} and "
                           f"{b._data.ndim})")
    d = T._wrap_dim(dim, len(shape), "cross")
    if a._data.shape[d] != 3 or b._data.shape[d] != 3:
        raise RuntimeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got {a._data.shape[d]} and "
                           f"{b._data.shape[d]}")
    return LinalgCrossBackward0.apply(a, b, dim=d, out=out)


class TraceBackward0(Op):
    op_name = "trace"

    def forward(self, xp, arr):
        if self.next_functions:
            self.shape = arr.shape
        if arr.dtype.kind in "biu":
            res = arr.trace(dtype=np.int64)
        elif arr.dtype in _LOW:
            res = arr.astype(_F32).trace().astype(arr.dtype)
        else:
            res = arr.trace()
        return xp.asarray(res)

    def backward(self, g):
        n, m = self.shape
        return g * T._wrap(g._xp.eye(n, m, dtype=g._data.dtype))


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def trace(input):
    """Sum of the main diagonal of a 2-D tensor (integer inputs give int64)."""
    x = tensor_arg(input, "trace")
    if x._data.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {x._data.ndim}")
    return TraceBackward0.apply(x)


class LinalgMethods:
    __slots__ = ()

    matmul = matmul
    mm = mm
    bmm = bmm
    mv = mv
    dot = dot
    vdot = vdot
    inner = inner
    outer = ger = outer
    addmm = addmm
    addmv = addmv
    baddbmm = baddbmm
    addbmm = addbmm
    addr = addr
    kron = kron
    cross = cross
    trace = trace

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def addmm_(self, mat1, mat2, *, beta=1, alpha=1):
        return inplace(self, "addmm_", addmm, mat1, mat2, beta=beta, alpha=alpha)

    def addmv_(self, mat, vec, *, beta=1, alpha=1):
        return inplace(self, "addmv_", addmv, mat, vec, beta=beta, alpha=alpha)

    def baddbmm_(self, batch1, batch2, *, beta=1, alpha=1):
        return inplace(self, "baddbmm_", baddbmm, batch1, batch2, beta=beta, alpha=alpha)

    def addbmm_(self, batch1, batch2, *, beta=1, alpha=1):
        return inplace(self, "addbmm_", addbmm, batch1, batch2, beta=beta, alpha=alpha)

    def addr_(self, vec1, vec2, *, beta=1, alpha=1):
        return inplace(self, "addr_", addr, vec1, vec2, beta=beta, alpha=alpha)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def cdist(x1, x2, p: float = 2.0, compute_mode: str = "use_mm_for_euclid_dist_if_necessary"):
    """Pairwise p-norm distances between the rows of ``x1`` (..., P, M) and ``x2`` (..., R, M) -> (..., P, R)."""
    a = tensor_arg(x1, "cdist", "x1")
    b = tensor_arg(x2, "cdist", "x2")
    if a.ndim < 2:
        raise RuntimeError(f"cdist only supports at least 2D tensors, X1 got: {a.ndim}D")
    if b.ndim < 2:
        raise RuntimeError(f"cdist only supports at least 2D tensors, X2 got: {b.ndim}D")
    if a.shape[-1] != b.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: {a.shape[-1]} X2: {b.shape[-1]}")
    if p < 0:
        raise RuntimeError(f"cdist only supports non-negative p values, got {p}")
    return (a.unsqueeze(-2) - b.unsqueeze(-3)).norm(p=p, dim=-1)
