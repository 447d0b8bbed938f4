"""Differentiable special functions: lgamma, digamma, polygamma, mvlgamma, i0/i0e/i1/i1e, sinc, igamma/igammac,
entr, erfcx, ndtr, log_ndtr, ndtri, xlog1py, zeta (``torch.special`` and their top-level names).

Each forward is one vectorised call of a SciPy ufunc (``scipy.special``, imported on first use;
``cupyx.scipy.special`` for CUDA arrays). As in PyTorch, integer inputs compute in the default float dtype,
float16/bfloat16 compute in float32 and round back (or raise PyTorch's "not implemented for 'Half'" where its
CPU kernels do), and the gradients are PyTorch's formulas written with Tensor ops, so double backward works.
Where PyTorch has no gradient (igamma and zeta w.r.t. their first argument) backward raises its error.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from ..autograd.op import RESULT
from . import inplace as _I
from ._helpers import tensor_arg
from .elementwise import _out
from .pointwise_binary import FloatBinaryOp, _grads, _operands, where
from .pointwise_sign import FloatUnaryOp, unary_op

__all__ = ["lgamma", "digamma", "polygamma", "mvlgamma", "i0", "sinc", "igamma", "igammac"]

_F32 = np.dtype(np.float32)
_LOW = (np.dtype(np.float16), D.bfloat16.np)
_SQRT_2PI = math.sqrt(2 * math.pi)
_SCIPY_SPECIAL = None


def sp(xp):
    """``scipy.special`` for NumPy arrays (imported on first use), ``cupyx.scipy.special`` for CuPy arrays."""
    global _SCIPY_SPECIAL
    if xp is np:
        if _SCIPY_SPECIAL is None:
            import scipy.special

            _SCIPY_SPECIAL = scipy.special
        return _SCIPY_SPECIAL
    import cupyx.scipy.special

    return cupyx.scipy.special


def check_dtype(x, name: str, half: bool = True, complex_ok: bool = False) -> None:
    """PyTorch's ``"<name>_cpu" not implemented for '<dtype>'`` for dtypes its CPU kernel lacks."""
    k = x._data.dtype
    if (k.kind == "c" and not complex_ok) or (not half and k in _LOW):
        raise RuntimeError(f"\"{name}_cpu\" not implemented for '{_I._type_name(x.dtype)}'")


def widen(fn):
    """A kernel ``(xp, a) -> array`` computing float16/bfloat16 in float32 and casting back; other dtypes as given."""
    def kernel(xp, a):
        if a.dtype in _LOW:
            return fn(xp, a.astype(_F32)).astype(a.dtype)
        r = fn(xp, a)
        return r if r.dtype == a.dtype else r.astype(a.dtype)
    return kernel


def widen2(fn):
    """``widen`` for binary kernels ``(xp, a, b) -> array``."""
    def kernel(xp, a, b):
        if a.dtype in _LOW:
            return fn(xp, a.astype(_F32), b.astype(_F32)).astype(a.dtype)
        r = fn(xp, a, b)
        return r if r.dtype == a.dtype else r.astype(a.dtype)
    return kernel


def _unary(input, cls, out, half: bool = True, **attrs):
    x = tensor_arg(input, cls.op_name)
    check_dtype(x, cls.op_name, half)
    return unary_op(x, cls, out, **attrs)


def _ufunc(fname: str):
    """A kernel calling ``scipy.special.<fname>``."""
    def kernel(xp, a):
        return getattr(sp(xp), fname)(a)
    kernel.__name__ = fname
    return kernel


# ---- gamma family ----------------------------------------------------------------------------------------
def _lgamma_k(xp, a):
    return xp.where(a == -math.inf, math.inf, sp(xp).gammaln(a))  # SciPy gives -inf at -inf, PyTorch +inf


class LgammaBackward0(FloatUnaryOp):
    op_name = "lgamma"
    kernel = staticmethod(widen(_lgamma_k))
    saves = (0,)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g * digamma(x)


def lgamma(input, *, out=None):
    """``log|Gamma(input)|`` (``+inf`` at 0, at the negative integers and at ``-inf``)."""
    return _unary(input, LgammaBackward0, out)


def _digamma_k(xp, a):
    # PyTorch (and the C++ standard): digamma(+-0) = -+inf; NaN at the negative integers.
    return xp.where(a == 0, xp.copysign(math.inf, -a), sp(xp).psi(a))


