"""2-D convolution columns and the stride-1 'same' col2im as compiled loops (``ops/im2col.py``'s NumPy
``conv_cols`` and ``_col2im_same`` are the reference; the values are copies and in-order sums, so bitwise equal).

``im2col2d`` reads the unpadded input and writes zeros where a window leaves it, so the padded copy that the
NumPy path makes first is not needed; each output row is split once into its zero margins and its copied middle.
The loops index flat arrays with unsigned offsets: numba then drops its negative-index wrap-around, which
otherwise keeps LLVM from vectorising (col2im of the benchmark CNN: 0.40 ms against 1.48 ms with signed
offsets and 0.87 ms for NumPy, measured).
"""
from __future__ import annotations

import numba as nb
import numpy as np

_JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)
_U = np.uint64


@nb.njit(**_JIT)
def im2col2d(xf, cf, shape, c0, c1, hv, wv, ph, pw, sh, sw, dh, dw):
    """Channels ``[c0, c1)`` of the flat ``xf`` (N, C, H, W) into the flat ``cf`` (C, KH, KW, N, OH, OW), with
    ``shape`` those nine sizes; input rows/columns at or past ``hv``/``wv`` count as cropped, those before 0 as
    padding."""
    n_, ch, h_, w_, kh_, kw_, oh_, ow_ = shape[0], shape[1], shape[2], shape[3], shape[4], shape[5], shape[6], \
        shape[7]
    for c in range(c0, c1):
        for i in range(kh_):
            for j in range(kw_):
                off = j * dw - pw
                lo = 0 if off >= 0 else min((-off + sw - 1) // sw, ow_)  # first ox with ox*sw + off >= 0
                hi = 0 if wv - 1 - off < 0 else min((wv - 1 - off) // sw + 1, ow_)  # past the last one inside
                hi = max(hi, lo)
                for n in range(n_):
                    d0 = (((c * kh_ + i) * kw_ + j) * n_ + n) * oh_ * ow_
                    for oy in range(oh_):
                        d = d0 + oy * ow_
                        y = oy * sh - ph + i * dh
                        if y < 0 or y >= hv:
                            for t in range(ow_):
                                cf[_U(d + t)] = 0
                            continue
                        for t in range(lo):
                            cf[_U(d + t)] = 0
                        s = ((n * ch + c) * h_ + y) * w_ + off
                        if sw == 1:
                            for t in range(lo, hi):
                                cf[_U(d + t)] = xf[_U(s + t)]
                        else:
                            for t in range(lo, hi):
                                cf[_U(d + t)] = xf[_U(s + t * sw)]
                        for t in range(hi, ow_):
                            cf[_U(d + t)] = 0


@nb.njit(**_JIT)
def col2im_same2d(cf, of, shape, n0, n1, shy, shx):
    """Samples ``[n0, n1)``: the flat ``of`` (N, C, H, W), zero-filled, gets the flat ``cf`` (N, K, C, H, W)
    moved by kernel position k's shift (``shy[k]``, ``shx[k]``), summed in k order; values moved outside the
    plane drop. ``shape`` is (N, K, C, H, W)."""
    kk, c_, h_, w_ = shape[1], shape[2], shape[3], shape[4]
    for n in range(n0, n1):
        for k in range(kk):
            dy, dx = shy[k], shx[k]
            y0, y1 = max(0, -dy), min(h_, h_ - dy)
            x0, x1 = max(0, -dx), min(w_, w_ - dx)
            for c in range(c_):
                sb = ((n * kk + k) * c_ + c) * h_ * w_
                db = (n * c_ + c) * h_ * w_
                for y in range(y0, y1):
                    s = sb + y * w_ + x0
                    d = db + (y + dy) * w_ + dx + x0
                    for t in range(x1 - x0):
                        of[_U(d + t)] += cf[_U(s + t)]
