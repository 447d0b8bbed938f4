"""Sign, absolute value and rounding: abs, sign, sgn, signbit, floor, ceil, round, trunc, frac, relu, nan_to_num.

Unlike the float-valued functions in pointwise.py (which re-exports these), integer and bool
inputs keep their dtype, as in PyTorch. Backward follows PyTorch: abs'(0) = 0, relu'(0) = 0, and
sign and the rounding functions are piecewise constant (zero gradient).

Both unary families run through :class:`UnaryOp`, an ``Op`` whose subclasses declare their kernel, what
they save and whether integer inputs compute in the default float dtype; :func:`unary_op` is the public
functions' shared body.
"""
from __future__ import annotations

import numpy as np  # the pool split below is for NumPy arrays only

from .. import _compiled as _C
from .. import _dtype as D
from .. import _parallel as _P
from .. import _tensor as T
from ..autograd.op import RESULT, Op
from . import inplace as _I
from ._helpers import tensor_arg
from .elementwise import _out

__all__ = ["abs", "absolute", "sign", "sgn", "signbit", "floor", "ceil", "round", "trunc", "fix", "frac", "relu",
           "nan_to_num"]

_FLOAT_KINDS = "fcV"  # V: ml_dtypes' bfloat16 is a void-kind dtype


class UnaryOp(Op):
    """An elementwise op of one tensor (the shared recipe of the unary families).

    Subclasses set ``kernel`` (a ufunc name of ``xp``, or ``staticmethod(fn)`` with ``fn(xp, array)``),
    ``saves`` (``(0,)`` the input, ``(RESULT,)`` the output, ``()`` nothing) and ``to_float`` (integer and
    bool inputs compute in the default float dtype: exp, sqrt...; otherwise the dtype is kept: abs, floor...).
    """

    kernel = None
    saves = ()
    to_float = False

    def forward(self, xp, a):
        if self.to_float and a.dtype.kind not in _FLOAT_KINDS:
            a = a.astype(D.get_default_dtype().np)
        if self.next_functions and self.saves:
            self.save(*self.saves)
        k = self.kernel
        if k.__class__ is str:
            if a.size >= _P.MIN_SIZE and xp is np:  # large: split over the intra-op pool (disttorch/_parallel.py)
                return _I.quiet_call(_P.ufunc, getattr(xp, k), a)
            return _I.quiet_call(getattr(xp, k), a)
        return _I.quiet_call(k, xp, a)


class FloatUnaryOp(UnaryOp):
    """A ``UnaryOp`` computing integer and bool inputs in the default float dtype."""

    to_float = True


def unary_op(input, cls, out=None, **attrs):
    """Run the unary op ``cls`` on ``input`` (a Tensor), honouring ``out=`` (the body of exp, abs, ...).

    A string ``kernel`` writes straight into a matching ``out`` when no graph is needed (no temporary).
    """
    if input.__class__ is not T.Tensor and not isinstance(input, T.Tensor):
        tensor_arg(input, cls.op_name)
    if out is None:
        return cls.apply(input, **attrs) if attrs else cls.apply(input)
    if cls.kernel.__class__ is str and out.__class__ is T.Tensor and not attrs:
        arr = input._data
        if cls.to_float and arr.dtype.kind not in _FLOAT_KINDS:
            arr = arr.astype(D.get_default_dtype().np)
        if (out._data.dtype == arr.dtype and out._data.shape == arr.shape
                and not T.needs_grad(input, out)):
            _I.ufunc_into(out, cls.op_name, getattr(input._xp, cls.kernel), arr)
            return out
    return cls.apply(input, out=out, **attrs)


class _ZeroGrad(UnaryOp):
    """Piecewise-constant functions: the gradient is zero (PyTorch's convention)."""

    def backward(self, g):
        return T._wrap(g._xp.zeros_like(g._data))


class AbsBackward0(UnaryOp):
    op_name = "abs"
    saves = (0,)

    @staticmethod
    def kernel(xp, a):
        return a.copy() if a.dtype.kind == "b" else xp.abs(a)

    def backward(self, g):
        x = self.saved_tensors[0]
        return g * x.sgn()


def abs(input, *, out=None):  # noqa: A001 - PyTorch's name
    """Absolute value (integer dtypes are kept; the gradient at 0 is 0)."""
    return unary_op(input, AbsBackward0, out)


