"""Array kernels of GELU in float32 and float64, and the fused-kernel glue of GELU and SiLU (the ops live in
ops/activation.py).

``gelu(x) = relu(x) - |x| erfc(|x| / sqrt 2) / 2`` and ``gelu'(x) = Phi(x) + x phi(x)`` with
``Phi(x) = 1/2 + sign(x) (1 - erfc(|x| / sqrt 2)) / 2``: written around ``erfc`` of a non-negative argument, the
forward needs no sign handling and no ``1 + erf`` cancellation, and the backward can reuse the forward's erfc.

On a CUDA device, contiguous float32/float16 inputs run ``kernels/activation.cu`` instead (:func:`fused_forward`,
:func:`fused_backward`); the array code here stays the reference and the fallback.
"""
from __future__ import annotations

import math

import numpy as np

from ..kernels import launch as L
from . import _fused, _special

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_K = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715

# Numerical Recipes' erfcc for z >= 0: relative error below 1.2e-7 (float32's own precision) everywhere,
# the tail included.
_ERFC_POLY = (0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806, 0.09678418, 0.37409196,
              1.00002368, -1.26551223)


def _erfc_nonneg_f32(xp, z):
    """``erfc(z)`` of a float32 array ``z >= 0``, computed in place in two temporaries (each step of the
    Horner scheme is one streaming pass; no sign handling: callers pass ``|x|``)."""
    t = z * 0.5
    t += 1.0
    xp.divide(1.0, t, out=t)
    p = t * _ERFC_POLY[0]
    for c in _ERFC_POLY[1:-1]:
        p += c
        p *= t
    p += _ERFC_POLY[-1]
    z2 = xp.multiply(z, z, out=z)  # z is the caller's temporary
    p -= z2
    xp.exp(p, out=p)
    p *= t
    return p


def _erfc_abs(xp, a):
    """``erfc(|a| / sqrt 2)``: float64 by Cody's erfc, float32 by the fast form above (``a`` at least 1-d, so
    the in-place steps have arrays to write into)."""
    z = xp.abs(a)
    z *= _SQRT1_2
    if a.dtype == np.float64:
        return _special.erfc(xp, z)
    return _erfc_nonneg_f32(xp, z)


def _gelu_exact(xp, a, e):
    """``x * Phi(x) = relu(x) - |x| erfc(|x| / sqrt 2) / 2``: both terms are exact in the tails (no
    ``1 + erf`` cancellation for negative x, where GELU is tiny)."""
    r = xp.abs(a)
    r *= e
    r *= -0.5
    r += xp.maximum(a, 0.0)
    return r


def _gelu_deriv_erfc(xp, a, e):
    """``Phi(x) + x phi(x)`` from ``e = erfc(|x| / sqrt 2)``: ``Phi(x) = 1/2 + sign(x) (1 - e) / 2``."""
    d = e * -0.5
    d += 0.5
    d *= xp.sign(a)
    d += 0.5
    q = a * a
    q *= -0.5
    xp.exp(q, out=q)
    q *= a
    q *= _INV_SQRT_2PI
    d += q
    return d


def gelu_k(xp, a, approximate):
    """GELU of array ``a`` (``approximate`` 'none' or 'tanh')."""
    if approximate == "tanh":
        return 0.5 * a * (1.0 + xp.tanh(_GELU_K * (a + _GELU_C * a * a * a)))
    a1 = a.reshape(-1) if a.ndim == 0 else a
    return _gelu_exact(xp, a1, _erfc_abs(xp, a1)).reshape(a.shape)


def gelu_deriv(xp, a, approximate):
    """GELU's derivative on array ``a``."""
    if approximate == "tanh":
        t = xp.tanh(_GELU_K * (a + _GELU_C * a * a * a))
        return 0.5 * (1.0 + t) + (0.5 * _GELU_K) * a * (1.0 - t * t) * (1.0 + 3.0 * _GELU_C * a * a)
    a1 = a.reshape(-1) if a.ndim == 0 else a
    return _gelu_deriv_erfc(xp, a1, _erfc_abs(xp, a1)).reshape(a.shape)


def gelu_dfdx(x, approximate):
    """GELU's derivative with Tensor ops on Tensor ``x`` (differentiable again: ``create_graph``)."""
    if approximate == "tanh":
        t = ((x * x * x * _GELU_C + x) * _GELU_K).tanh()
        return (t + 1.0) * 0.5 + x * (1.0 - t * t) * (x * x * (3.0 * _GELU_C) + 1.0) * (0.5 * _GELU_K)
    return ((x * _SQRT1_2).erf() + 1.0) * 0.5 + x * (x * x * -0.5).exp() * _INV_SQRT_2PI


def fused_applies(xp, a) -> bool:
    """Whether ``kernels/activation.cu`` takes array ``a`` (see ``ops._fused.launcher``)."""
    return a.size > 0 and _fused.launcher(xp, a) is not None


def fused_forward(xp, kind: str, a, approximate: str = "none"):
    """``kind`` ('gelu' or 'silu') of ``a`` by ``kernels/activation.cu``, or None when the kernel does not apply."""
    run = _fused.launcher(xp, a)
    if run is None or not a.size:
        return None
    out = xp.empty_like(a)
    run(L.activation_plan(kind, a, out, approximate))
    return out


def fused_backward(xp, kind: str, g, x, approximate: str = "none"):
    """``g * f'(x)`` by ``kernels/activation.cu``, or None when the kernel does not apply (the caller's generic code
    runs then). A non-contiguous gradient (a broadcast from ``sum``) is copied contiguous first."""
    run = _fused.launcher(xp, x)
    if run is None or not x.size or g.shape != x.shape or g.dtype != x.dtype:
        return None
    out = xp.empty_like(x)
    run(L.activation_backward_plan(kind, xp.ascontiguousarray(g), x, out, approximate))
    return out
