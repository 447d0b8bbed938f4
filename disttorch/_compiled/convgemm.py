"""2-D convolution forward and gradients, one sample at a time, as compiled loops around BLAS products.

For each sample a compiled loop writes that sample's im2col columns (C*KH*KW, OH*OW) into a small buffer that
stays in cache, and BLAS multiplies it (numba's ``np.dot``: the same sgemm/dgemm that NumPy calls, through
SciPy's BLAS). A kernel call covers a range of samples with the GIL released and allocates nothing (the
caller passes the scratch buffers: allocations in two threads at once cost page faults), so the intra-op pool
runs one call per thread: one hand-off per thread and region, where the NumPy path makes several GIL-holding calls per
chunk of samples (``ops/im2col.py``, the reference, which the tests compare these kernels with).

- ``forward``: ``out[n] = W @ cols(x[n]) + b``.
- ``weight_grad``: ``acc_t += cols(x[n]) @ g[n].T`` over the range (the gradient transposed), one accumulator
  per fixed piece of samples, which the caller adds in order: the same sums for any number of threads.
- ``input_grad``: ``dx[n] = col2im(W.T @ g[n])`` (the adjoint of the columns: in-order sums per element).

``geom`` holds C, H, W, KH, KW, OH, OW, SH, SW, PH, PW, DH, DW. The loops index flat arrays with unsigned
offsets so that LLVM vectorises them (see ``conv.py``). ``_cols`` repeats the row copy of ``conv.im2col2d`` in
its own loop: sharing it as a jitted helper made both 1.5-1.6x slower, even inlined (measured: the batched
im2col 986-1058 against 667 us, this forward 2.75-2.81 against 1.74 ms).
"""
from __future__ import annotations

import numba as nb
import numpy as np

_JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)
_U = np.uint64


@nb.njit(**_JIT)
def _span(off, sw, ow_, limit):
    """The output columns ``[lo, hi)`` whose input column ``t * sw + off`` lies in ``[0, limit)``."""
    lo = 0 if off >= 0 else min((-off + sw - 1) // sw, ow_)
    hi = 0 if limit - 1 - off < 0 else min((limit - 1 - off) // sw + 1, ow_)
    return lo, max(hi, lo)


@nb.njit(**_JIT)
def _cols(xf, base, cf, geom):
    """Sample columns: the flat ``cf`` (C*KH*KW, OH*OW) from the flat input ``xf`` at sample offset ``base``."""
    ch, h_, w_, kh_, kw_, oh_, ow_ = geom[0], geom[1], geom[2], geom[3], geom[4], geom[5], geom[6]
    sh, sw, ph, pw, dh, dw = geom[7], geom[8], geom[9], geom[10], geom[11], geom[12]
    p = oh_ * ow_
    for c in range(ch):
        for i in range(kh_):
            for j in range(kw_):
                r = (c * kh_ + i) * kw_ + j
                off = j * dw - pw
                lo, hi = _span(off, sw, ow_, w_)
                for oy in range(oh_):
                    d = r * p + oy * ow_
                    y = oy * sh - ph + i * dh
                    if y < 0 or y >= h_:
                        for t in range(ow_):
                            cf[_U(d + t)] = 0
                        continue
                    for t in range(lo):
                        cf[_U(d + t)] = 0
                    s = base + (c * h_ + y) * w_ + off
                    if sw == 1:
                        for t in range(lo, hi):
                            cf[_U(d + t)] = xf[_U(s + t)]
                    else:
                        for t in range(lo, hi):
                            cf[_U(d + t)] = xf[_U(s + t * sw)]
                    for t in range(hi, ow_):
                        cf[_U(d + t)] = 0


@nb.njit(**_JIT)
def _col2im(gf, dxf, base, geom):
    """Add the flat sample columns ``gf`` (C*KH*KW, OH*OW) into the flat ``dxf`` at sample offset ``base``, in
    kernel-position order per input element (the order of the NumPy reference's shifted adds)."""
    ch, h_, w_, kh_, kw_, oh_, ow_ = geom[0], geom[1], geom[2], geom[3], geom[4], geom[5], geom[6]
    sh, sw, ph, pw, dh, dw = geom[7], geom[8], geom[9], geom[10], geom[11], geom[12]
    p = oh_ * ow_
    for c in range(ch):
        for i in range(kh_):
            for j in range(kw_):
                r = (c * kh_ + i) * kw_ + j
                off = j * dw - pw
                lo, hi = _span(off, sw, ow_, w_)
                for oy in range(oh_):
                    y = oy * sh - ph + i * dh
                    if y < 0 or y >= h_:
                        continue
                    d = r * p + oy * ow_
                    s = base + (c * h_ + y) * w_ + off
                    if sw == 1:
                        for t in range(lo, hi):
                            dxf[_U(s + t)] += gf[_U(d + t)]
                    else:
                        for t in range(lo, hi):
                            dxf[_U(s + t * sw)] += gf[_U(d + t)]


@nb.njit(**_JIT)
def forward(xf, wm, bias, has_bias, out, n0, n1, cols, geom):
    """``out[n] (O, OH*OW) = wm (O, C*KH*KW) @ cols(x[n]) (+ bias[:, None])`` for samples ``[n0, n1)``."""
    sample = geom[0] * geom[1] * geom[2]
    cf = cols.reshape(-1)
    o, p = out.shape[1], out.shape[2]
    for n in range(n0, n1):
        _cols(xf, n * sample, cf, geom)
        y = out[n]
        np.dot(wm, cols, y)
        if has_bias:
            for k in range(o):
                b = bias[k]
                for t in range(p):
                    y[k, t] += b


@nb.njit(**_JIT)
def weight_grad(xf, g, accs, n0, n1, piece, cols, gt, prod, geom):
    """``accs[n // piece] (C*KH*KW, O) += cols(x[n]) @ g[n].T`` for samples ``[n0, n1)``, in sample order: the
    weight gradient transposed, summed per fixed piece of ``piece`` samples (the caller adds the pieces in order,
    so the result does not depend on how the samples were split over threads). ``gt`` (OH*OW, O) holds each
    ``g[n].T``: both products are then plain (untransposed) BLAS calls, twice as fast here as ``g[n] @ cols.T``
    with the transposed operand. ``prod`` is like one of ``accs``."""
    sample = geom[0] * geom[1] * geom[2]
    cf = cols.reshape(-1)
    o, p = g.shape[1], g.shape[2]
    ck = accs.shape[1]
    for n in range(n0, n1):
        _cols(xf, n * sample, cf, geom)
        for k in range(o):
            for t in range(p):
                gt[t, k] = g[n, k, t]
        np.dot(cols, gt, prod)
        acc = accs[n // piece]
        for r in range(ck):
            for k in range(o):
                acc[r, k] += prod[r, k]


@nb.njit(**_JIT)
def input_grad(g, wt, dxf, n0, n1, gc, geom):
    """``dx[n] = col2im(wt (C*KH*KW, O) @ g[n] (O, OH*OW))`` for samples ``[n0, n1)``; ``dxf`` is zero there and
    ``gc`` (C*KH*KW, OH*OW) is scratch."""
    sample = geom[0] * geom[1] * geom[2]
    gf = gc.reshape(-1)
    for n in range(n0, n1):
        np.dot(wt, g[n], gc)
        _col2im(gf, dxf, n * sample, geom)
