"""The 2x2 / stride-2 max pool and its adjoint in one pass each (``ops/pool.py``'s pairwise NumPy steps are the
reference).

The window is scanned as PyTorch's CPU kernel does (``val > maxval || isnan(val)`` in row-major order), so the
pick is the first maximum, or the last NaN, with no separate NaN pass. The adjoint writes each window whole:
the gradient at the pick and +0.0 elsewhere, as PyTorch's scatter into zeros.
"""
from __future__ import annotations

import numba as nb

_JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@nb.njit(**_JIT)
def max2x2(a, m, kk):
    """``a`` (P, H, W) -> maxima ``m`` (P, OH, OW) and window offsets ``kk`` (uint8, ``2 * row + col``)."""
    for p in range(m.shape[0]):
        for i in range(m.shape[1]):
            r = 2 * i
            for j in range(m.shape[2]):
                c = 2 * j
                best = a[p, r, c]
                q = 0
                v = a[p, r, c + 1]
                if v > best or v != v:
                    best = v
                    q = 1
                v = a[p, r + 1, c]
                if v > best or v != v:
                    best = v
                    q = 2
                v = a[p, r + 1, c + 1]
                if v > best or v != v:
                    best = v
                    q = 3
                m[p, i, j] = best
                kk[p, i, j] = q


@nb.njit(**_JIT)
def scatter2x2(g, kk, out):
    """``out`` (P, H, W): each ``g`` (P, OH, OW) at its window's offset ``kk``, zeros in the rest of the windows
    (a margin row/column of an odd H/W is left to the caller)."""
    for p in range(g.shape[0]):
        for i in range(g.shape[1]):
            r = 2 * i
            for j in range(g.shape[2]):
                c = 2 * j
                v = g[p, i, j]
                q = kk[p, i, j]
                out[p, r, c] = v if q == 0 else 0.0
                out[p, r, c + 1] = v if q == 1 else 0.0
                out[p, r + 1, c] = v if q == 2 else 0.0
                out[p, r + 1, c + 1] = v if q == 3 else 0.0
