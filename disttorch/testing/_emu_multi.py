"""NumPy emulation of kernels/adam.cu, kernels/bucket.cu and kernels/im2col.cu for the stand-in device.

Written from the ``.cu`` sources (not from the ops that call them): each function reads the plan's arguments in
the order and C types of the kernel's parameters, walks the plan's block tables as the grid would, computes in
float32 (the kernels' working precision for every storage dtype) and writes the outputs in place. The
multi-tensor kernels get device addresses in a table; :func:`._kernel_emulator.array_at` turns each back into a
view. Used by ``_kernel_emulator.launch`` and by tests/kernels/test_launch_plans.py (on host arrays).
"""
from __future__ import annotations

import numpy as np

from .. import _dtype as D
from ._kernel_emulator import array_at

__all__ = ["run", "adam_multi_tensor", "bucket_copy", "im2col", "col2im"]

_F32 = np.float32


def _storage(suffix: str) -> np.dtype:
    return {"f32": np.dtype(np.float32), "f16": np.dtype(np.float16), "bf16": np.dtype(D.bfloat16.np)}[suffix]


def run(plan, args) -> None:
    """Dispatch one plan of adam.cu, bucket.cu or im2col.cu on (unwrapped) argument buffers."""
    name = plan.name
    if name.startswith("adam_multi_tensor_"):
        adam_multi_tensor(_storage(name.rsplit("_", 1)[1]), *args)
    elif name.startswith("bucket_pack_") or name.startswith("bucket_unpack_"):
        _, kind, gsuf, _bsuf = name.split("_")
        bucket_copy(kind == "pack", _storage(gsuf), *args)
    elif name.startswith("im2col_"):
        im2col(*args)
    elif name.startswith("col2im_"):
        col2im(*args)
    else:
        raise NotImplementedError(f"stand-in kernel emulator: no emulation of {plan.source}:{name}")


def adam_multi_tensor(dtype, ptrs, numels, block_tensor, block_start, ntensors, chunk, w1, w2, eps, l2, decay,
                      neg_step_size, bc2_sqrt, maximize) -> None:
    """adam.cu's ``adam_chunk``: block b updates [block_start[b], +chunk) of tensor block_tensor[b] in float32
    (``w1``, ``w2`` = 1 - beta1, 1 - beta2)."""
    nt = int(ntensors)
    w, w2, eps, l2, decay = (_F32(v) for v in (w1, w2, eps, l2, decay))
    neg_step_size, bc2_sqrt = _F32(neg_step_size), _F32(bc2_sqrt)
    one = _F32(1.0)
    beta2 = one - w2
    for t, start in zip(np.asarray(block_tensor).tolist(), np.asarray(block_start).tolist()):
        n = int(numels[t])
        p, gr, m, v = (array_at(int(ptrs[k * nt + t]), n, dtype) for k in range(4))
        s = slice(start, min(start + int(chunk), n))
        pv = p[s].astype(_F32) * decay
        g = gr[s].astype(_F32)
        if maximize:
            g = -g
        if l2 != 0:
            g = g + l2 * pv
        mv0 = m[s].astype(_F32)
        mv = mv0 + w * (g - mv0) if w < _F32(0.5) else g - (g - mv0) * (one - w)
        vv = beta2 * v[s].astype(_F32) + w2 * g * g
        pv = pv + neg_step_size * mv / (np.sqrt(vv) / bc2_sqrt + eps)
        p[s], m[s], v[s] = pv.astype(dtype), mv.astype(dtype), vv.astype(dtype)


def bucket_copy(pack: bool, gdtype, ptrs, offsets, numels, block_tensor, block_start, bucket, chunk, scale) -> None:
    """bucket.cu's ``bucket_copy``: ``flat[i] = B(f32(grad[i]) * scale)`` (pack) or the reverse (unpack)."""
    scale = _F32(scale)
    for t, start in zip(np.asarray(block_tensor).tolist(), np.asarray(block_start).tolist()):
        n = int(numels[t])
        grad = array_at(int(ptrs[t]), n, gdtype)
        off = int(offsets[t])
        end = min(start + int(chunk), n)
        flat = bucket[off + start:off + end]
        if pack:
            flat[...] = (grad[start:end].astype(_F32) * scale).astype(bucket.dtype)
        else:
            grad[start:end] = (flat.astype(_F32) * scale).astype(gdtype)


def _geom(*g) -> tuple:
    return tuple(int(v) for v in g)


def im2col(x, cols, *geom) -> None:
    """im2col.cu's ``im2col_source``: column element i reads x at its window position, or 0 on the padding."""
    n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = _geom(*geom)
    i = np.arange(n * c * kh * kw * oh * ow, dtype=np.int64)
    ll = i % (oh * ow)
    r = i // (oh * ow)
    k = r % (kh * kw)
    r //= kh * kw
    y = (ll // ow) * sh - ph + (k // kw) * dh
    xx = (ll % ow) * sw - pw + (k % kw) * dw
    ok = (y >= 0) & (y < h) & (xx >= 0) & (xx < w)
    src = np.where(ok, (r * h + y) * w + xx, 0)
    flat = cols.reshape(-1)
    flat[...] = np.where(ok, x.reshape(-1)[src] if x.size else 0, 0).astype(cols.dtype)


def col2im(cols, x, *geom) -> None:
    """im2col.cu's ``col2im_gather``: each image element sums, in float32 and in (ki, kj) order, the column
    entries that cover it."""
    n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = _geom(*geom)
    i = np.arange(n * c * h * w, dtype=np.int64)
    xx = i % w
    r = i // w
    y = r % h
    r //= h
    kvol, npos = kh * kw, oh * ow
    src = cols.reshape(-1)
    acc = np.zeros(i.size, dtype=_F32)
    for ki in range(kh):
        ys = y + ph - ki * dh
        oky = (ys >= 0) & (ys % sh == 0) & (ys // sh < oh)
        for kj in range(kw):
            xs = xx + pw - kj * dw
            ok = oky & (xs >= 0) & (xs % sw == 0) & (xs // sw < ow)
            idx = np.where(ok, (r * kvol + ki * kw + kj) * npos + (ys // sh) * ow + xs // sw, 0)
            acc += np.where(ok, src[idx].astype(_F32) if src.size else _F32(0), _F32(0))
    x.reshape(-1)[...] = acc.astype(x.dtype)
