"""Elementwise arithmetic (add, sub, mul, neg, ...), the Tensor operators and their in-place forms.

Division ops live in division.py, power ops in power.py and the shared plumbing in _arith.py; all their
public names are re-exported here.

Every op here is an ``Op`` (disttorch/autograd/op.py): ``forward`` promotes its operands with ``promote``
and computes on arrays; ``backward`` uses Tensor ops (so create_graph works) and ``reduce_grad`` to undo
broadcasting and cast back to each input's dtype. ``Op.apply`` decides whether a graph is recorded.
"""
from __future__ import annotations

import numpy as np  # the ndarray type, to accept arrays as operator operands

from .. import _dtype as D
from ..autograd.op import Op
from . import inplace as _I
# The shared plumbing, division and power ops live in their own files; the names stay importable from here
# (pointwise_binary.py, compare.py, creation.py and others import them from this module).
from ._arith import _cj, _is_bool, _operand, _out, _to_float, _ufunc2, reduce_grad, zeros_grad  # noqa: F401
from ._helpers import binary, meta, promote, tensor_arg
from .division import DivBackward0, div, floor_divide, fmod, remainder, true_divide
from .power import float_power, pow, reciprocal, square

__all__ = ["add", "sub", "subtract", "rsub", "mul", "multiply", "div", "divide", "true_divide", "floor_divide",
           "remainder", "fmod", "pow", "float_power", "reciprocal", "square", "neg", "negative", "positive"]


# ---- add / sub ---------------------------------------------------------------------------------------
def _scaled(arr, alpha, op: str):
    k = arr.dtype.kind
    if k == "b" and alpha.__class__ is not bool:
        raise RuntimeError("Boolean alpha only supported for Boolean results.")
    if k in "iu" and not isinstance(alpha, int):
        raise RuntimeError("For integral input tensors, argument alpha must not be a floating point number.")
    return arr * alpha


class AddBackward0(Op):
    op_name = "add"

    def forward(self, xp, a, b, alpha=1):
        # same-dtype NumPy operands (the common case) need no promotion: skip the call
        x, y = (a, b) if a.__class__ is b.__class__ is np.ndarray and a.dtype is b.dtype else \
            promote(xp, a, b, "add")
        if alpha != 1:
            y = _scaled(y, alpha, "add")
        if self.next_functions:
            self.a = (a.shape, a.dtype) if a.__class__ is np.ndarray else meta(a)  # inline: hot
            self.b = (b.shape, b.dtype) if b.__class__ is np.ndarray else meta(b)
            self.alpha = alpha
        return _ufunc2(xp.add, "add", x, y)

    def backward(self, g):
        nig = self._nig
        return (reduce_grad(g, self.a) if nig[0] else None,
                reduce_grad(g if self.alpha == 1 else g * self.alpha, self.b) if nig[1] else None)


def add(input, other, *, alpha=1, out=None):
    """``input + alpha * other`` with broadcasting and type promotion.

    Example:
        >>> add(disttorch.tensor([1., 2.]), disttorch.tensor([3., 4.]), alpha=2)
        tensor([ 7., 10.])
    """
    if alpha == 1 and out is None:
        return AddBackward0.apply(input, other)
    return AddBackward0.apply(input, other, alpha=alpha, out=out)


class SubBackward0(Op):
    op_name = "sub"

    def forward(self, xp, a, b, alpha=1):
        x, y = (a, b) if a.__class__ is b.__class__ is np.ndarray and a.dtype is b.dtype else \
            promote(xp, a, b, "sub")
        if alpha != 1:
            y = _scaled(y, alpha, "sub")
        if self.next_functions:
            self.a = (a.shape, a.dtype) if a.__class__ is np.ndarray else meta(a)  # inline: hot
            self.b = (b.shape, b.dtype) if b.__class__ is np.ndarray else meta(b)
            self.alpha = alpha
        return _ufunc2(xp.subtract, "sub", x, y)

    def backward(self, g):
        nig = self._nig
        return (reduce_grad(g, self.a) if nig[0] else None,
                reduce_grad(-g if self.alpha == 1 else g * -self.alpha, self.b) if nig[1] else None)


def _sub_check(a, b) -> None:
    ab, bb = _is_bool(a), _is_bool(b)
    if ab and bb:
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. Use the `^` or "
                           "`logical_xor()` operator instead.")
    if ab or bb:
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. If you are trying "
                           "to invert a mask, use the `~` or `logical_not()` operator instead.")


