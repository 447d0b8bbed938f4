"""Unary math: exp, log, sqrt, trigonometric and hyperbolic functions, sigmoid, logit, erf, erfinv, ...

Integer and bool inputs compute in the default float dtype, as in PyTorch. Two sibling files are
re-exported from here and their mixins are bases of ``PointwiseMethods``: pointwise_sign.py (abs,
sign, rounding, relu: integer dtypes kept) and pointwise_binary.py (where, clamp, maximum, lerp, ...).
"""
from __future__ import annotations

import math

import numpy as np  # dtype constants only

from .. import _dtype as D
from ..autograd.op import RESULT
from . import _special
from . import inplace as _I
from .pointwise_binary import *  # noqa: F401,F403 - public binary math, re-exported
from .pointwise_binary import BinaryMathMethods
from .pointwise_binary import __all__ as _binary_all
from .pointwise_sign import *  # noqa: F401,F403 - abs, sign, rounding, relu, re-exported
from .pointwise_sign import FloatUnaryOp, SignRoundMethods, unary_op
from .pointwise_sign import __all__ as _sign_all

__all__ = ["exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "sin", "cos", "tan", "asin",
           "arcsin", "acos", "arccos", "atan", "arctan", "sinh", "cosh", "tanh", "asinh", "arcsinh", "acosh",
           "arccosh", "atanh", "arctanh", "sigmoid", "logit", "erf", "erfc", "erfinv", "deg2rad",
           "rad2deg"] + _sign_all + _binary_all

_F32 = np.dtype(np.float32)
_LOW = (np.dtype(np.float16), D.bfloat16.np)


def _wide(fn):
    """Run a composite kernel in float32 for float16/bfloat16 arrays (accuracy), casting back."""
    def kernel(xp, a):
        if a.dtype in _LOW:
            return fn(xp, a.astype(_F32)).astype(a.dtype)
        return fn(xp, a)
    return kernel


def _holomorphic(backward):
    """Give a holomorphic ``f``'s backward PyTorch's complex convention, ``grad * conj(f'(z))``.

    The wrapped ``backward(g)`` computes ``g * f'(z)``; conjugating its input and output gives
    ``conj(conj(g) * f'(z)) = g * conj(f'(z))`` with Tensor ops, so double backward still works.
    Real gradients pass straight through.
    """
    def wrapped(self, g):
        if g._data.dtype.kind != "c":
            return backward(self, g)
        from .complex_ops import conj

        return conj(backward(self, conj(g)))
    wrapped.__name__, wrapped.__doc__ = backward.__name__, backward.__doc__
    return wrapped


# ---- exponentials and logarithms -------------------------------------------------------------------
class ExpBackward0(FloatUnaryOp):
    op_name = "exp"
    kernel = "exp"
    saves = (RESULT,)

    @_holomorphic
    def backward(self, g):
        r = self.saved_tensors[0]
        return g * r


def exp(input, *, out=None):
    """``e ** input``."""
    return unary_op(input, ExpBackward0, out)


class Exp2Backward0(FloatUnaryOp):
    op_name = "exp2"
    kernel = "exp2"
    saves = (RESULT,)

    @_holomorphic
    def backward(self, g):
        r = self.saved_tensors[0]
        return g * r * math.log(2.0)


def exp2(input, *, out=None):
    """``2 ** input``."""
    return unary_op(input, Exp2Backward0, out)


class Expm1Backward0(FloatUnaryOp):
    op_name = "expm1"
    kernel = "expm1"
    saves = (RESULT,)

    @_holomorphic
    def backward(self, g):
        r = self.saved_tensors[0]
        return g * (r + 1)


def expm1(input, *, out=None):
    """``exp(input) - 1``, accurate near zero."""
    return unary_op(input, Expm1Backward0, out)


class LogBackward0(FloatUnaryOp):
    op_name = "log"
    kernel = "log"
    saves = (0,)

    @_holomorphic
    def backward(self, g):
        x = self.saved_tensors[0]
        return g / x


def log(input, *, out=None):
    """Natural logarithm (``log(0) = -inf``, negative inputs give NaN, silently)."""
    return unary_op(input, LogBackward0, out)


class Log2Backward0(FloatUnaryOp):
    op_name = "log2"
    kernel = "log2"
    saves = (0,)

    @_holomorphic
    def backward(self, g):
        x = self.saved_tensors[0]
        return g / (x * math.log(2.0))


def log2(input, *, out=None):
    """Base-2 logarithm."""
    return unary_op(input, Log2Backward0, out)


class Log10Backward0(FloatUnaryOp):
    op_name = "log10"
    kernel = "log10"
    saves = (0,)

    @_holomorphic
    def backward(self, g):
        x = self.saved_tensors[0]
        return g / (x * math.log(10.0))


def log10(input, *, out=None):
    """Base-10 logarithm."""
    return unary_op(input, Log10Backward0, out)


class Log1PBackward0(FloatUnaryOp):
    op_name = "log1p"
    kernel = "log1p"
    saves = (0,)

    @_holomorphic
    def backward(self, g):
        x = self.saved_tensors[0]
        return g / (x + 1)


