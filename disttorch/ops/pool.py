"""Pooling: max / average pools in 1-D and 2-D, lp_pool (adaptive pools and max_unpool: pool_adaptive.py).

With the winning positions (max) or the window weights (average) fixed, a pool is a linear map, so each
pool records a ``LinearNode`` (pad.py): backward applies the adjoint (a scatter into the input plane) and
double backward the pool again. The 2-D kernels work on the last two axes of (N, C, H, W) or (C, H, W)
arrays; the 1-D functions unsqueeze to 2-D as PyTorch does (their grad_fn is ``SqueezeBackward1``).
Max and average pools never copy windows: they loop over the kh*kw kernel positions, each a strided
view of the (padded) input covering every output, so the common 2x2 non-overlapping pool is four views.
"""
from __future__ import annotations

import numbers

import numpy as np  # dtype constants and index tables

from .. import _compiled as C
from .. import _parallel as P
from .._device import array_module_of
from ._helpers import tensor_arg
from ._pool_args import _args2d, _check1d, _check_dtype, _dim_range, _ints, ints_error
from .pad import LinearNode, compute_dtype, device_table, linear_apply
# Adaptive pools and max_unpool live in pool_adaptive.py; ops.pool stays the one pool module that ops/__init__
# and nn.functional import from.
from .pool_adaptive import (  # noqa: F401
    adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d, adaptive_max_pool1d, adaptive_max_pool1d_with_indices,
    adaptive_max_pool2d, adaptive_max_pool2d_with_indices, max_unpool1d, max_unpool2d)

__all__ = ["max_pool1d", "max_pool2d", "max_pool1d_with_indices", "avg_pool1d", "adaptive_avg_pool1d"]
FUNCTIONAL = ("max_pool1d", "max_pool2d", "max_pool1d_with_indices", "max_pool2d_with_indices", "avg_pool1d",
              "avg_pool2d", "lp_pool1d", "lp_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
              "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool1d_with_indices",
              "adaptive_max_pool2d_with_indices", "max_unpool1d", "max_unpool2d")


class MaxPool2DWithIndicesBackward0(LinearNode):
    op_name = "max_pool2d_with_indices"


class MaxPool2DWithIndicesBackwardBackward0(LinearNode):
    op_name = "max_pool2d_with_indices_backward"


class AvgPool2DBackward0(LinearNode):
    op_name = "avg_pool2d"


class AvgPool2DBackwardBackward0(LinearNode):
    op_name = "avg_pool2d_backward"


# ---- geometry (argument checks: _pool_args.py) ------------------------------------------------------------
def _out_len(n: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    o = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1
    if ceil and (o - 1) * s >= n + p:  # the last window must start inside the input or left padding
        o -= 1
    return o


def _geometry(x, op: str, k, s, p, d, ceil: bool):
    """Output size (oh, ow) after PyTorch's checks, in PyTorch's order."""
    for i in range(2):
        if s[i] == 0:
            raise RuntimeError("stride should not be zero")
        if p[i] < 0:
            raise RuntimeError(f"pad must be non-negative, but got pad: {p[i]}")
        if p[i] > ((k[i] - 1) * d[i] + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={p[i]}, "
                               f"kernel_size={k[i]} and dilation={d[i]}")
    if k[0] <= 0 or k[1] <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got kH: {k[0]} kW: {k[1]}")
    if s[0] < 0 or s[1] < 0:
        raise RuntimeError(f"stride should be greater than zero, but got dH: {s[0]} dW: {s[1]}")
    if d[0] <= 0 or d[1] <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got dilationH: {d[0]} "
                           f"dilationW: {d[1]}")
    shape = x._data.shape
    if not ((len(shape) == 3 and 0 not in shape) or (len(shape) == 4 and 0 not in shape[1:])):
        if op == "max_pool2d" and len(shape) not in (3, 4):
            raise RuntimeError("non-empty 3D or 4D (batch mode) tensor expected for input")
        raise RuntimeError(f"Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, "
                           f"but got:{list(shape)}")
    c, h, w = shape[-3:]
    oh, ow = _out_len(h, k[0], s[0], p[0], d[0], ceil), _out_len(w, k[1], s[1], p[1], d[1], ceil)
    if oh < 1 or ow < 1:
        raise RuntimeError(f"Given input size: ({c}x{h}x{w}). Calculated output size: ({c}x{oh}x{ow}). "
                           f"Output size is too small")
    return oh, ow


