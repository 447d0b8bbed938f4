"""``beta * input + alpha * product``: addmm, addmv, baddbmm, addbmm, addr (re-exported by linalg.py).

They share the products' forward and backward (matmul_ops.py): float16/bfloat16 sums are formed in float32 and
rounded once, as PyTorch's CPU kernels do.
"""
from __future__ import annotations

from ..amp._state import STATE as _AC
from ..amp._state import cast_lower as _autocast
from ..autograd.op import Op
from ._helpers import broadcast_shapes, sum_to, tensor_arg
from ._sparse_data import SparseCOO as _SparseCOO
from .elementwise import _cj, _out
from .matmul_ops import _F32, _LOW, _check_bmm, _check_ndim, _check_pair, _dtype_error, _matmul_arrays, \
    _mm_grads, _product, matmul

__all__ = ["addmm", "addmv", "baddbmm", "addbmm", "addr"]


def _addbmm_arrays(xp, a, b):
    return xp.matmul(a, b).sum(0)


def _addbmm_low(xp, x, a, b, beta, alpha):
    """addbmm in float16/bfloat16 as PyTorch's CPU kernel: ``beta * input``, then one ``addmm_`` per batch
    (each product formed in float32, each partial sum rounded to the low dtype)."""
    dt = a.dtype
    shape = (a.shape[1], b.shape[2])
    acc = xp.broadcast_to((x.astype(_F32) * beta).astype(dt), shape) if beta != 0 else xp.zeros(shape, dt)
    for i in range(a.shape[0]):
        p = a[i].astype(_F32) @ b[i].astype(_F32)
        if alpha != 1:
            p *= alpha
        acc = (p + acc.astype(_F32)).astype(dt)
    return xp.array(acc, copy=True) if a.shape[0] == 0 else acc


def _outer_arrays(xp, a, b):
    return xp.multiply(a[:, None], b[None, :])


class AddmmBackward0(Op):
    """``beta * input + alpha * prod(a, b)``; ``op`` says how ``prod`` maps to matmul (see ``_addprod``)."""

    op_name = "addmm"
    _fn = staticmethod(_matmul_arrays)  # the product over arrays

    def forward(self, xp, x, a, b, beta=1, alpha=1):
        op = self.op_name
        res = _addprod_arrays(op, xp, x, a, b, beta, alpha, self._fn)
        if self.next_functions:
            nig = self._nig
            self.kind, self.beta, self.alpha, self.x_shape = op, beta, alpha, tuple(x.shape)
            self.a_shape, self.b_shape = a.shape, b.shape
            self.save(None, 1 if nig[2] else None, 2 if nig[1] else None)
        return res

    def backward(self, g):
        _, a, b = self.saved_tensors
        need = self._nig
        gx = sum_to(g if self.beta == 1 else g * self.beta, self.x_shape) if need[0] else None
        gp = g if self.alpha == 1 else g * self.alpha
        if self.kind == "addbmm":
            gp = gp.unsqueeze(0)
        if self.kind == "addr":
            ga = matmul(gp, _cj(b)) if need[1] else None
            gb = matmul(gp.t(), _cj(a)) if need[2] else None
        else:
            ga, gb = _mm_grads(a, b, gp, need[1], need[2], self.a_shape, self.b_shape)
        return gx, ga, gb


class AddmvBackward0(AddmmBackward0):
    op_name = "addmv"


class BaddbmmBackward0(AddmmBackward0):
    op_name = "baddbmm"


class AddbmmBackward0(AddmmBackward0):
    op_name = "addbmm"
    _fn = staticmethod(_addbmm_arrays)


class AddrBackward0(AddmmBackward0):
    op_name = "addr"
    _fn = staticmethod(_outer_arrays)


_ADD_NODES = {"addmm": AddmmBackward0, "addmv": AddmvBackward0, "baddbmm": BaddbmmBackward0,
              "addbmm": AddbmmBackward0, "addr": AddrBackward0}


