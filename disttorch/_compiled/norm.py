"""Layer norm over the rows of a 2-D array, forward and backward, each one compiled pass per row.

NumPy's layer norm makes about seven passes over the input forward (row sums through BLAS, a centred copy, row
dot products, the scale, the affine) and as many backward. Here each row is read while it sits in the cache:
1024 rows of 128 float32, one thread, forward 274 -> 83 us and backward ~190 -> 72 us on the build machine.

Unlike the other compiled kernels these are not bitwise those of the NumPy path: the row sums are accumulated
in float64 (NumPy's row sums go through float32 BLAS products) and reassociated so that they vectorise. The
results agree to the dtype's rounding (tests compare both paths and an independent float64 reference). The
statistics are two-pass (mean, then the sum of squared deviations), as in the NumPy path.
"""
from __future__ import annotations

import numba as nb
import numpy as np

# reassoc/contract only (no nnan/ninf): the row sums may be reordered, NaN and inf propagate as in NumPy
_JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False, fastmath={"reassoc", "contract"})


@nb.njit(**_JIT)
def layer_norm_fwd(x, w, b, eps, y, xhat, rstd):
    """Rows of ``x`` (R, C) normalised: ``xhat = (x - mean) * rstd`` and ``y = xhat * w + b`` (``w``, ``b``:
    (C,)); ``rstd`` (R,) receives ``1 / sqrt(biased var + eps)``. ``xhat`` may be ``y`` itself (no backward)."""
    rows, cols = x.shape
    inv = 1.0 / cols
    for i in range(rows):
        s = 0.0
        for j in range(cols):
            s += x[i, j]
        mu = s * inv
        v = 0.0
        for j in range(cols):
            d = x[i, j] - mu
            v += d * d
        r = 1.0 / np.sqrt(v * inv + eps)
        rstd[i] = r
        for j in range(cols):
            h = (x[i, j] - mu) * r
            xhat[i, j] = h
            y[i, j] = h * w[j] + b[j]


@nb.njit(**_JIT)
def layer_norm_bwd(g, xhat, rstd, w, gx, gw, gb, need_x):
    """The gradients of :func:`layer_norm_fwd` given ``g`` = dy: ``gx`` (R, C) when ``need_x``, and the column
    sums ``gw += sum_i g * xhat`` and ``gb += sum_i g`` into float64 (C,) accumulators."""
    rows, cols = g.shape
    inv = 1.0 / cols
    for i in range(rows):
        if need_x:
            m1 = 0.0
            m2 = 0.0
            for j in range(cols):
                t = g[i, j] * w[j]
                m1 += t
                m2 += t * xhat[i, j]
            m1 *= inv
            m2 *= inv
            r = rstd[i]
            for j in range(cols):
                gx[i, j] = (g[i, j] * w[j] - m1 - xhat[i, j] * m2) * r
        for j in range(cols):
            gw[j] += g[i, j] * xhat[i, j]
            gb[j] += g[i, j]