def _padded(xp, a, p, size, fill):
    """``a`` placed at offset ``p`` in a ``size`` plane filled with ``fill`` (``a`` itself when that is a no-op)."""
    h, w = a.shape[-2:]
    if p == (0, 0) and size[0] <= h and size[1] <= w:
        return a
    out = xp.full(a.shape[:-2] + tuple(size), fill, dtype=a.dtype)
    hh, ww = min(h, size[0] - p[0]), min(w, size[1] - p[1])
    out[..., p[0]:p[0] + hh, p[1]:p[1] + ww] = a[..., :hh, :ww]
    return out


# ---- max pool: one strided view of the (padded) input per kernel position ----------------------------------
def _views(a, geo):
    """View ``q = i * kw + j`` holds, for every output position, kernel element (i, j) of its window."""
    k, s, _, d, o = geo[:5]
    return [a[..., i * d[0]:i * d[0] + s[0] * (o[0] - 1) + 1:s[0], j * d[1]:j * d[1] + s[1] * (o[1] - 1) + 1:s[1]]
            for i in range(k[0]) for j in range(k[1])]


def _max_fwd(xp, a, geo, want_arg: bool):
    """Window maxima and, if asked, PyTorch's argmax (first maximum; the last NaN if any) as kernel offsets."""
    fill = -np.inf if a.dtype.kind in "fV" else np.iinfo(a.dtype).min
    views = _views(_padded(xp, a, geo[2], geo[6], fill), geo)
    m = views[0].copy()
    if not want_arg:
        for v in views[1:]:
            xp.maximum(m, v, out=m)
        return m, None
    dt = np.uint8 if len(views) < 256 else np.int64
    kk = xp.zeros(m.shape, dtype=dt)
    for q in range(1, len(views)):
        v = views[q]
        upd = xp.greater(v, m)
        xp.maximum(m, v, out=m)
        step = xp.subtract(dt(q), kk)  # kk += upd * (q - kk); wraps harmlessly in uint8
        step *= upd
        kk += step
    if a.dtype.kind in "fV" and (xp is not np or xp.isnan(m.sum())):  # on a device: always, no host check
        for q, v in enumerate(views):
            kk = xp.where(xp.isnan(v), dt(q), kk)
    return m, kk


def _max_gather(b, kk, geo):
    """The pool with fixed argmax ``kk`` (linear in ``b``): the forward of double backward."""
    xp = array_module_of(b)
    views = _views(_padded(xp, b, geo[2], geo[6], 0), geo)
    out = views[0].copy()
    for q in range(1, len(views)):
        out = xp.where(kk == q, views[q], out)
    return out


def _max_scatter(g, kk, geo):
    """The adjoint: each output gradient goes to its window's argmax position."""
    xp = array_module_of(g)
    k, s, p, d, _, hw, size = geo
    buf = xp.zeros(g.shape[:-2] + size, dtype=g.dtype)
    disjoint = s[0] >= d[0] * (k[0] - 1) + 1 and s[1] >= d[1] * (k[1] - 1) + 1
    for q, dst in enumerate(_views(buf, geo)):
        if disjoint and g.dtype.kind == "f":
            xp.multiply(g, kk == q, out=dst)
        elif disjoint:
            dst[...] = xp.where(kk == q, g, 0)
        else:
            dst += xp.where(kk == q, g, 0)
    if size != hw:
        buf = xp.ascontiguousarray(buf[..., p[0]:p[0] + hw[0], p[1]:p[1] + hw[1]])
    return buf


