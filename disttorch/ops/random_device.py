"""Random numbers drawn on the device: Philox4x32-10 from (seed, offset), written once over the array module.

A CUDA :class:`~disttorch.Generator` holds a 64-bit seed and a 64-bit offset, as PyTorch's CUDA generator does.
Each draw of ``n`` 32-bit words runs Philox on the counters ``(i, offset)`` for ``i < ceil(n / 4)`` with the seed
as key, on the device, then advances the offset by one: no host data is involved, the state is 16 bytes
(``get_state``/``set_state``) and the same (seed, offset) gives the same numbers on a GPU, on the stand-in device
and on the CPU. It is the generator of ``kernels/dropout.cu`` (element ``i`` of a draw uses word ``i % 4`` of block
``i // 4``), so a fused kernel can take over a draw bit for bit.

CuPy's own ``cupy.random`` is not used: it has no state to save and restore, and its bounded integers reject
samples with a host synchronisation. The samplers map words to values as follows: floats in [0, 1) from the top
24 (float32), 53 (float64, two words) or mantissa bits (float16/bfloat16); normals by Box-Muller; integers in
[low, high) by multiply-shift for ranges up to 2**32 and by a 64-bit remainder above (bias below 2**-32 resp.
range / 2**64); permutations by sorting 64-bit random keys.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _dtype as D

__all__ = ["DeviceSampler", "philox_words"]

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_LO = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_MASK32 = 0xFFFFFFFF
_MANTISSA = {"float16": 11, "bfloat16": 8}


def philox_words(xp, n: int, seed: int, offset: int):
    """``n`` uint32 random words (as uint64 values) of Philox4x32-10 for ``(seed, offset)``, on ``xp``."""
    blocks = (n + 3) // 4
    g = xp.arange(blocks, dtype=np.uint64)
    c0, c1 = g & _LO, g >> _S32
    c2 = xp.full(blocks, offset & _MASK32, dtype=np.uint64)
    c3 = xp.full(blocks, (offset >> 32) & _MASK32, dtype=np.uint64)
    k0, k1 = seed & _MASK32, (seed >> 32) & _MASK32
    for r in range(10):
        if r:
            k0, k1 = (k0 + _W0) & _MASK32, (k1 + _W1) & _MASK32
        p0, p1 = c0 * _M0, c2 * _M1  # products of two 32-bit words: exact in 64 bits
        c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ np.uint64(k0), p1 & _LO, (p0 >> _S32) ^ c3 ^ np.uint64(k1), p0 & _LO
    return xp.stack([c0, c1, c2, c3], axis=1).reshape(-1)[:n]


class DeviceSampler:
    """Draws from a CUDA generator's (seed, offset) with the array module ``xp``; every draw advances the offset."""

    def __init__(self, xp, gen) -> None:
        self.xp, self.gen = xp, gen

    def words(self, n: int):
        seed, offset = self.gen._philox_next()
        return philox_words(self.xp, n, seed, offset)

    def uniform01(self, shape, dt: D.dtype):
        """Floats in [0, 1) of dtype ``dt`` (never 1.0); complex dtypes get independent real and imaginary parts."""
        n = math.prod(shape)
        if dt.is_complex:
            r = dt.to_real()
            return (self.uniform01(shape, r) + 1j * self.uniform01(shape, r)).astype(dt.np)
        if dt is D.float64:
            w = self.words(2 * n)
            hi, lo = (w[:n] >> np.uint64(5)).astype(np.float64), (w[n:] >> np.uint64(6)).astype(np.float64)
            return ((hi * 67108864.0 + lo) * 2.0 ** -53).reshape(shape)
        bits = _MANTISSA.get(dt.name, 24)
        if dt is not D.float32 and bits == 24:
            raise RuntimeError(f"\"check_uniform_bounds\" not implemented for '{dt}'")
        u = (self.words(n) >> np.uint64(32 - bits)).astype(np.float32) * np.float32(2.0 ** -bits)
        return u.reshape(shape) if dt is D.float32 else u.reshape(shape).astype(dt.np)

    def normal01(self, shape, dt: D.dtype):
        """Standard normal samples of ``dt`` (Box-Muller; float16/bfloat16 computed in float32)."""
        xp, n = self.xp, math.prod(shape)
        if dt.is_complex:
            r = dt.to_real()
            return ((self.normal01(shape, r) + 1j * self.normal01(shape, r)) * math.sqrt(0.5)).astype(dt.np)
        cd = D.float64 if dt is D.float64 else D.float32
        m = (n + 1) // 2
        u = self.uniform01((2 * m,), cd)
        rad = xp.sqrt(-2.0 * xp.log(1.0 - u[:m]))  # 1 - u lies in (0, 1]: the log is finite
        ang = u[m:] * (2.0 * math.pi)
        z = xp.concatenate([rad * xp.cos(ang), rad * xp.sin(ang)])[:n].astype(cd.np, copy=False)
        return z.reshape(shape) if cd is dt else z.reshape(shape).astype(dt.np)

    def integers(self, low: int, high: int, shape, op: str = "random_"):
        """int64 integers uniform in [low, high) (``high`` up to 2**64 + low, for int64's full range)."""
        if low >= high:
            raise RuntimeError(f"{op} expects 'from' to be less than 'to', but got from={low} >= to={high}")
        n, span = math.prod(shape), high - low
        if span <= 1 << 32:
            v = (self.words(n) * np.uint64(span)) >> _S32
        else:
            w = self.words(2 * n)
            v = ((w[:n] << _S32) | w[n:]) % np.uint64(span) if span < 1 << 64 else (w[:n] << _S32) | w[n:]
        v = v + np.uint64(low % (1 << 64))  # wraps modulo 2**64, then reads as int64: low + v
        return v.astype(np.int64).reshape(shape)

    def permutation(self, n: int):
        """A random permutation of ``0 .. n-1`` (int64): the order of ``n`` random 64-bit keys."""
        w = self.words(2 * n)
        keys = (w[:n] << _S32) | w[n:]
        return self.xp.argsort(keys, kind="stable").astype(np.int64)

    def exponential(self, shape, cd):
        """Standard exponential samples in the NumPy float dtype ``cd``: ``-log(1 - u)``."""
        u = self.uniform01(shape, D.float64 if cd == np.float64 else D.float32)
        return -self.xp.log1p(-u)


