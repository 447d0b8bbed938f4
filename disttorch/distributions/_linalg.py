"""Differentiable Cholesky factorisation and triangular solve for the Gaussian distributions.

Private: disttorch.linalg has no ``cholesky`` / ``solve_triangular`` yet; these follow
``torch.linalg``'s semantics and can move there unchanged. Both backward formulas are written with
Tensor ops (and with ``solve_triangular`` itself), so double backward works.
"""
from __future__ import annotations

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from ..autograd.function import Node
from ..ops._helpers import broadcast_shapes, quiet, sum_to

_LOW = ("float16", "bfloat16")


def _compute_array(x):
    """``x``'s array in a dtype LAPACK handles (float32 for half types, float64 for ints)."""
    a = x._data
    if a.dtype.kind in "biu":
        return a.astype(D.get_default_dtype().np)
    if x.dtype.name in _LOW:
        return a.astype(np.float32)
    return a


def _check_matrix(x, op: str, name: str) -> None:
    if not isinstance(x, T.Tensor):
        raise TypeError(f"{op}(): argument '{name}' must be Tensor, not {type(x).__name__}")
    if x.dim() < 2 or x.shape[-1] != x.shape[-2]:
        raise RuntimeError(f"{op}: {name} must be batches of square matrices, but they are "
                           f"{'x'.join(map(str, x.shape[-2:])) if x.dim() >= 2 else tuple(x.shape)} matrices")


class LinalgCholeskyBackward0(Node):
    def backward(self, g):
        (L,) = self.saved_tensors
        # PyTorch's cholesky_backward: gA = L^{-H} Phi(L^H gL) L^{-1}, symmetrised.
        gA = L.mT.matmul(g).tril()
        gA = 0.5 * (gA + gA.tril(-1).mT)
        gA = solve_triangular(L.mT, gA, upper=True, left=True)
        gA = solve_triangular(L, gA, upper=False, left=False)
        return (gA,)


def cholesky(A, *, upper: bool = False):
    """Cholesky factor of symmetric positive-definite ``A`` (batched), as ``torch.linalg.cholesky``.

    Raises:
        RuntimeError: ``A`` is not positive-definite.
    """
    _check_matrix(A, "linalg.cholesky", "A")
    xp = A._xp
    a = _compute_array(A)
    try:
        with quiet(xp):
            L = xp.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        raise RuntimeError("linalg.cholesky: The factorization could not be completed because the input is not "
                           f"positive-definite (input of shape {tuple(A.shape)}).") from None
    if xp is not np and bool(xp.isnan(L).any()):  # cupy signals failure with NaNs
        raise RuntimeError("linalg.cholesky: The factorization could not be completed because the input is not "
                           f"positive-definite (input of shape {tuple(A.shape)}).")
    if L.dtype != A._data.dtype and A.dtype.is_floating_point:
        L = L.astype(A._data.dtype)
    r = T._wrap(L)
    if T.needs_grad(A):
        node = LinalgCholeskyBackward0(A)
        r._requires_grad = True
        r.grad_fn = node
        node.save_for_backward(r)
    return r.mT if upper else r


class LinalgSolveTriangularBackward0(Node):
    def backward(self, g):
        A, X = self.saved_tensors
        gA = gB = None
        # X = A^{-1} B (left) or B A^{-1} (right): gB solves the transposed system, gA = -gB X^T (or -X^T gB).
        gB_full = solve_triangular(A.mT, g, upper=not self.upper, left=self.left)
        if self.next_functions[1][0] is not None:
            gB = sum_to(gB_full, self.b_shape)
        if self.next_functions[0][0] is not None:
            gA = -(gB_full.matmul(X.mT) if self.left else X.mT.matmul(gB_full))
            gA = gA.triu() if self.upper else gA.tril()
            gA = sum_to(gA, self.a_shape)
        return gA, gB


def solve_triangular(A, B, *, upper: bool, left: bool = True, unitriangular: bool = False):
    """Solve ``A X = B`` (``left``) or ``X A = B`` for triangular ``A``, as ``torch.linalg.solve_triangular``.

    Only the ``upper`` (or lower) triangle of ``A`` is read; batch dimensions broadcast.
    """
    _check_matrix(A, "linalg.solve_triangular", "A")
    if not isinstance(B, T.Tensor) or B.dim() < 2:
        raise RuntimeError("linalg.solve_triangular: The input tensor B must have at least 2 dimensions. (got "
                           f"{tuple(B.shape) if isinstance(B, T.Tensor) else type(B).__name__})")
    n = A.shape[-1]
    k = B.shape[-2] if left else B.shape[-1]
    if k != n:
        raise RuntimeError(f"linalg.solve_triangular: Incompatible shapes of A and B for the equation "
                           f"{'AX = B' if left else 'XA = B'} ({tuple(A.shape[-2:])} and {tuple(B.shape[-2:])})")
    if A.dtype != B.dtype:
        raise RuntimeError(f"linalg.solve_triangular: Expected A and B to have the same dtype, but got "
                           f"A.dtype={A.dtype} and B.dtype={B.dtype}")
    xp = A._xp
    a = _compute_array(A)
    a = xp.triu(a) if upper else xp.tril(a)
    if unitriangular:
        a = a.copy()
        idx = xp.arange(n)
        a[..., idx, idx] = 1
    b = _compute_array(B)
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2], op="linalg.solve_triangular")
    with quiet(xp):
        if left:
            x = xp.linalg.solve(xp.broadcast_to(a, batch + a.shape[-2:]), xp.broadcast_to(b, batch + b.shape[-2:]))
        else:  # X A = B  <=>  A^T X^T = B^T
            at = xp.swapaxes(a, -1, -2)
            bt = xp.swapaxes(b, -1, -2)
            x = xp.swapaxes(xp.linalg.solve(xp.broadcast_to(at, batch + at.shape[-2:]),
                                            xp.broadcast_to(bt, batch + bt.shape[-2:])), -1, -2)
    if x.dtype != B._data.dtype and B.dtype.is_floating_point:
        x = x.astype(B._data.dtype)
    r = T._wrap(x)
    if T.needs_grad(A, B) and not unitriangular:
        node = LinalgSolveTriangularBackward0(A, B)
        node.upper, node.left = upper, left
        node.a_shape, node.b_shape = tuple(A.shape), tuple(B.shape)
        r._requires_grad = True
        r.grad_fn = node
        node.save_for_backward(A, r)
    elif T.needs_grad(A, B):
        raise NotImplementedError("solve_triangular: gradients with unitriangular=True are not implemented")
    return r