def _flat_index(xp, kk, geo):
    k, s, p, d, o, hw, _ = geo
    kk = kk.astype(np.int64)
    rows = (xp.arange(o[0]) * s[0] - p[0])[:, None] + (kk // k[1]) * d[0]
    cols = (xp.arange(o[1]) * s[1] - p[1]) + (kk % k[1]) * d[1]
    return rows * hw[1] + cols


# ---- the common 2x2 / stride 2 pool: two pairwise reductions instead of four strided views ------------------
_FAST2 = (np.dtype(np.float32), np.dtype(np.float64))


def _max2x2(xp, a, o):
    """Maxima of the 2x2 blocks of ``a`` and the two choices that make PyTorch's first-maximum argmax.

    Columns first, then rows: with ties resolved to the left and then to the top, the pick is the first
    maximum in row-major window order, as PyTorch's ``val > maxval`` scan. ``bh`` (full height): the right
    column won its row; ``bv``: the bottom row won the window. Large NumPy inputs are split over their
    leading (batch x channel) planes on the intra-op pool; each plane is computed as in the serial path.
    """
    a = a[..., :2 * o[0], :2 * o[1]]
    if xp is np and a.size >= P.MIN_SIZE and a.ndim > 2:
        lead = a.shape[:-2]
        a3 = a.reshape((-1,) + a.shape[-2:])
        m = np.empty((a3.shape[0],) + tuple(o), dtype=a.dtype)
        bh = np.empty((a3.shape[0], 2 * o[0], o[1]), dtype=bool)
        bv = np.empty_like(m, dtype=bool)
        P.run_ranges(a3.shape[0], lambda i, j: _max2x2_into(a3[i:j], m[i:j], bh[i:j], bv[i:j]))
        return m.reshape(lead + m.shape[1:]), bh.reshape(lead + bh.shape[1:]), bv.reshape(lead + bv.shape[1:])
    a0, a1 = a[..., 0::2], a[..., 1::2]
    bh = xp.greater(a1, a0)
    h = xp.maximum(a0, a1)
    h0, h1 = h[..., 0::2, :], h[..., 1::2, :]
    bv = xp.greater(h1, h0)
    if xp is not np and a.dtype.kind in "fV":  # PyTorch's scan takes a NaN (the last one): no host check needed
        bh |= xp.isnan(a1)
        bv |= xp.isnan(h1)
    return xp.maximum(h0, h1, out=h0.copy()), bh, bv


def _max2x2_into(a, m, bh, bv) -> None:
    """``_max2x2``'s serial steps on NumPy planes ``a``, written into ``m``, ``bh``, ``bv``."""
    a0, a1 = a[..., 0::2], a[..., 1::2]
    np.greater(a1, a0, out=bh)
    h = np.maximum(a0, a1)
    h0, h1 = h[..., 0::2, :], h[..., 1::2, :]
    np.greater(h1, h0, out=bv)
    np.maximum(h0, h1, out=m)


def _kk2x2(bh, bv):
    """The kernel offsets ``q = 2 * i + j`` (uint8) of the choices made by ``_max2x2``."""
    even, odd = bh[..., 0::2, :], bh[..., 1::2, :]
    j = even ^ (bv & (even ^ odd))
    return bv.view(np.uint8) * np.uint8(2) + j.view(np.uint8)


def _scatter2x2(g, bh, bv, hw):
    """The adjoint of the 2x2 pool: each gradient to its window's chosen element (two pairwise splits)."""
    xp = array_module_of(g)
    lead, (oh, ow) = g.shape[:-2], g.shape[-2:]
    full = hw == (2 * oh, 2 * ow)
    if xp is np and g.ndim > 2 and 4 * g.size >= P.MIN_SIZE:  # split over the leading planes
        g3, bh3, bv3 = (t.reshape((-1,) + t.shape[-2:]) for t in (g, bh, bv))
        buf = np.empty((g3.shape[0],) + tuple(hw), dtype=g.dtype)
        P.run_ranges(g3.shape[0], lambda i, j: _scatter2x2_into(g3[i:j], bh3[i:j], bv3[i:j], buf[i:j], not full))
        return buf.reshape(lead + tuple(hw))
    buf = xp.empty(lead + hw, dtype=g.dtype) if full else xp.zeros(lead + hw, dtype=g.dtype)
    _scatter2x2_into(g, bh, bv, buf, False, xp)
    return buf


def _scatter2x2_into(g, bh, bv, buf, zero: bool, xp=np) -> None:
    """``_scatter2x2`` into ``buf`` (zero-filled first when ``zero``: an odd height or width leaves a margin)."""
    lead, (oh, ow) = g.shape[:-2], g.shape[-2:]
    if zero:
        buf[...] = 0
    rows = xp.empty(lead + (oh, 2, ow), dtype=g.dtype)
    xp.multiply(g, ~bv, out=rows[..., 0, :])
    xp.multiply(g, bv, out=rows[..., 1, :])
    rows = rows.reshape(lead + (2 * oh, ow))
    xp.multiply(rows, ~bh, out=buf[..., :2 * oh, 0:2 * ow:2])
    xp.multiply(rows, bh, out=buf[..., :2 * oh, 1:2 * ow:2])


def _max_pool2d_compiled(a, o, return_indices: bool):
    """``_max_pool2d_fast`` through the compiled kernels (disttorch/_compiled/pool.py), or None when they do not
    apply: one pass forward (NaNs included) and one backward. Planes are split over the intra-op pool."""
    k = C.get("pool") if a.ndim > 2 and a.flags.c_contiguous else None
    if k is None:
        return None
    lead, hw = a.shape[:-2], a.shape[-2:]
    a3 = a.reshape((-1,) + hw)
    m = np.empty((a3.shape[0],) + tuple(o), dtype=a.dtype)
    kk = np.empty(m.shape, dtype=np.uint8)
    C.run_planes(a3.shape[0], a.size, lambda i, j: k.max2x2(a3[i:j], m[i:j], kk[i:j]))
    m, kk = m.reshape(lead + m.shape[1:]), kk.reshape(lead + m.shape[1:])
    geo = ((2, 2), (2, 2), (0, 0), (1, 1), o, hw, hw)

    def scatter(g):
        if g.dtype not in C.FLOAT or array_module_of(g) is not np:
            return _max_scatter(g, kk, geo)
        g3 = np.ascontiguousarray(g).reshape((-1,) + tuple(o))
        full = hw == (2 * o[0], 2 * o[1])
        buf = (np.empty if full else np.zeros)((g3.shape[0],) + tuple(hw), dtype=g.dtype)
        C.run_planes(g3.shape[0], buf.size, lambda i, j: k.scatter2x2(g3[i:j], kk3[i:j], buf[i:j]))
        return buf.reshape(lead + tuple(hw))
    kk3 = kk.reshape((-1,) + tuple(o))
    res = (m, _flat_index(np, kk, geo)) if return_indices else m
    return res, (lambda b: _max_gather(b, kk, geo)), scatter


def _max_pool2d_fast(xp, a, o, return_indices: bool):
    """The 2x2/stride-2 max pool as ``LinearNode``'s ``run`` returns it; None when NaNs need the general path."""
    if xp is np and a.size >= C.MIN_ELEMENTS:
        done = _max_pool2d_compiled(a, o, return_indices)
        if done is not None:
            return done
    m, bh, bv = _max2x2(xp, a, o)
    if xp is np and xp.isnan(m.sum()):
        return None  # PyTorch picks the last NaN: the general path handles it (on a device _max2x2 does)
    hw = a.shape[-2:]
    geo = ((2, 2), (2, 2), (0, 0), (1, 1), o, hw, hw)
    res = (m, _flat_index(xp, _kk2x2(bh, bv), geo)) if return_indices else m
    return res, (lambda b: _max_gather(b, _kk2x2(bh, bv), geo)), (lambda g: _scatter2x2(g, bh, bv, hw))


def _max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, op="max_pool2d"):
    x = tensor_arg(input, op)
    k, s, p, d = _args2d(op, kernel_size, stride, padding, dilation)
    o = _geometry(x, op, k, s, p, d, ceil_mode)
    _check_dtype(x, op, True)
    a = x._data
    hw = a.shape[-2:]
    fast = k == (2, 2) and s == (2, 2) and p == (0, 0) and d == (1, 1) and a.dtype in _FAST2 and \
        o == (hw[0] // 2, hw[1] // 2)
    size = (max((o[0] - 1) * s[0] + d[0] * (k[0] - 1) + 1, p[0] + hw[0]),
            max((o[1] - 1) * s[1] + d[1] * (k[1] - 1) + 1, p[1] + hw[1]))
    geo = (k, s, p, d, o, hw, size)

    def run(xp, a, grad: bool):
        if fast:
            done = _max_pool2d_fast(xp, a, o, return_indices)
            if done is not None:
                return done
        m, kk = _max_fwd(xp, a, geo, grad or return_indices)
        res = (m, _flat_index(xp, kk, geo)) if return_indices else m
        return res, (lambda b: _max_gather(b, kk, geo)), (lambda g: _max_scatter(g, kk, geo))

    return MaxPool2DWithIndicesBackward0.apply(x, run=run, adj_cls=MaxPool2DWithIndicesBackwardBackward0)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """2-D max pooling over (N, C, H, W) or (C, H, W) input.

    Args:
        kernel_size, stride, padding, dilation: int or (h, w); ``stride`` defaults to ``kernel_size``.
        ceil_mode: round the output size up (windows must still start inside the padded input).
        return_indices: also return the argmax positions, flat indices into each H*W plane (int64).

    Example:
        >>> max_pool2d(disttorch.arange(16.).reshape(1, 1, 4, 4), 2)
        tensor([[[[ 5.,  7.],
                  [13., 15.]]]])
    """
    return _max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
                            return_indices: bool = False):
    """``max_pool2d`` returning ``(output, indices)`` always."""
    return _max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def _args1d(op: str, x, kernel_size, stride, padding, dilation):
    if x.ndim not in (2, 3):
        raise RuntimeError(f"{op}: Expected 2D or 3D (batch mode) tensor with optional 0 dim batch size for input, "
                           f"but got:{list(x.shape)}")

    def one(v, what, allow_empty=False):
        seq = isinstance(v, (list, tuple))
        if seq:
            if allow_empty and len(v) == 0:
                return None
            if len(v) != 1:
                none = "None, " if allow_empty else ""
                sep = "," if allow_empty else ""
                raise RuntimeError(f"{op}() {what} must be {none}an int, list of ints{sep} or tuple of ints of size 1 "
                                   f"but got size {len(v)}")
            v = v[0]
        if not (isinstance(v, numbers.Integral) and not isinstance(v, bool)):
            raise ints_error(op, what, v, 0 if seq else None)
        return int(v)

    k = one(kernel_size, "kernel_size")
    s = k if stride is None else one(stride, "stride", True)
    s = k if s is None else s
    p, d = one(padding, "padding"), one(dilation, "dilation")
    if k <= 0:
        raise RuntimeError(f"{op}() kernel_size must be greater than zero, but got {k}")
    if s <= 0:
        raise RuntimeError(f"{op}() stride must be greater than zero, but got {s}")
    if p < 0:
        raise RuntimeError(f"{op}() padding must be non-negative, but got {p}")
    if p > k // 2:
        raise RuntimeError(f"{op}() padding should be at most half of kernel size, but got padding={p} and "
                           f"kernel_size={k}")
    if d <= 0:
        raise RuntimeError(f"{op}() dilation must be greater than zero, but got {d}")
    return k, s, p, d