def bernoulli_device(ds: DeviceSampler, probs, make_error):
    """0/1 samples in ``probs``' dtype with the probabilities ``probs`` (a device array); probabilities outside
    [0, 1] are reported at the next synchronisation (``make_error`` builds the error)."""
    from ..cuda import _checks

    p = probs if probs.dtype in (np.float32, np.float64) else probs.astype(
        np.float32 if probs.dtype.kind in "fV" else np.float64)
    _checks.defer((~((p >= 0) & (p <= 1))).any(), make_error)
    u = ds.uniform01(p.shape, D.float64 if p.dtype == np.float64 else D.float32)
    return (u < p).astype(probs.dtype)


def multinomial_device(ds: DeviceSampler, probs, n: int, replacement: bool, error_of):
    """(rows, n) int64 category indices from the (rows, k) device array of unnormalised probabilities ``probs``.

    With replacement: one search of ``rows * n`` uniforms in the row-offset cumulative sums (row ``i``'s CDF moved
    to (i, i + 1], so one sorted vector serves every row). Without: the exponential race (the ``n`` smallest
    ``E / p``). Invalid rows (``error_of(p)`` on the host) are reported at the next synchronisation.
    """
    from ..cuda import _checks

    xp = ds.xp
    p = probs.astype(np.float64)
    rows, k = p.shape
    bad = (~xp.isfinite(p)).any() | (p < 0).any() | (p.sum(1) <= 0).any()
    _checks.defer(bad, lambda: error_of(p))
    if replacement:
        cdf = xp.cumsum(p, axis=1)
        cdf = cdf / cdf[:, -1:]
        base = xp.arange(rows, dtype=np.float64)[:, None]
        u = ds.uniform01((rows, n), D.float64) + base
        pos = xp.searchsorted((cdf + base).reshape(-1), u.reshape(-1), side="right").reshape(rows, n)
        idx = pos - (base.astype(np.int64) * k)
        return xp.clip(idx, 0, k - 1).astype(np.int64)
    keys = ds.exponential((rows, k), np.float64) / p
    return xp.argsort(keys, axis=1)[:, :n].astype(np.int64)
