"""Elementwise arithmetic (add, sub, mul, div, remainder, pow, ...), the Tensor operators and their in-place forms.

Every op here is an ``Op`` (disttorch/autograd/op.py): ``forward`` promotes its operands with ``promote``
and computes on arrays; ``backward`` uses Tensor ops (so create_graph works) and ``reduce_grad`` to undo
broadcasting and cast back to each input's dtype. ``Op.apply`` decides whether a graph is recorded.
"""
from __future__ import annotations

import math

import numpy as np  # the ndarray type, to accept arrays as operator operands

from .. import _dtype as D
from .. import _tensor as T
from ..autograd.op import RESULT, Op, write_out
from . import inplace as _I
from ._helpers import ERRSTATE, IGNORE, binary, broadcast_error, meta, promote, quiet, sum_to, tensor_arg

__all__ = ["add", "sub", "subtract", "rsub", "mul", "multiply", "div", "divide", "true_divide", "floor_divide",
           "remainder", "fmod", "pow", "float_power", "reciprocal", "square", "neg", "negative", "positive"]


# ---- shared plumbing (also used by pointwise_binary.py and compare.py) ------------------------------------
def reduce_grad(g, meta):
    """``g`` summed over the dims broadcasting added and cast to the input's dtype (``meta``: (shape, NumPy dtype)
    of the input, from ``_helpers.meta``)."""
    g = sum_to(g, meta[0])
    if g._data.dtype != meta[1]:
        if g._data.dtype.kind == "c" and meta[1].kind != "c":  # a real input of a complex op: the real part
            from .complex_ops import real

            g = real(g)
        if g._data.dtype != meta[1]:
            g = g.to(D._FROM_NP[meta[1]])
    return g


def _cj(v):
    """``v`` conjugated when it is complex: PyTorch's gradients of products and quotients conjugate the other
    operand (a real loss ``L`` of ``z`` gets ``dL/dx + i dL/dy``)."""
    if v.__class__ is T.Tensor or isinstance(v, T.Tensor):
        if v._data.dtype.kind != "c":
            return v
        from .complex_ops import conj

        return conj(v)
    return v.conjugate() if isinstance(v, complex) else v


def zeros_grad(g, meta):
    """A zero gradient for an input described by ``meta`` (ops that are piecewise constant)."""
    return T._wrap(g._xp.zeros(meta[0], dtype=meta[1]))


def _ufunc2(fn, op: str, x, y):
    """``fn(x, y)`` on the entry point's promoted arrays with NumPy's floating-point warnings off (overflow gives
    inf silently, as in PyTorch), turning NumPy's broadcast failure into PyTorch's RuntimeError."""
    if ERRSTATE is None:  # pragma: no cover - NumPy without the error-state context variable
        try:
            with np.errstate(all="ignore"):
                return fn(x, y)
        except ValueError:
            raise broadcast_error(op, x.shape, y.shape) from None
    tok = ERRSTATE.set(IGNORE)
    try:
        return fn(x, y)
    except ValueError:
        raise broadcast_error(op, x.shape, y.shape) from None
    finally:
        ERRSTATE.reset(tok)


def _to_float(x, y):
    """Promote integer/bool operand arrays to the default float dtype (true division and friends)."""
    if x.dtype.kind in "biu":
        fd = D.get_default_dtype().np
        return x.astype(fd), y.astype(fd)
    return x, y


def _out(r, out):
    """Honour an ``out=`` argument for results built from several ops (a single op passes ``out=`` to apply)."""
    if out is None:
        return r
    return write_out(r, out, "out")


def _operand(x):
    """An operator's other operand: NumPy arrays become tensors (``np_array + t`` gives a tensor, as in PyTorch)."""
    if x.__class__ is np.ndarray:
        D.from_numpy_dtype(x.dtype)  # TypeError for dtypes disttorch lacks
        return T._wrap(x)
    return x


def _is_bool(x) -> bool:
    return x.__class__ is bool or (isinstance(x, T.Tensor) and x._data.dtype.kind == "b")


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


class DivBackward0(Op):
    op_name = "div"

    def forward(self, xp, a, b):
        x, y = _to_float(*promote(xp, a, b, "div"))
        if self.next_functions:
            self.a, self.b = meta(a), meta(b)
            self.save(0 if self._nig[1] else None, 1)
        return _ufunc2(xp.true_divide, "div", x, y)

    def backward(self, g):
        a, b = self.saved_tensors
        nig = self._nig
        ga = reduce_grad(g / _cj(b), self.a) if nig[0] else None
        # (a / b) / b rather than a / b**2: better behaved for large b (PyTorch's order).
        gb = reduce_grad(-g * _cj((a / b) / b), self.b) if nig[1] else None
        return ga, gb