def _max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    x = tensor_arg(input, "max_pool1d")
    k, s, p, d = _args1d("max_pool1d", x, kernel_size, stride, padding, dilation)
    ow = _out_len(x.shape[-1], k, s, p, d, ceil_mode)
    if ow <= 0:
        raise RuntimeError(f"max_pool1d() Invalid computed output size: {ow}")
    res = _max_pool2d(x.unsqueeze(-2), (1, k), (1, s), (0, p), (1, d), ceil_mode, return_indices, "max_pool1d")
    if return_indices:
        return res[0].squeeze(-2), res[1].squeeze(-2)
    return res.squeeze(-2)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """1-D max pooling over (N, C, L) or (C, L) input; indices point into L."""
    return _max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
                            return_indices: bool = False):
    """``max_pool1d`` returning ``(output, indices)`` always."""
    return _max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


# ---- average pool -----------------------------------------------------------------------------------------
def _avg_factors(n, k, s, p, o, count_include_pad):
    """Per-output 1/window-size along one axis (0 for windows lying wholly in padding)."""
    start = np.arange(o) * s - p
    end = np.minimum(start + k, n + p)
    size = end - start
    cnt = np.minimum(end, n) - np.maximum(start, 0)
    div = size if count_include_pad else cnt
    return np.where(cnt > 0, div, 0), cnt > 0


