"""Binary and ternary pointwise math: where, clamp, maximum/minimum, fmax/fmin, atan2, hypot, logaddexp,
xlogy, copysign, lerp, addcmul, addcdiv (re-exported by pointwise.py, whose mixin inherits this one).

Backward at the kinks follows PyTorch: clamp passes the gradient where min <= x <= max, maximum and
minimum split ties evenly, fmax/fmin send it to the input they returned.
"""
from __future__ import annotations

import numpy as np

import math

from .. import _dtype as D
from .. import _tensor as T
from ..autograd.function import Node
from ..autograd.grad_mode import STATE as _GRAD
from . import inplace as _I
from ._helpers import binary, broadcast_error, quiet, scalar_array, shape_of, tensor_arg
from .elementwise import _call, _meta, _ng, _out, _to_float, add, div, mul, record2, reduce_grad, zeros_grad

__all__ = ["where", "clamp", "clip", "clamp_min", "clamp_max", "maximum", "minimum", "fmax", "fmin", "atan2",
           "arctan2", "hypot", "logaddexp", "logaddexp2", "xlogy", "copysign", "lerp", "addcmul", "addcdiv"]


def _any_grad(*xs) -> bool:
    if not _GRAD.enabled:
        return False
    for x in xs:
        if isinstance(x, T.Tensor) and x._requires_grad:
            return True
    return False


def _as_tensor(v, arr):
    """``v`` itself when it is a Tensor, else its promoted array wrapped (for backward formulas)."""
    return v if isinstance(v, T.Tensor) else T._wrap(arr)


# ---- where ---------------------------------------------------------------------------------------------
class WhereBackward0(Node):
    def backward(self, g):
        c = self.cond
        ga = reduce_grad(where(c, g, 0.0), self.a) if self.next_functions[0][0] is not None else None
        gb = reduce_grad(where(c, 0.0, g), self.b) if self.next_functions[1][0] is not None else None
        return ga, gb


_INT_OF_SIZE = {2: np.int16, 4: np.int32, 8: np.int64}


def _select(xp, cd, x, y):
    """``xp.where(cd, x, y)``, via a bit mask when one side is the scalar +0.0.

    A data-dependent select is ~10x slower than a streaming op on random masks (branch misses);
    relu's and where's own backward hit this case on every step. ANDing the value's bits with an
    all-ones/all-zeros mask gives exactly where's result (NaN, inf and -0.0 included).
    """
    if y.ndim == 0 and x.dtype.kind in "fV" and x.dtype.itemsize in _INT_OF_SIZE and not y and not xp.signbit(y):
        keep, cond = x, cd
    elif x.ndim == 0 and y.dtype.kind in "fV" and y.dtype.itemsize in _INT_OF_SIZE and not x \
            and not xp.signbit(x):
        keep, cond = y, ~cd
    else:
        return xp.where(cd, x, y)
    it = _INT_OF_SIZE[keep.dtype.itemsize]
    mask = xp.subtract(0, cond, dtype=it)  # True -> -1 (all bits set), False -> 0
    return xp.bitwise_and(keep.view(it), mask).view(keep.dtype)


def where(condition, input=None, other=None, *, out=None):
    """``input`` where ``condition`` holds, else ``other`` (either may be a number); broadcasts all three.

    ``where(condition)`` alone is ``condition.nonzero(as_tuple=True)``.

    Example:
        >>> x = disttorch.tensor([-1.0, 2.0])
        >>> where(x > 0, x, 0.0)
        tensor([0., 2.])
    """
    if input is None and other is None:
        return condition.nonzero(as_tuple=True)
    cond = tensor_arg(condition, "where", "condition")
    cd = cond._data
    if cd.dtype.kind != "b":
        if cd.dtype.kind != "u" or cd.dtype.itemsize != 1:
            raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype "
                               f"{_I._type_name(cond.dtype)}")
        cd = cd.astype(bool)
    if isinstance(input, T.Tensor) or isinstance(other, T.Tensor):
        xp, x, y = binary(input, other, "where")
    else:
        xp, nd = cond._xp, D.result_type(input, other).np
        x, y = scalar_array(xp, input, nd), scalar_array(xp, other, nd)
    try:
        r = T._wrap(_select(xp, cd, x, y))
    except ValueError:
        raise broadcast_error("where", cd.shape, shape_of(input), shape_of(other)) from None
    if _ng(input, other):
        record2(WhereBackward0, r, input, other).cond = cond
    return r if out is None else _out(r, out)


