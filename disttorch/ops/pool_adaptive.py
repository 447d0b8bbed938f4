"""Adaptive pools (average 1-D/2-D/3-D, max 1-D/2-D) and max_unpool, re-exported by pool.py (imports go one way:
pool.py -> pool_adaptive.py -> _pool_args.py).

Adaptive window ``i`` of ``m`` over ``n`` inputs is ``[floor(i*n/m), ceil((i+1)*n/m))``. Adaptive average
pooling is separable, so it runs as per-axis tap maps (pad.py); adaptive max gathers each window through a
flat index table. Max pools' gradients are scatters to flat indices, the same map ``max_unpool`` applies.
"""
from __future__ import annotations

import math
import numbers

import numpy as np  # index tables on the host

from .._device import array_module_of
from ..amp._state import fp32_op as _autocast_fp32
from ._helpers import tensor_arg
from ._pool_args import _args2d, _check1d, _check_dtype, _dim_range, _type_name, ints_error
from .pad import LinearNode, compute_dtype, linear_apply, simplify_taps, tap_maps

__all__: list = []  # pool.py re-exports these functions and lists them in its __all__ / FUNCTIONAL


class AdaptiveAvgPool2DBackward0(LinearNode):
    op_name = "adaptive_avg_pool2d"


class AdaptiveAvgPool3DBackward0(LinearNode):
    op_name = "adaptive_avg_pool3d"


class AdaptiveAvgPoolBackwardBackward0(LinearNode):
    op_name = "adaptive_avg_pool_backward"


class AdaptiveMaxPool2DBackward0(LinearNode):
    op_name = "adaptive_max_pool2d"


class AdaptiveMaxPool2DBackwardBackward0(LinearNode):
    op_name = "adaptive_max_pool2d_backward"


class MaxUnpool2DBackward0(LinearNode):
    op_name = "max_unpool2d"


class MaxUnpool2DBackwardBackward0(LinearNode):
    op_name = "max_unpool2d_backward"


# ---- flat-index gather / scatter ---------------------------------------------------------------
def _flat_gather(a, idx):
    """``out[..., i, j] = a[..., idx[..., i, j]]`` over the flattened last two axes of ``a``."""
    xp = array_module_of(a)
    lead = a.shape[:-2]
    flat = a.reshape(lead + (a.shape[-2] * a.shape[-1],))
    return xp.take_along_axis(flat, idx.reshape(lead + (idx.shape[-2] * idx.shape[-1],)), -1).reshape(idx.shape)


def _flat_scatter(g, idx, hw: tuple):
    """The adjoint of ``_flat_gather``: gradients summed into an ``hw`` plane (one bincount)."""
    xp = array_module_of(g)
    lead = g.shape[:-2]
    rows = math.prod(lead)
    n = hw[0] * hw[1]
    cd = compute_dtype(g)
    gidx = idx.reshape(rows, idx.shape[-2] * idx.shape[-1]) + (xp.arange(rows, dtype=idx.dtype) * n)[:, None]
    res = xp.bincount(gidx.reshape(-1), weights=g.astype(cd, copy=False).reshape(-1), minlength=rows * n)
    return res.astype(g.dtype).reshape(lead + tuple(hw))


def _flat_maps(idx, hw):
    return (lambda a: _flat_gather(a, idx)), (lambda g: _flat_scatter(g, idx, hw))


def _window_argmax(xp, win):
    """(values, argmax) over the last axis of ``win``; low-precision floats compare in float32."""
    cw = win.astype(np.float32) if win.dtype.kind == "V" else win
    kk = cw.argmax(-1)
    return xp.take_along_axis(win, kk[..., None], -1)[..., 0], kk


# ---- adaptive pools ---------------------------------------------------------------------------------------
def _adaptive_windows(n: int, m: int):
    """Window starts and (clipped) index table of PyTorch's adaptive pooling: [floor(i*n/m), ceil((i+1)*n/m))."""
    i = np.arange(m)
    start = (i * n) // m
    end = ((i + 1) * n + m - 1) // m
    width = int((end - start).max()) if m else 1
    idx = np.minimum(start[:, None] + np.arange(width), end[:, None] - 1) if m else np.zeros((0, 1), np.int64)
    return idx, start, end


def _output_size(x, output_size, n: int, op: str) -> list:
    if isinstance(output_size, (list, tuple)):
        if len(output_size) != n:
            raise RuntimeError(f"{op}: output_size must be {n}")
        if x.ndim <= n:
            raise ValueError(f"Input dimension should be at least {n + 1}")
        out = [x.shape[x.ndim - n + i] if v is None else v for i, v in enumerate(output_size)]
    else:
        out = [output_size] * n
    for i, v in enumerate(out):
        if not (isinstance(v, numbers.Integral) and not isinstance(v, bool)):
            raise ints_error(op, "output_size", v, i if isinstance(output_size, (list, tuple)) else None)
    if any(v < 0 for v in out):
        raise RuntimeError(f"{op}: elements of output_size must be greater than or equal to 0 but received "
                           f"{{{', '.join(str(int(v)) for v in out)}}}")
    return [int(v) for v in out]