class DigammaBackward0(FloatUnaryOp):
    op_name = "digamma"
    kernel = staticmethod(widen(_digamma_k))
    saves = (0,)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g * polygamma(1, x)


def digamma(input, *, out=None):
    """The logarithmic derivative of the gamma function, ``Gamma'(x) / Gamma(x)``."""
    return _unary(input, DigammaBackward0, out)


def _polygamma_k(xp, a, n):
    if n == 1:  # trigamma: zeta(2, x) with the reflection formula below 1/2, as PyTorch's calc_trigamma
        s = sp(xp)
        refl = a < 0.5
        xr = xp.where(refl, 1 - a, a)
        r = s.zeta(2.0, xr)
        pis = xp.sin(math.pi * a)
        return xp.where(refl, math.pi ** 2 / (pis * pis) - r, r)
    return sp(xp).polygamma(n, a)


class PolygammaBackward0(FloatUnaryOp):
    op_name = "polygamma"

    def forward(self, xp, a, n=1):
        if self.next_functions:
            self.n = n
            self.save(0)
        if a.dtype.kind not in "fcV":
            a = a.astype(D.get_default_dtype().np)
        return _I.quiet_call(widen(lambda p, q: _polygamma_k(p, q, n)), xp, a)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g * polygamma(self.n + 1, x)


def polygamma(n: int, input, *, out=None):
    """The ``n``-th derivative of the digamma function (``polygamma(0, x) == digamma(x)``)."""
    n = int(n)
    if n < 0:
        raise RuntimeError(f"polygamma(n, x) does not support negative n (got n={n}).")
    if n == 0:
        return digamma(input, out=out)
    return _unary(input, PolygammaBackward0, out, n=n)


def mvlgamma(input, p: int, *, out=None):
    """The multivariate log-gamma function of dimension ``p``:
    ``p (p - 1) / 4 * log(pi) + sum_{j < p} lgamma(input - j / 2)``."""
    x = tensor_arg(input, "mvlgamma")
    if x._data.dtype.kind == "b":
        raise RuntimeError("The input tensor may not be a boolean tensor.")
    p = int(p)
    if p < 1:
        raise RuntimeError(f"p has to be greater than or equal to 1 (got p={p})")
    check_dtype(x, "mvlgamma")
    if not (x.dtype.is_floating_point):
        x = x.to(D.get_default_dtype())
    offsets = T._wrap(x._xp.arange(p, dtype=np.float64).astype(x._data.dtype) * -0.5)
    r = lgamma(x.unsqueeze(-1) + offsets).sum(-1) + p * (p - 1) * 0.25 * math.log(math.pi)
    return r if out is None else _out(r, out)


# ---- modified Bessel functions of the first kind ---------------------------------------------------------
class I0Backward0(FloatUnaryOp):
    op_name = "i0"
    kernel = staticmethod(widen(_ufunc("i0")))
    saves = (0,)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g * i1(x)


def i0(input, *, out=None):
    """The modified Bessel function of the first kind of order 0."""
    return _unary(input, I0Backward0, out)


class SpecialI0EBackward0(FloatUnaryOp):
    op_name = "i0e"
    kernel = staticmethod(widen(_ufunc("i0e")))
    saves = (0, RESULT)

    def backward(self, g):
        x, r = self.saved_tensors
        return g * (i1e(x) - x.sgn() * r)


class SpecialI1Backward0(FloatUnaryOp):
    op_name = "i1"
    kernel = staticmethod(widen(_ufunc("i1")))
    saves = (0, RESULT)

    def backward(self, g):
        x, r = self.saved_tensors
        return g * _tiny_safe(x, lambda s: i0(s) - r / s)


class SpecialI1EBackward0(FloatUnaryOp):
    op_name = "i1e"
    kernel = staticmethod(widen(_ufunc("i1e")))
    saves = (0, RESULT)

    def backward(self, g):
        x, r = self.saved_tensors
        return g * _tiny_safe(x, lambda s: i0e(s) - r * (s.sgn() + s.reciprocal()))


def _tiny_safe(x, f):
    """``f(x)`` away from 0 and the limit 0.5 where ``|x| <= eps`` (PyTorch's i1/i1e backward)."""
    eps = float(np.finfo(x._data.dtype if x._data.dtype.kind == "f" else _F32).eps)
    big = x.abs() > eps
    return where(big, f(where(big, x, eps)), 0.5)


