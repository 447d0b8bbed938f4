"""Sign, absolute value and rounding: abs, sign, sgn, signbit, floor, ceil, round, trunc, frac, relu, nan_to_num.

Unlike the float-valued functions in pointwise.py (which re-exports these), integer and bool
inputs keep their dtype, as in PyTorch. Backward follows PyTorch: abs'(0) = 0, relu'(0) = 0, and
sign and the rounding functions are piecewise constant (zero gradient).
"""
from __future__ import annotations

from .. import _dtype as D
from .. import _tensor as T
from ..autograd.function import Node
from ..autograd.grad_mode import STATE as _GRAD
from . import inplace as _I
from ._helpers import as_float_array, tensor_arg
from .elementwise import _out

__all__ = ["abs", "absolute", "sign", "sgn", "signbit", "floor", "ceil", "round", "trunc", "fix", "frac", "relu",
           "nan_to_num"]


class _ZeroGrad(Node):
    """Piecewise-constant functions: the gradient is zero (PyTorch's convention)."""

    def backward(self, g):
        return T._wrap(g._xp.zeros_like(g._data))


def unary_op(input, op: str, kernel, node_cls, save, out, to_float: bool = False):
    """Apply an elementwise ``kernel`` and record ``node_cls`` when grad is needed (shared by the unary families).

    ``kernel`` is a ufunc name of ``xp`` or a function ``(xp, array) -> array``; ``save`` is "in" (the node
    saves the input), "out" (the result) or None; ``to_float`` computes integer inputs in the default float
    dtype (exp, sqrt...), otherwise the dtype is kept (abs, floor...).
    """
    x = tensor_arg(input, op)
    xp = x._xp
    arr = as_float_array(x) if to_float else x._data
    if kernel.__class__ is str:
        fn = getattr(xp, kernel)
        if (out is not None and out.__class__ is T.Tensor and out._data.dtype == arr.dtype
                and out._data.shape == arr.shape and not (_GRAD.enabled and (x._requires_grad or out._requires_grad))):
            _I.ufunc_into(out, op, fn, arr)  # straight into out's memory: no temporary
            return out
        r = T._wrap(_I.quiet_call(fn, arr))
    else:
        r = T._wrap(_I.quiet_call(kernel, xp, arr))
    if _GRAD.enabled and x._requires_grad:
        node = node_cls(x)
        r._requires_grad = True
        r.grad_fn = node
        if save == "in":
            node.save_for_backward(x)
        elif save == "out":
            node.save_for_backward(r)
    return r if out is None else _out(r, out)


def _keep_op(input, op: str, kernel, node_cls, save, out):
    """``unary_op`` keeping the input's dtype."""
    return unary_op(input, op, kernel, node_cls, save, out)


class AbsBackward0(Node):
    def backward(self, g):
        x = self.saved_tensors[0]
        return g * x.sgn()


def _abs_k(xp, a):
    return a.copy() if a.dtype.kind == "b" else xp.abs(a)


def abs(input, *, out=None):  # noqa: A001 - PyTorch's name
    """Absolute value (integer dtypes are kept; the gradient at 0 is 0)."""
    return _keep_op(input, "abs", _abs_k, AbsBackward0, "in", out)


class SignBackward0(_ZeroGrad):
    pass


class SgnBackward0(_ZeroGrad):
    pass


def _sign_k(xp, a):
    if a.dtype.kind == "b":
        return a.copy()
    r = xp.sign(a, out=xp.empty_like(a))  # out= keeps 0-d results arrays
    if a.dtype.kind not in "iu":
        r[xp.isnan(r)] = 0  # PyTorch computes (0 < x) - (x < 0): NaN gives 0
    return r


def sign(input, *, out=None):
    """-1, 0 or 1 by the sign of each element (NaN gives 0, as in PyTorch)."""
    return _keep_op(input, "sign", _sign_k, SignBackward0, None, out)


def sgn(input, *, out=None):
    """``sign`` for real tensors (``x / |x|`` for complex)."""
    x = tensor_arg(input, "sgn")
    if x._data.dtype.kind == "c":
        def kernel(xp, a):
            m = xp.abs(a)
            return xp.where(m == 0, 0, a / xp.where(m == 0, 1, m))
        return _keep_op(x, "sgn", kernel, SgnBackward0, None, out)
    return _keep_op(x, "sgn", _sign_k, SgnBackward0, None, out)


def signbit(input, *, out=None):
    """True where the sign bit is set (including -0.0); not differentiable."""
    x = tensor_arg(input, "signbit")
    a = x._data
    k = a.dtype.kind
    if k == "b":
        r = T._wrap(x._xp.zeros(a.shape, dtype=bool))
    else:
        r = T._wrap(a < 0 if k in "iu" else x._xp.signbit(a))
    return r if out is None else _out(r, out)


class FloorBackward0(_ZeroGrad):
    pass


class CeilBackward0(_ZeroGrad):
    pass


class RoundBackward0(_ZeroGrad):
    pass


class TruncBackward0(_ZeroGrad):
    pass


def _rounder(ufunc_name: str):
    def kernel(xp, a):
        return a.copy() if a.dtype.kind in "biu" else getattr(xp, ufunc_name)(a)
    return kernel


_floor_k, _ceil_k, _trunc_k = _rounder("floor"), _rounder("ceil"), _rounder("trunc")


