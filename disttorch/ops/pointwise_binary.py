"""Binary pointwise math: where, clamp, maximum/minimum, fmax/fmin, atan2, hypot, logaddexp,
xlogy, copysign; lerp, addcmul, addcdiv come from pointwise_ternary.py (all re-exported by pointwise.py, whose mixin
inherits this one).

Backward at the kinks follows PyTorch: clamp passes the gradient where min <= x <= max, maximum and
minimum split ties evenly, fmax/fmin send it to the input they returned.
"""
from __future__ import annotations

import numpy as np


from .. import _dtype as D
from .. import _tensor as T
from ..autograd.op import RESULT, Op
from . import inplace as _I
from ._helpers import broadcast_error, meta, promote, scalar_array, tensor_arg
from .pointwise_ternary import addcdiv, addcdiv_, addcmul, addcmul_, lerp, lerp_  # noqa: F401 - re-exported
from .elementwise import _to_float, _ufunc2, reduce_grad, zeros_grad

__all__ = ["where", "clamp", "clip", "clamp_min", "clamp_max", "maximum", "minimum", "fmax", "fmin", "atan2",
           "arctan2", "hypot", "logaddexp", "logaddexp2", "xlogy", "copysign", "lerp", "addcmul", "addcdiv"]


def _operands(node):
    """The node's saved (input, other, result), a number operand as its promoted 0-d array (a Tensor)."""
    a, b, r = node.saved_tensors
    na, nb = node._nums
    return (a if na is None else T._wrap(na)), (b if nb is None else T._wrap(nb)), r


# ---- where ---------------------------------------------------------------------------------------------
class WhereBackward0(Op):
    """``where(condition, input, other)``; the condition is an attribute (not differentiable, no edge)."""

    op_name = "where"

    def forward(self, xp, a, b, cond):
        cd = cond._data
        if cd.dtype.kind != "b":
            cd = cd.astype(bool)
        if xp is None:  # both branches are numbers
            xp, nd = cond._xp, D.result_type(a, b).np
            x, y = scalar_array(xp, a, nd), scalar_array(xp, b, nd)
        else:
            x, y = promote(xp, a, b, "where")
        if self.next_functions:
            self.cond, self.a, self.b = cond, meta(a), meta(b)
        try:
            return _select(xp, cd, x, y)
        except ValueError:
            raise broadcast_error("where", cd.shape, getattr(a, "shape", ()), getattr(b, "shape", ())) from None

    def backward(self, g):
        c = self.cond
        nig = self._nig
        ga = reduce_grad(where(c, g, 0.0), self.a) if nig[0] else None
        gb = reduce_grad(where(c, 0.0, g), self.b) if nig[1] else None
        return ga, gb


_INT_OF_SIZE = {2: np.int16, 4: np.int32, 8: np.int64}


def _select(xp, cd, x, y):
    """``xp.where(cd, x, y)``, via a bit mask when one side is the scalar +0.0.

    A data-dependent select is ~10x slower than a streaming op on random masks (branch misses);
    relu's and where's own backward hit this case on every step. ANDing the value's bits with an
    all-ones/all-zeros mask gives exactly where's result (NaN, inf and -0.0 included).
    """
    if xp is not np:  # testing the scalar (``not y``) would copy it to the host; GPUs have no branch misses
        return xp.where(cd, x, y)
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
    cdt = cond._data.dtype
    if cdt.kind != "b" and (cdt.kind != "u" or cdt.itemsize != 1):
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype "
                           f"{_I._type_name(cond.dtype)}")
    if out is None:
        return WhereBackward0.apply(input, other, cond=cond)
    return WhereBackward0.apply(input, other, cond=cond, out=out)


# ---- clamp -------------------------------------------------------------------------------------------
class ClampBackward1(Op):
    """clamp with number bounds."""

    op_name = "clamp"

    def forward(self, xp, a, min=None, max=None):  # noqa: A002 - PyTorch's names
        if self.next_functions:
            self.lo, self.hi = min, max
            self.save(0)
        numbers = (min is None or min.__class__ in (int, float)) and (max is None or max.__class__ in (int, float))
        if numbers and (a.dtype.kind == "f" or (a.dtype.kind in "iu" and float not in (min.__class__, max.__class__))):
            nd = a.dtype  # number bounds that keep the dtype: the common, fast case
        else:
            nd = D.result_type(*[v for v in (a, min, max) if v is not None]).np
            a = a if a.dtype == nd else a.astype(nd)
        return _I.quiet_call(_clamp_arrays, xp, a, _bound(xp, min, nd), _bound(xp, max, nd))

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