class DivBackward1(Op):
    """div with a rounding mode: piecewise constant, so the gradient is zero (as PyTorch)."""

    op_name = "div"

    def forward(self, xp, a, b, rounding_mode="floor", op="div"):
        if self.next_functions:
            self.a, self.b = meta(a), meta(b)
        return _rounding_div(xp, a, b, rounding_mode, op)

    def backward(self, g):
        nig = self._nig
        return (zeros_grad(g, self.a) if nig[0] else None, zeros_grad(g, self.b) if nig[1] else None)


def div(input, other, *, rounding_mode=None, out=None):
    """``input / other``: true division (ints promote to the default float), or 'trunc'/'floor' rounding.

    Example:
        >>> div(disttorch.tensor([-7, 7]), 2, rounding_mode="floor")
        tensor([-4,  3])
    """
    if rounding_mode is not None:
        return DivBackward1.apply(input, other, rounding_mode=rounding_mode, out=out)
    if out is None:
        return DivBackward0.apply(input, other)
    return DivBackward0.apply(input, other, out=out)


def true_divide(dividend, divisor, *, out=None):
    """Alias of ``div`` without rounding."""
    return div(dividend, divisor, out=out)


def _check_int_divisor(xp, y, op: str) -> None:
    if y.dtype.kind in "iub" and bool((y == 0).any()):
        raise RuntimeError("ZeroDivisionError")


def _rounding_div(xp, a, b, mode, op: str):
    """``a / b`` rounded toward zero ('trunc') or down ('floor'), over arrays."""
    if mode not in ("trunc", "floor"):
        raise RuntimeError(f"{op} expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{mode}'")
    x, y = promote(xp, a, b, op)
    if x.dtype.kind == "b":
        raise RuntimeError(f'{op}: "div_{mode}_cpu" not implemented for \'Bool\'')
    if x.dtype.kind in "iu":
        _check_int_divisor(xp, y, op)
        if mode == "floor":
            return _ufunc2(xp.floor_divide, op, x, y)
        # a - fmod(a, b) is an exact multiple of b with a's sign: floor division then truncates.
        return _ufunc2(lambda p, q: xp.floor_divide(p - xp.fmod(p, q), q), op, x, y)
    if mode == "floor":
        return _ufunc2(xp.floor_divide, op, x, y)
    return xp.trunc(_ufunc2(xp.true_divide, op, x, y))


class FloorDivideBackward0(Op):
    op_name = "floor_divide"

    def forward(self, xp, a, b):
        return _rounding_div(xp, a, b, "floor", "floor_divide")

    def backward(self, g):
        raise NotImplementedError("derivative for aten::floor_divide is not implemented")


def floor_divide(input, other, *, out=None):
    """``input // other``: division rounded down (Python semantics); not differentiable, as in PyTorch."""
    return FloorDivideBackward0.apply(input, other, out=out)


# ---- remainder / fmod ----------------------------------------------------------------------------------
class RemainderBackward0(Op):
    op_name = "remainder"
    _ufunc, _mode = "remainder", "floor"

    def forward(self, xp, a, b):
        op = self.op_name
        x, y = promote(xp, a, b, op)
        if x.dtype.kind in "iub":
            _check_int_divisor(xp, y, op)
            if x.dtype.kind == "b":
                raise RuntimeError(f'"{op}_cpu" not implemented for \'Bool\'')
        if self.next_functions:
            self.a, self.b = meta(a), meta(b)
            if self._nig[1]:
                self.save(0, 1)
        return _ufunc2(getattr(xp, self._ufunc), op, x, y)

    def backward(self, g):
        nig = self._nig
        ga = reduce_grad(g, self.a) if nig[0] else None
        gb = None
        if nig[1]:
            a, b = self.saved_tensors
            gb = reduce_grad(-g * div(a, b, rounding_mode=self._mode), self.b)
        return ga, gb


class FmodBackward0(RemainderBackward0):
    op_name = "fmod"
    _ufunc, _mode = "fmod", "trunc"


def remainder(input, other, *, out=None):
    """Python's modulus (``%``): the result has the sign of ``other``.

    Example:
        >>> remainder(disttorch.tensor([-3, 3]), 2)
        tensor([1, 1])
    """
    return RemainderBackward0.apply(input, other, out=out)


def fmod(input, other, *, out=None):
    """C's ``fmod``: the remainder has the sign of ``input``."""
    return FmodBackward0.apply(input, other, out=out)