def _sign_k(xp, a):
    if a.dtype.kind == "b":
        return a.copy()
    r = xp.sign(a, out=xp.empty_like(a))  # out= keeps 0-d results arrays
    if a.dtype.kind not in "iu":
        r[xp.isnan(r)] = 0  # PyTorch computes (0 < x) - (x < 0): NaN gives 0
    return r


def _sgn_k(xp, a):
    if a.dtype.kind != "c":
        return _sign_k(xp, a)
    m = xp.abs(a)
    return xp.where(m == 0, 0, a / xp.where(m == 0, 1, m))


class SignBackward0(_ZeroGrad):
    op_name = "sign"
    kernel = staticmethod(_sign_k)


class SgnBackward0(_ZeroGrad):
    op_name = "sgn"
    kernel = staticmethod(_sgn_k)


def sign(input, *, out=None):
    """-1, 0 or 1 by the sign of each element (NaN gives 0, as in PyTorch)."""
    return unary_op(input, SignBackward0, out)


def sgn(input, *, out=None):
    """``sign`` for real tensors (``x / |x|`` for complex)."""
    return unary_op(input, SgnBackward0, out)


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


def _rounder(ufunc_name: str):
    def kernel(xp, a):
        return a.copy() if a.dtype.kind in "biu" else getattr(xp, ufunc_name)(a)
    return staticmethod(kernel)


class FloorBackward0(_ZeroGrad):
    op_name = "floor"
    kernel = _rounder("floor")


class CeilBackward0(_ZeroGrad):
    op_name = "ceil"
    kernel = _rounder("ceil")


class TruncBackward0(_ZeroGrad):
    op_name = "trunc"
    kernel = _rounder("trunc")


def floor(input, *, out=None):
    """Round down to an integer value (integer tensors are returned as a copy)."""
    return unary_op(input, FloorBackward0, out)


def ceil(input, *, out=None):
    """Round up to an integer value."""
    return unary_op(input, CeilBackward0, out)


def trunc(input, *, out=None):
    """Round toward zero."""
    return unary_op(input, TruncBackward0, out)


fix = trunc


class RoundBackward0(_ZeroGrad):
    op_name = "round"

    def forward(self, xp, a, decimals=0):
        if a.dtype.kind in "biu":
            return a.copy() if decimals >= 0 else xp.round(a, decimals)
        if decimals == 0:
            return xp.rint(a)
        if decimals > 0:
            p = 10.0 ** decimals
            return xp.rint(a * p) / p
        p = 10.0 ** -decimals
        return xp.rint(a / p) * p


def round(input, *, decimals: int = 0, out=None):  # noqa: A001 - PyTorch's name
    """Round half to even, to ``decimals`` decimal places (negative: to tens, hundreds, ...)."""
    decimals = int(decimals)
    if decimals:
        return unary_op(input, RoundBackward0, out, decimals=decimals)
    return unary_op(input, RoundBackward0, out)


class FracBackward0(UnaryOp):
    op_name = "frac"

    @staticmethod
    def kernel(xp, a):
        return a - xp.trunc(a)

    def backward(self, g):
        return g


def frac(input, *, out=None):
    """``input - trunc(input)`` (floating tensors only)."""
    x = tensor_arg(input, "frac")
    if x._data.dtype.kind in "biu":
        raise RuntimeError(f'"frac_cpu" not implemented for \'{_I._type_name(x.dtype)}\'')
    return unary_op(x, FracBackward0, out)


_BITS = {2: "int16", 4: "int32", 8: "int64"}