class ClampBackward0(Op):
    """clamp with tensor bounds: each bound gets the gradient where it was selected."""

    op_name = "clamp"

    def forward(self, xp, a, lo, hi):
        nd = D.result_type(*[v for v in (a, lo, hi) if v is not None]).np
        if self.next_functions:
            self.metas = (meta(a), meta(lo), meta(hi))
            self.save(0, 1, 2)
        a = a if a.dtype == nd else a.astype(nd)
        lo, hi = _bound(xp, lo, nd), _bound(xp, hi, nd)
        try:
            return _I.quiet_call(_clamp_arrays, xp, a, lo, hi)
        except ValueError:
            raise broadcast_error("clamp", a.shape, getattr(lo, "shape", ()), getattr(hi, "shape", ())) from None

    def backward(self, g):
        x, lo, hi = self.saved_tensors
        nx, nlo, nhi = self._nig
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
    """A clamp bound (None, a number or an array) as an array of dtype ``nd``."""
    if v is None:
        return None
    if hasattr(v, "dtype") and not isinstance(v, np.generic):
        return v if v.dtype == nd else v.astype(nd)
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
    if isinstance(min, T.Tensor) or isinstance(max, T.Tensor):
        return ClampBackward0.apply(x, min, max, out=out)
    if out is None:
        return ClampBackward1.apply(x, min=min, max=max)
    return ClampBackward1.apply(x, min=min, max=max, out=out)


clip = clamp


def clamp_min(input, min):  # noqa: A002
    """``clamp(input, min=min)``."""
    return clamp(input, min=min)


def clamp_max(input, max):  # noqa: A002
    """``clamp(input, max=max)``."""
    return clamp(input, max=max)


# ---- maximum / minimum / fmax / fmin ---------------------------------------------------------------------
class _BinaryOp(Op):
    """A binary op of two operands (Tensors or numbers) promoted to a common dtype.

    Subclasses set ``kernel`` (a ufunc name of ``xp`` or ``staticmethod(fn)`` with ``fn(xp, x, y)``) and
    ``to_float`` (integer operands compute in the default float dtype). When a graph is recorded the node
    keeps both operands' metadata and saves the operands and the result (see :func:`_operands`).
    """

    kernel = None
    to_float = False
    save_result = True

    def forward(self, xp, a, b):
        op = self.op_name
        x, y = promote(xp, a, b, op)
        if self.to_float:
            x, y = _to_float(x, y)
        if self.next_functions:
            self.a, self.b = meta(a), meta(b)
            self._nums = (x if self.a is None else None, y if self.b is None else None)
            self.save(0 if self.a is not None else None, 1 if self.b is not None else None,
                      RESULT if self.save_result else None)
        k = self.kernel
        if k.__class__ is str:
            return _ufunc2(getattr(xp, k), op, x, y)
        return _ufunc2(lambda p, q: k(xp, p, q), op, x, y)


class MaximumBackward0(_BinaryOp):
    op_name = kernel = "maximum"
    save_result = False

    def backward(self, g):
        a, b, _ = _operands(self)
        tie = where(a == b, g / 2, g)
        return _grads(self, lambda: where(a < b, 0.0, tie), lambda: where(a > b, 0.0, tie))


class MinimumBackward0(_BinaryOp):
    op_name = kernel = "minimum"
    save_result = False

    def backward(self, g):
        a, b, _ = _operands(self)
        tie = where(a == b, g / 2, g)
        return _grads(self, lambda: where(a > b, 0.0, tie), lambda: where(a < b, 0.0, tie))


class FmaxBackward0(_BinaryOp):
    op_name = kernel = "fmax"
    save_result = False

    def backward(self, g):
        a, b, _ = _operands(self)
        first = (a >= b) | b.isnan() if self.op_name == "fmax" else (a <= b) | b.isnan()
        return _grads(self, lambda: where(first, g, 0.0), lambda: where(first, 0.0, g))


class FminBackward0(FmaxBackward0):
    op_name = kernel = "fmin"