def _addprod(op: str, input, a, b, beta, alpha, out):
    x = tensor_arg(input, op)
    if x._data.dtype != a._data.dtype:
        raise _dtype_error(op, x, a, ("self", "mat1"))
    if a.dtype._cat < 2 and (isinstance(alpha, float) or isinstance(beta, float)):
        raise RuntimeError(f"{op}: For integral input tensors, argument alpha and beta must not be a floating "
                           "point number.")
    _check_pair(op, a, b)
    if beta == 1 and alpha == 1 and out is None:
        return _ADD_NODES[op].apply(x, a, b)
    return _ADD_NODES[op].apply(x, a, b, beta=beta, alpha=alpha, out=out)


def _addprod_arrays(op: str, xp, x, a, b, beta, alpha, fn):
    """The arrays of ``beta * x + alpha * fn(a, b)`` (float16/bfloat16 summed in float32, rounded once)."""
    low = a.dtype in _LOW
    res = _product(op, xp, a, b, fn, keep_f32=low)
    bshape = broadcast_shapes(x.shape, res.shape, op=op)
    if bshape != res.shape:
        raise RuntimeError(f"{op}: input of shape {tuple(x.shape)} does not broadcast to the product's "
                           f"shape {tuple(res.shape)}")
    if low and op == "addbmm":
        return _addbmm_low(xp, x, a, b, beta, alpha)
    # float16/bfloat16: the sum is formed in float32 and rounded once, as PyTorch's CPU kernels do
    xd = x.astype(_F32) if low else x
    if alpha != 1:
        res *= alpha
    if beta != 0:  # beta == 0 ignores input entirely, NaN and inf included, as PyTorch does
        res += xd if beta == 1 else xd * beta
    if low:
        res = res.astype(a.dtype)
    return res


def addmm(input, mat1, mat2, *, beta=1, alpha=1, out=None):
    """``beta * input + alpha * (mat1 @ mat2)``; with ``beta=0`` input is ignored (NaN included)."""
    a, b = tensor_arg(mat1, "addmm", "mat1"), tensor_arg(mat2, "addmm", "mat2")
    _check_ndim("addmm", a, b, 2, 2, "2-D matrices")
    if a._data.__class__ is _SparseCOO or b._data.__class__ is _SparseCOO:
        from .sparse_mm import addmm_with_sparse

        return _out(addmm_with_sparse(input, a, b, beta, alpha, masked=False), out)
    if _AC.active:
        input, a, b = _autocast(input, a, b)
    return _addprod("addmm", input, a, b, beta, alpha, out)


def addmv(input, mat, vec, *, beta=1, alpha=1, out=None):
    """``beta * input + alpha * (mat @ vec)``."""
    a, b = tensor_arg(mat, "addmv", "mat"), tensor_arg(vec, "addmv", "vec")
    _check_ndim("addmv", a, b, 2, 1, "a 2-D matrix and a 1-D vector")
    return _addprod("addmv", input, a, b, beta, alpha, out)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1, out=None):
    """``beta * input + alpha * bmm(batch1, batch2)``."""
    a, b = tensor_arg(batch1, "baddbmm", "batch1"), tensor_arg(batch2, "baddbmm", "batch2")
    _check_bmm("baddbmm", a, b)
    if _AC.active:
        input, a, b = _autocast(input, a, b)
    return _addprod("baddbmm", input, a, b, beta, alpha, out)


def addbmm(input, batch1, batch2, *, beta=1, alpha=1, out=None):
    """``beta * input + alpha * sum_i(batch1[i] @ batch2[i])``."""
    a, b = tensor_arg(batch1, "addbmm", "batch1"), tensor_arg(batch2, "addbmm", "batch2")
    _check_bmm("addbmm", a, b)
    if _AC.active:
        input, a, b = _autocast(input, a, b)
    return _addprod("addbmm", input, a, b, beta, alpha, out)


def addr(input, vec1, vec2, *, beta=1, alpha=1, out=None):
    """``beta * input + alpha * outer(vec1, vec2)``."""
    a, b = tensor_arg(vec1, "addr", "vec1"), tensor_arg(vec2, "addr", "vec2")
    _check_ndim("addr", a, b, 1, 1, "1-D vectors")
    return _addprod("addr", input, a, b, beta, alpha, out)
