"""Array kernels behind ops/conv.py: im2col as a strided view, col2im as a few shifted adds.

Everything here works on raw arrays of any number of spatial dims (1-d, 2-d, 3-d), with ``xp`` the array
module. Padding is given per spatial dim as a ``(lo, hi)`` pair; a negative ``hi`` crops the input
(convolution) or extends the output with zeros (transposed convolution), which lets each op be written
as the exact adjoint of the other without output_padding bookkeeping.

Layouts (chosen so every matmul is a plain batched BLAS call and no big array is ever transposed):

- im2col ``cols``: ``(N, G, Cg*K, P)`` with ``K`` the kernel volume and ``P`` the output volume; the
  forward is ``w.reshape(G, Og, Cg*K) @ cols`` -> ``(N, G, Og, P)``, already the output's layout.
- col2im input: ``(N, K, *mid, *out)``, kernel position outermost, so each of the ``K`` shifted adds
  reads one contiguous slab. Stride-1 transposed convs whose output grid equals the input grid (the
  gradient of a ``'same'`` conv) use ``_col2im_same``: one flat contiguous add per kernel position.
"""
from __future__ import annotations

import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np  # the thread split below is for NumPy arrays only

_PAR = {"pool": None, "pid": None}


def out_size(size: int, lo: int, hi: int, k: int, stride: int, dil: int) -> int:
    return (size + lo + hi - dil * (k - 1) - 1) // stride + 1


def pad(xp, x, pads):
    """``x`` (N, C, *S) zero-padded by ``pads`` ((lo, hi) per spatial dim; a negative hi crops)."""
    nsp = len(pads)
    if any(hi < 0 for _, hi in pads):
        x = x[(Ellipsis,) + tuple(slice(0, s + hi if hi < 0 else s) for s, (_, hi) in zip(x.shape[-nsp:], pads))]
        pads = tuple((lo, max(hi, 0)) for lo, hi in pads)
    if not any(lo or hi for lo, hi in pads):
        return x
    sp = x.shape[-nsp:]
    out = xp.zeros(x.shape[:-nsp] + tuple(s + lo + hi for s, (lo, hi) in zip(sp, pads)), dtype=x.dtype)
    out[(Ellipsis,) + tuple(slice(lo, lo + s) for s, (lo, _) in zip(sp, pads))] = x
    return out


def windows(xp, xpad, ksize, stride, dil, osize):
    """The sliding blocks of padded ``xpad`` (N, C, *Sp) as a strided view (N, C, *ksize, *osize)."""
    nsp = len(ksize)
    st = xpad.strides
    sp_st = st[-nsp:]
    return xp.lib.stride_tricks.as_strided(
        xpad, xpad.shape[:-nsp] + tuple(ksize) + tuple(osize),
        st[:-nsp] + tuple(s * d for s, d in zip(sp_st, dil)) + tuple(s * t for s, t in zip(sp_st, stride)))