def sub(input, other, *, alpha=1, out=None):
    """``input - alpha * other`` (bool operands raise, as in PyTorch)."""
    _sub_check(input, other)
    if alpha == 1 and out is None:
        return SubBackward0.apply(input, other)
    return SubBackward0.apply(input, other, alpha=alpha, out=out)


def rsub(input, other, *, alpha=1):
    """``other - alpha * input``."""
    return sub(other, input, alpha=alpha)


# ---- mul / div -----------------------------------------------------------------------------------------
class MulBackward0(Op):
    op_name = "mul"

    def forward(self, xp, a, b):
        x, y = (a, b) if a.__class__ is b.__class__ is np.ndarray and a.dtype is b.dtype else \
            promote(xp, a, b, "mul")
        if self.next_functions:
            nig = self._nig
            self.a = (a.shape, a.dtype) if a.__class__ is np.ndarray else meta(a)  # inline: hot
            self.b = (b.shape, b.dtype) if b.__class__ is np.ndarray else meta(b)
            self.save(0 if nig[1] else None, 1 if nig[0] else None)
        return _ufunc2(xp.multiply, "mul", x, y)

    def backward(self, g):
        a, b = self.saved_tensors
        nig = self._nig
        return (reduce_grad(g * _cj(b), self.a) if nig[0] else None,
                reduce_grad(g * _cj(a), self.b) if nig[1] else None)


def mul(input, other, *, out=None):
    """Elementwise product with broadcasting and type promotion."""
    if out is None:
        return MulBackward0.apply(input, other)
    return MulBackward0.apply(input, other, out=out)


# ---- neg / positive ------------------------------------------------------------------------------------
class NegBackward0(Op):
    op_name = "neg"

    def forward(self, xp, x):
        if x.dtype.kind == "b":
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If you are trying "
                               "to invert a mask, use the `~` or `logical_not()` operator instead.")
        return xp.negative(x)

    def backward(self, g):
        return -g


def neg(input, *, out=None):
    """``-input`` (bool tensors raise, as in PyTorch)."""
    if out is None:
        return NegBackward0.apply(tensor_arg(input, "neg"))
    return NegBackward0.apply(tensor_arg(input, "neg"), out=out)


def positive(input):
    """``input`` itself (``+x``); bool tensors raise, as in PyTorch."""
    x = tensor_arg(input, "positive")
    if x._data.dtype.kind == "b":
        raise RuntimeError("The `+` operator, on a bool tensor is not supported.")
    return x


subtract, multiply, divide, negative = sub, mul, div, neg


# ---- in-place forms ----------------------------------------------------------------------------------------
def _binary_(self, other, op: str, ufunc, fn, alpha=1):
    """Shared body of add_/sub_/mul_: compute into ``self`` when no graph is needed and dtypes allow."""
    if not _I.needs_graph(self, op, other):
        xp, x, y = binary(self, other, op)
        if x.dtype == self._data.dtype:
            if alpha != 1:
                if ufunc is xp.add and _I.can_fuse(self, y):
                    _scaled(y[:0], alpha, op)  # the dtype checks on alpha, without the work
                    _I.fused_into(self, (None, y, None), alpha)
                    return self
                y = _scaled(y, alpha, op)
            _I.ufunc_into(self, op, ufunc, x, y)
            return self
    if fn is mul:  # MulBackward0 reads the old self: snapshot it
        return _I.inplace(self, op, mul, other)
    return _I.inplace_light(self, op, fn, other, alpha=alpha)


def add_(self, other, *, alpha=1):
    """In-place ``self += alpha * other``."""
    return _binary_(self, other, "add_", self._xp.add, add, alpha)


def sub_(self, other, *, alpha=1):
    """In-place ``self -= alpha * other``."""
    _sub_check(self, other)
    return _binary_(self, other, "sub_", self._xp.subtract, sub, alpha)


def mul_(self, other):
    """In-place ``self *= other``."""
    return _binary_(self, other, "mul_", self._xp.multiply, mul)


def div_(self, other, *, rounding_mode=None):
    """In-place division (``rounding_mode`` as in ``div``)."""
    if rounding_mode is None and not _I.needs_graph(self, "div_", other) and self._data.dtype.kind not in "biu":
        xp, x, y = binary(self, other, "div_")
        if x.dtype == self._data.dtype:
            _I.ufunc_into(self, "div_", xp.true_divide, x, y)
            return self
    if rounding_mode is not None:
        return _I.inplace_light(self, "div_", div, other, rounding_mode=rounding_mode)
    return _I.inplace(self, "div_", div, other)