# ---- clamp -------------------------------------------------------------------------------------------
class ClampBackward1(Node):
    """clamp with number bounds."""

    def backward(self, g):
        (x,) = self.saved_tensors
        lo, hi = self.lo, self.hi
        if lo is not None and hi is not None:
            mask = (x >= lo) & (x <= hi)
        elif lo is not None:
            mask = x >= lo
        else:
            mask = x <= hi
        return g.where(mask, 0.0)


class ClampBackward0(Node):
    """clamp with tensor bounds: each bound gets the gradient where it was selected."""

    def backward(self, g):
        x, lo, hi = self.saved_tensors
        nx, nlo, nhi = (fn is not None for fn, _ in self.next_functions)
        gx = glo = ghi = None
        if lo is not None and hi is not None:
            if nx:
                gx = where((x >= lo) & (x <= hi), g, 0.0)
            if nlo:
                glo = where((x < lo) & (hi > lo), g, 0.0)
            if nhi:
                ghi = where((x > hi) | (hi < lo), g, 0.0)
        elif lo is not None:
            gx = where(x >= lo, g, 0.0) if nx else None
            glo = where(x < lo, g, 0.0) if nlo else None
        else:
            gx = where(x <= hi, g, 0.0) if nx else None
            ghi = where(x > hi, g, 0.0) if nhi else None
        return (None if gx is None else reduce_grad(gx, self.metas[0]),
                None if glo is None else reduce_grad(glo, self.metas[1]),
                None if ghi is None else reduce_grad(ghi, self.metas[2]))


def _bound(xp, v, nd):
    if v is None:
        return None
    if isinstance(v, T.Tensor):
        a = v._data
        return a if a.dtype == nd else a.astype(nd)
    return scalar_array(xp, v, nd)


def _clamp_arrays(xp, a, lo, hi):
    r = a if lo is None else xp.maximum(a, lo)
    if hi is None:
        return r
    # Reuse maximum's fresh result when the shapes allow (not for 0-d: NumPy returns scalars there).
    return xp.minimum(r, hi, out=r) if r is not a and hi.ndim == 0 and r.ndim else xp.minimum(r, hi)


def clamp(input, min=None, max=None, *, out=None):  # noqa: A002 - PyTorch's names
    """Limit ``input`` to [min, max]; either bound may be a number, a tensor or None (not both None).

    NaN propagates; where min > max the result is max, as in PyTorch.
    """
    x = tensor_arg(input, "clamp")
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    xp, a = x._xp, x._data
    numbers = (min is None or min.__class__ in (int, float)) and (max is None or max.__class__ in (int, float))
    if numbers and (a.dtype.kind == "f" or (a.dtype.kind in "iu" and float not in (min.__class__, max.__class__))):
        nd = a.dtype  # number bounds that keep the dtype: the common, fast case
    else:
        nd = D.result_type(*[v for v in (x, min, max) if v is not None]).np
        a = a if a.dtype == nd else a.astype(nd)
    lo, hi = _bound(xp, min, nd), _bound(xp, max, nd)
    try:
        r = T._wrap(_I.quiet_call(_clamp_arrays, xp, a, lo, hi))
    except ValueError:
        raise broadcast_error("clamp", a.shape, shape_of(min), shape_of(max)) from None
    if _any_grad(x, min, max):
        if isinstance(min, T.Tensor) or isinstance(max, T.Tensor):
            node = ClampBackward0(x, min if isinstance(min, T.Tensor) else None,
                                  max if isinstance(max, T.Tensor) else None)
            node.metas = (_meta(x), _meta(min), _meta(max))
            node.save_for_backward(x, min, max)
        else:
            node = ClampBackward1(x)
            node.lo, node.hi = min, max
            node.save_for_backward(x)
        r._requires_grad = True
        r.grad_fn = node
    return r if out is None else _out(r, out)


clip = clamp


def clamp_min(input, min):  # noqa: A002
    """``clamp(input, min=min)``."""
    return clamp(input, min=min)


def clamp_max(input, max):  # noqa: A002
    """``clamp(input, max=max)``."""
    return clamp(input, max=max)


# ---- maximum / minimum / fmax / fmin ---------------------------------------------------------------------
class MaximumBackward0(Node):
    def backward(self, g):
        a, b = self.saved_tensors
        tie = where(a == b, g / 2, g)
        ga = reduce_grad(where(a < b, 0.0, tie), self.a) if self.next_functions[0][0] is not None else None
        gb = reduce_grad(where(a > b, 0.0, tie), self.b) if self.next_functions[1][0] is not None else None
        return ga, gb


class MinimumBackward0(Node):
    def backward(self, g):
        a, b = self.saved_tensors
        tie = where(a == b, g / 2, g)
        ga = reduce_grad(where(a > b, 0.0, tie), self.a) if self.next_functions[0][0] is not None else None
        gb = reduce_grad(where(a < b, 0.0, tie), self.b) if self.next_functions[1][0] is not None else None
        return ga, gb


