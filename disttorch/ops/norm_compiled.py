"""Layer norm on CPU through the compiled row kernels (``disttorch/_compiled/norm.py``).

Both functions return None, having done nothing, when the kernels do not apply; ``NativeLayerNormBackward0``
then runs the NumPy path of ``ops/norm.py``, the reference. They apply to NumPy float32/float64 inputs with a
weight and a bias of the same dtype, from :data:`disttorch._compiled.MIN_ELEMENTS` elements up to the size where
the NumPy path splits its rows over the intra-op pool (``_parallel.MIN_SIZE``: only with several threads).
Measured on the 2-core build machine, 1024 rows of 128 float32, one thread: forward 274 -> 83 us, backward
~190 -> 72 us (the Transformer benchmark's four layer norms a step).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _compiled as C
from .. import _parallel as P

_MIN = C.MIN_ELEMENTS  # elements from which the kernels run (tests lower it)


def forward(node, xa, wa, ba, spec) -> Optional[np.ndarray]:
    """``layer_norm`` of ``xa`` by the kernels, keeping on ``node`` what the backward needs; or None."""
    dt = xa.dtype
    if (dt not in C.FLOAT or wa is None or ba is None or wa.dtype != dt or ba.dtype != dt
            or xa.__class__ is not np.ndarray or not xa.flags.c_contiguous or not _MIN <= xa.size < P.MIN_SIZE):
        return None
    K = C.get("norm")
    if K is None:
        return None
    rows, cols = spec.sshape
    a = xa.reshape(rows, cols)
    grad = bool(node.next_functions)
    y = np.empty_like(a)
    xhat = np.empty_like(a) if grad else y  # without a backward, xhat is written and overwritten in place
    rstd = np.empty((rows, 1), dtype=dt)
    K.layer_norm_fwd(a, wa.reshape(cols), ba.reshape(cols), spec.eps, y, xhat, rstd.reshape(rows))
    if grad:  # what _NormBackward's generic backward reads too (the fallback for another gradient dtype)
        node.spec, node.xhat, node.rstd, node.mu = spec, xhat, rstd, None
        node.batch_stats = node.compiled = True
        node.bias_meta = (ba.shape, ba.dtype)
        node.save(0, 1)
    return y.reshape(spec.xshape)


def backward(node, g) -> Optional[tuple]:
    """``(gx, gw, gb)`` of a forward that ran the kernels, given ``g`` = dy; None for a gradient the kernel
    does not take (another dtype or layout)."""
    x, w = node.saved_tensors
    xhat = node.xhat
    if g.__class__ is not np.ndarray or g.dtype != xhat.dtype or g.size != xhat.size:
        return None
    K = C.get("norm")
    if K is None:
        return None
    need_x, need_w, need_b = node._nig[:3]
    rows, cols = xhat.shape
    g2 = np.ascontiguousarray(g).reshape(rows, cols)
    gx = np.empty_like(xhat) if need_x else xhat  # not written without need_x
    gw64, gb64 = np.zeros(cols), np.zeros(cols)
    K.layer_norm_bwd(g2, xhat, node.rstd.reshape(rows), w._data.reshape(cols), gx, gw64, gb64, bool(need_x))
    wshape, wdtype = w._data.shape, w._data.dtype
    gw = gw64.astype(wdtype).reshape(wshape) if need_w else None
    gb = gb64.astype(node.bias_meta[1]).reshape(node.bias_meta[0]) if need_b else None
    return (gx.reshape(node.spec.xshape) if need_x else None), gw, gb
