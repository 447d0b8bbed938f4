"""Array kernels behind ops/conv.py: im2col as a strided view, col2im as a few shifted adds.

Everything here works on raw arrays of any number of spatial dims (1-d, 2-d, 3-d), with ``xp`` the array
module. Padding is given per spatial dim as a ``(lo, hi)`` pair; a negative ``hi`` crops the input
(convolution) or extends the output with zeros (transposed convolution), which lets each op be written
as the exact adjoint of the other without output_padding bookkeeping.

Layouts (chosen so every matmul is a plain batched BLAS call and no big array is ever transposed):

- im2col ``cols`` (``unfold``): ``(N, G, Cg*K, P)`` with ``K`` the kernel volume and ``P`` the output volume.
- convolution columns (``conv_cols``): ``(G, Cg*K, N, P)``, batch inside, so that the forward is ONE matmul
  per group over the whole batch, ``w (G, Og, Cg*K) @ cols (G, Cg*K, N*P)``, and so is the weight gradient,
  ``g (G, Og, N*P) @ cols^T``: no per-sample products and no per-sample partial weight gradients to sum (a
  256->512 4x4 conv at batch 64 made 537 MB of those per backward). The price is one transposing copy of the
  output (fused with the bias add) and of the output gradient; both are smaller than the columns.
- col2im input: ``(N, K, *mid, *out)``, kernel position outermost, so each of the ``K`` shifted adds
  reads one contiguous slab. Stride-1 transposed convs whose output grid equals the input grid (the
  gradient of a ``'same'`` conv) use ``_col2im_same``: one flat contiguous add per kernel position.

On a CUDA device, 2-d convolutions with symmetric padding take the kernels of kernels/im2col.cu instead
(``im2col_2d``/``col2im_2d``, the ``F.unfold``/``F.fold`` layout ``(N, C*kH*kW, P)``): the forward is one im2col
launch and one batched matmul, the input gradient (and a transposed conv's forward) one matmul and one col2im
launch (a gather: deterministic, no atomics). The NumPy path above stays as it is (it is tuned for the CPU) and is
the reference.
"""
from __future__ import annotations

import itertools
import math

import numpy as np  # the thread split below is for NumPy arrays only

from .. import _compiled as C
from .. import _parallel as P
from ..kernels import launch as L
from . import _fused