# ---- pow -------------------------------------------------------------------------------------------------
def _int_pow(xp, x, y):
    """Integer power with PyTorch's answers for negative exponents (0 unless the base is 1 or -1)."""
    neg = y < 0
    if not bool(neg.any()):
        return xp.power(x, y)
    res = xp.power(x, xp.where(neg, 0, y).astype(y.dtype))
    one = xp.ones((), dtype=res.dtype)
    special = xp.where(x == 1, one, xp.where(x == -1, xp.where((y & 1) == 1, -one, one), 0 * one))
    return xp.where(neg, special, res).astype(res.dtype)


class PowBackward0(Op):
    """``tensor ** number``."""

    op_name = "pow"

    def forward(self, xp, a, exponent):
        x, e = promote(xp, a, exponent, "pow")
        if x.dtype.kind in "iu" and exponent < 0:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
        self.exponent = exponent
        self.save(0)
        return _I.quiet_call(xp.power, x, e)

    def backward(self, g):
        (x,) = self.saved_tensors
        e = self.exponent
        if e == 0:
            return T._wrap(g._xp.zeros_like(g._data))
        return g * _cj(e * x.pow(e - 1))


class PowBackward1(Op):
    """``tensor ** tensor`` and ``number ** tensor``."""

    op_name = "pow"

    def forward(self, xp, a, b):
        x, e = promote(xp, a, b, "pow")
        try:
            with quiet(xp):
                data = _int_pow(xp, x, e) if x.dtype.kind in "iu" else xp.power(x, e)
        except ValueError:
            raise broadcast_error("pow", x.shape, e.shape) from None
        if self.next_functions:
            self.a, self.b = meta(a), meta(b)
            self.save(0, 1, RESULT if self._nig[1] else None)
        return data

    def backward(self, g):
        x, e, r = self.saved_tensors
        nig = self._nig
        ga = gb = None
        if nig[0]:
            ga = reduce_grad((g * _cj(e * x.pow(e - 1))).where(e != 0, 0.0), self.a)
        if nig[1]:
            # d/de x**e = x**e log x, taken as 0 where x == 0 and e >= 0 (PyTorch's convention).
            if isinstance(x, T.Tensor):
                gb = (g * _cj(r * x.log())).where((x != 0) | _not_nonneg(e), 0.0)
            else:
                gb = g * _cj(r * _log_scalar(x))
                if x == 0:
                    gb = gb.where(_not_nonneg(e), 0.0)
            gb = reduce_grad(gb, self.b)
        return ga, gb


def _not_nonneg(e):
    """Where ``e`` is not a non-negative real (``x ** e`` at ``x == 0`` keeps a gradient there)."""
    if e._data.dtype.kind != "c":
        return e < 0
    from .complex_ops import imag, real

    return (imag(e) != 0) | (real(e) < 0)


def _log_scalar(v):
    if isinstance(v, complex):
        import cmath

        return cmath.log(v) if v != 0 else complex(float("-inf"))
    if v > 0:
        return math.log(v)
    return float("-inf") if v == 0 else float("nan")


def pow(input, exponent, *, out=None):  # noqa: A001 - PyTorch's name
    """``input ** exponent`` (either may be a number). Integer tensors reject negative integer exponents.

    Example:
        >>> pow(disttorch.tensor([1., 2., 3.]), 2)
        tensor([1., 4., 9.])
    """
    if isinstance(input, T.Tensor) and not isinstance(exponent, T.Tensor):
        return PowBackward0.apply(input, exponent, out=out)
    return PowBackward1.apply(input, exponent, out=out)


def float_power(input, exponent, *, out=None):
    """``input ** exponent`` computed in double precision (float64, or complex128 for complex inputs)."""
    def wide(v):
        if isinstance(v, T.Tensor):
            return v.to(D.complex128 if v.dtype.is_complex else D.float64)
        return v if isinstance(v, complex) else float(v)

    return pow(wide(input), wide(exponent), out=out)


class ReciprocalBackward0(Op):
    op_name = "reciprocal"

    def forward(self, xp, x):
        if x.dtype.kind not in "fcV":
            x = x.astype(D.get_default_dtype().np)
        self.save(RESULT)
        with quiet(xp):
            return xp.reciprocal(x)

    def backward(self, g):
        (r,) = self.saved_tensors
        return -g * _cj(r * r)


def reciprocal(input, *, out=None):
    """``1 / input`` (integer inputs compute in the default float dtype)."""
    return ReciprocalBackward0.apply(tensor_arg(input, "reciprocal"), out=out)


def square(input, *, out=None):
    """``input ** 2`` (bool promotes to int64, as in PyTorch)."""
    return pow(tensor_arg(input, "square"), 2, out=out)


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
