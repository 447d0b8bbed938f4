"""Philox4x32-10 in NumPy: the host twin of the generator in ``dropout.cu``.

It gives the exact dropout mask the kernel draws for a ``(seed, offset)``, so a GPU test can compare the kernel's
mask bit for bit, and it is checked here against the published known-answer vectors (Salmon et al., SC 2011).
"""
from __future__ import annotations

import numpy as np

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
_LO = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)


def philox4x32_10(counters, key) -> np.ndarray:
    """Philox4x32-10 of each counter.

    Args:
        counters: array-like of shape (n, 4) of uint32 counter words.
        key: two uint32 key words.

    Returns:
        A (n, 4) uint32 array of random words.
    """
    c = np.array(counters, dtype=np.uint32).reshape(-1, 4)
    c0, c1, c2, c3 = (c[:, i].astype(np.uint64) for i in range(4))
    k0, k1 = np.uint32(key[0]), np.uint32(key[1])
    with np.errstate(over="ignore"):
        for r in range(10):
            if r:
                k0, k1 = k0 + _W0, k1 + _W1
            p0, p1 = _M0 * c0, _M1 * c2
            c0, c1, c2, c3 = ((p1 >> _SHIFT) ^ c1 ^ np.uint64(k0), p1 & _LO, (p0 >> _SHIFT) ^ c3 ^ np.uint64(k1),
                              p0 & _LO)
    return np.stack([c0, c1, c2, c3], axis=1).astype(np.uint32)


def dropout_keep_mask(n: int, p: float, seed: int, offset: int) -> np.ndarray:
    """The boolean keep mask ``dropout_forward_*`` draws for ``n`` elements (element i: counter
    ``(i // 4, offset)``, key ``seed``, word ``i % 4``; kept when ``(word >> 8) * 2**-24 < float32(1 - p)``)."""
    groups = np.arange((n + 3) // 4, dtype=np.uint64)
    off = np.uint64(offset)
    counters = np.stack([groups & _LO, groups >> _SHIFT, np.full_like(groups, off & _LO),
                         np.full_like(groups, off >> _SHIFT)], axis=1)
    words = philox4x32_10(counters, (seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF)).reshape(-1)[:n]
    u = (words >> np.uint32(8)).astype(np.float32) * np.float32(2.0 ** -24)
    return u < np.float32(1.0 - p)