def log1p(input, *, out=None):
    """``log(1 + input)``, accurate near zero."""
    return unary_op(input, Log1PBackward0, out)


class SqrtBackward0(FloatUnaryOp):
    op_name = "sqrt"
    kernel = "sqrt"
    saves = (RESULT,)

    @_holomorphic
    def backward(self, g):
        r = self.saved_tensors[0]
        return g / (2 * r)


def sqrt(input, *, out=None):
    """Square root (negative inputs give NaN)."""
    return unary_op(input, SqrtBackward0, out)


def _rsqrt_k(xp, a):
    r = xp.sqrt(a, out=xp.empty_like(a))  # out= keeps 0-d results arrays
    return xp.reciprocal(r, out=r)


class RsqrtBackward0(FloatUnaryOp):
    op_name = "rsqrt"
    kernel = staticmethod(_rsqrt_k)
    saves = (RESULT,)

    @_holomorphic
    def backward(self, g):
        r = self.saved_tensors[0]
        return -0.5 * g * r.pow(3)


def rsqrt(input, *, out=None):
    """``1 / sqrt(input)``."""
    return unary_op(input, RsqrtBackward0, out)


# ---- trigonometric and hyperbolic -----------------------------------------------------------------------
class SinBackward0(FloatUnaryOp):
    op_name = "sin"
    kernel = "sin"
    saves = (0,)

    @_holomorphic
    def backward(self, g):
        x = self.saved_tensors[0]
        return g * x.cos()


def sin(input, *, out=None):
    """Sine."""
    return unary_op(input, SinBackward0, out)


class CosBackward0(FloatUnaryOp):
    op_name = "cos"
    kernel = "cos"
    saves = (0,)

    @_holomorphic
    def backward(self, g):
        x = self.saved_tensors[0]
        return -g * x.sin()


def cos(input, *, out=None):
    """Cosine."""
    return unary_op(input, CosBackward0, out)


class TanBackward0(FloatUnaryOp):
    op_name = "tan"
    kernel = "tan"
    saves = (RESULT,)

    @_holomorphic
    def backward(self, g):
        r = self.saved_tensors[0]
        return g * (1 + r * r)


def tan(input, *, out=None):
    """Tangent."""
    return unary_op(input, TanBackward0, out)


class AsinBackward0(FloatUnaryOp):
    op_name = "asin"
    kernel = "arcsin"
    saves = (0,)

    @_holomorphic
    def backward(self, g):
        x = self.saved_tensors[0]
        return g * (1 - x * x).rsqrt()


def asin(input, *, out=None):
    """Inverse sine (NaN outside [-1, 1])."""
    return unary_op(input, AsinBackward0, out)


class AcosBackward0(FloatUnaryOp):
    op_name = "acos"
    kernel = "arccos"
    saves = (0,)

    @_holomorphic
    def backward(self, g):
        x = self.saved_tensors[0]
        return -g * (1 - x * x).rsqrt()


def acos(input, *, out=None):
    """Inverse cosine (NaN outside [-1, 1])."""
    return unary_op(input, AcosBackward0, out)


class AtanBackward0(FloatUnaryOp):
    op_name = "atan"
    kernel = "arctan"
    saves = (0,)

    @_holomorphic
    def backward(self, g):
        x = self.saved_tensors[0]
        return g / (x * x + 1)


def atan(input, *, out=None):
    """Inverse tangent."""
    return unary_op(input, AtanBackward0, out)


class SinhBackward0(FloatUnaryOp):
    op_name = "sinh"
    kernel = "sinh"
    saves = (0,)

    @_holomorphic
    def backward(self, g):
        x = self.saved_tensors[0]
        return g * x.cosh()


def sinh(input, *, out=None):
    """Hyperbolic sine."""
    return unary_op(input, SinhBackward0, out)


class CoshBackward0(FloatUnaryOp):
    op_name = "cosh"
    kernel = "cosh"
    saves = (0,)

    @_holomorphic
    def backward(self, g):
        x = self.saved_tensors[0]
        return g * x.sinh()


def cosh(input, *, out=None):
    """Hyperbolic cosine."""
    return unary_op(input, CoshBackward0, out)


class TanhBackward0(FloatUnaryOp):
    op_name = "tanh"
    kernel = "tanh"
    saves = (RESULT,)

    @_holomorphic
    def backward(self, g):
        r = self.saved_tensors[0]
        return g * (1 - r * r)


def tanh(input, *, out=None):
    """Hyperbolic tangent."""
    return unary_op(input, TanhBackward0, out)


class AsinhBackward0(FloatUnaryOp):
    op_name = "asinh"
    kernel = "arcsinh"
    saves = (0,)

    @_holomorphic
    def backward(self, g):
        x = self.saved_tensors[0]
        return g * (x * x + 1).rsqrt()


def asinh(input, *, out=None):
    """Inverse hyperbolic sine."""
    return unary_op(input, AsinhBackward0, out)


