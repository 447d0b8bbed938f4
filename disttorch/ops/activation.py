"""Activation functions with ``torch.nn.functional`` semantics: relu6, leaky_relu, elu/selu/celu, gelu, silu,
mish, softplus, hardtanh, hardsigmoid, hardswish, logsigmoid, shrinkage functions, glu, prelu, rrelu; softmin,
gumbel_softmax and the functional ``softmax``/``log_softmax`` (implicit-dim form) come from softmax_functional.py.

The smooth, hot activations have a small dedicated node (``_ActNode``): forward runs one NumPy-level kernel
(in float32 for float16/bfloat16), backward multiplies by f'(x) computed on arrays, or with Tensor ops when
``create_graph`` asks for a differentiable backward. The rest are compositions of differentiable Tensor ops.
``inplace=True`` goes through the in-place machinery of ``inplace.py`` (version bump, graph rebase, leaf check).
"""
from __future__ import annotations


import numpy as np  # dtype constants only

from .. import _dtype as D
from .. import _tensor as T
from .._device import to_host
from ..amp._state import STATE as _AC
from ..amp._state import cast_lower as _autocast
from ..autograd.op import Op
from . import _gelu as _G
from ._gelu import _erfc_abs, _gelu_deriv_erfc, _gelu_exact
from . import inplace as _I
from . import random as _R
from ._helpers import quiet, tensor_arg
from .pointwise import sigmoid, tanh  # noqa: F401 - F.sigmoid and F.tanh are these functions
from .pointwise_sign import relu as _relu
from .softmax_functional import gumbel_softmax, log_softmax, softmax, softmin  # noqa: F401 - F.softmax and friends

__all__ = ["relu_", "selu", "selu_", "celu", "celu_", "prelu", "rrelu", "rrelu_", "hardshrink", "threshold",
           "threshold_"]

FUNCTIONAL = ("relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "prelu", "rrelu", "rrelu_", "elu", "elu_",
              "selu", "selu_", "celu", "celu_", "gelu", "silu", "mish", "softplus", "hardtanh", "hardtanh_",
              "hardsigmoid", "hardswish", "logsigmoid", "softsign", "softshrink", "hardshrink", "tanhshrink",
              "threshold", "threshold_", "glu", "softmin", "softmax", "log_softmax", "gumbel_softmax", "sigmoid",
              "tanh")

_F32 = np.dtype(np.float32)
_LOW = (np.dtype(np.float16), D.bfloat16.np)
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


# ---- shared plumbing -------------------------------------------------------------------------------------
def _float_input(input, op: str):
    """``input`` as a Tensor, or PyTorch's error for integer/bool/complex dtypes (these kernels are float-only)."""
    x = tensor_arg(input, op)
    if x._data.dtype.kind not in "fV":
        try:
            name = _I._type_name(x.dtype)
        except KeyError:
            name = x.dtype.name
        raise RuntimeError(f'"{op}" not implemented for \'{name}\'')
    return x


def _run(xp, kernel, arr, params):
    """``kernel(xp, arr, *params)`` without NumPy warnings, in float32 for float16/bfloat16 (cast back)."""
    with quiet(xp):
        if arr.dtype in _LOW:
            return kernel(xp, arr.astype(_F32), *params).astype(arr.dtype)
        return kernel(xp, arr, *params)


class _ActNode(Op):
    """An elementwise activation ``kernel(xp, a, *params)``; its backward is ``g * f'(x)``.

    Subclasses give ``deriv(xp, a, *params)`` on arrays (the usual backward, ``backward_arrays``) and
    ``dfdx(x, *params)`` with Tensor ops (``backward``: used for ``create_graph=True``, so it differentiates
    again).
    """

    fused = None  # the node's kernels/activation.cu family ('gelu', 'silu'): the fast path on a CUDA device

    def forward(self, xp, arr, kernel, params):
        self.params = params
        self.save(0)
        y = _G.fused_forward(xp, self.fused, arr, *params) if self.fused else None
        return _run(xp, kernel, arr, params) if y is None else y

    def backward(self, g):
        (x,) = self.saved_tensors
        return g * self.dfdx(x, *self.params)

    def backward_arrays(self, xp, gd):
        xd = self.saved_tensors[0]._data
        r = _G.fused_backward(xp, self.fused, gd, xd, *self.params) if self.fused else None
        if r is not None:
            return r
        with quiet(xp):
            if xd.dtype in _LOW:
                r = (gd.astype(_F32) * self.deriv(xp, xd.astype(_F32), *self.params)).astype(xd.dtype)
            else:
                r = gd * self.deriv(xp, xd, *self.params)
        return r.astype(xd.dtype, copy=False)