def maximum(input, other, *, out=None):
    """Elementwise maximum; NaN propagates. Ties split the gradient evenly."""
    return MaximumBackward0.apply(input, other, out=out)


def minimum(input, other, *, out=None):
    """Elementwise minimum; NaN propagates. Ties split the gradient evenly."""
    return MinimumBackward0.apply(input, other, out=out)


def fmax(input, other, *, out=None):
    """Elementwise maximum ignoring NaN (NaN only where both are NaN)."""
    return FmaxBackward0.apply(input, other, out=out)


def fmin(input, other, *, out=None):
    """Elementwise minimum ignoring NaN."""
    return FminBackward0.apply(input, other, out=out)


# ---- float-valued binary functions -----------------------------------------------------------------------
class FloatBinaryOp(_BinaryOp):
    """A float-valued binary op (integer operands promote to the default float); saves operands and result."""

    to_float = True


def _grads(node, ga, gb):
    """Apply ``reduce_grad`` to the gradient callables whose inputs need them."""
    nig = node._nig
    return (reduce_grad(ga(), node.a) if nig[0] else None, reduce_grad(gb(), node.b) if nig[1] else None)


class Atan2Backward0(FloatBinaryOp):
    op_name, kernel = "atan2", "arctan2"

    def backward(self, g):
        a, b, _ = _operands(self)
        rec = (a * a + b * b).reciprocal()
        return _grads(self, lambda: g * b * rec, lambda: g * -a * rec)


def atan2(input, other, *, out=None):
    """The angle of the point (other, input): ``atan(input / other)`` in the right quadrant."""
    return Atan2Backward0.apply(input, other, out=out)


arctan2 = atan2


class HypotBackward0(FloatBinaryOp):
    op_name = kernel = "hypot"

    def backward(self, g):
        a, b, r = _operands(self)
        return _grads(self, lambda: g * a / r, lambda: g * b / r)


def hypot(input, other, *, out=None):
    """``sqrt(input**2 + other**2)`` without overflow."""
    return HypotBackward0.apply(input, other, out=out)


class LogaddexpBackward0(FloatBinaryOp):
    op_name = kernel = "logaddexp"

    def backward(self, g):
        a, b, _ = _operands(self)
        return _grads(self, lambda: g / (1 + (b - a).exp()), lambda: g / (1 + (a - b).exp()))


def logaddexp(input, other, *, out=None):
    """``log(exp(input) + exp(other))`` computed stably."""
    return LogaddexpBackward0.apply(input, other, out=out)


class Logaddexp2Backward0(FloatBinaryOp):
    op_name = kernel = "logaddexp2"

    def backward(self, g):
        a, b, _ = _operands(self)
        return _grads(self, lambda: g / (1 + 2 ** (b - a)), lambda: g / (1 + 2 ** (a - b)))


def logaddexp2(input, other, *, out=None):
    """``log2(2**input + 2**other)`` computed stably."""
    return Logaddexp2Backward0.apply(input, other, out=out)


def _xlogy_k(xp, p, q):
    r = p * xp.log(q)
    # 0 * log(y) is 0 by definition (0 * -inf would be NaN), unless y itself is NaN.
    return xp.where((p == 0) & (q == q), 0.0, r).astype(r.dtype)


class XlogyBackward0(FloatBinaryOp):
    op_name = "xlogy"
    kernel = staticmethod(_xlogy_k)

    def backward(self, g):
        a, b, _ = _operands(self)
        return _grads(self, lambda: where((a == 0) & (b <= 0), 0.0, xlogy(g, b)), lambda: g * a / b)


def xlogy(input, other, *, out=None):
    """``input * log(other)``, defined as 0 where ``input == 0`` (unless ``other`` is NaN)."""
    return XlogyBackward0.apply(input, other, out=out)


class CopysignBackward0(FloatBinaryOp):
    op_name = kernel = "copysign"

    def backward(self, g):
        a, b, r = _operands(self)
        return _grads(self, lambda: g * where(a == 0, 0.0, r / a), lambda: zeros_grad(g, self.b))


def copysign(input, other, *, out=None):
    """``|input|`` with the sign of ``other`` (gradient flows to ``input`` only)."""
    return CopysignBackward0.apply(input, other, out=out)


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