class AcoshBackward0(FloatUnaryOp):
    op_name = "acosh"
    kernel = "arccosh"
    saves = (0,)

    @_holomorphic
    def backward(self, g):
        x = self.saved_tensors[0]
        # (x - 1)^-1/2 (x + 1)^-1/2, not (x^2 - 1)^-1/2: the same for real x > 1, PyTorch's branch for complex x.
        return g * ((x - 1).rsqrt() * (x + 1).rsqrt())


def acosh(input, *, out=None):
    """Inverse hyperbolic cosine (NaN below 1)."""
    return unary_op(input, AcoshBackward0, out)


class AtanhBackward0(FloatUnaryOp):
    op_name = "atanh"
    kernel = "arctanh"
    saves = (0,)

    @_holomorphic
    def backward(self, g):
        x = self.saved_tensors[0]
        return g / (1 - x * x)


def atanh(input, *, out=None):
    """Inverse hyperbolic tangent (±inf at ±1)."""
    return unary_op(input, AtanhBackward0, out)


@_wide
def _sigmoid_k(xp, a):
    t = xp.negative(a, out=xp.empty_like(a))  # out= keeps 0-d results arrays
    xp.exp(t, out=t)  # overflow to inf for very negative a gives exactly 0 below
    t += 1
    return xp.reciprocal(t, out=t)


class SigmoidBackward0(FloatUnaryOp):
    op_name = "sigmoid"
    kernel = staticmethod(_sigmoid_k)
    saves = (RESULT,)

    @_holomorphic
    def backward(self, g):
        r = self.saved_tensors[0]
        return g * (r * (1 - r))


def sigmoid(input, *, out=None):
    """The logistic function ``1 / (1 + exp(-input))``."""
    return unary_op(input, SigmoidBackward0, out)


class LogitBackward0(FloatUnaryOp):
    op_name = "logit"

    def forward(self, xp, a, eps=None):
        if self.next_functions:
            self.eps = eps
            self.save(0)
        if a.dtype.kind not in "fcV":
            a = a.astype(D.get_default_dtype().np)
        return _I.quiet_call(_logit_k, xp, a, eps)

    def backward(self, g):
        (x,) = self.saved_tensors
        res = g / (x * (1 - x))
        if self.eps is None:
            return res.where((x >= 0) & (x <= 1), float("nan"))
        return res.where((x >= self.eps) & (x <= 1 - self.eps), 0.0)


def _logit_k(xp, a, eps):
    if a.dtype in _LOW:  # computed in float32 for accuracy, as _wide does
        return _logit_k(xp, a.astype(_F32), eps).astype(a.dtype)
    if eps is not None:
        a = xp.minimum(xp.maximum(a, eps), 1 - eps)
    return xp.log(a / (1 - a))


def logit(input, eps=None, *, out=None):
    """``log(p / (1 - p))``, with ``p`` clamped to [eps, 1 - eps] when ``eps`` is given."""
    return unary_op(input, LogitBackward0, out, eps=eps)


# ---- error function -------------------------------------------------------------------------------------
class ErfBackward0(FloatUnaryOp):
    op_name = "erf"
    kernel = staticmethod(_special.erf)
    saves = (0,)

    def backward(self, g):
        x = self.saved_tensors[0]
        return g * (-(x * x)).exp() * (2.0 / math.sqrt(math.pi))


def erf(input, *, out=None):
    """The error function, accurate to float64 precision (W. J. Cody's rational approximations)."""
    return unary_op(input, ErfBackward0, out)


class ErfcBackward0(FloatUnaryOp):
    op_name = "erfc"
    kernel = staticmethod(_special.erfc)
    saves = (0,)

    def backward(self, g):
        x = self.saved_tensors[0]
        return g * (-(x * x)).exp() * (-2.0 / math.sqrt(math.pi))


def erfc(input, *, out=None):
    """``1 - erf(input)``, without cancellation for large inputs."""
    return unary_op(input, ErfcBackward0, out)


class ErfinvBackward0(FloatUnaryOp):
    op_name = "erfinv"
    kernel = staticmethod(_special.erfinv)
    saves = (RESULT,)

    def backward(self, g):
        r = self.saved_tensors[0]
        return g * (r * r).exp() * (0.5 * math.sqrt(math.pi))


def erfinv(input, *, out=None):
    """Inverse error function on (-1, 1) (±inf at ±1, NaN outside)."""
    return unary_op(input, ErfinvBackward0, out)


class Deg2RadBackward0(FloatUnaryOp):
    op_name = "deg2rad"
    kernel = staticmethod(lambda xp, a: a * (math.pi / 180.0))

    def backward(self, g):
        return g * (math.pi / 180.0)


class Rad2DegBackward0(FloatUnaryOp):
    op_name = "rad2deg"
    kernel = staticmethod(lambda xp, a: a * (180.0 / math.pi))

    def backward(self, g):
        return g * (180.0 / math.pi)


def deg2rad(input, *, out=None):
    """Degrees to radians."""
    return unary_op(input, Deg2RadBackward0, out)


def rad2deg(input, *, out=None):
    """Radians to degrees."""
    return unary_op(input, Rad2DegBackward0, out)


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

