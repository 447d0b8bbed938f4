"""Comparisons, logical and bitwise ops (eq, lt, logical_and, bitwise_and, isnan, isclose, ...).

None of these record graph nodes: their results are bool (or integer) tensors. Operands promote
with PyTorch's rules before comparing (``int_tensor < 2.5`` compares as floats).
"""
from __future__ import annotations

import numbers

import numpy as np  # the ndarray type, to accept arrays as operator operands

from .. import _dtype as D
from .. import _tensor as T
from ..autograd import op as _op
from . import inplace as _I
from ._helpers import binary, broadcast_error, quiet, shape_of, tensor_arg
from .elementwise import _operand, _out, _ufunc2

__all__ = ["eq", "ne", "lt", "le", "gt", "ge", "greater", "greater_equal", "less", "less_equal", "not_equal",
           "equal", "isclose", "allclose", "logical_and", "logical_or", "logical_xor", "logical_not",
           "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "bitwise_left_shift", "bitwise_right_shift",
           "isnan", "isinf", "isposinf", "isneginf", "isfinite", "isreal"]


_BF16 = D.bfloat16.np


def _cmp(input, other, op: str, ufunc_name: str, out):
    xp, x, y = binary(input, other, op)
    if x.dtype == _BF16:  # ml_dtypes warns on NaN comparisons; PyTorch never does
        with quiet(xp):
            r = T._wrap(_ufunc2(getattr(xp, ufunc_name), op, x, y))
    else:
        r = T._wrap(_ufunc2(getattr(xp, ufunc_name), op, x, y))
    if _op.OBSERVERS:
        _op.notify_untimed(op, (input, other), {}, (r,))
    return r if out is None else _out(r, out)


def eq(input, other, *, out=None):
    """Elementwise ``input == other`` as a bool tensor (``other`` may be a number)."""
    return _cmp(input, other, "eq", "equal", out)


def ne(input, other, *, out=None):
    """Elementwise ``input != other``."""
    return _cmp(input, other, "ne", "not_equal", out)


def lt(input, other, *, out=None):
    """Elementwise ``input < other``."""
    return _cmp(input, other, "lt", "less", out)


def le(input, other, *, out=None):
    """Elementwise ``input <= other``."""
    return _cmp(input, other, "le", "less_equal", out)


def gt(input, other, *, out=None):
    """Elementwise ``input > other``."""
    return _cmp(input, other, "gt", "greater", out)


def ge(input, other, *, out=None):
    """Elementwise ``input >= other``."""
    return _cmp(input, other, "ge", "greater_equal", out)


greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne


def equal(input, other) -> bool:
    """True when both tensors have the same shape and elements (NaN never equals NaN)."""
    a = tensor_arg(input, "equal")
    b = tensor_arg(other, "equal", "other")
    if a._data.shape != b._data.shape:
        return False
    xp, x, y = binary(a, b, "equal")
    return bool((x == y).all())


def isclose(input, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False):
    """``|input - other| <= atol + rtol * |other|`` elementwise (equal infinities are close).

    Example:
        >>> isclose(disttorch.tensor([1.0, 2.0]), disttorch.tensor([1.0 + 1e-9, 2.1]))
        tensor([ True, False])
    """
    a = tensor_arg(input, "isclose")
    b = tensor_arg(other, "isclose", "other")
    if a._data.dtype != b._data.dtype:
        raise RuntimeError(f"{_I._type_name(a.dtype)} did not match {_I._type_name(b.dtype)}")
    if rtol < 0:
        raise RuntimeError(f"rtol must be greater than or equal to zero, but got {rtol}")
    if atol < 0:
        raise RuntimeError(f"atol must be greater than or equal to zero, but got {atol}")
    xp, x, y = a._xp, a._data, b._data
    try:
        with quiet(xp):
            close = x == y
            is_float = x.dtype.kind not in "biu"
            if equal_nan and is_float:
                close |= xp.isnan(x) & xp.isnan(y)
            if rtol or atol:
                if not is_float:
                    fd = D.get_default_dtype().np
                    x, y = x.astype(fd), y.astype(fd)
                allowed = atol + xp.abs(rtol * y)
                actual = xp.abs(x - y)
                close |= xp.isfinite(actual) & (actual <= allowed)
    except ValueError:
        raise broadcast_error("isclose", shape_of(a), shape_of(b)) from None
    return T._wrap(close)