def pow_(self, exponent):
    return _I.inplace(self, "pow_", pow, exponent)


def float_power_(self, exponent):
    if self._data.dtype != D.float64.np and self._data.dtype != D.complex128.np:
        raise RuntimeError(f"the base given to float_power_ has dtype {_I._type_name(self.dtype)} but the operation's "
                           "result requires dtype Double")
    return _I.inplace(self, "float_power_", float_power, exponent)


def neg_(self):
    if not _I.needs_graph(self, "neg_") and self._data.dtype.kind != "b":
        _I.ufunc_into(self, "neg_", self._xp.negative, self._data)
        return self
    return _I.inplace_light(self, "neg_", neg)


def reciprocal_(self):
    return _I.inplace_light(self, "reciprocal_", reciprocal)


def square_(self):
    return _I.inplace(self, "square_", square)


def remainder_(self, other):
    return _I.inplace(self, "remainder_", remainder, other)


def fmod_(self, other):
    return _I.inplace(self, "fmod_", fmod, other)


def floor_divide_(self, other):
    return _I.inplace_light(self, "floor_divide_", floor_divide, other)


class ElementwiseMethods:
    """Tensor methods and operators of the arithmetic family."""

    __slots__ = ()
    __array_priority__ = 1000  # ``np.float64(2) * t`` defers to Tensor.__rmul__ (as PyTorch), not t.__array__

    add = add
    sub = subtract = sub
    rsub = rsub
    mul = multiply = mul
    div = divide = div
    true_divide = true_divide
    floor_divide = floor_divide
    remainder = remainder
    fmod = fmod
    pow = pow
    float_power = float_power
    reciprocal = reciprocal
    square = square
    neg = negative = neg
    positive = positive

    add_ = add_
    sub_ = subtract_ = sub_
    mul_ = multiply_ = mul_
    div_ = divide_ = div_
    true_divide_ = div_
    floor_divide_ = floor_divide_
    remainder_ = remainder_
    fmod_ = fmod_
    pow_ = pow_
    float_power_ = float_power_
    reciprocal_ = reciprocal_
    square_ = square_
    neg_ = negative_ = neg_
    fill_ = _I.fill_
    zero_ = _I.zero_
    copy_ = _I.copy_

    # The operators call their op's entry point directly (the hottest calls there are): the same as
    # add(self, other) with alpha=1 and no out=.
    def __add__(self, other):
        return AddBackward0.apply(self, other if other.__class__ is not np.ndarray else _operand(other))

    def __radd__(self, other):
        return add(_operand(other), self)

    def __iadd__(self, other):
        return add_(self, _operand(other))

    def __sub__(self, other):
        other = other if other.__class__ is not np.ndarray else _operand(other)
        _sub_check(self, other)
        return SubBackward0.apply(self, other)

    def __rsub__(self, other):
        return sub(_operand(other), self)

    def __isub__(self, other):
        return sub_(self, _operand(other))

    def __mul__(self, other):
        return MulBackward0.apply(self, other if other.__class__ is not np.ndarray else _operand(other))

    def __rmul__(self, other):
        return mul(_operand(other), self)

    def __imul__(self, other):
        return mul_(self, _operand(other))

    def __truediv__(self, other):
        return DivBackward0.apply(self, other if other.__class__ is not np.ndarray else _operand(other))

    def __rtruediv__(self, other):
        return div(_operand(other), self)

    def __itruediv__(self, other):
        return div_(self, _operand(other))

    def __floordiv__(self, other):
        return floor_divide(self, _operand(other))

    def __rfloordiv__(self, other):
        return floor_divide(_operand(other), self)

    def __ifloordiv__(self, other):
        return floor_divide_(self, _operand(other))

    def __mod__(self, other):
        return remainder(self, _operand(other))

    def __rmod__(self, other):
        return remainder(_operand(other), self)

    def __imod__(self, other):
        return remainder_(self, _operand(other))

    def __pow__(self, other):
        return pow(self, _operand(other))

    def __rpow__(self, other):
        return pow(_operand(other), self)

    def __ipow__(self, other):
        return pow_(self, _operand(other))

    def __neg__(self):
        return neg(self)

    def __pos__(self):
        return positive(self)

    def __abs__(self):
        return self.abs()