def im2col(xp, x, ksize, pads, stride, dil, groups: int = 1):
    """Contiguous columns ``(N, G, Cg*K, P)`` of ``x`` (N, C, *S), and the output size."""
    nsp = len(ksize)
    sp = x.shape[-nsp:]
    osize = tuple(out_size(s, lo, hi, k, st, d) for s, (lo, hi), k, st, d in zip(sp, pads, ksize, stride, dil))
    v = windows(xp, pad(xp, x, pads), ksize, stride, dil, osize)
    n, c = x.shape[0], x.shape[1]
    return v.reshape(n, groups, (c // groups) * math.prod(ksize), math.prod(osize)), osize


def col2im(xp, cols, ksize, dest_shape, pads, stride, dil):
    """Sum the blocks ``cols`` (N, prod(ksize), *mid, *osize) into a zero array of ``dest_shape`` (N, *mid, *S).

    The adjoint of ``windows``: one shifted add per kernel position, clipped to the unpadded region
    (so no padded buffer and no final crop are needed).
    """
    nsp = len(pads)
    osize = cols.shape[-nsp:]
    dest = xp.zeros(dest_shape, dtype=cols.dtype)
    per_dim = []
    for k, d, s, (lo, _), o, h in zip(ksize, dil, stride, pads, osize, dest_shape[-nsp:]):
        opts = []
        for i in range(k):
            off = i * d - lo
            j0 = max(0, (s - 1 - off) // s) if off < 0 else 0
            j1 = min(o - 1, (h - 1 - off) // s)
            if j1 < j0:
                opts.append(None)
            else:
                start = off + j0 * s
                opts.append((slice(start, start + (j1 - j0) * s + 1, s), slice(j0, j1 + 1)))
        per_dim.append(opts)
    lead = (slice(None),) * (len(dest_shape) - nsp)
    mid = (slice(None),) * (len(dest_shape) - nsp - 1)
    for kidx, combo in enumerate(itertools.product(*per_dim)):
        if None in combo:
            continue
        view = dest[lead + tuple(c[0] for c in combo)]
        view += cols[(slice(None), kidx) + mid + tuple(c[1] for c in combo)]
    return dest


def _threads() -> int:
    from .. import _runtime  # lazy: _runtime imports the Tensor class

    n = _runtime._threads["intra"]
    if n is None:  # BLAS's own default, asked once (threadpool_info is slow)
        n = _PAR.get("default") or _PAR.setdefault("default", _runtime.get_num_threads())
    return n


def bmm(xp, a, b):
    """``a (M, K) @ b (N, K, P)``. With 2+ threads, two halves of the batch run concurrently.

    NumPy's batched matmul makes one small GEMM per sample, below OpenBLAS's threading threshold, so it
    never uses the second core; running half the batch in a helper thread (matmul drops the GIL) does.
    """
    n = b.shape[0]
    if xp is not np or n < 2 or a.shape[0] * a.shape[1] * b.shape[2] * n < 4_000_000 or _threads() < 2:
        return xp.matmul(a, b)
    out = np.empty((n, a.shape[0], b.shape[2]), dtype=np.result_type(a, b))
    pool = _PAR["pool"]
    if pool is None or _PAR["pid"] != os.getpid():  # a forked child (DataLoader worker) has no pool thread
        pool = _PAR["pool"] = ThreadPoolExecutor(1, thread_name_prefix="disttorch-conv")
        _PAR["pid"] = os.getpid()
    h = n // 2
    fut = pool.submit(np.matmul, a, b[:h], out=out[:h])
    np.matmul(a, b[h:], out=out[h:])
    fut.result()
    return out


# ---- convolution on arrays --------------------------------------------------------------------------
def conv(xp, x, w, pads, stride, dil, groups: int):
    """Cross-correlation of ``x`` (N, C, *S) with ``w`` (O, C/G, *k): ``(y, cols)``, cols for the weight grad."""
    ksize = w.shape[2:]
    cols, osize = im2col(xp, x, ksize, pads, stride, dil, groups)
    o = w.shape[0]
    n = x.shape[0]
    if groups == 1:
        y = bmm(xp, w.reshape(o, cols.shape[2]), cols[:, 0])
    else:
        y = xp.matmul(w.reshape(groups, o // groups, cols.shape[2]), cols)
    return y.reshape((n, o) + osize), cols


def weight_grad(xp, cols, g, wshape, groups: int):
    """d(loss)/d(weight) from the input's columns ``cols`` (N, G, Cg*K, P) and the output grad ``g``."""
    n = g.shape[0]
    o = wshape[0]
    if groups == 1:
        g2 = g.reshape(n, o, cols.shape[3])
        if n == 1:
            return xp.matmul(g2[0], cols[0, 0].T).reshape(wshape)
        # One gemm per sample then a sum: both operands keep their layout (BLAS reads cols transposed).
        return xp.matmul(g2, cols[:, 0].transpose(0, 2, 1)).sum(0).reshape(wshape)
    g2 = g.reshape(n, groups, o // groups, cols.shape[3])
    return xp.matmul(g2, cols.transpose(0, 1, 3, 2)).sum(0).reshape(wshape)


def conv_transpose(xp, x, w, pads, stride, dil, groups: int, osize):
    """Transposed convolution (the adjoint of ``conv`` in its input) of ``x`` (N, Cin, *I) with
    ``w`` (Cin, Cout/G, *k), producing spatial size ``osize``."""
    n = x.shape[0]
    cin, cg = w.shape[0], w.shape[1]
    ksize = w.shape[2:]
    kvol = math.prod(ksize)
    isize = x.shape[2:]
    og = cin // groups
    # Kernel position outermost in the rows, so col2im reads one contiguous slab per position.
    wk = w.reshape(groups, og, cg, kvol).transpose(0, 3, 2, 1).reshape(groups, kvol * cg, og)
    if groups == 1 and kvol > 1 and tuple(osize) == tuple(isize) and all(s == 1 for s in stride):
        cols = bmm(xp, wk[0], x.reshape(n, og, math.prod(isize))).reshape((n, kvol, cg) + isize)
        return _col2im_same(xp, cols, ksize, pads, dil)
    if groups == 1:
        cols = xp.matmul(wk[0], x.reshape(n, og, math.prod(isize))).reshape((n, kvol, 1, cg) + isize)
    else:
        cols = xp.matmul(wk, x.reshape(n, groups, og, math.prod(isize))).reshape((n, groups, kvol, cg) + isize)
        cols = cols.transpose((0, 2, 1) + tuple(range(3, cols.ndim)))
    y = col2im(xp, cols, ksize, (n, groups, cg) + tuple(osize), pads, stride, dil)
    return y.reshape((n, groups * cg) + tuple(osize))



def _col2im_same(xp, cols, ksize, pads, dil):
    """col2im for stride 1 when the output grid equals the input grid (``'same'`` convs, k=3 p=1, ...).

    Kernel position ``k`` moves every value by one flat offset of the (N, C, *S) array; the values that
    would leave their row/plane (and so wrap into a neighbour) are zeroed in ``cols`` (our own temporary)
    first. Each position is then one long contiguous add instead of many short strided rows.
    ``cols`` is (N, K, C, *S); returns (N, C, *S).
    """
    n, kvol = cols.shape[0], cols.shape[1]
    size = cols.shape[3:]
    nsp = len(size)
    chw = math.prod(cols.shape[2:])
    st = [math.prod(size[a + 1:]) for a in range(nsp)]
    shifts = []
    for kidx, idx in enumerate(itertools.product(*(range(k) for k in ksize))):
        off = 0
        for a, (i, d, (lo, _), sz) in enumerate(zip(idx, dil, pads, size)):
            sh = i * d - lo
            off += sh * st[a]
            if sh:  # sources whose target falls outside [0, sz) along this axis
                bad = slice(0, min(-sh, sz)) if sh < 0 else slice(max(sz - sh, 0), sz)
                cols[(slice(None), kidx, slice(None)) + (slice(None),) * a + (bad,)] = 0
        shifts.append(off)
    m = max(abs(o) for o in shifts)
    buf = xp.zeros(n * chw + 2 * m, dtype=cols.dtype)
    flat = cols.reshape(n, kvol, chw)
    for kidx, off in enumerate(shifts):
        view = buf[m + off:m + off + n * chw].reshape(n, chw)
        view += flat[:, kidx]
    return buf[m:m + n * chw].reshape((n,) + cols.shape[2:])
