"""Unary math: exp, log, sqrt, trigonometric and hyperbolic functions, sigmoid, logit, erf, erfinv, ...

Integer and bool inputs compute in the default float dtype, as in PyTorch. Two sibling files are
re-exported from here and their mixins are bases of ``PointwiseMethods``: pointwise_sign.py (abs,
sign, rounding, relu: integer dtypes kept) and pointwise_binary.py (where, clamp, maximum, lerp, ...).
"""
from __future__ import annotations

import math

import numpy as np  # dtype constants only

from .. import _dtype as D
from ..autograd.function import Node
from . import _special
from . import inplace as _I
from .elementwise import _out
from .pointwise_binary import *  # noqa: F401,F403 - public binary math, re-exported
from .pointwise_binary import BinaryMathMethods
from .pointwise_binary import __all__ as _binary_all
from .pointwise_sign import *  # noqa: F401,F403 - abs, sign, rounding, relu, re-exported
from .pointwise_sign import SignRoundMethods, unary_op
from .pointwise_sign import __all__ as _sign_all

__all__ = ["exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "sin", "cos", "tan", "asin",
           "arcsin", "acos", "arccos", "atan", "arctan", "sinh", "cosh", "tanh", "asinh", "arcsinh", "acosh",
           "arccosh", "atanh", "arctanh", "sigmoid", "logit", "erf", "erfc", "erfinv", "deg2rad",
           "rad2deg"] + _sign_all + _binary_all

_F32 = np.dtype(np.float32)
_LOW = (np.dtype(np.float16), D.bfloat16.np)


def _float_op(input, op: str, kernel, node_cls, save, out):
    """``unary_op`` computing integer inputs in the default float dtype."""
    return unary_op(input, op, kernel, node_cls, save, out, to_float=True)


def _wide(fn):
    """Run a composite kernel in float32 for float16/bfloat16 arrays (accuracy), casting back."""
    def kernel(xp, a):
        if a.dtype in _LOW:
            return fn(xp, a.astype(_F32)).astype(a.dtype)
        return fn(xp, a)
    return kernel


# ---- exponentials and logarithms -------------------------------------------------------------------
class ExpBackward0(Node):
    def backward(self, g):
        r = self.saved_tensors[0]
        return g * r


def exp(input, *, out=None):
    """``e ** input``."""
    return _float_op(input, "exp", "exp", ExpBackward0, "out", out)


class Exp2Backward0(Node):
    def backward(self, g):
        r = self.saved_tensors[0]
        return g * r * math.log(2.0)


def exp2(input, *, out=None):
    """``2 ** input``."""
    return _float_op(input, "exp2", "exp2", Exp2Backward0, "out", out)


class Expm1Backward0(Node):
    def backward(self, g):
        r = self.saved_tensors[0]
        return g * (r + 1)


def expm1(input, *, out=None):
    """``exp(input) - 1``, accurate near zero."""
    return _float_op(input, "expm1", "expm1", Expm1Backward0, "out", out)


class LogBackward0(Node):
    def backward(self, g):
        x = self.saved_tensors[0]
        return g / x


def log(input, *, out=None):
    """Natural logarithm (``log(0) = -inf``, negative inputs give NaN, silently)."""
    return _float_op(input, "log", "log", LogBackward0, "in", out)


class Log2Backward0(Node):
    def backward(self, g):
        x = self.saved_tensors[0]
        return g / (x * math.log(2.0))


def log2(input, *, out=None):
    """Base-2 logarithm."""
    return _float_op(input, "log2", "log2", Log2Backward0, "in", out)


class Log10Backward0(Node):
    def backward(self, g):
        x = self.saved_tensors[0]
        return g / (x * math.log(10.0))


def log10(input, *, out=None):
    """Base-10 logarithm."""
    return _float_op(input, "log10", "log10", Log10Backward0, "in", out)


class Log1PBackward0(Node):
    def backward(self, g):
        x = self.saved_tensors[0]
        return g / (x + 1)


def log1p(input, *, out=None):
    """``log(1 + input)``, accurate near zero."""
    return _float_op(input, "log1p", "log1p", Log1PBackward0, "in", out)


class SqrtBackward0(Node):
    def backward(self, g):
        r = self.saved_tensors[0]
        return g / (2 * r)


def sqrt(input, *, out=None):
    """Square root (negative inputs give NaN)."""
    return _float_op(input, "sqrt", "sqrt", SqrtBackward0, "out", out)


class RsqrtBackward0(Node):
    def backward(self, g):
        r = self.saved_tensors[0]
        return -0.5 * g * r.pow(3)


def _rsqrt_k(xp, a):
    r = xp.sqrt(a, out=xp.empty_like(a))  # out= keeps 0-d results arrays
    return xp.reciprocal(r, out=r)


def rsqrt(input, *, out=None):
    """``1 / sqrt(input)``."""
    return _float_op(input, "rsqrt", _rsqrt_k, RsqrtBackward0, "out", out)


# ---- trigonometric and hyperbolic -----------------------------------------------------------------------
class SinBackward0(Node):
    def backward(self, g):
        x = self.saved_tensors[0]
        return g * x.cos()