def _act(x, kernel, node_cls, params=()):
    """Apply ``kernel`` to float Tensor ``x`` through ``node_cls`` (which saves ``x`` when grad is needed)."""
    return node_cls.apply(x, kernel=kernel, params=params)


def _inplace(input, op: str, fn, *args):
    """``fn(input, *args)`` written into ``input`` (version bump; graph rebase when recording)."""
    return _I.inplace(tensor_arg(input, op), op, fn, *args)


def _sigmoid_a(xp, a):
    return 1.0 / (1.0 + xp.exp(-a))  # exp overflow for very negative a gives exactly 0 (callers are quiet)


def _softplus_a(xp, z):
    """``log(1 + exp(z))`` without overflow."""
    return xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))


# ---- relu family -----------------------------------------------------------------------------------------
def relu(input, inplace: bool = False):
    """``max(input, 0)``; ``inplace=True`` overwrites ``input``."""
    if inplace:
        return relu_(input)
    return _relu(input)


def relu_(input):
    """In-place ``relu``."""
    return tensor_arg(input, "relu_").relu_()


class HardtanhBackward0(_ActNode):
    op_name = "hardtanh"

    @staticmethod
    def deriv(xp, a, lo, hi):
        return ((a > lo) & (a < hi)).astype(a.dtype)

    @staticmethod
    def dfdx(x, lo, hi):
        return ((x > lo) & (x < hi)).to(x.dtype)


