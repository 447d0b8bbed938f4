"""Power ops: pow (tensor or number exponent), float_power, reciprocal and square.

Ops as in elementwise.py: ``forward`` promotes with ``promote`` and computes on arrays; ``backward`` uses Tensor
ops and ``reduce_grad``.
"""
from __future__ import annotations

import math

from .. import _dtype as D
from .. import _tensor as T
from ..autograd.op import RESULT, Op
from . import inplace as _I
from ._arith import _cj, reduce_grad
from ._helpers import broadcast_error, meta, promote, quiet, tensor_arg

__all__ = ["pow", "float_power", "reciprocal", "square"]


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
