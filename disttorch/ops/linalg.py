"""Linear algebra: matmul and friends (mm, bmm, mv, dot, outer, einsum, addmm, baddbmm)."""
from __future__ import annotations

from .. import _tensor as T
from ..autograd.function import Node
from ._helpers import binary, sum_to, tensor_arg

__all__ = ["matmul"]


def _matmul_error(a, b):
    sa, sb = tuple(a.shape), tuple(b.shape)
    if a.ndim == 0 or b.ndim == 0:
        return RuntimeError(f"matmul: both arguments to matmul need to be at least 1D, but they are "
                            f"{a.ndim}D and {b.ndim}D")
    ka = sa[-1]
    kb = sb[0] if len(sb) == 1 else sb[-2]
    if ka != kb:
        return RuntimeError(f"matmul: shapes {sa} and {sb} cannot be multiplied ({ka} != {kb})")
    return RuntimeError(f"matmul: batch dimensions of shapes {sa} and {sb} do not broadcast")


class MmBackward0(Node):
    """Backward of matmul for any ranks: 1-D operands are promoted as NumPy does, then undone."""

    def backward(self, g):
        a, b = self.saved_tensors
        ga = gb = None
        a2 = a.unsqueeze(0) if a.ndim == 1 else a
        b2 = b.unsqueeze(-1) if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = g2.unsqueeze(-2)
        if b.ndim == 1:
            g2 = g2.unsqueeze(-1)
        if self.next_functions[0][0] is not None:
            ga = matmul(g2, b2.transpose(-1, -2))
            if a.ndim == 1:
                ga = ga.squeeze(-2)
            ga = sum_to(ga, tuple(a.shape))
        if self.next_functions[1][0] is not None:
            gb = matmul(a2.transpose(-1, -2), g2)
            if b.ndim == 1:
                gb = gb.squeeze(-1)
            gb = sum_to(gb, tuple(b.shape))
        return ga, gb


def matmul(input, other, *, out=None):
    """Matrix product with NumPy/PyTorch broadcasting rules for 1-D and batched operands."""
    a = tensor_arg(input, "matmul")
    b = tensor_arg(other, "matmul", "other")
    if a.dtype is not b.dtype:
        raise RuntimeError(f"matmul: expected m1 and m2 to have the same dtype, but got: {a.dtype} != {b.dtype}")
    xp, ad, bd = binary(a, b, "matmul")
    if ad.ndim == 0 or bd.ndim == 0:
        raise _matmul_error(a, b)
    try:
        res = xp.matmul(ad, bd)
    except ValueError:
        raise _matmul_error(a, b) from None
    r = T._wrap(res)
    if T.needs_grad(a, b):
        node = MmBackward0(a, b)
        node.save_for_backward(a, b)
        r._requires_grad = True
        r.grad_fn = node
    if out is not None:
        from .elementwise import _out

        return _out(r, out)
    return r


class LinalgMethods:
    __slots__ = ()

    matmul = matmul

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)