def floor(input, *, out=None):
    """Round down to an integer value (integer tensors are returned as a copy)."""
    return _keep_op(input, "floor", _floor_k, FloorBackward0, None, out)


def ceil(input, *, out=None):
    """Round up to an integer value."""
    return _keep_op(input, "ceil", _ceil_k, CeilBackward0, None, out)


def trunc(input, *, out=None):
    """Round toward zero."""
    return _keep_op(input, "trunc", _trunc_k, TruncBackward0, None, out)


fix = trunc


def round(input, *, decimals: int = 0, out=None):  # noqa: A001 - PyTorch's name
    """Round half to even, to ``decimals`` decimal places (negative: to tens, hundreds, ...)."""
    decimals = int(decimals)

    def kernel(xp, a):
        if a.dtype.kind in "biu":
            return a.copy() if decimals >= 0 else xp.round(a, decimals)
        if decimals == 0:
            return xp.rint(a)
        if decimals > 0:
            p = 10.0 ** decimals
            return xp.rint(a * p) / p
        p = 10.0 ** -decimals
        return xp.rint(a / p) * p

    return _keep_op(input, "round", kernel, RoundBackward0, None, out)


class FracBackward0(Node):
    def backward(self, g):
        return g


def _frac_k(xp, a):
    return a - xp.trunc(a)


def frac(input, *, out=None):
    """``input - trunc(input)`` (floating tensors only)."""
    x = tensor_arg(input, "frac")
    if x._data.dtype.kind in "biu":
        raise RuntimeError(f'"frac_cpu" not implemented for \'{_I._type_name(x.dtype)}\'')
    return _keep_op(x, "frac", _frac_k, FracBackward0, None, out)


_BITS = {2: "int16", 4: "int32", 8: "int64"}


class ReluBackward0(Node):
    def backward(self, g):
        r = self.saved_tensors[0]
        ga, ra = g._data, r._data
        if not _GRAD.enabled and ga.dtype == ra.dtype and ga.shape == ra.shape and ga.dtype.kind in "fV":
            # threshold_backward(g, r, 0) = (r <= 0 ? 0 : g) as one bitwise AND with a 0 / all-ones mask:
            # exact (+0.0, no inf * 0 = NaN) and as cheap as a multiply; np.where is branchy and ~6x slower.
            bits = _BITS.get(ga.dtype.itemsize)
            if bits is not None and ga.ndim:
                mask = g._xp.less_equal(ra, 0).view("int8")
                mask -= 1
                return T._wrap(g._xp.bitwise_and(ga.view(bits), mask, dtype=bits).view(ga.dtype))
        return g.where(r > 0, 0.0)


def _relu_k(xp, a):
    return xp.maximum(a, 0)


def relu(input):
    """``max(input, 0)`` elementwise (NaN propagates)."""
    x = tensor_arg(input, "relu")
    if x._data.dtype.kind == "b":
        raise RuntimeError('"clamp_min_cpu" not implemented for \'Bool\'')
    return _keep_op(x, "relu", _relu_k, ReluBackward0, "out", None)


class NanToNumBackward0(Node):
    def backward(self, g):
        x = self.saved_tensors[0]
        return g.where(x.isfinite(), 0.0)


def nan_to_num(input, nan: float = 0.0, posinf=None, neginf=None, *, out=None):
    """Replace NaN, +inf and -inf by finite numbers (infinities default to the dtype's extremes)."""
    x = tensor_arg(input, "nan_to_num")

    def kernel(xp, a):
        if a.dtype.kind in "biu":
            return a.copy()
        info = D.finfo(D._FROM_NP[a.dtype])
        r = xp.where(a != a, nan, a).astype(a.dtype)
        r = xp.where(r == float("inf"), info.max if posinf is None else posinf, r).astype(a.dtype)
        return xp.where(r == float("-inf"), info.min if neginf is None else neginf, r).astype(a.dtype)

    return _keep_op(x, "nan_to_num", kernel, NanToNumBackward0, "in", out)


absolute = abs


class SignRoundMethods:
    """Tensor methods of the sign and rounding family (PointwiseMethods inherits this)."""

    __slots__ = ()

    abs = absolute = abs
    sign = sign
    sgn = sgn
    signbit = signbit
    floor = floor
    ceil = ceil
    round = round
    trunc = fix = trunc
    frac = frac
    relu = relu
    nan_to_num = nan_to_num

    abs_ = _I.unary_method("abs_", "abs", abs, False)
    absolute_ = abs_
    sign_ = _I.unary_method("sign_", None, sign, True)
    sgn_ = _I.unary_method("sgn_", None, sgn, True)
    floor_ = _I.unary_method("floor_", "floor", floor, True)
    ceil_ = _I.unary_method("ceil_", "ceil", ceil, True)
    trunc_ = _I.unary_method("trunc_", "trunc", trunc, True)
    fix_ = trunc_
    frac_ = _I.unary_method("frac_", None, frac, True)
    relu_ = _I.unary_method("relu_", None, relu, True)

    def round_(self, *, decimals: int = 0):
        if decimals:
            return _I.unary_(self, "round_", None, round, True, decimals=decimals)
        return _I.unary_(self, "round_", "rint", round, True)

    def nan_to_num_(self, nan: float = 0.0, posinf=None, neginf=None):
        return _I.unary_(self, "nan_to_num_", None, nan_to_num, False, nan=nan, posinf=posinf, neginf=neginf)