class FmaxBackward0(Node):
    def backward(self, g):
        a, b = self.saved_tensors
        first = (a >= b) | b.isnan() if self.is_max else (a <= b) | b.isnan()
        ga = reduce_grad(where(first, g, 0.0), self.a) if self.next_functions[0][0] is not None else None
        gb = reduce_grad(where(first, 0.0, g), self.b) if self.next_functions[1][0] is not None else None
        return ga, gb


class FminBackward0(FmaxBackward0):
    pass


def _extremum(input, other, op: str, ufunc_name: str, node_cls, out):
    xp, x, y = binary(input, other, op)
    r = T._wrap(_call(xp, getattr(xp, ufunc_name), op, input, other, x, y))
    if _ng(input, other):
        node = record2(node_cls, r, input, other)
        node.is_max = ufunc_name == "fmax"
        node.save_for_backward(_as_tensor(input, x), _as_tensor(other, y))
    return r if out is None else _out(r, out)


def maximum(input, other, *, out=None):
    """Elementwise maximum; NaN propagates. Ties split the gradient evenly."""
    return _extremum(input, other, "maximum", "maximum", MaximumBackward0, out)


def minimum(input, other, *, out=None):
    """Elementwise minimum; NaN propagates. Ties split the gradient evenly."""
    return _extremum(input, other, "minimum", "minimum", MinimumBackward0, out)


def fmax(input, other, *, out=None):
    """Elementwise maximum ignoring NaN (NaN only where both are NaN)."""
    return _extremum(input, other, "fmax", "fmax", FmaxBackward0, out)


def fmin(input, other, *, out=None):
    """Elementwise minimum ignoring NaN."""
    return _extremum(input, other, "fmin", "fmin", FminBackward0, out)


# ---- float-valued binary functions -----------------------------------------------------------------------
def _float_binary(input, other, op: str, kernel, node_cls, out):
    """A float-valued binary op (ints promote to the default float); the node saves both operands and the result.

    ``kernel`` is a ufunc name of ``xp`` or a function ``(xp, x, y) -> array``.
    """
    xp, x, y = binary(input, other, op)
    x, y = _to_float(x, y)
    fn = getattr(xp, kernel) if kernel.__class__ is str else (lambda p, q: kernel(xp, p, q))
    r = T._wrap(_call(xp, fn, op, input, other, x, y))  # _call silences NumPy's warnings
    if _ng(input, other):
        node = record2(node_cls, r, input, other)
        node.save_for_backward(_as_tensor(input, x), _as_tensor(other, y), r)
    return r if out is None else _out(r, out)


def _grads(node, ga, gb):
    """Apply ``reduce_grad`` to the gradient callables whose inputs need them."""
    return (reduce_grad(ga(), node.a) if node.next_functions[0][0] is not None else None,
            reduce_grad(gb(), node.b) if node.next_functions[1][0] is not None else None)


class Atan2Backward0(Node):
    def backward(self, g):
        a, b, _ = self.saved_tensors
        rec = (a * a + b * b).reciprocal()
        return _grads(self, lambda: g * b * rec, lambda: g * -a * rec)


def atan2(input, other, *, out=None):
    """The angle of the point (other, input): ``atan(input / other)`` in the right quadrant."""
    return _float_binary(input, other, "atan2", "arctan2", Atan2Backward0, out)


arctan2 = atan2


class HypotBackward0(Node):
    def backward(self, g):
        a, b, r = self.saved_tensors
        return _grads(self, lambda: g * a / r, lambda: g * b / r)


def hypot(input, other, *, out=None):
    """``sqrt(input**2 + other**2)`` without overflow."""
    return _float_binary(input, other, "hypot", "hypot", HypotBackward0, out)


class LogaddexpBackward0(Node):
    def backward(self, g):
        a, b, _ = self.saved_tensors
        return _grads(self, lambda: g / (1 + (b - a).exp()), lambda: g / (1 + (a - b).exp()))


def logaddexp(input, other, *, out=None):
    """``log(exp(input) + exp(other))`` computed stably."""
    return _float_binary(input, other, "logaddexp", "logaddexp", LogaddexpBackward0, out)


class Logaddexp2Backward0(Node):
    def backward(self, g):
        a, b, _ = self.saved_tensors
        return _grads(self, lambda: g / (1 + 2 ** (b - a)), lambda: g / (1 + 2 ** (a - b)))