def sin(input, *, out=None):
    """Sine."""
    return _float_op(input, "sin", "sin", SinBackward0, "in", out)


class CosBackward0(Node):
    def backward(self, g):
        x = self.saved_tensors[0]
        return -g * x.sin()


def cos(input, *, out=None):
    """Cosine."""
    return _float_op(input, "cos", "cos", CosBackward0, "in", out)


class TanBackward0(Node):
    def backward(self, g):
        r = self.saved_tensors[0]
        return g * (1 + r * r)


def tan(input, *, out=None):
    """Tangent."""
    return _float_op(input, "tan", "tan", TanBackward0, "out", out)


class AsinBackward0(Node):
    def backward(self, g):
        x = self.saved_tensors[0]
        return g * (1 - x * x).rsqrt()


def asin(input, *, out=None):
    """Inverse sine (NaN outside [-1, 1])."""
    return _float_op(input, "asin", "arcsin", AsinBackward0, "in", out)


class AcosBackward0(Node):
    def backward(self, g):
        x = self.saved_tensors[0]
        return -g * (1 - x * x).rsqrt()


def acos(input, *, out=None):
    """Inverse cosine (NaN outside [-1, 1])."""
    return _float_op(input, "acos", "arccos", AcosBackward0, "in", out)


class AtanBackward0(Node):
    def backward(self, g):
        x = self.saved_tensors[0]
        return g / (x * x + 1)


def atan(input, *, out=None):
    """Inverse tangent."""
    return _float_op(input, "atan", "arctan", AtanBackward0, "in", out)


class SinhBackward0(Node):
    def backward(self, g):
        x = self.saved_tensors[0]
        return g * x.cosh()


def sinh(input, *, out=None):
    """Hyperbolic sine."""
    return _float_op(input, "sinh", "sinh", SinhBackward0, "in", out)


class CoshBackward0(Node):
    def backward(self, g):
        x = self.saved_tensors[0]
        return g * x.sinh()


def cosh(input, *, out=None):
    """Hyperbolic cosine."""
    return _float_op(input, "cosh", "cosh", CoshBackward0, "in", out)


class TanhBackward0(Node):
    def backward(self, g):
        r = self.saved_tensors[0]
        return g * (1 - r * r)


def tanh(input, *, out=None):
    """Hyperbolic tangent."""
    return _float_op(input, "tanh", "tanh", TanhBackward0, "out", out)


class AsinhBackward0(Node):
    def backward(self, g):
        x = self.saved_tensors[0]
        return g * (x * x + 1).rsqrt()


def asinh(input, *, out=None):
    """Inverse hyperbolic sine."""
    return _float_op(input, "asinh", "arcsinh", AsinhBackward0, "in", out)


class AcoshBackward0(Node):
    def backward(self, g):
        x = self.saved_tensors[0]
        return g * (x * x - 1).rsqrt()


def acosh(input, *, out=None):
    """Inverse hyperbolic cosine (NaN below 1)."""
    return _float_op(input, "acosh", "arccosh", AcoshBackward0, "in", out)


class AtanhBackward0(Node):
    def backward(self, g):
        x = self.saved_tensors[0]
        return g / (1 - x * x)


def atanh(input, *, out=None):
    """Inverse hyperbolic tangent (±inf at ±1)."""
    return _float_op(input, "atanh", "arctanh", AtanhBackward0, "in", out)


class SigmoidBackward0(Node):
    def backward(self, g):
        r = self.saved_tensors[0]
        return g * (r * (1 - r))


@_wide
def _sigmoid_k(xp, a):
    t = xp.negative(a, out=xp.empty_like(a))  # out= keeps 0-d results arrays
    xp.exp(t, out=t)  # overflow to inf for very negative a gives exactly 0 below
    t += 1
    return xp.reciprocal(t, out=t)


def sigmoid(input, *, out=None):
    """The logistic function ``1 / (1 + exp(-input))``."""
    return _float_op(input, "sigmoid", _sigmoid_k, SigmoidBackward0, "out", out)


class LogitBackward0(Node):
    def backward(self, g):
        (x,) = self.saved_tensors
        res = g / (x * (1 - x))
        if self.eps is None:
            return res.where((x >= 0) & (x <= 1), float("nan"))
        return res.where((x >= self.eps) & (x <= 1 - self.eps), 0.0)


def logit(input, eps=None, *, out=None):
    """``log(p / (1 - p))``, with ``p`` clamped to [eps, 1 - eps] when ``eps`` is given."""
    def kernel(xp, a):
        if eps is not None:
            a = xp.minimum(xp.maximum(a, eps), 1 - eps)
        return xp.log(a / (1 - a))

    r = _float_op(input, "logit", _wide(kernel), LogitBackward0, "in", None)
    if r.grad_fn is not None:
        r.grad_fn.eps = eps
    return r if out is None else _out(r, out)


# ---- error function -------------------------------------------------------------------------------------
class ErfBackward0(Node):
    def backward(self, g):
        x = self.saved_tensors[0]
        return g * (-(x * x)).exp() * (2.0 / math.sqrt(math.pi))