class ReluBackward0(UnaryOp):
    op_name = "relu"
    saves = (RESULT,)

    @staticmethod
    def kernel(xp, a):
        return xp.maximum(a, 0)

    def forward(self, xp, a):  # UnaryOp's, without its generic steps: relu is on every hot path
        if self.next_functions:
            self.save(RESULT)
        if a.size >= _C.MIN_ELEMENTS and xp is np and a.dtype in _C.FLOAT and a.flags.c_contiguous:
            out = _relu_compiled(a)
            if out is not None:
                return out
        if a.size >= _P.MIN_STREAM and xp is np and a.dtype.kind == "f" and a.flags.c_contiguous:
            out = np.empty_like(a)
            _I.quiet_call(_P.map_into, np.maximum, out, a, 0)
            return out
        return _I.quiet_call(xp.maximum, a, 0)

    def backward(self, g):
        r = self.saved_tensors[0]
        return g.where(r > 0, 0.0)

    def backward_arrays(self, xp, ga):
        ra = self.saved_tensors[0]._data
        if ga.dtype == ra.dtype and ga.shape == ra.shape and ga.dtype.kind in "fV":
            # threshold_backward(g, r, 0) = (r <= 0 ? 0 : g) as one bitwise AND with a 0 / all-ones mask:
            # exact (+0.0, no inf * 0 = NaN) and as cheap as a multiply; np.where is branchy and ~6x slower.
            bits = _BITS.get(ga.dtype.itemsize)
            if (ga.size >= _C.MIN_ELEMENTS and xp is np and ga.dtype in _C.FLOAT and ga.flags.c_contiguous
                    and ra.flags.c_contiguous):
                out = _relu_grad_compiled(ga, ra)
                if out is not None:
                    return out
            if (bits is not None and ga.size >= _P.MIN_STREAM and xp is np and ga.flags.c_contiguous
                    and ra.flags.c_contiguous):
                out = np.empty_like(ga)
                _P.map_into(lambda g, r, out: _relu_grad_into(g, r, out, bits), out, ga, ra)
                return out
            if bits is not None and ga.ndim:
                mask = xp.less_equal(ra, 0).view("int8")
                mask -= 1
                return xp.bitwise_and(ga.view(bits), mask, dtype=bits).view(ga.dtype)
        res = xp.where(ra > 0, ga, xp.zeros((), dtype=ga.dtype))
        return res.astype(ga.dtype, copy=False)


def _relu_compiled(a):
    """relu through the compiled kernel (split over the pool when large), or None without numba."""
    k = _C.get("pointwise")
    if k is None:
        return None
    out = np.empty_like(a)
    af, of = a.reshape(-1), out.reshape(-1)
    _C.run_planes(a.size, a.size, lambda i, j: k.relu(af[i:j], of[i:j]))
    return out


def _relu_grad_compiled(g, r):
    """``ReluBackward0``'s gradient through the compiled kernel (split over the pool when large), or None."""
    k = _C.get("pointwise")
    if k is None:
        return None
    out = np.empty_like(g)
    gf, rf, of = g.reshape(-1), r.reshape(-1), out.reshape(-1)
    _C.run_planes(g.size, g.size, lambda a, b: k.relu_grad(gf[a:b], rf[a:b], of[a:b]))
    return out


def _relu_grad_into(g, r, out, bits: str) -> None:
    """``ReluBackward0``'s masked AND on NumPy pieces, written into ``out`` (one piece of the pool split)."""
    mask = np.less_equal(r, 0).view("int8")
    mask -= 1
    np.bitwise_and(g.view(bits), mask, out=out.view(bits))


def relu(input):
    """``max(input, 0)`` elementwise (NaN propagates)."""
    x = tensor_arg(input, "relu")
    if x._data.dtype.kind == "b":
        raise RuntimeError('"clamp_min_cpu" not implemented for \'Bool\'')
    return ReluBackward0.apply(x)


class NanToNumBackward0(UnaryOp):
    op_name = "nan_to_num"

    def forward(self, xp, a, nan=0.0, posinf=None, neginf=None):
        if self.next_functions:
            self.save(0)
        if a.dtype.kind in "biu":
            return a.copy()
        info = D.finfo(D._FROM_NP[a.dtype])
        r = xp.where(a != a, nan, a).astype(a.dtype)
        r = xp.where(r == float("inf"), info.max if posinf is None else posinf, r).astype(a.dtype)
        return xp.where(r == float("-inf"), info.min if neginf is None else neginf, r).astype(a.dtype)

    def backward(self, g):
        x = self.saved_tensors[0]
        return g.where(x.isfinite(), 0.0)


def nan_to_num(input, nan: float = 0.0, posinf=None, neginf=None, *, out=None):
    """Replace NaN, +inf and -inf by finite numbers (infinities default to the dtype's extremes)."""
    return unary_op(input, NanToNumBackward0, out, nan=nan, posinf=posinf, neginf=neginf)


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