def _avg_maps(a, k, s, p, o, ceil_mode, count_include_pad, divisor_override):
    xp = array_module_of(a)
    hw = a.shape[-2:]
    dh, mh = _avg_factors(hw[0], k[0], s[0], p[0], o[0], count_include_pad)
    dw, mw = _avg_factors(hw[1], k[1], s[1], p[1], o[1], count_include_pad)
    valid = mh[:, None] & mw[None, :]
    if divisor_override is not None:
        div = np.where(valid, float(divisor_override), 0.0)
    else:
        div = (dh[:, None] * dw[None, :]).astype(np.float64)
    size = (max((o[0] - 1) * s[0] + k[0], p[0] + hw[0]), max((o[1] - 1) * s[1] + k[1], p[1] + hw[1]))
    sl = [(slice(i, i + s[0] * (o[0] - 1) + 1, s[0]), slice(j, j + s[1] * (o[1] - 1) + 1, s[1]))
          for i in range(k[0]) for j in range(k[1])]
    integer = a.dtype.kind in "iu"
    cd = a.dtype if integer else compute_dtype(a)
    if integer:
        idiv = device_table(xp, np.maximum(div, 1).astype(a.dtype), a)
        izero = device_table(xp, valid, a)
        inv = None
    else:
        # built and checked for uniformity on the host (a device check would sync), uploaded once per table
        inv_h = np.where(div != 0, 1.0 / np.where(div != 0, div, 1.0), 0.0).astype(cd)
        inv = inv_h.reshape(-1)[0] if (inv_h == inv_h.reshape(-1)[0]).all() else device_table(xp, inv_h, a)

    def fwd(b):
        src = _padded(xp, b.astype(cd, copy=False), p, size, 0)
        acc = None
        for r, c in sl:
            v = src[..., r, c]
            acc = v.copy() if acc is None else xp.add(acc, v, out=acc)
        if integer:  # C++ integer division truncates toward zero
            q = xp.abs(acc) // idiv
            return xp.where(izero, xp.where(acc < 0, -q, q), 0).astype(b.dtype)
        acc *= inv
        return acc.astype(b.dtype, copy=False)

    def adj(g):
        gd = g.astype(cd) * inv
        buf = xp.zeros(g.shape[:-2] + size, dtype=cd)
        for r, c in sl:
            buf[..., r, c] += gd
        if size != tuple(hw) or p != (0, 0):
            buf = xp.ascontiguousarray(buf[..., p[0]:p[0] + hw[0], p[1]:p[1] + hw[1]])
        return buf.astype(g.dtype, copy=False)

    return fwd, adj


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override=None):
    """2-D average pooling over (N, C, H, W) or (C, H, W) input.

    Args:
        kernel_size, stride, padding: int or (h, w); ``stride`` defaults to ``kernel_size``.
        ceil_mode: round the output size up.
        count_include_pad: count the zero padding in the divisor.
        divisor_override: divide every window sum by this instead.
    """
    op = "avg_pool2d"
    x = tensor_arg(input, op)
    k, s, p, _ = _args2d(op, kernel_size, stride, padding)
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    o = _geometry(x, op, k, s, p, (1, 1), ceil_mode)
    _check_dtype(x, op, x._data.dtype == np.int64)
    fwd, adj = _avg_maps(x._data, k, s, p, o, ceil_mode, count_include_pad, divisor_override)
    return linear_apply(x, fwd, adj, AvgPool2DBackward0, AvgPool2DBackwardBackward0)


