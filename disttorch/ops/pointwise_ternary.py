"""Ternary pointwise math: lerp, addcmul, addcdiv and their in-place forms (split from pointwise_binary.py, which
re-exports them and whose mixin carries them as Tensor methods)."""
from __future__ import annotations

import math

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from ..autograd.op import Op
from . import inplace as _I
from ._helpers import broadcast_error, meta, promote, quiet, tensor_arg
from .elementwise import _cj, _ufunc2, reduce_grad

__all__ = ["lerp", "addcmul", "addcdiv"]


# ---- lerp, addcmul, addcdiv ----------------------------------------------------------------------------
class LerpBackward0(Op):
    """lerp; a number ``weight`` is an attribute (two edges), a tensor one an input (three, as PyTorch)."""

    op_name = "lerp"

    def forward(self, xp, input, end, weight):
        a, b = promote(xp, input, end, "lerp")
        if a.dtype.kind in "biu":
            raise RuntimeError(f'"lerp_kernel" not implemented for \'{_I._type_name(D._FROM_NP[a.dtype])}\'')
        w_t = hasattr(weight, "dtype") and not isinstance(weight, np.generic)
        if self.next_functions:
            self.metas = (meta(input), meta(end), meta(weight) if w_t else None)
            self.weight = None if w_t else weight
            if w_t:
                self.save(0, 1, 2)
            else:
                self.save(0, 1)
        try:
            with quiet(xp):
                diff = b - a
                if w_t:
                    w = weight.astype(a.dtype) if weight.dtype != a.dtype else weight
                    data = xp.where(xp.abs(w) < 0.5, a + w * diff, b - diff * (1 - w))
                elif math.fabs(weight) < 0.5:
                    data = a + diff * weight
                else:
                    data = b - diff * (1 - weight)
        except ValueError:
            raise broadcast_error("lerp", a.shape, b.shape, getattr(weight, "shape", ()) if w_t else ()) from None
        return data.astype(a.dtype) if data.dtype != a.dtype else data

    def backward(self, g):
        saved = self.saved_tensors
        s, e = saved[0], saved[1]
        w = saved[2] if len(saved) > 2 else self.weight
        n = self._nig
        return (reduce_grad(g * (1 - w), self.metas[0]) if n[0] else None,
                reduce_grad(g * w, self.metas[1]) if n[1] else None,
                reduce_grad(g * (e - s), self.metas[2]) if len(n) > 2 and n[2] else None)


def lerp(input, end, weight, *, out=None):
    """``input + weight * (end - input)``; ``weight`` is a number or a tensor (PyTorch's stable form)."""
    s = tensor_arg(input, "lerp")
    e = tensor_arg(end, "lerp", "end")
    if isinstance(weight, T.Tensor):
        return LerpBackward0.apply(s, e, weight, out=out)
    return LerpBackward0.apply(s, e, weight=weight, out=out)


def _check_value(nd, value, op: str) -> None:
    if nd.kind in "biu" and not isinstance(value, int):
        raise RuntimeError(f"{op}: For integral input tensors, argument value must not be a floating point number.")


class AddcmulBackward0(Op):
    op_name = "addcmul"

    def forward(self, xp, x, t1, t2, value=1):
        nd = D.result_type(x, t1, t2).np
        _check_value(nd, value, "addcmul")
        if self.next_functions:
            self.metas, self.value = (meta(x), meta(t1), meta(t2)), value
            self.save(1, 2)
        try:
            with quiet(xp):
                tmp = xp.multiply(t1.astype(nd, copy=False), t2.astype(nd, copy=False))
                if value != 1:
                    tmp = tmp * value
                return xp.add(x.astype(nd, copy=False), tmp)
        except ValueError:
            raise broadcast_error("addcmul", x.shape, t1.shape, t2.shape) from None

    def backward(self, g):
        t1, t2 = self.saved_tensors
        n, m, v = self._nig, self.metas, self.value
        return (reduce_grad(g, m[0]) if n[0] else None,
                reduce_grad(g * _cj(t2 if v == 1 else t2 * v), m[1]) if n[1] else None,
                reduce_grad(g * _cj(t1 if v == 1 else t1 * v), m[2]) if n[2] else None)


def addcmul(input, tensor1, tensor2, *, value=1, out=None):
    """``input + value * tensor1 * tensor2``."""
    x = tensor_arg(input, "addcmul")
    t1, t2 = tensor_arg(tensor1, "addcmul", "tensor1"), tensor_arg(tensor2, "addcmul", "tensor2")
    return AddcmulBackward0.apply(x, t1, t2, value=value, out=out)