def i0e(input, *, out=None):
    """The exponentially scaled ``i0``: ``exp(-|x|) * i0(x)``."""
    return _unary(input, SpecialI0EBackward0, out)


def i1(input, *, out=None):
    """The modified Bessel function of the first kind of order 1."""
    return _unary(input, SpecialI1Backward0, out)


def i1e(input, *, out=None):
    """The exponentially scaled ``i1``: ``exp(-|x|) * i1(x)``."""
    return _unary(input, SpecialI1EBackward0, out)


# ---- sinc, entr ------------------------------------------------------------------------------------------
class SincBackward0(FloatUnaryOp):
    op_name = "sinc"
    kernel = staticmethod(widen(lambda xp, a: xp.sinc(a)))
    saves = (0,)

    def backward(self, g):
        (x,) = self.saved_tensors
        px = x * math.pi
        d = (px * px.cos() - px.sin()) / (px * x)
        d = d.where(x != 0, 0.0)
        return g * (d.conj() if x.dtype.is_complex else d)


def sinc(input, *, out=None):
    """The normalised sinc function ``sin(pi x) / (pi x)`` (1 at 0); complex inputs are supported."""
    x = tensor_arg(input, "sinc")
    return unary_op(x, SincBackward0, out)


class SpecialEntrBackward0(FloatUnaryOp):
    op_name = "entr"
    kernel = staticmethod(widen(_ufunc("entr")))
    saves = (0,)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g * -(1 + x.log())


def entr(input, *, out=None):
    """Elementwise entropy ``-x log x`` (0 at 0, ``-inf`` for negative x)."""
    return _unary(input, SpecialEntrBackward0, out)


# ---- error-function relatives -----------------------------------------------------------------------------
class SpecialErfcxBackward0(FloatUnaryOp):
    op_name = "erfcx"
    kernel = staticmethod(widen(_ufunc("erfcx")))
    saves = (0, RESULT)

    def backward(self, g):
        x, r = self.saved_tensors
        return (2.0 * x * r - 2.0 / math.sqrt(math.pi)) * g


def erfcx(input, *, out=None):
    """The scaled complementary error function ``exp(x^2) * erfc(x)``."""
    return _unary(input, SpecialErfcxBackward0, out, half=False)


class SpecialNdtrBackward0(FloatUnaryOp):
    op_name = "ndtr"
    kernel = staticmethod(widen(_ufunc("ndtr")))
    saves = (0,)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g * (x * x * -0.5).exp() * (1 / _SQRT_2PI)


def ndtr(input, *, out=None):
    """The standard normal cumulative distribution function."""
    return _unary(input, SpecialNdtrBackward0, out)


class SpecialLogNdtrBackward0(FloatUnaryOp):
    op_name = "log_ndtr"
    kernel = staticmethod(widen(_ufunc("log_ndtr")))
    saves = (0, RESULT)

    def backward(self, g):
        x, r = self.saved_tensors
        return g / _SQRT_2PI * (-(r + x * x / 2)).exp()


def log_ndtr(input, *, out=None):
    """The log of the standard normal CDF, accurate far into both tails."""
    return _unary(input, SpecialLogNdtrBackward0, out, half=False)


class SpecialNdtriBackward0(FloatUnaryOp):
    op_name = "ndtri"
    kernel = staticmethod(widen(_ufunc("ndtri")))
    saves = (RESULT,)

    def backward(self, g):
        (r,) = self.saved_tensors
        return g * _SQRT_2PI * (r * r / 2).exp()


def ndtri(input, *, out=None):
    """The inverse of :func:`ndtr` (the standard normal quantile function)."""
    return _unary(input, SpecialNdtriBackward0, out, half=False)


# ---- binary functions ------------------------------------------------------------------------------------
def _binary_check(input, other, name: str, half: bool = True, ints: bool = True):
    for v in (input, other):
        if isinstance(v, T.Tensor):
            k = v._data.dtype
            if k.kind == "c" or (not half and k in _LOW) or (not ints and k.kind in "biu"):
                raise RuntimeError(f"\"{name}_cpu\" not implemented for '{_I._type_name(v.dtype)}'")


def _not_implemented(what: str):
    raise NotImplementedError(f"the derivative for '{what}' is not implemented.")