def _int1d(op: str, v, what: str, allow_empty: bool = False):
    """The one int of a 1-d pool argument (an int or a 1-sequence; None for an allowed empty one)."""
    e = _check1d(op, v, what, allow_empty)
    if e is not None and not (isinstance(e, numbers.Integral) and not isinstance(e, bool)):
        raise ints_error(op, what, e, 0 if isinstance(v, (list, tuple)) else None)
    return e


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
    """1-D average pooling over (N, C, L) or (C, L) input."""
    x = tensor_arg(input, "avg_pool1d")
    _dim_range(x, "avg_pool1d")
    k = _int1d("avg_pool1d", kernel_size, "kernel_size")
    s = _int1d("avg_pool1d", stride, "stride", True) if stride is not None else None
    p = _int1d("avg_pool1d", padding, "padding")
    r = avg_pool2d(x.unsqueeze(-2), (1, k), (1, k if s is None else s), (0, p), ceil_mode, count_include_pad)
    return r.squeeze(-2)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode: bool = False):
    """Power-average pooling: ``(sum over window of x**p) ** (1/p)``."""
    kh, kw = _ints(kernel_size, 2, "kernel_size", "lp_pool2d", "lp_pool2d: kernel_size must be an int or a pair")
    out = avg_pool2d(input.pow(norm_type), kernel_size, stride, 0, ceil_mode)
    return (out.sign() * out.abs()).mul(kw * kh).pow(1.0 / norm_type)


def lp_pool1d(input, norm_type, kernel_size: int, stride=None, ceil_mode: bool = False):
    """1-D power-average pooling."""
    out = avg_pool1d(input.pow(norm_type), kernel_size, stride, 0, ceil_mode)
    return (out.sign() * out.abs()).mul(kernel_size).pow(1.0 / norm_type)
