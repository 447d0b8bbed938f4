"""Array kernels of the exact GELU in float32 and float64 (the ops live in ops/activation.py).

``gelu(x) = relu(x) - |x| erfc(|x| / sqrt 2) / 2`` and ``gelu'(x) = Phi(x) + x phi(x)`` with
``Phi(x) = 1/2 + sign(x) (1 - erfc(|x| / sqrt 2)) / 2``: written around ``erfc`` of a non-negative argument, the
forward needs no sign handling and no ``1 + erf`` cancellation, and the backward can reuse the forward's erfc.
"""
from __future__ import annotations

import math

import numpy as np

from . import _special

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

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