# Multiply-adds below which the products are not split over the pool but left to BLAS's own threads. Measured
# on the 2-core build machine: the benchmark CNN's convs (7M-58M multiply-adds) ran 1.07-2.2x slower split
# (one BLAS thread per piece) than as whole products on BLAS's threads; a 64->64 3x3 conv on 32x32x32
# (2.4G) ran faster split in a run under load.
_SPLIT_WORK = 256_000_000


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
    if xp is np and nsp == 2:
        cols = _conv_cols_compiled(x, ksize, pads, stride, dil, osize)
        if cols is not None:
            return cols.reshape(groups, (x.shape[1] // groups) * math.prod(ksize), x.shape[0], math.prod(osize)), osize
    v = windows(xp, pad(xp, x, pads), ksize, stride, dil, osize)
    n, c = x.shape[0], x.shape[1]
    return v.reshape(n, groups, (c // groups) * math.prod(ksize), math.prod(osize)), osize


def col2im(xp, cols, ksize, dest_shape, pads, stride, dil, out=None):
    """Sum the blocks ``cols`` (N, prod(ksize), *mid, *osize) into a zero array of ``dest_shape`` (N, *mid, *S)
    (or into ``out``, zero-filled by the caller).

    The adjoint of ``windows``: one shifted add per kernel position, clipped to the unpadded region
    (so no padded buffer and no final crop are needed).
    """
    nsp = len(pads)
    osize = cols.shape[-nsp:]
    dest = xp.zeros(dest_shape, dtype=cols.dtype) if out is None else out
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


def bmm(xp, a, b):
    """``a (M, K) @ b (N, K, P)``. With 2+ threads, the batch is split over the intra-op pool.

    NumPy's batched matmul makes one small GEMM per sample, below OpenBLAS's threading threshold, so it
    never uses the second core; running slices of the batch on the pool (matmul drops the GIL) does.
    """
    n = b.shape[0]
    if xp is not np or n < 2 or a.shape[0] * a.shape[1] * b.shape[2] * n < max(_SPLIT_WORK, P.MIN_SIZE):
        return P.matmul(xp, a, b)
    out = np.empty((n, a.shape[0], b.shape[2]), dtype=np.result_type(a, b))
    P.run_ranges(n, lambda i, j: np.matmul(a, b[i:j], out=out[i:j]), blas=True)
    return out


# ---- convolution on arrays --------------------------------------------------------------------------
def conv_cols(xp, x, ksize, pads, stride, dil, groups: int = 1):
    """Contiguous convolution columns ``(G, Cg*K, N, P)`` of ``x`` (N, C, *S), and the output size.

    One copy out of the strided window view, transposed on the way (batch after the kernel dims).
    """
    nsp = len(ksize)
    sp = x.shape[-nsp:]
    osize = tuple(out_size(s, lo, hi, k, st, d) for s, (lo, hi), k, st, d in zip(sp, pads, ksize, stride, dil))
    if xp is np and nsp == 2:
        cols = _conv_cols_compiled(x, ksize, pads, stride, dil, osize)
        if cols is not None:
            return cols.reshape(groups, (x.shape[1] // groups) * math.prod(ksize), x.shape[0], math.prod(osize)), osize
    v = windows(xp, pad(xp, x, pads), ksize, stride, dil, osize)  # (N, C, *k, *o)
    n, c = x.shape[0], x.shape[1]
    v = v.transpose((1,) + tuple(range(2, 2 + nsp)) + (0,) + tuple(range(2 + nsp, 2 + 2 * nsp)))
    cols = xp.empty(v.shape, dtype=x.dtype)
    if xp is np and cols.size >= P.MIN_STREAM:  # a strided gather: split over channels (or kernel rows if C is 1)
        ax = 0 if v.shape[0] > 1 else 1
        lead = (slice(None),) * ax
        P.run_ranges(v.shape[ax], lambda a, b: np.copyto(cols[lead + (slice(a, b),)], v[lead + (slice(a, b),)]))
    else:
        cols[...] = v
    return cols.reshape(groups, (c // groups) * math.prod(ksize), n, math.prod(osize)), osize


def _conv_cols_compiled(x, ksize, pads, stride, dil, osize):
    """``conv_cols``'s columns (C, kH, kW, N, oH, oW) from the compiled 2-D kernel (no padded copy), or None
    when it does not apply (small, not float32/float64, a negative leading pad, or no numba)."""
    n, c, h, w = x.shape
    size = c * math.prod(ksize) * n * math.prod(osize)
    if size < C.MIN_ELEMENTS or x.dtype not in C.FLOAT or pads[0][0] < 0 or pads[1][0] < 0 or min(osize) <= 0:
        return None
    k = C.get("conv")
    if k is None:
        return None
    xf = np.ascontiguousarray(x).reshape(-1)
    cols = np.empty((c,) + tuple(ksize) + (n,) + tuple(osize), dtype=x.dtype)
    cf = cols.reshape(-1)
    shape = np.array((n, c, h, w) + tuple(ksize) + tuple(osize), dtype=np.int64)
    hv, wv = h + min(pads[0][1], 0), w + min(pads[1][1], 0)
    C.run_planes(c, size, lambda c0, c1: k.im2col2d(xf, cf, shape, c0, c1, hv, wv, pads[0][0], pads[1][0], stride[0],
                                                    stride[1], dil[0], dil[1]))
    return cols


# Samples per matmul: about this many output positions (columns) per product. Measured on the CNN and DCGAN
# shapes (1 thread): one product over the whole batch is up to 3x slower than products over a few thousand
# columns (the operands then stay in cache), and per-sample products are slow when the output is small (4x4).
_COLS_PER_GEMM = 2048
# The forward multiplies each sample's columns straight into the output when a sample has this many output
# positions (no transposing copy; the per-sample products are large enough); smaller outputs (the 8x8, 4x4 ends
# of a discriminator) go through products over several samples and a transposing copy.
_DIRECT_FROM = 128
# Elements of per-chunk weight-gradient products kept for an in-order sum on the split path (64 MB of float32);
# beyond it the weight gradient runs on one thread.
_KEEP_LIMIT = 1 << 24


def _chunks(xp, n: int, p: int) -> list:
    if xp is not np:  # a GPU wants one large product
        return [(0, n)]
    nb = max(1, min(n, round(_COLS_PER_GEMM / max(p, 1))))
    return [(a, min(n, a + nb)) for a in range(0, n, nb)]


def _over_chunks(xp, chunks: list, work: int, body):
    """``body(chunk_list)`` over all chunks; with 2+ threads and enough work, the chunks are split into one
    contiguous group per thread of the intra-op pool (matmul drops the GIL). Returns the list of results."""
    if xp is not np or len(chunks) < 2 or work < max(_SPLIT_WORK, P.MIN_SIZE):
        return [body(chunks)]
    groups = P.split(len(chunks), P.threads() * P.PIECES_PER_THREAD)
    return P.run_tasks([(lambda a=a, b=b: body(chunks[a:b])) for a, b in groups], blas=True)


def conv(xp, x, w, pads, stride, dil, groups: int, bias=None):
    """Cross-correlation of ``x`` (N, C, *S) with ``w`` (O, C/G, *k), plus ``bias`` (O,) if given:
    ``(y, cols)``, the columns kept for the weight gradient."""
    ksize = w.shape[2:]
    cols, osize = conv_cols(xp, x, ksize, pads, stride, dil, groups)
    grp, ck, n, p = cols.shape
    o = w.shape[0]
    wm = w.reshape(grp, o // grp, ck)
    out = xp.empty((n, o, p), dtype=xp.result_type(w, cols))
    b2 = None if bias is None else bias.reshape(o, 1)

    def body(chunks):
        for a, b in chunks:
            if p >= _DIRECT_FROM and grp == 1:  # per-sample products straight into the output's layout
                P.matmul(xp, wm[0], cols[0, :, a:b].transpose(1, 0, 2), out=out[a:b])
                if b2 is not None:
                    out[a:b] += b2
                continue
            y = P.matmul(xp, wm, cols[:, :, a:b].reshape(grp, ck, (b - a) * p))  # (G, Og, m*P)
            yt = y.reshape(o, b - a, p).transpose(1, 0, 2)
            if b2 is None:
                out[a:b] = yt
            else:
                xp.add(yt, b2, out=out[a:b])

    _over_chunks(xp, _chunks(xp, n, p), o * ck * n * p, body)
    return out.reshape((n, o) + osize), cols


def weight_grad(xp, cols, g, wshape, groups: int):
    """d(loss)/d(weight) from the convolution columns ``cols`` (G, Cg*K, N, P) and the output grad ``g``:
    a sum of products over chunks of the batch, accumulated in place (memory: the weight, and a transposed
    copy of one chunk of ``g``; no per-sample partial gradients)."""
    grp, ck, n, p = cols.shape
    o = wshape[0]
    og = o // grp
    if n == 0:
        return xp.zeros(wshape, dtype=xp.result_type(g, cols))
    g3 = g.reshape(n, o, p)
    chunks = _chunks(xp, n, p)
    nb = max(b - a for a, b in chunks)

    def body(part, keep: bool = False):
        """Products over ``part``: summed in place, or (``keep``) returned one per chunk for the caller to sum."""
        acc = None
        kept = []
        buf = xp.empty(o * nb * p, dtype=g.dtype)
        for a, b in part:
            m = b - a
            gt = buf[:o * m * p].reshape(o, m, p)
            gt[...] = g3[a:b].transpose(1, 0, 2)
            prod = P.matmul(xp, gt.reshape(grp, og, m * p), cols[:, :, a:b].reshape(grp, ck, m * p).transpose(0, 2, 1))
            if keep:
                kept.append(prod)
            elif acc is None:
                acc = prod
            else:
                acc += prod
        return kept if keep else acc

    # Split over the pool, each chunk's product is kept and the caller adds them in chunk order: the same
    # sums in the same order as one thread (bitwise equal), for a weight-sized array per chunk.
    work = o * ck * n * p
    if (xp is not np or len(chunks) < 2 or work < max(_SPLIT_WORK, P.MIN_SIZE)
            or len(chunks) * math.prod(wshape) > _KEEP_LIMIT):
        return body(chunks).reshape(wshape)  # one thread: summed in place
    parts = _over_chunks(xp, chunks, work, lambda part: body(part, keep=True))
    prods = [q for part in parts for q in part]
    acc = prods[0]
    for extra in prods[1:]:
        acc += extra
    return acc.reshape(wshape)


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
        return _conv_transpose_chunked(xp, x, wk[0], ksize, cg, pads, stride, dil, osize)
    else:
        cols = xp.matmul(wk, x.reshape(n, groups, og, math.prod(isize))).reshape((n, groups, kvol, cg) + isize)
        cols = cols.transpose((0, 2, 1) + tuple(range(3, cols.ndim)))
    y = col2im(xp, cols, ksize, (n, groups, cg) + tuple(osize), pads, stride, dil)
    return y.reshape((n, groups * cg) + tuple(osize))



def _conv_transpose_chunked(xp, x, wk, ksize, cg: int, pads, stride, dil, osize):
    """conv_transpose for one group, over chunks of the batch: ``wk`` (K*Cout, Cin) times each chunk's input,
    then col2im into that chunk of the output. Small inputs (P positions per sample) are multiplied for several
    samples at once (one product reads the weight once instead of once per sample); the chunks also keep the
    columns in cache and their memory bounded."""
    n, og = x.shape[0], x.shape[1]
    isize = x.shape[2:]
    p = math.prod(isize)
    kvol = math.prod(ksize)
    y = xp.zeros((n, 1, cg) + tuple(osize), dtype=xp.result_type(x, wk))
    x3 = x.reshape(n, og, p)
    if p >= _DIRECT_FROM:
        nb = max(1, min(n, (1 << 20) // max(1, kvol * cg * p)))  # about 4 MB of float32 columns per chunk
    else:
        nb = max(1, min(n, round(_COLS_PER_GEMM / 2 / p)))

    def body(chunks):
        for a, b in chunks:
            m = b - a
            if p >= _DIRECT_FROM:
                cols = xp.matmul(wk, x3[a:b]).reshape((m, kvol, 1, cg) + isize)
            else:
                xt = xp.empty((og, m, p), dtype=x.dtype)
                xt[...] = x3[a:b].transpose(1, 0, 2)
                cols = xp.matmul(wk, xt.reshape(og, m * p)).reshape((kvol, 1, cg, m) + isize)
                cols = cols.transpose((3, 0, 1, 2) + tuple(range(4, 4 + len(isize))))
            col2im(xp, cols, ksize, (m, 1, cg) + tuple(osize), pads, stride, dil, out=y[a:b])

    chunks = [(a, min(n, a + nb)) for a in range(0, n, nb)] if xp is np else [(0, n)]
    _over_chunks(xp, chunks, og * kvol * cg * n * p, body)
    return y.reshape((n, cg) + tuple(osize))


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
    if xp is np and nsp == 2 and cols.size >= C.MIN_ELEMENTS and cols.dtype in C.FLOAT:
        out = _col2im_same_compiled(cols, ksize, pads, dil)
        if out is not None:
            return out
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


# ---- the CUDA kernels of kernels/im2col.cu (2-d, symmetric padding) ------------------------------------
def _kernel_pads(pads):
    """The kernels' (pH, pW), or None when the padding is not symmetric (``'same'`` with an even kernel)."""
    if len(pads) != 2 or any(lo != hi or lo < 0 for lo, hi in pads):
        return None
    return pads[0][0], pads[1][0]


def im2col_2d(xp, x, ksize, pads, stride, dil):
    """``(cols (N, C*kH*kW, OH*OW), (OH, OW))`` of ``x`` (N, C, H, W) by one im2col kernel launch, or None when
    the kernel does not apply (not CUDA, kernels off, not 2-d, a dtype or layout it does not take)."""
    kp = _kernel_pads(pads)
    run = _fused.launcher(xp, x) if kp is not None and x.ndim == 4 and len(ksize) == 2 else None
    if run is None:
        return None
    n, c, h, w = x.shape
    osize = tuple(out_size(s, p, p, k, st, d) for s, p, k, st, d in zip((h, w), kp, ksize, stride, dil))
    cols = xp.empty((n, c * ksize[0] * ksize[1], osize[0] * osize[1]), dtype=x.dtype)
    run(L.im2col_plan(x, cols, tuple(ksize), tuple(dil), kp, tuple(stride)))
    return cols, osize


def col2im_2d(xp, cols, ksize, dest_shape, pads, stride, dil):
    """``cols`` (N, C*kH*kW, OH*OW) summed into a new (N, C, H, W) array by one col2im kernel launch, or None
    when the kernel does not apply."""
    kp = _kernel_pads(pads)
    run = _fused.launcher(xp, cols) if kp is not None and len(dest_shape) == 4 and len(ksize) == 2 else None
    if run is None:
        return None
    out = xp.empty(tuple(dest_shape), dtype=cols.dtype)
    run(L.col2im_plan(cols, out, tuple(ksize), tuple(dil), kp, tuple(stride)))
    return out


def conv2d_fused(xp, x, w, pads, stride, dil, groups: int, bias=None):
    """``conv``'s ``(y, cols)`` through the im2col kernel, or None when it does not apply.

    ``cols`` is returned as a (G, Cg*K, N, P) view of the kernel's (N, C*K, P) columns, the layout
    ``weight_grad`` takes (it makes the one transposing copy its product needs).
    """
    r = im2col_2d(xp, x, w.shape[2:], pads, stride, dil)
    if r is None:
        return None
    cols, osize = r
    n, ck, p = cols.shape
    o, cgk = w.shape[0], ck // groups
    y = xp.matmul(w.reshape(groups, o // groups, cgk), cols.reshape(n, groups, cgk, p)).reshape(n, o, p)
    if bias is not None:
        y += bias.reshape(o, 1)
    return y.reshape((n, o) + osize), cols.reshape(n, groups, cgk, p).transpose(1, 2, 0, 3)


def conv2d_input_grad_fused(xp, g, w, xshape, pads, stride, dil, groups: int):
    """The input gradient of a 2-d ``conv`` (weight ``w``, output gradient ``g``): ``col2im(w^T g)`` through the
    col2im kernel, or None when it does not apply."""
    if len(xshape) != 4 or _kernel_pads(pads) is None or _fused.launcher(xp, w) is None:
        return None
    n, o = g.shape[0], g.shape[1]
    if o == 0:
        return None
    cgk = w.size // o
    wt = w.reshape(groups, o // groups, cgk).transpose(0, 2, 1)
    cols = xp.matmul(wt, g.reshape(n, groups, o // groups, -1)).reshape(n, groups * cgk, -1)
    return col2im_2d(xp, cols, w.shape[2:], xshape, pads, stride, dil)


def _col2im_same_compiled(cols, ksize, pads, dil):
    """``_col2im_same`` for 2-D through the compiled kernel (one pass per kernel position, no zeroing of ``cols``),
    or None without numba."""
    k = C.get("conv")
    if k is None:
        return None
    cols = np.ascontiguousarray(cols)
    n = cols.shape[0]
    shy = np.array([i * dil[0] - pads[0][0] for i in range(ksize[0]) for _ in range(ksize[1])], dtype=np.int64)
    shx = np.array([j * dil[1] - pads[1][0] for _ in range(ksize[0]) for j in range(ksize[1])], dtype=np.int64)
    out = np.zeros((n,) + cols.shape[2:], dtype=cols.dtype)
    cf, of, shape = cols.reshape(-1), out.reshape(-1), np.array(cols.shape, dtype=np.int64)
    C.run_planes(n, cols.size, lambda a, b: k.col2im_same2d(cf, of, shape, a, b, shy, shx))
    return out
