"""Element-wise kernels on hot paths as single compiled passes (the NumPy code they replace is the reference).
"""
from __future__ import annotations

import numba as nb

_JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@nb.njit(**_JIT)
def relu_grad(g, r, out):
    """PyTorch's ``threshold_backward(g, r, 0)`` over flat arrays: +0.0 where ``r <= 0``, else ``g`` (a NaN ``r``
    passes ``g``). One pass, where NumPy makes three (compare, mask, AND)."""
    for i in range(g.size):
        out[i] = 0.0 if r[i] <= 0 else g[i]


@nb.njit(**_JIT)
def relu(a, out):
    """``np.maximum(a, 0)`` over flat arrays: ``a`` where ``a > 0`` or NaN, else +0.0 (NumPy's SIMD loop also
    gives +0.0 for -0.0)."""
    for i in range(a.size):
        v = a[i]
        out[i] = v if v > 0 or v != v else 0.0


@nb.njit(**_JIT)
def scatter_add_rows(out, idx, src):
    """``np.add.at(out, idx, src)`` for 2-D ``out``/``src`` and 1-D ``idx``: row ``src[i]`` added to row
    ``out[idx[i]]`` for i in order (NumPy's order, so the same sums), with every index checked (False, having
    stopped, at the first one out of range)."""
    n = out.shape[0]
    for i in range(idx.size):
        r = idx[i]
        if r < 0 or r >= n:
            return False
        for j in range(out.shape[1]):
            out[r, j] += src[i, j]
    return True