def _hardtanh_k(xp, a, lo, hi):
    return xp.minimum(xp.maximum(a, lo), hi)  # not clip: NaN propagates


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
    """Clamp to ``[min_val, max_val]``; the gradient is zero outside the open interval (as PyTorch)."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    if inplace:
        return _inplace(input, "hardtanh_", hardtanh, min_val, max_val)
    x = tensor_arg(input, "hardtanh")
    kind = x._data.dtype.kind
    if kind in "fV":
        return _act(x, _hardtanh_k, HardtanhBackward0, (min_val, max_val))
    if kind == "b":
        raise RuntimeError("Bool inputs not supported for hardtanh")
    if kind == "c":
        raise RuntimeError("\"hardtanh\" not implemented for complex tensors")
    lo, hi = int(min_val), int(max_val)  # integer tensors truncate the bounds (no type promotion)
    if kind == "u" and (lo < 0 or hi < 0):
        raise RuntimeError("cannot do hardtanh on an unsigned type with negative limits")
    return T._wrap(x._xp.clip(x._data, lo, hi).astype(x._data.dtype, copy=False))


def hardtanh_(input, min_val: float = -1.0, max_val: float = 1.0):
    """In-place ``hardtanh``."""
    return hardtanh(input, min_val, max_val, inplace=True)


def relu6(input, inplace: bool = False):
    """``min(max(input, 0), 6)``."""
    return hardtanh(input, 0.0, 6.0, inplace)


class LeakyReluBackward0(_ActNode):
    op_name = "leaky_relu"

    @staticmethod
    def deriv(xp, a, slope):
        d = xp.multiply(a > 0, 1.0 - slope, dtype=a.dtype)
        d += slope
        return d

    @staticmethod
    def dfdx(x, slope):
        return (x > 0).to(x.dtype) * (1.0 - slope) + slope


def _leaky_k(xp, a, slope):
    # max/min instead of a data-dependent select (several times faster on random signs); NaN propagates
    if 0.0 <= slope <= 1.0:
        return xp.maximum(a, a * slope)
    if slope > 1.0:
        return xp.minimum(a, a * slope)
    return xp.where(a > 0, a, a * slope)


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False):
    """``input`` where positive, ``negative_slope * input`` elsewhere."""
    if inplace:
        return _inplace(input, "leaky_relu_", leaky_relu, negative_slope)
    return _act(_float_input(input, "leaky_relu"), _leaky_k, LeakyReluBackward0, (float(negative_slope),))


def leaky_relu_(input, negative_slope: float = 0.01):
    """In-place ``leaky_relu``."""
    return leaky_relu(input, negative_slope, inplace=True)


def prelu(input, weight):
    """``leaky_relu`` with a learnable slope ``weight`` (1 element, or one per channel: dim 1 of ``input``)."""
    x = tensor_arg(input, "prelu")
    w = tensor_arg(weight, "prelu", "weight")
    if _AC.active:
        x, w = _autocast(x, w)
    n = w.numel()
    if n != 1:
        if x.ndim == 0:
            raise RuntimeError("prelu: Not allow zero-dim input tensor.")
        c = x.shape[1] if x.ndim > 1 else 1
        if c != n:
            raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found parameter "
                               f"numbers = {n} and channel size = {c}.")
    if w.ndim > 1:
        raise RuntimeError(f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: ndim = {w.ndim}")
    if x.ndim != w.ndim:
        shape = [1] * x.ndim
        if x.ndim > 1:
            shape[1] = n
        w = w.reshape(shape)
    return x.where(x > 0, w * x)


def rrelu(input, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False, inplace: bool = False):
    """Randomized leaky ReLU: in training, negative inputs are scaled by slopes drawn uniformly from
    ``[lower, upper]`` (disttorch's default generator); in eval, by ``(lower + upper) / 2``."""
    if lower > upper:
        raise RuntimeError("Lower bound should be less than or equal to the upper bound")
    if inplace:
        return _inplace(input, "rrelu_", rrelu, lower, upper, training)
    x = _float_input(input, "rrelu")
    if not training:
        return leaky_relu(x, (lower + upper) / 2)
    xp, a = x._xp, x._data
    ds = _R._sampler(None, xp)
    if ds is not None:  # slopes drawn on the device, no host round trip
        u = ds.uniform01(a.shape, D.float64 if a.dtype == np.float64 else D.float32)
        return x * T._wrap(xp.where(a <= 0, u * (upper - lower) + lower, 1.0).astype(a.dtype))
    rng = _R._rng(None)
    u = rng.random(a.shape, dtype=_F32) if a.dtype != np.float64 else rng.random(a.shape)
    host = to_host(a)
    noise = np.where(host <= 0, u * (upper - lower) + lower, 1.0).astype(a.dtype)
    return x * T._wrap(_R._on(xp, noise))


def rrelu_(input, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False):
    """In-place ``rrelu``."""
    return rrelu(input, lower, upper, training, inplace=True)


def threshold(input, threshold: float, value: float, inplace: bool = False):  # noqa: F811 - PyTorch's names
    """``input`` where ``input > threshold``, else ``value`` (the input's dtype is kept)."""
    if inplace:
        return threshold_(input, threshold, value)
    return ThresholdBackward0.apply(tensor_arg(input, "threshold"), th=threshold, value=value)


_threshold = threshold  # the parameters of threshold/threshold_ shadow the function's name


class ThresholdBackward0(Op):
    op_name = "threshold"

    def forward(self, xp, a, th, value):
        self.th = th
        self.save(0)
        with quiet(xp):
            return xp.where(a > th, a, value).astype(a.dtype, copy=False)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g.where(x > self.th, 0.0)


def threshold_(input, threshold: float, value: float):  # noqa: F811
    """In-place ``threshold``."""
    return _inplace(input, "threshold_", _threshold, threshold, value)


# ---- exponential linear units --------------------------------------------------------------------------
class EluBackward0(_ActNode):
    op_name = "elu"

    @staticmethod
    def deriv(xp, a, alpha, scale, input_scale):
        k = scale * alpha * input_scale
        d = xp.exp(xp.minimum(a, 0) * input_scale) * k  # k where a > 0 (exp(0)): shifted to scale below
        d += xp.multiply(a > 0, scale - k, dtype=d.dtype)
        return d

    @staticmethod
    def dfdx(x, alpha, scale, input_scale):
        neg = (x.clamp_max(0.0) * input_scale).exp() * (scale * alpha * input_scale)
        return neg.where(x <= 0, scale)


def _elu_k(xp, a, alpha, scale, input_scale):
    # scale * max(a, 0) + scale * alpha * expm1(min(a, 0) * input_scale): each term vanishes on the other side
    r = xp.expm1(xp.minimum(a, 0) * input_scale) * (scale * alpha)
    r += xp.maximum(a, 0) * scale
    return r


def _elu(input, op: str, alpha: float, scale: float, input_scale: float):
    return _act(_float_input(input, op), _elu_k, EluBackward0, (float(alpha), float(scale), float(input_scale)))


def elu(input, alpha: float = 1.0, inplace: bool = False):
    """``input`` where positive, ``alpha * (exp(input) - 1)`` elsewhere."""
    if inplace:
        return _inplace(input, "elu_", elu, alpha)
    return _elu(input, "elu", alpha, 1.0, 1.0)


def elu_(input, alpha: float = 1.0):
    """In-place ``elu``."""
    return elu(input, alpha, inplace=True)


def selu(input, inplace: bool = False):
    """Scaled ELU with the self-normalising constants (alpha ~ 1.6733, scale ~ 1.0507)."""
    if inplace:
        return _inplace(input, "selu_", selu)
    return _elu(input, "selu", _SELU_ALPHA, _SELU_SCALE, 1.0)


def selu_(input):
    """In-place ``selu``."""
    return selu(input, inplace=True)


def celu(input, alpha: float = 1.0, inplace: bool = False):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError: alpha cannot be 0 for CELU")
    if inplace:
        return _inplace(input, "celu_", celu, alpha)
    return _elu(input, "celu", alpha, 1.0, 1.0 / alpha)


def celu_(input, alpha: float = 1.0):
    """In-place ``celu``."""
    return celu(input, alpha, inplace=True)


# ---- smooth gated units ----------------------------------------------------------------------------------
class GeluBackward0(_ActNode):
    """Exact GELU keeps ``erfc(|x|/sqrt 2)`` from the forward (``node.erfc``, one array the size of the input)
    so the backward needs one ``exp`` instead of the whole erfc polynomial again."""

    op_name = "gelu"
    erfc = None
    fused = "gelu"

    def forward(self, xp, xd, kernel, params):
        if params[0] == "tanh" or _G.fused_applies(xp, xd):
            return super().forward(xp, xd, kernel, params)
        self.params = params
        self.save(0)
        with quiet(xp):
            a = xd.astype(_F32) if xd.dtype in _LOW else xd
            a = a.reshape(-1) if a.ndim == 0 else a
            e = _erfc_abs(xp, a)
            y = _gelu_exact(xp, a, e)
        if self.next_functions:
            self.erfc = e
        return y.astype(xd.dtype, copy=False).reshape(xd.shape)

    def backward_arrays(self, xp, gd):
        if self.erfc is None:
            return super().backward_arrays(xp, gd)
        xd = self.saved_tensors[0]._data
        with quiet(xp):
            a = xd.astype(_F32) if xd.dtype in _LOW else xd
            d = _gelu_deriv_erfc(xp, a.reshape(self.erfc.shape), self.erfc).reshape(xd.shape)
            d *= gd
        return d.astype(xd.dtype, copy=False)

    deriv = staticmethod(_G.gelu_deriv)
    dfdx = staticmethod(_G.gelu_dfdx)


def gelu(input, approximate: str = "none"):
    """Gaussian error linear unit ``x * Phi(x)``; ``approximate='tanh'`` uses the tanh approximation."""
    if approximate not in ("none", "tanh"):
        raise RuntimeError("approximate argument must be either none or tanh.")
    return _act(_float_input(input, "gelu"), _G.gelu_k, GeluBackward0, (approximate,))


class SiluBackward0(_ActNode):
    op_name = "silu"
    fused = "silu"

    @staticmethod
    def deriv(xp, a):
        s = _sigmoid_a(xp, a)
        return s * (1.0 + a * (1.0 - s))

    @staticmethod
    def dfdx(x):
        s = x.sigmoid()
        return s * (x * (1.0 - s) + 1.0)


def _silu_k(xp, a):
    return a * _sigmoid_a(xp, a)


def silu(input, inplace: bool = False):
    """``input * sigmoid(input)`` (swish)."""
    if inplace:
        return _inplace(input, "silu_", silu)
    return _act(_float_input(input, "silu"), _silu_k, SiluBackward0)


class MishBackward0(_ActNode):
    op_name = "mish"

    @staticmethod
    def deriv(xp, a):
        t = xp.tanh(_softplus_a(xp, a))
        return t + a * _sigmoid_a(xp, a) * (1.0 - t * t)

    @staticmethod
    def dfdx(x):
        t = softplus(x).tanh()
        return t + x * x.sigmoid() * (1.0 - t * t)


def _mish_k(xp, a):
    return a * xp.tanh(_softplus_a(xp, a))


def mish(input, inplace: bool = False):
    """``input * tanh(softplus(input))``."""
    if inplace:
        return _inplace(input, "mish_", mish)
    return _act(_float_input(input, "mish"), _mish_k, MishBackward0)


class SoftplusBackward0(_ActNode):
    op_name = "softplus"

    @staticmethod
    def deriv(xp, a, beta, thr):
        z = a * beta
        return xp.where(z > thr, 1.0, _sigmoid_a(xp, z)).astype(a.dtype, copy=False)

    @staticmethod
    def dfdx(x, beta, thr):
        z = x * beta
        return z.sigmoid().where(z <= thr, 1.0)


def _softplus_k(xp, a, beta, thr):
    z = a * beta
    return xp.where(z > thr, a, _softplus_a(xp, z) / beta)


def softplus(input, beta: float = 1.0, threshold: float = 20.0):  # noqa: F811
    """``log(1 + exp(beta * x)) / beta``, linear where ``beta * x > threshold``."""
    return _act(_float_input(input, "softplus"), _softplus_k, SoftplusBackward0, (float(beta), float(threshold)))


class LogSigmoidBackward0(_ActNode):
    op_name = "log_sigmoid"

    @staticmethod
    def deriv(xp, a):
        return _sigmoid_a(xp, -a)

    @staticmethod
    def dfdx(x):
        return (-x).sigmoid()


def _logsigmoid_k(xp, a):
    return xp.minimum(a, 0) - xp.log1p(xp.exp(-xp.abs(a)))


def logsigmoid(input):
    """``log(sigmoid(input))``, computed without overflow."""
    return _act(_float_input(input, "log_sigmoid"), _logsigmoid_k, LogSigmoidBackward0)


class HardsigmoidBackward0(_ActNode):
    op_name = "hardsigmoid"

    @staticmethod
    def deriv(xp, a):
        return ((a > -3.0) & (a < 3.0)).astype(a.dtype) * (1.0 / 6.0)

    @staticmethod
    def dfdx(x):
        return ((x > -3.0) & (x < 3.0)).to(x.dtype) * (1.0 / 6.0)


def _hardsigmoid_k(xp, a):
    return xp.minimum(xp.maximum(a + 3.0, 0.0), 6.0) / 6.0


def hardsigmoid(input, inplace: bool = False):
    """``relu6(input + 3) / 6``."""
    if inplace:
        return _inplace(input, "hardsigmoid_", hardsigmoid)
    return _act(_float_input(input, "hardsigmoid"), _hardsigmoid_k, HardsigmoidBackward0)


class HardswishBackward0(_ActNode):
    op_name = "hardswish"

    @staticmethod
    def deriv(xp, a):
        return xp.where(a < -3.0, 0.0, xp.where(a <= 3.0, a / 3.0 + 0.5, 1.0))

    @staticmethod
    def dfdx(x):
        return (x / 3.0 + 0.5).where((x >= -3.0) & (x <= 3.0), (x > 3.0).to(x.dtype))


def _hardswish_k(xp, a):
    return a * xp.minimum(xp.maximum(a + 3.0, 0.0), 6.0) / 6.0


def hardswish(input, inplace: bool = False):
    """``input * relu6(input + 3) / 6``."""
    if inplace:
        return _inplace(input, "hardswish_", hardswish)
    return _act(_float_input(input, "hardswish"), _hardswish_k, HardswishBackward0)


# ---- compositions ----------------------------------------------------------------------------------------
def softsign(input):
    """``input / (1 + |input|)``."""
    x = _float_input(input, "softsign")
    return x / (x.abs() + 1.0)


def _check_lambd(lambd, op: str) -> None:
    if lambd < 0:
        raise RuntimeError(f"{op}: lambda must be greater or equal to 0, but found to be {lambd}.")


def softshrink(input, lambd: float = 0.5):
    """``x - lambd`` above ``lambd``, ``x + lambd`` below ``-lambd``, 0 between."""
    _check_lambd(lambd, "softshrink")
    x = _float_input(input, "softshrink")
    return x - x.clamp(-lambd, lambd)


def hardshrink(input, lambd: float = 0.5):
    """``input`` where ``|input| > lambd``, else 0."""
    x = _float_input(input, "hardshrink")
    return x.where(x.abs() > lambd, 0.0)


def tanhshrink(input):
    """``input - tanh(input)``."""
    x = _float_input(input, "tanhshrink")
    return x - x.tanh()


def glu(input, dim: int = -1):
    """Gated linear unit: ``a * sigmoid(b)`` for the two halves ``a``, ``b`` of ``input`` along ``dim``."""
    x = tensor_arg(input, "glu")
    if x.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    d = T._wrap_dim(dim, x.ndim, "glu")
    n = x.shape[d]
    if n % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {d} is size {n}")
    h = n // 2
    return x.narrow(d, 0, h) * x.narrow(d, h, h).sigmoid()


class ActivationMethods:
    """Tensor methods of this family (``Tensor.relu_`` and ``Tensor.sigmoid`` live in pointwise)."""

    __slots__ = ()

    hardshrink = hardshrink
    prelu = prelu
