"""Poisson samples drawn on the device from a CUDA generator (Philox, :class:`~.random_device.DeviceSampler`).

A sampler that loops per element until it accepts cannot be written over an array module without asking the
host whether every element is done. So every element runs a fixed amount of work, chosen so that the chance of
a sample the exact sampler would not give is below 1e-15:

* rates below 10: inversion, ``X = #{k : F(k) <= u}`` with the CDF ``F`` summed over ``k <= 44`` (so at most 45;
  the tail of Poisson(10) beyond 44 is 5e-16);
* rates from 10: Hörmann's transformed rejection with squeeze (PTRS, as NumPy's sampler), 28 proposals per
  element evaluated at once; the first accepted one is the sample. Each proposal is accepted with probability
  about 0.75 at rate 10 (0.89 for large rates, measured), so all 28 fail with probability about 1e-17; such an
  element takes ``floor(rate)``.

Both parts run on every element (no compaction: that would need the count on the host) and ``where`` picks.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _dtype as D

__all__ = ["poisson_device"]

_SMALL = 10.0  # rates below this use inversion (NumPy's threshold too)
_TERMS = 45  # k = 0 .. 44
_ROUNDS = 28
_CHUNK = 1 << 16  # elements per batch: temporaries of 45 x 65536 float64 (23 MiB) at most
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _lgamma_big(xp, z):
    """``lgamma(z)`` for ``z >= 9`` by Stirling's series (error below 3e-12)."""
    r = 1.0 / z
    r2 = r * r
    series = r * (1.0 / 12 - r2 * (1.0 / 360 - r2 * (1.0 / 1260 - r2 / 1680)))
    return (z - 0.5) * xp.log(z) - z + _HALF_LOG_2PI + series


def _log_factorial(xp, k):
    """``log(k!)`` for a float64 array of integers ``k >= 0``: Stirling at ``k + 9``, less the logs of
    ``k + 1 .. k + 8`` (below 1e6, where those products stay finite)."""
    z = xp.minimum(k, 1e6) + 1.0
    p = (z * (z + 1.0)) * ((z + 2.0) * (z + 3.0))
    q = ((z + 4.0) * (z + 5.0)) * ((z + 6.0) * (z + 7.0))
    shifted = _lgamma_big(xp, z + 8.0) - xp.log(p) - xp.log(q)
    return xp.where(k < 1e6, shifted, _lgamma_big(xp, k + 1.0))


def _inversion(ds, lam):
    """Samples for rates ``lam < 10`` of a 1-D float64 array (others give a meaningless value, replaced later)."""
    xp = ds.xp
    lam = xp.where(lam < _SMALL, lam, 0.0)
    u = ds.uniform01(lam.shape, D.float64)
    j = xp.arange(1, _TERMS, dtype=np.float64)[:, None]
    terms = xp.concatenate([xp.exp(-lam)[None], lam[None] / j])  # p(0), then the ratios p(k) / p(k - 1)
    cdf = xp.cumsum(xp.cumprod(terms, axis=0), axis=0)
    return (u[None] >= cdf).sum(axis=0).astype(np.float64)


def _ptrs(ds, lam):
    """Samples for rates ``lam >= 10`` of a 1-D float64 array (smaller rates are evaluated at 10)."""
    xp = ds.xp
    lam = xp.maximum(lam, _SMALL)[None]
    b = 0.931 + 2.53 * xp.sqrt(lam)
    a = -0.059 + 0.02483 * b
    log_invalpha = xp.log(1.1239 + 1.1328 / (b - 3.4))
    vr = 0.9277 - 3.6224 / (b - 2.0)
    shape = (_ROUNDS, lam.shape[1])
    u = ds.uniform01(shape, D.float64) - 0.5
    v = ds.uniform01(shape, D.float64)
    us = 0.5 - xp.abs(u)
    us_safe = xp.maximum(us, 1e-300)  # u = -0.5 gives us = 0: that proposal's k is negative, rejected below
    k = xp.floor((2.0 * a / us_safe + b) * u + lam + 0.43)
    quick = (us >= 0.07) & (v <= vr)
    possible = (k >= 0) & ~((us < 0.013) & (v > us))
    ks = xp.where(possible, k, 0.0)
    lhs = xp.log(xp.maximum(v, 1e-300)) + log_invalpha - xp.log(a / (us_safe * us_safe) + b)
    accept = quick | (possible & (lhs <= -lam + ks * xp.log(lam) - _log_factorial(xp, ks)))
    first = xp.argmax(accept.astype(np.int8), axis=0)  # the first accepted proposal (0 if none: replaced below)
    pick = xp.take_along_axis(k, first[None], axis=0)[0]
    return xp.where(accept.any(axis=0), pick, xp.floor(lam[0]))


_LAM_MAX = 9.223372006484771e18


def poisson_device(ds, rates, make_error):
    """Poisson samples in ``rates``' dtype and shape with the rates ``rates`` (a device array), drawn from the
    :class:`~.random_device.DeviceSampler` ``ds``; a negative or NaN rate is reported at the next synchronisation
    (``make_error`` builds the error), and so is a rate past the CPU's limit (ValueError, as on the CPU)."""
    from ..cuda import _checks

    xp = ds.xp
    lam = rates.astype(np.float64).reshape(-1)
    _checks.defer(~(lam >= 0).all(), make_error)
    # the CPU's limit (NumPy's): past it the PTRS proposals overflow int64 and the samples would be meaningless
    _checks.defer((lam >= _LAM_MAX).any(), lambda: ValueError("lam value too large"))
    if lam.size == 0:
        return rates.copy()
    out = []
    for s in range(0, lam.size, _CHUNK):
        part = lam[s:s + _CHUNK]
        out.append(xp.where(part < _SMALL, _inversion(ds, part), _ptrs(ds, part)))
    out = out[0] if len(out) == 1 else xp.concatenate(out)
    return out.reshape(rates.shape).astype(rates.dtype)