class IgammaBackward0(FloatBinaryOp):
    op_name = "igamma"
    kernel = staticmethod(widen2(lambda xp, a, b: sp(xp).gammainc(a, b)))

    def backward(self, g):
        a, x, _ = _operands(self)
        return _grads(self, lambda: _not_implemented("igamma: input"),
                      lambda: g * ((a - 1) * x.log() - x - lgamma(a)).exp())


class IgammacBackward0(FloatBinaryOp):
    op_name = "igammac"
    kernel = staticmethod(widen2(lambda xp, a, b: sp(xp).gammaincc(a, b)))

    def backward(self, g):
        a, x, _ = _operands(self)
        return _grads(self, lambda: _not_implemented("igammac: input"),
                      lambda: -g * ((a - 1) * x.log() - x - lgamma(a)).exp())


def igamma(input, other, *, out=None):
    """The regularized lower incomplete gamma function ``P(input, other)`` (``torch.special.gammainc``).

    Only ``other`` has a gradient, as in PyTorch.
    """
    _binary_check(input, other, "igamma", ints=False)
    return IgammaBackward0.apply(input, other, out=out)


def igammac(input, other, *, out=None):
    """The regularized upper incomplete gamma function ``Q(input, other) = 1 - P(input, other)``."""
    _binary_check(input, other, "igammac", ints=False)
    return IgammacBackward0.apply(input, other, out=out)


def _xlog1py_k(xp, p, q):
    r = p * xp.log1p(q)
    # 0 * log1p(y) is 0 by definition (0 * -inf would be NaN), unless y itself is NaN.
    return xp.where((p == 0) & (q == q), 0.0, r).astype(r.dtype)


class SpecialXlog1PyBackward0(FloatBinaryOp):
    op_name = "xlog1py"
    kernel = staticmethod(widen2(_xlog1py_k))

    def backward(self, g):
        a, b, _ = _operands(self)
        return _grads(self, lambda: where((a == 0) & (b <= -1), 0.0, xlog1py(g, b)), lambda: g * a / (b + 1))


def xlog1py(input, other, *, out=None):
    """``input * log1p(other)``, defined as 0 where ``input == 0`` (unless ``other`` is NaN)."""
    _binary_check(input, other, "xlog1py")
    return SpecialXlog1PyBackward0.apply(input, other, out=out)


class SpecialZetaBackward0(FloatBinaryOp):
    op_name = "zeta"
    kernel = staticmethod(widen2(lambda xp, a, b: sp(xp).zeta(a, b)))

    def backward(self, g):
        x, q, _ = _operands(self)
        return _grads(self, lambda: _not_implemented("zeta"), lambda: g * -x * zeta(x + 1.0, q))


def zeta(input, other, *, out=None):
    """The Hurwitz zeta function ``sum_k (k + other) ** -input`` (the Riemann zeta at ``other == 1``).

    Only ``other`` has a gradient, as in PyTorch.
    """
    _binary_check(input, other, "zeta", half=False)
    return SpecialZetaBackward0.apply(input, other, out=out)


_polygamma, _mvlgamma, _igamma, _igammac = polygamma, mvlgamma, igamma, igammac


class SpecialMethods:
    """Tensor methods of the special-function family."""

    __slots__ = ()

    lgamma = lgamma
    digamma = digamma
    i0 = i0
    sinc = sinc

    def polygamma(self, n):
        return _polygamma(n, self)

    def mvlgamma(self, p):
        return _mvlgamma(self, p)

    def igamma(self, other):
        return _igamma(self, other)

    def igammac(self, other):
        return _igammac(self, other)

    lgamma_ = _I.unary_method("lgamma_", None, lgamma, False)
    digamma_ = _I.unary_method("digamma_", None, digamma, False)
    i0_ = _I.unary_method("i0_", None, i0, False)
    sinc_ = _I.unary_method("sinc_", None, sinc, False)

    def polygamma_(self, n):
        return _I.inplace(self, "polygamma_", lambda s: _polygamma(n, s))

    def mvlgamma_(self, p):
        return _I.inplace(self, "mvlgamma_", _mvlgamma, p)

    def igamma_(self, other):
        return _I.inplace(self, "igamma_", _igamma, other)

    def igammac_(self, other):
        return _I.inplace(self, "igammac_", _igammac, other)