def _check_adaptive(x, op: str, n: int) -> None:
    shape = list(x.shape)
    if x.ndim not in (n + 1, n + 2):
        got = "got: " if op.startswith("adaptive_max") else "got "  # (sic: PyTorch's two messages differ)
        raise RuntimeError(f"{op}(): Expected {n + 1}D or {n + 2}D tensor, but {got}{shape}")
    for i in range(1 if x.ndim == n + 2 else 0, x.ndim):
        if shape[i] == 0:
            raise RuntimeError(f"{op}(): Expected input to have non-zero size for non-batch dimensions, but input "
                               f"has sizes {shape} with dimension {i} being empty")


def adaptive_avg_pool_nd(x, out: list, op: str):
    """Adaptive average pooling of the last ``len(out)`` dims (also ``interpolate(mode='area')``)."""
    n = len(out)
    _check_adaptive(x, op, n)
    _check_dtype(x, op, False)
    spatial = x.shape[x.ndim - n:]
    if all(v == 1 for v in out):
        return x.mean(tuple(range(-n, 0)), keepdim=True)
    plans = []
    for i in range(n):
        idx, start, end = _adaptive_windows(spatial[i], out[i])
        w = (np.arange(idx.shape[1]) < (end - start)[:, None]) / np.maximum(end - start, 1)[:, None]
        plan = simplify_taps(idx, w, spatial[i])
        if plan is not None:
            plans.append((x.ndim - n + i, plan[0], plan[1], spatial[i]))
    fwd, adj = tap_maps(plans)
    cls = {1: AdaptiveAvgPool2DBackward0, 2: AdaptiveAvgPool2DBackward0, 3: AdaptiveAvgPool3DBackward0}[n]
    return linear_apply(x, fwd, adj, cls, AdaptiveAvgPoolBackwardBackward0)


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed (oh, ow) output size; ``None`` keeps that input size."""
    x = tensor_arg(input, "adaptive_avg_pool2d")
    return adaptive_avg_pool_nd(x, _output_size(x, output_size, 2, "adaptive_avg_pool2d"), "adaptive_avg_pool2d")


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def adaptive_avg_pool3d(input, output_size):
    """Average pooling to a fixed (od, oh, ow) output size."""
    x = tensor_arg(input, "adaptive_avg_pool3d")
    return adaptive_avg_pool_nd(x, _output_size(x, output_size, 3, "adaptive_avg_pool3d"), "adaptive_avg_pool3d")


def adaptive_avg_pool1d(input, output_size):
    """Average pooling of (N, C, L) or (C, L) to a fixed length."""
    x = tensor_arg(input, "adaptive_avg_pool1d")
    _dim_range(x, "adaptive_avg_pool1d")
    o = _check1d("adaptive_avg_pool1d", output_size, "output_size")
    return adaptive_avg_pool2d(x.unsqueeze(-2), (1, o)).squeeze(-2)


def _adaptive_max2d(input, output_size, return_indices: bool, op: str = "adaptive_max_pool2d"):
    x = tensor_arg(input, op)
    out = _output_size(x, output_size, 2, op)
    _check_adaptive(x, op, 2)
    _check_dtype(x, op, True)
    hw = x._data.shape[-2:]
    rh, _, _ = _adaptive_windows(hw[0], out[0])
    rw, _, _ = _adaptive_windows(hw[1], out[1])
    kh, kw = rh.shape[1], rw.shape[1]
    table = (rh[:, None, :, None] * hw[1] + rw[None, :, None, :]).reshape(out[0], out[1], kh * kw)

    def run(xp, a, grad: bool):
        tab = xp.asarray(table)
        win = a.reshape(a.shape[:-2] + (hw[0] * hw[1],))[..., tab]
        if win.size == 0:
            vals, idx = win.sum(-1), xp.zeros(win.shape[:-1], dtype=np.int64)
        else:
            vals, kk = _window_argmax(xp, win)
            pos = xp.arange(out[0] * out[1]).reshape(out) * (kh * kw) + kk
            idx = tab.reshape(-1)[pos].astype(np.int64)
        return ((vals, idx) if return_indices else vals), *_flat_maps(idx, hw)

    return AdaptiveMaxPool2DBackward0.apply(x, run=run, adj_cls=AdaptiveMaxPool2DBackwardBackward0)


def adaptive_max_pool2d(input, output_size, return_indices: bool = False):
    """Max pooling to a fixed (oh, ow) output size; indices are flat into each H*W plane."""
    return _adaptive_max2d(input, output_size, return_indices)


def adaptive_max_pool2d_with_indices(input, output_size, return_indices: bool = False):
    """``adaptive_max_pool2d`` returning ``(output, indices)`` always."""
    return _adaptive_max2d(input, output_size, True)


def _adaptive_max1d(input, output_size, return_indices: bool):
    x = tensor_arg(input, "adaptive_max_pool1d")
    _dim_range(x, "adaptive_max_pool1d")
    o = _check1d("adaptive_max_pool1d", output_size, "output_size")
    r, i = _adaptive_max2d(x.unsqueeze(-2), (1, o), True, "adaptive_max_pool1d")
    return (r.squeeze(-2), i.squeeze(-2)) if return_indices else r.squeeze(-2)


def adaptive_max_pool1d(input, output_size, return_indices: bool = False):
    """Max pooling of (N, C, L) or (C, L) to a fixed length."""
    return _adaptive_max1d(input, output_size, return_indices)


def adaptive_max_pool1d_with_indices(input, output_size, return_indices: bool = False):
    """``adaptive_max_pool1d`` returning ``(output, indices)`` always (what ``torch.adaptive_max_pool1d`` does)."""
    return _adaptive_max1d(input, output_size, True)


# ---- max_unpool -------------------------------------------------------------------------------------------
def _unpool_size(x, k, s, p, output_size, n: int) -> list:
    default = [(x.shape[x.ndim - n + i] - 1) * s[i] + k[i] - 2 * p[i] for i in range(n)]
    if output_size is None:
        return default
    out = list(output_size)
    if len(out) == n + 2:  # (N, C, *spatial); PyTorch rejects a (C, *spatial) size
        out = out[2:]
    if len(out) != n:
        raise ValueError(f"output_size should be a sequence containing {n} or {n + 2} elements, but it has a length "
                         f"of '{len(output_size)}'")
    for i in range(n):
        lo, hi = default[i] - s[i], default[i] + s[i]
        if not lo < out[i] < hi:
            shown = output_size[len(output_size) - n:] if len(output_size) > n else output_size  # as PyTorch shows it
            raise ValueError(f'invalid output_size "{shown}" (dim {i} must be between {lo} and {hi})')
    return [int(v) for v in out]


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Partial inverse of ``max_pool2d``: put each value at its index in a zero plane."""
    x = tensor_arg(input, "max_unpool2d")
    ind = tensor_arg(indices, "max_unpool2d", "indices")
    k, s, p, _ = _args2d("max_unpool2d", kernel_size, stride, padding)
    if ind.dtype.name != "int64":
        raise RuntimeError(f"elements in indices should be type int64 but got: {_type_name(ind.dtype.name)}")
    if tuple(ind.shape) != tuple(x.shape):
        raise RuntimeError(f"Expected shape of indices to be same as that of the input tensor ({list(x.shape)}) but "
                           f"got indices tensor with shape: {list(ind.shape)}")
    if x.ndim not in (3, 4):
        raise RuntimeError(f"Input to max_unpooling2d should be a 3d or 4d Tensor, but got a tensor with "
                           f"{x.ndim} dimensions.")
    oh, ow = _unpool_size(x, k, s, p, output_size, 2)
    idx = ind._data
    if idx.size:
        bad = (idx < 0) | (idx >= oh * ow)
        if bool(bad.any()):
            raise RuntimeError(f"Found an invalid max index: {int(idx[bad].reshape(-1)[0])} (output volumes are of "
                               f"size {oh}x{ow})")

    def run(xp, a, grad: bool):
        # The forward writes (not adds) each value at its index; the linear map of double backward is the
        # scatter, its adjoint the gather.
        lead = a.shape[:-2]
        rows = math.prod(lead)
        out = xp.zeros(rows * oh * ow, dtype=a.dtype)
        gidx = idx.reshape(rows, idx.shape[-2] * idx.shape[-1]) + (xp.arange(rows, dtype=np.int64) * (oh * ow))[:, None]
        out[gidx.reshape(-1)] = a.reshape(-1)
        gather, scatter = _flat_maps(idx, (oh, ow))
        return out.reshape(lead + (oh, ow)), scatter, gather

    return MaxUnpool2DBackward0.apply(x, run=run, adj_cls=MaxUnpool2DBackwardBackward0)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Partial inverse of ``max_pool1d``."""
    x = tensor_arg(input, "max_unpool1d")
    ind = tensor_arg(indices, "max_unpool1d", "indices")
    k = _check1d("max_unpool1d", kernel_size, "kernel_size")
    s = k if stride is None else _check1d("max_unpool1d", stride, "stride")
    p = _check1d("max_unpool1d", padding, "padding")
    size = None if output_size is None else [1, _unpool_size(x, (k,), (s,), (p,), output_size, 1)[0]]
    r = max_unpool2d(x.unsqueeze(-2), ind.unsqueeze(-2), (1, k), (1, s), (0, p),
                     size if size is not None else [1, (x.shape[-1] - 1) * s + k - 2 * p])
    return r.squeeze(-2)