def erf(input, *, out=None):
    """The error function, accurate to float64 precision (W. J. Cody's rational approximations)."""
    return _float_op(input, "erf", _special.erf, ErfBackward0, "in", out)


class ErfcBackward0(Node):
    def backward(self, g):
        x = self.saved_tensors[0]
        return g * (-(x * x)).exp() * (-2.0 / math.sqrt(math.pi))


def erfc(input, *, out=None):
    """``1 - erf(input)``, without cancellation for large inputs."""
    return _float_op(input, "erfc", _special.erfc, ErfcBackward0, "in", out)


class ErfinvBackward0(Node):
    def backward(self, g):
        r = self.saved_tensors[0]
        return g * (r * r).exp() * (0.5 * math.sqrt(math.pi))


def erfinv(input, *, out=None):
    """Inverse error function on (-1, 1) (±inf at ±1, NaN outside)."""
    return _float_op(input, "erfinv", _special.erfinv, ErfinvBackward0, "out", out)


class Deg2RadBackward0(Node):
    def backward(self, g):
        return g * (math.pi / 180.0)


class Rad2DegBackward0(Node):
    def backward(self, g):
        return g * (180.0 / math.pi)


def deg2rad(input, *, out=None):
    """Degrees to radians."""
    return _float_op(input, "deg2rad", lambda xp, a: a * (math.pi / 180.0), Deg2RadBackward0, None, out)


def rad2deg(input, *, out=None):
    """Radians to degrees."""
    return _float_op(input, "rad2deg", lambda xp, a: a * (180.0 / math.pi), Rad2DegBackward0, None, out)


arcsin, arccos, arctan, arcsinh, arccosh, arctanh = asin, acos, atan, asinh, acosh, atanh


class PointwiseMethods(BinaryMathMethods, SignRoundMethods):
    """Tensor methods of the unary math family (binary math and sign/rounding come from the bases)."""

    __slots__ = ()

    exp = exp
    exp2 = exp2
    expm1 = expm1
    log = log
    log2 = log2
    log10 = log10
    log1p = log1p
    sqrt = sqrt
    rsqrt = rsqrt
    sin = sin
    cos = cos
    tan = tan
    asin = arcsin = asin
    acos = arccos = acos
    atan = arctan = atan
    sinh = sinh
    cosh = cosh
    tanh = tanh
    asinh = arcsinh = asinh
    acosh = arccosh = acosh
    atanh = arctanh = atanh
    sigmoid = sigmoid
    logit = logit
    erf = erf
    erfc = erfc
    erfinv = erfinv
    deg2rad = deg2rad
    rad2deg = rad2deg


    exp_ = _I.unary_method("exp_", "exp", exp, True)
    exp2_ = _I.unary_method("exp2_", "exp2", exp2, True)
    expm1_ = _I.unary_method("expm1_", "expm1", expm1, True)
    log_ = _I.unary_method("log_", "log", log, False)
    log2_ = _I.unary_method("log2_", "log2", log2, False)
    log10_ = _I.unary_method("log10_", "log10", log10, False)
    log1p_ = _I.unary_method("log1p_", "log1p", log1p, False)
    sqrt_ = _I.unary_method("sqrt_", "sqrt", sqrt, True)
    rsqrt_ = _I.unary_method("rsqrt_", None, rsqrt, True)
    sin_ = _I.unary_method("sin_", "sin", sin, False)
    cos_ = _I.unary_method("cos_", "cos", cos, False)
    tan_ = _I.unary_method("tan_", "tan", tan, True)
    asin_ = _I.unary_method("asin_", "arcsin", asin, False)
    acos_ = _I.unary_method("acos_", "arccos", acos, False)
    atan_ = _I.unary_method("atan_", "arctan", atan, False)

    arcsin_, arccos_, arctan_ = asin_, acos_, atan_

    sinh_ = _I.unary_method("sinh_", "sinh", sinh, False)
    cosh_ = _I.unary_method("cosh_", "cosh", cosh, False)
    tanh_ = _I.unary_method("tanh_", "tanh", tanh, True)
    asinh_ = _I.unary_method("asinh_", "arcsinh", asinh, False)
    acosh_ = _I.unary_method("acosh_", "arccosh", acosh, False)
    atanh_ = _I.unary_method("atanh_", "arctanh", atanh, False)

    arcsinh_, arccosh_, arctanh_ = asinh_, acosh_, atanh_

    sigmoid_ = _I.unary_method("sigmoid_", None, sigmoid, True)

    def logit_(self, eps=None):
        return _I.unary_(self, "logit_", None, logit, False, eps=eps)

    erf_ = _I.unary_method("erf_", None, erf, False)
    erfc_ = _I.unary_method("erfc_", None, erfc, False)
    erfinv_ = _I.unary_method("erfinv_", None, erfinv, True)



    deg2rad_ = _I.unary_method("deg2rad_", None, deg2rad, True)
    rad2deg_ = _I.unary_method("rad2deg_", None, rad2deg, True)