def logaddexp2(input, other, *, out=None):
    """``log2(2**input + 2**other)`` computed stably."""
    return _float_binary(input, other, "logaddexp2", "logaddexp2", Logaddexp2Backward0, out)


class XlogyBackward0(Node):
    def backward(self, g):
        a, b, _ = self.saved_tensors
        return _grads(self, lambda: where((a == 0) & (b <= 0), 0.0, xlogy(g, b)), lambda: g * a / b)


def _xlogy_k(xp, p, q):
    r = p * xp.log(q)
    # 0 * log(y) is 0 by definition (0 * -inf would be NaN), unless y itself is NaN.
    return xp.where((p == 0) & (q == q), 0.0, r).astype(r.dtype)


def xlogy(input, other, *, out=None):
    """``input * log(other)``, defined as 0 where ``input == 0`` (unless ``other`` is NaN)."""
    return _float_binary(input, other, "xlogy", _xlogy_k, XlogyBackward0, out)


class CopysignBackward0(Node):
    def backward(self, g):
        a, b, r = self.saved_tensors
        return _grads(self, lambda: g * where(a == 0, 0.0, r / a), lambda: zeros_grad(g, self.b))


def copysign(input, other, *, out=None):
    """``|input|`` with the sign of ``other`` (gradient flows to ``input`` only)."""
    return _float_binary(input, other, "copysign", "copysign", CopysignBackward0, out)


# ---- lerp, addcmul, addcdiv ----------------------------------------------------------------------------
class LerpBackward0(Node):
    def backward(self, g):
        s, e, w = self.saved_tensors
        n = [fn is not None for fn, _ in self.next_functions]
        return (reduce_grad(g * (1 - w), self.metas[0]) if n[0] else None,
                reduce_grad(g * w, self.metas[1]) if n[1] else None,
                reduce_grad(g * (e - s), self.metas[2]) if len(n) > 2 and n[2] else None)


def lerp(input, end, weight, *, out=None):
    """``input + weight * (end - input)``; ``weight`` is a number or a tensor (PyTorch's stable form)."""
    s = tensor_arg(input, "lerp")
    e = tensor_arg(end, "lerp", "end")
    xp, a, b = binary(s, e, "lerp")
    if a.dtype.kind in "biu":
        raise RuntimeError(f'"lerp_kernel" not implemented for \'{_I._type_name(D._FROM_NP[a.dtype])}\'')
    w_t = isinstance(weight, T.Tensor)
    try:
        with quiet(xp):
            diff = b - a
            if w_t:
                w = weight._data.astype(a.dtype) if weight._data.dtype != a.dtype else weight._data
                data = xp.where(xp.abs(w) < 0.5, a + w * diff, b - diff * (1 - w))
            elif math.fabs(weight) < 0.5:
                data = a + diff * weight
            else:
                data = b - diff * (1 - weight)
    except ValueError:
        raise broadcast_error("lerp", a.shape, b.shape, shape_of(weight)) from None
    r = T._wrap(data.astype(a.dtype) if data.dtype != a.dtype else data)
    if _any_grad(s, e, weight):
        node = LerpBackward0(s, e, weight) if w_t else LerpBackward0(s, e)
        node.metas = (_meta(s), _meta(e), _meta(weight))
        node.save_for_backward(s, e, weight)
        r._requires_grad = True
        r.grad_fn = node
    return r if out is None else _out(r, out)


def _check_value(nd, value, op: str) -> None:
    if nd.kind in "biu" and not isinstance(value, int):
        raise RuntimeError(f"{op}: For integral input tensors, argument value must not be a floating point number.")


def addcmul(input, tensor1, tensor2, *, value=1, out=None):
    """``input + value * tensor1 * tensor2``."""
    x = tensor_arg(input, "addcmul")
    t1, t2 = tensor_arg(tensor1, "addcmul", "tensor1"), tensor_arg(tensor2, "addcmul", "tensor2")
    if _any_grad(x, t1, t2):
        prod = mul(t1, t2)
        return add(x, prod if value == 1 else mul(prod, value), out=out)
    nd = D.result_type(x, t1, t2).np
    _check_value(nd, value, "addcmul")
    xp = x._xp
    try:
        with quiet(xp):
            tmp = xp.multiply(t1._data.astype(nd, copy=False), t2._data.astype(nd, copy=False))
            if value != 1:
                tmp = tmp * value
            data = xp.add(x._data.astype(nd, copy=False), tmp)
    except ValueError:
        raise broadcast_error("addcmul", x._data.shape, t1._data.shape, t2._data.shape) from None
    return _out(T._wrap(data), out)


