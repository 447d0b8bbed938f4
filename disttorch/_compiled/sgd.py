"""SGD's common updates as one compiled pass per element (``optim/_functional._sgd_kernel`` is the reference: the
same operations in the same order, in the arrays' dtype, so bitwise equal). Other options (nesterov, dampening,
weight decay, maximize, the first step's buffer copy) keep the NumPy rule.
"""
from __future__ import annotations

import numba as nb

_JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)


@nb.njit(**_JIT)
def sgd_momentum(p, g, buf, momentum, neg_lr):
    """``buf = buf * momentum + g; p = p + buf * neg_lr``."""
    for i in range(p.size):
        b = buf[i] * momentum + g[i]
        buf[i] = b
        p[i] = p[i] + b * neg_lr


@nb.njit(**_JIT)
def sgd_plain(p, g, neg_lr):
    """``p = p + g * neg_lr``."""
    for i in range(p.size):
        p[i] = p[i] + g[i] * neg_lr
