"""2-D convolutions on CPU through the compiled per-sample kernels (``disttorch/_compiled/convgemm.py``).

Each function returns None, having done nothing, when the kernels do not apply; the caller then runs the NumPy
path of ``ops/im2col.py``, the reference. They apply to NumPy float32/float64 arrays of one dtype, 4-D input,
one group, non-negative leading pads, enough work (:data:`disttorch._compiled.MIN_ELEMENTS` column elements)
and enough columns per output position (:data:`_MIN_CK`). With several threads and at least
:data:`disttorch._compiled.SPLIT_MIN` column elements, the batch is split over the intra-op pool, BLAS at one
thread per piece (each piece is one kernel call without the GIL).

Measured on the 2-core build machine, one thread, against the NumPy path (medians of alternated calls):
16->32 3x3 on 14x14, batch 64: forward 0.73-0.85x the time, weight gradient 0.66x, input gradient 0.89-0.92x;
64->64 3x3 on 32x32, batch 32: 0.49x, 0.50x, 0.60x. Two threads: forward 0.49-0.68x, input gradient 0.45-0.55x.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .. import _compiled as C
from .. import _parallel as P

# Columns per output position (C * KH * KW) below which per-sample products are too thin for BLAS: a 1-channel
# 3x3 convolution's weight gradient (9 columns) ran 1.8x slower than the NumPy path's batched products.
_MIN_CK = 32
# Samples per partial sum of the weight gradient: the pieces' sums are added in order, so a split over threads
# gives the one-thread result bit for bit (a thread's range is whole pieces).
_PIECE = 8
# Elements of one sample's columns (C*KH*KW x OH*OW, a scratch buffer per thread) above which the NumPy path runs:
# the kernels' premise is a buffer that stays in cache (64 Ki elements for the benchmark CNN); a 256-channel 3x3
# convolution of a 224x224 image would need 115 M elements per thread.
_MAX_SAMPLE_COLS = 1 << 22
# Elements of the weight gradient's partial sums (one weight-sized array per piece) kept at most: beyond it the
# pieces grow (16 MiB of float32: a 256->512 4x4 convolution's 8 MiB weight gets two partial sums, and its
# backward stays under tests/ops/test_conv.py's 64 MiB bound).
_KEEP_LIMIT = 1 << 22


def _geometry(xshape, wshape, pads, stride, dil) -> Optional[np.ndarray]:
    n, c, h, w = xshape
    kh, kw = wshape[2], wshape[3]
    (ph, ph_hi), (pw, pw_hi) = pads
    if ph < 0 or pw < 0:
        return None
    oh = (h + ph + ph_hi - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + pw + pw_hi - dil[1] * (kw - 1) - 1) // stride[1] + 1
    if oh <= 0 or ow <= 0:
        return None
    return np.array([c, h, w, kh, kw, oh, ow, stride[0], stride[1], ph, pw, dil[0], dil[1]], dtype=np.int64)


def _kernels(arrays: tuple, xshape, wshape, groups: int):
    """The kernel module, or None when the compiled path does not apply to these operands."""
    dt = arrays[0].dtype
    if (groups != 1 or len(xshape) != 4 or len(wshape) != 4 or xshape[1] != wshape[1] or dt not in C.FLOAT
            or wshape[1] * wshape[2] * wshape[3] < _MIN_CK):
        return None
    for a in arrays:
        if a.__class__ is not np.ndarray or a.dtype != dt:
            return None
    return C.get("convgemm")


def _ranges(n: int, work: int, align: int = 1) -> list:
    """One range of samples per thread (a range is one kernel call without the GIL: more would only add GIL
    hand-offs), or the whole batch below the split size; range bounds are multiples of ``align``."""
    if work >= C.SPLIT_MIN and n > 1 and P.threads() > 1:
        return P.split(n, P.threads(), align=align)
    return [(0, n)]


def _run(ranges: list, body) -> None:
    """``body(i, start, stop)`` for each range ``i``, on the pool when several, with every BLAS at one thread.

    One thread even for a single range: OpenBLAS's worker threads spin for ~0.1 s of CPU after each
    multi-threaded call (measured here), and a spinning worker halves the speed of the pool thread that shares
    its core (a piece on the main thread took 2.0-2.4 ms against 1.1 ms). The per-sample products gain nothing
    from BLAS threads; the split over samples is the parallelism."""
    restore = P.blas_serial()
    try:
        if len(ranges) == 1:
            body(0, *ranges[0])
        else:
            P.run_tasks([(lambda i=i, a=a, b=b: body(i, a, b)) for i, (a, b) in enumerate(ranges)])
    finally:
        P.blas_restore(restore)


def forward(x, w, bias, pads, stride, dil, groups: int = 1) -> Optional[np.ndarray]:
    """``conv2d(x, w, bias)`` (N, O, OH, OW), or None when the compiled path does not apply."""
    k = _kernels((x, w), x.shape, w.shape, groups)
    if k is None:
        return None
    geom = _geometry(x.shape, w.shape, pads, stride, dil)
    if geom is None:
        return None
    n, o = x.shape[0], w.shape[0]
    ck, p = int(geom[0] * geom[3] * geom[4]), int(geom[5] * geom[6])
    work = ck * p * n
    if work < C.MIN_ELEMENTS or n == 0 or ck * p > _MAX_SAMPLE_COLS:
        return None
    xf = np.ascontiguousarray(x).reshape(-1)
    wm = np.ascontiguousarray(w).reshape(o, ck)
    has_bias = bias is not None
    b = np.ascontiguousarray(bias.reshape(-1), dtype=x.dtype) if has_bias else wm[:, 0]
    out = np.empty((n, o, p), dtype=x.dtype)
    ranges = _ranges(n, work)
    cols = [np.empty((ck, p), dtype=x.dtype) for _ in ranges]  # allocated here: a task only calls the kernel
    _run(ranges, lambda i, a, c: k.forward(xf, wm, b, has_bias, out, a, c, cols[i], geom))
    return out.reshape(n, o, int(geom[5]), int(geom[6]))


def weight_grad(x, g, wshape, pads, stride, dil, groups: int = 1) -> Optional[np.ndarray]:
    """The gradient of ``conv2d(x, w)`` in ``w`` (of shape ``wshape``) for output gradient ``g``, or None."""
    k = _kernels((x, g), x.shape, wshape, groups)
    if k is None:
        return None
    geom = _geometry(x.shape, wshape, pads, stride, dil)
    if geom is None or g.shape != (x.shape[0], wshape[0], geom[5], geom[6]):
        return None
    n, o = x.shape[0], wshape[0]
    ck, p = int(geom[0] * geom[3] * geom[4]), int(geom[5] * geom[6])
    work = ck * p * n
    if work < C.MIN_ELEMENTS or n == 0 or ck * p > _MAX_SAMPLE_COLS:
        return None
    xf = np.ascontiguousarray(x).reshape(-1)
    g3 = np.ascontiguousarray(g).reshape(n, o, p)

    piece = max(_PIECE, -(-n // max(1, _KEEP_LIMIT // (ck * o))))  # from the shapes only, never the threads
    accs = np.zeros((-(-n // piece), ck, o), dtype=x.dtype)
    ranges = _ranges(n, work, align=piece)
    bufs = [(np.empty((ck, p), dtype=x.dtype), np.empty((p, o), dtype=x.dtype), np.empty((ck, o), dtype=x.dtype))
            for _ in ranges]
    _run(ranges, lambda i, a, c: k.weight_grad(xf, g3, accs, a, c, piece, *bufs[i], geom))
    acc = accs[0]
    for extra in accs[1:]:  # in piece order: the same sums on any number of threads
        acc += extra
    return np.ascontiguousarray(acc.T).reshape(wshape)


def input_grad(g, w, xshape, pads, stride, dil, groups: int = 1) -> Optional[np.ndarray]:
    """The gradient of ``conv2d(x, w)`` in ``x`` (of shape ``xshape``) for output gradient ``g``, or None."""
    k = _kernels((g, w), xshape, w.shape, groups)
    if k is None:
        return None
    geom = _geometry(xshape, w.shape, pads, stride, dil)
    if geom is None or g.shape != (xshape[0], w.shape[0], geom[5], geom[6]):
        return None
    n, o = xshape[0], w.shape[0]
    ck, p = int(geom[0] * geom[3] * geom[4]), int(geom[5] * geom[6])
    work = ck * p * n
    if work < C.MIN_ELEMENTS or n == 0 or ck * p > _MAX_SAMPLE_COLS:
        return None
    g3 = np.ascontiguousarray(g).reshape(n, o, p)
    wt = np.ascontiguousarray(w.reshape(o, ck).T)
    dx = np.zeros(math.prod(xshape), dtype=w.dtype)
    ranges = _ranges(n, work)
    bufs = [np.empty((ck, p), dtype=w.dtype) for _ in ranges]
    _run(ranges, lambda i, a, c: k.input_grad(g3, wt, dx, a, c, bufs[i], geom))
    return dx.reshape(xshape)