def addcdiv(input, tensor1, tensor2, *, value=1, out=None):
    """``input + value * tensor1 / tensor2`` (integer tensor1/tensor2 raise, as in PyTorch)."""
    x = tensor_arg(input, "addcdiv")
    t1, t2 = tensor_arg(tensor1, "addcdiv", "tensor1"), tensor_arg(tensor2, "addcdiv", "tensor2")
    if t1._data.dtype.kind in "biu" and t2._data.dtype.kind in "biu":
        raise RuntimeError("Integer division with addcdiv is no longer supported, and in a future release addcdiv "
                           "will perform a true division of tensor1 and tensor2. The historic addcdiv behavior can "
                           "be implemented as (input + value * torch.trunc(tensor1 / tensor2)).to(input.dtype) for "
                           "integer inputs and as (input + value * tensor1 / tensor2) for float inputs. The future "
                           "addcdiv behavior is just the latter implementation: (input + value * tensor1 / "
                           "tensor2), for all dtypes.")
    if _any_grad(x, t1, t2):
        q = div(t1, t2)
        return add(x, q if value == 1 else mul(q, value), out=out)
    nd = D.result_type(x, t1, t2).np
    xp = x._xp
    try:
        with quiet(xp):
            tmp = xp.true_divide(t1._data.astype(nd, copy=False), t2._data.astype(nd, copy=False))
            if value != 1:
                tmp *= value
            data = xp.add(x._data.astype(nd, copy=False), tmp)
    except ValueError:
        raise broadcast_error("addcdiv", x._data.shape, t1._data.shape, t2._data.shape) from None
    return _out(T._wrap(data), out)


# ---- in-place forms (optimizers call these under no_grad: compute into self's array) --------------------------
def clamp_(self, min=None, max=None):  # noqa: A002
    """In-place clamp."""
    sd = self._data
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if sd.dtype.kind == "f" and not isinstance(min, T.Tensor) and not isinstance(max, T.Tensor) \
            and not _I.needs_graph(self, "clamp_"):
        xp = self._xp
        if min is not None:
            _I.ufunc_into(self, "clamp_", xp.maximum, sd, scalar_array(xp, min, sd.dtype))
        if max is not None:
            _I.ufunc_into(self, "clamp_", xp.minimum, sd, scalar_array(xp, max, sd.dtype))
        return self
    return _I.inplace(self, "clamp_", clamp, min, max)


def lerp_(self, end, weight):
    """In-place lerp toward ``end``."""
    e = tensor_arg(end, "lerp_", "end")
    sd = self._data
    if not isinstance(weight, T.Tensor) and e._data.dtype == sd.dtype and sd.dtype.kind == "f" \
            and not _I.needs_graph(self, "lerp_", e):
        xp = self._xp
        tmp = _call(xp, xp.subtract, "lerp_", e, self, e._data, sd)
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
        tmp = _call(xp, xp.multiply, "addcmul_", t1, t2, t1._data, t2._data)
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
            tmp = _call(xp, xp.true_divide, "addcdiv_", t1, t2, t1._data, t2._data)
            if value != 1:
                tmp *= value
            _I.ufunc_into(self, "addcdiv_", xp.add, self._data, tmp)
        return self
    return _I.inplace_light(self, "addcdiv_", addcdiv, t1, t2, value=value)


class BinaryMathMethods:
    """Tensor methods of the binary pointwise family (PointwiseMethods inherits this)."""

    __slots__ = ()

    clamp = clip = clamp
    clamp_min = clamp_min
    clamp_max = clamp_max
    maximum = maximum
    minimum = minimum
    fmax = fmax
    fmin = fmin
    atan2 = arctan2 = atan2
    hypot = hypot
    logaddexp = logaddexp
    logaddexp2 = logaddexp2
    xlogy = xlogy
    copysign = copysign
    lerp = lerp
    addcmul = addcmul
    addcdiv = addcdiv
    clamp_ = clip_ = clamp_
    lerp_ = lerp_
    addcmul_ = addcmul_
    addcdiv_ = addcdiv_

    def where(self, condition, y):
        """``where(condition, self, y)``."""
        return where(condition, self, y)

    def clamp_min_(self, min):  # noqa: A002
        return clamp_(self, min=min)

    def clamp_max_(self, max):  # noqa: A002
        return clamp_(self, max=max)

    def atan2_(self, other):
        return _I.inplace(self, "atan2_", atan2, other)

    arctan2_ = atan2_

    def hypot_(self, other):
        return _I.inplace(self, "hypot_", hypot, other)

    def copysign_(self, other):
        return _I.inplace(self, "copysign_", copysign, other)

    def xlogy_(self, other):
        return _I.inplace(self, "xlogy_", xlogy, other)