class AddcdivBackward0(Op):
    op_name = "addcdiv"

    def forward(self, xp, x, t1, t2, value=1):
        nd = D.result_type(x, t1, t2).np
        if self.next_functions:
            self.metas, self.value = (meta(x), meta(t1), meta(t2)), value
            self.save(1, 2)
        try:
            with quiet(xp):
                tmp = xp.true_divide(t1.astype(nd, copy=False), t2.astype(nd, copy=False))
                if value != 1:
                    tmp *= value
                return xp.add(x.astype(nd, copy=False), tmp)
        except ValueError:
            raise broadcast_error("addcdiv", x.shape, t1.shape, t2.shape) from None

    def backward(self, g):
        t1, t2 = self.saved_tensors
        n, m, v = self._nig, self.metas, self.value
        g1 = g2 = None
        if n[1]:
            g1 = reduce_grad(g * _cj(t2.reciprocal() if v == 1 else v / t2), m[1])
        if n[2]:
            q = t1 / (t2 * t2)
            g2 = reduce_grad(-g * _cj(q if v == 1 else q * v), m[2])
        return (reduce_grad(g, m[0]) if n[0] else None), g1, g2


def addcdiv(input, tensor1, tensor2, *, value=1, out=None):
    """``input + value * tensor1 / tensor2`` (integer tensor1/tensor2 raise, as in PyTorch)."""
    x = tensor_arg(input, "addcdiv")
    t1, t2 = tensor_arg(tensor1, "addcdiv", "tensor1"), tensor_arg(tensor2, "addcdiv", "tensor2")
    if t1._data.dtype.kind in "biu" and t2._data.dtype.kind in "biu":
        raise RuntimeError("Integer division with addcdiv is no longer supported, and in a future  release addcdiv "
                           "will perform a true division of tensor1 and tensor2. The historic addcdiv behavior can "
                           "be implemented as (input + value * torch.trunc(tensor1 / tensor2)).to(input.dtype) for "
                           "integer inputs and as (input + value * tensor1 / tensor2) for float inputs. The future "
                           "addcdiv behavior is just the latter implementation: (input + value * tensor1 / "
                           "tensor2), for all dtypes.")
    return AddcdivBackward0.apply(x, t1, t2, value=value, out=out)



# ---- in-place forms (optimizers call these under no_grad: compute into self's array) --------------------------
def lerp_(self, end, weight):
    """In-place lerp toward ``end``."""
    e = tensor_arg(end, "lerp_", "end")
    sd = self._data
    if not isinstance(weight, T.Tensor) and e._data.dtype == sd.dtype and sd.dtype.kind == "f" \
            and not _I.needs_graph(self, "lerp_", e):
        xp = self._xp
        tmp = _ufunc2(xp.subtract, "lerp_", e._data, sd)
        if math.fabs(weight) < 0.5:
            tmp *= weight
            _I.ufunc_into(self, "lerp_", xp.add, sd, tmp)
        else:
            tmp *= 1 - weight
            _I.ufunc_into(self, "lerp_", xp.subtract, e._data, tmp)
        return self
    return _I.inplace(self, "lerp_", lerp, e, weight)


def _same_dtype(self, *ts) -> bool:
    dt = self._data.dtype
    return all(t._data.dtype == dt for t in ts)


def addcmul_(self, tensor1, tensor2, *, value=1):
    """In-place ``self += value * tensor1 * tensor2``."""
    t1, t2 = tensor_arg(tensor1, "addcmul_", "tensor1"), tensor_arg(tensor2, "addcmul_", "tensor2")
    if _same_dtype(self, t1, t2) and self._data.dtype.kind == "f" and not _I.needs_graph(self, "addcmul_", t1, t2):
        xp = self._xp
        if _I.can_fuse(self, t1._data, t2._data):
            _I.fused_into(self, (xp.multiply, t1._data, t2._data), value)
            return self
        tmp = _ufunc2(xp.multiply, "addcmul_", t1._data, t2._data)
        if value != 1:
            tmp *= value
        _I.ufunc_into(self, "addcmul_", xp.add, self._data, tmp)
        return self
    return _I.inplace_light(self, "addcmul_", addcmul, t1, t2, value=value)


def addcdiv_(self, tensor1, tensor2, *, value=1):
    """In-place ``self += value * tensor1 / tensor2``."""
    t1, t2 = tensor_arg(tensor1, "addcdiv_", "tensor1"), tensor_arg(tensor2, "addcdiv_", "tensor2")
    if _same_dtype(self, t1, t2) and self._data.dtype.kind == "f" and not _I.needs_graph(self, "addcdiv_", t1, t2):
        xp = self._xp
        if _I.can_fuse(self, t1._data, t2._data):
            _I.fused_into(self, (xp.true_divide, t1._data, t2._data), value)
            return self
        with quiet(xp):
            tmp = _ufunc2(xp.true_divide, "addcdiv_", t1._data, t2._data)
            if value != 1:
                tmp *= value
            _I.ufunc_into(self, "addcdiv_", xp.add, self._data, tmp)
        return self
    return _I.inplace_light(self, "addcdiv_", addcdiv, t1, t2, value=value)