def allclose(input, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    """True when ``isclose`` holds everywhere."""
    return bool(isclose(input, other, rtol, atol, equal_nan)._data.all())


# ---- logical ---------------------------------------------------------------------------------------------
def _truth(xp, arr):
    # Compare with zero (NaN is true, as in PyTorch); bfloat16 comparisons need silencing.
    if arr.dtype.kind == "b":
        return arr
    with quiet(xp):
        return arr != 0


def _logical(input, other, op: str, ufunc_name: str, out):
    xp, x, y = binary(input, other, op)
    r = T._wrap(_ufunc2(getattr(xp, ufunc_name), op, _truth(xp, x), _truth(xp, y)))
    if _op.OBSERVERS:
        _op.notify_untimed(op, (input, other), {}, (r,))
    return r if out is None else _out(r, out)


def logical_and(input, other, *, out=None):
    """Elementwise logical AND of the truth values (non-zero is true); returns bool."""
    return _logical(input, other, "logical_and", "logical_and", out)


def logical_or(input, other, *, out=None):
    """Elementwise logical OR; returns bool."""
    return _logical(input, other, "logical_or", "logical_or", out)


def logical_xor(input, other, *, out=None):
    """Elementwise logical XOR; returns bool."""
    return _logical(input, other, "logical_xor", "logical_xor", out)


def logical_not(input, *, out=None):
    """Elementwise logical NOT; returns bool."""
    x = tensor_arg(input, "logical_not")
    r = T._wrap(x._xp.logical_not(_truth(x._xp, x._data)))
    if _op.OBSERVERS:
        _op.notify_untimed("logical_not", (x,), {}, (r,))
    return r if out is None else _out(r, out)


# ---- bitwise -----------------------------------------------------------------------------------------------
def _bitwise(input, other, op: str, ufunc_name: str, out, allow_bool: bool = True):
    xp, x, y = binary(input, other, op)
    k = x.dtype.kind
    if k not in "iu" and not (k == "b" and allow_bool):
        raise RuntimeError(f'"{op}_cpu" not implemented for \'{_I._type_name(D._FROM_NP[x.dtype])}\'')
    r = T._wrap(_ufunc2(getattr(xp, ufunc_name), op, x, y))
    if _op.OBSERVERS:
        _op.notify_untimed(op, (input, other), {}, (r,))
    return r if out is None else _out(r, out)


def bitwise_and(input, other, *, out=None):
    """Bitwise AND of integer or bool tensors (``&``); floating tensors raise."""
    return _bitwise(input, other, "bitwise_and", "bitwise_and", out)


def bitwise_or(input, other, *, out=None):
    """Bitwise OR of integer or bool tensors (``|``)."""
    return _bitwise(input, other, "bitwise_or", "bitwise_or", out)


def bitwise_xor(input, other, *, out=None):
    """Bitwise XOR of integer or bool tensors (``^``)."""
    return _bitwise(input, other, "bitwise_xor", "bitwise_xor", out)


def bitwise_not(input, *, out=None):
    """Bitwise NOT (``~``): logical NOT for bool tensors."""
    x = tensor_arg(input, "bitwise_not")
    k = x._data.dtype.kind
    if k not in "biu":
        raise RuntimeError(f'"bitwise_not_cpu" not implemented for \'{_I._type_name(x.dtype)}\'')
    r = T._wrap(x._xp.invert(x._data))
    if _op.OBSERVERS:
        _op.notify_untimed("bitwise_not", (x,), {}, (r,))
    return r if out is None else _out(r, out)


def bitwise_left_shift(input, other, *, out=None):
    """``input << other`` for integer tensors."""
    return _bitwise(input, other, "lshift", "left_shift", out, allow_bool=False)


def bitwise_right_shift(input, other, *, out=None):
    """``input >> other`` for integer tensors (arithmetic shift for signed types)."""
    return _bitwise(input, other, "rshift", "right_shift", out, allow_bool=False)


# ---- classification ------------------------------------------------------------------------------------
def _const_bool(x, value: bool):
    return T._wrap(x._xp.full(x._data.shape, value, dtype=bool))


def isnan(input):
    """True where ``input`` is NaN."""
    x = tensor_arg(input, "isnan")
    if x._data.dtype.kind in "biu":
        return _const_bool(x, False)
    return T._wrap(x._xp.isnan(x._data))


def isinf(input):
    """True where ``input`` is +inf or -inf."""
    x = tensor_arg(input, "isinf")
    if x._data.dtype.kind in "biu":
        return _const_bool(x, False)
    return T._wrap(x._xp.isinf(x._data))


def isposinf(input, *, out=None):
    """True where ``input`` is +inf."""
    x = tensor_arg(input, "isposinf")
    r = _const_bool(x, False) if x._data.dtype.kind in "biu" else T._wrap(x._data == float("inf"))
    return r if out is None else _out(r, out)


def isneginf(input, *, out=None):
    """True where ``input`` is -inf."""
    x = tensor_arg(input, "isneginf")
    r = _const_bool(x, False) if x._data.dtype.kind in "biu" else T._wrap(x._data == float("-inf"))
    return r if out is None else _out(r, out)


def isfinite(input):
    """True where ``input`` is neither infinite nor NaN (always for integer tensors)."""
    x = tensor_arg(input, "isfinite")
    if x._data.dtype.kind in "biu":
        return _const_bool(x, True)
    return T._wrap(x._xp.isfinite(x._data))


def isreal(input):
    """True where ``input`` has no imaginary part (always for real dtypes)."""
    x = tensor_arg(input, "isreal")
    if x._data.dtype.kind != "c":
        return _const_bool(x, True)
    return T._wrap(x._data.imag == 0)


def _cmp_operand(other):
    """A comparison operator's other operand, or None to return NotImplemented (so ``t == None`` is False)."""
    if isinstance(other, (T.Tensor, numbers.Number)):
        return other
    if other.__class__ is np.ndarray:
        return _operand(other)
    return None


class CompareMethods:
    """Tensor methods and operators of the comparison, logical and bitwise family."""

    __slots__ = ()

    eq = eq
    ne = not_equal = ne
    lt = less = lt
    le = less_equal = le
    gt = greater = gt
    ge = greater_equal = ge
    equal = equal
    isclose = isclose
    allclose = allclose
    logical_and = logical_and
    logical_or = logical_or
    logical_xor = logical_xor
    logical_not = logical_not
    bitwise_and = bitwise_and
    bitwise_or = bitwise_or
    bitwise_xor = bitwise_xor
    bitwise_not = bitwise_not
    bitwise_left_shift = bitwise_left_shift
    bitwise_right_shift = bitwise_right_shift
    isnan = isnan
    isinf = isinf
    isposinf = isposinf
    isneginf = isneginf
    isfinite = isfinite
    isreal = isreal

    def eq_(self, other):
        return _I.inplace_light(self, "eq_", eq, other)

    def ne_(self, other):
        return _I.inplace_light(self, "ne_", ne, other)

    def lt_(self, other):
        return _I.inplace_light(self, "lt_", lt, other)

    def le_(self, other):
        return _I.inplace_light(self, "le_", le, other)

    def gt_(self, other):
        return _I.inplace_light(self, "gt_", gt, other)

    def ge_(self, other):
        return _I.inplace_light(self, "ge_", ge, other)

    def logical_and_(self, other):
        return _I.inplace_light(self, "logical_and_", logical_and, other)

    def logical_or_(self, other):
        return _I.inplace_light(self, "logical_or_", logical_or, other)

    def logical_xor_(self, other):
        return _I.inplace_light(self, "logical_xor_", logical_xor, other)

    def logical_not_(self):
        return _I.inplace_light(self, "logical_not_", logical_not)

    def bitwise_and_(self, other):
        return _I.inplace_light(self, "bitwise_and_", bitwise_and, other)

    def bitwise_or_(self, other):
        return _I.inplace_light(self, "bitwise_or_", bitwise_or, other)

    def bitwise_xor_(self, other):
        return _I.inplace_light(self, "bitwise_xor_", bitwise_xor, other)

    def bitwise_not_(self):
        return _I.inplace_light(self, "bitwise_not_", bitwise_not)

    def bitwise_left_shift_(self, other):
        return _I.inplace_light(self, "bitwise_left_shift_", bitwise_left_shift, other)

    def bitwise_right_shift_(self, other):
        return _I.inplace_light(self, "bitwise_right_shift_", bitwise_right_shift, other)

    # Comparisons with non-numbers give NotImplemented, so ``t == None`` is False as in PyTorch.
    def __eq__(self, other):
        o = _cmp_operand(other)
        return NotImplemented if o is None else eq(self, o)

    def __ne__(self, other):
        o = _cmp_operand(other)
        return NotImplemented if o is None else ne(self, o)

    def __lt__(self, other):
        o = _cmp_operand(other)
        return NotImplemented if o is None else lt(self, o)

    def __le__(self, other):
        o = _cmp_operand(other)
        return NotImplemented if o is None else le(self, o)

    def __gt__(self, other):
        o = _cmp_operand(other)
        return NotImplemented if o is None else gt(self, o)

    def __ge__(self, other):
        o = _cmp_operand(other)
        return NotImplemented if o is None else ge(self, o)

    def __and__(self, other):
        return bitwise_and(self, _operand(other))

    def __rand__(self, other):
        return bitwise_and(_operand(other), self)

    def __iand__(self, other):
        return _I.inplace_light(self, "__iand__", bitwise_and, other)

    def __or__(self, other):
        return bitwise_or(self, _operand(other))

    def __ror__(self, other):
        return bitwise_or(_operand(other), self)

    def __ior__(self, other):
        return _I.inplace_light(self, "__ior__", bitwise_or, other)

    def __xor__(self, other):
        return bitwise_xor(self, _operand(other))

    def __rxor__(self, other):
        return bitwise_xor(_operand(other), self)

    def __ixor__(self, other):
        return _I.inplace_light(self, "__ixor__", bitwise_xor, other)

    def __invert__(self):
        return bitwise_not(self)

    def __lshift__(self, other):
        return bitwise_left_shift(self, _operand(other))

    def __rlshift__(self, other):
        return bitwise_left_shift(_operand(other), self)

    def __ilshift__(self, other):
        return _I.inplace_light(self, "__ilshift__", bitwise_left_shift, other)

    def __rshift__(self, other):
        return bitwise_right_shift(self, _operand(other))

    def __rrshift__(self, other):
        return bitwise_right_shift(_operand(other), self)

    def __irshift__(self, other):
        return _I.inplace_light(self, "__irshift__", bitwise_right_shift, other)
