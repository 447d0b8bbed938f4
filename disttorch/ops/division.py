"""Division ops: div (true and rounding), true_divide, floor_divide, remainder and fmod.

Ops as in elementwise.py: ``forward`` promotes with ``promote`` and computes on arrays; ``backward`` uses Tensor
ops and ``reduce_grad``.
"""
from __future__ import annotations

from ..autograd.op import Op
from ._arith import _cj, _to_float, _ufunc2, reduce_grad, zeros_grad
from ._helpers import meta, promote

__all__ = ["div", "true_divide", "floor_divide", "remainder", "fmod"]


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
