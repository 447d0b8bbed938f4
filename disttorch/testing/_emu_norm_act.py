"""NumPy emulation of ``kernels/layer_norm.cu``, ``kernels/activation.cu`` and ``kernels/dropout.cu``.

Written from the ``.cu`` sources (not from the ops): :func:`run` reads a plan's arguments in the order and C types of
the entry point's parameters, computes in float32 for every storage dtype (as ``to_f``/``from_f`` do) and writes the
kernel's outputs in place. A row kernel writes only the rows its grid covers and checks that its block is a whole
number of warps (``block_reduce`` assumes so); grid-stride kernels cover every element. The dropout mask comes from
``disttorch.kernels.philox`` (the host twin of the kernel's generator), so a test through this emulator also checks
that the op takes its (seed, offset) the way the device generator consumes them.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["run"]

_F32 = np.float32
_NULL_TYPES = (int, np.integer)


def _ptr(a):
    """None for a null pointer argument (the plans pass ``np.uint64(0)``), else the array."""
    return None if isinstance(a, _NULL_TYPES) else a


def _f(a, n=None):
    """A float32 copy of a device buffer, flat (``to_f``)."""
    flat = a.reshape(-1)
    return (flat if n is None else flat[:n]).astype(_F32)


def _store(dst, values, n=None) -> None:
    """``from_f``: round float32 ``values`` to the buffer's dtype, in place."""
    flat = dst.reshape(-1)
    if n is None:
        flat[...] = values.astype(dst.dtype)
    else:
        flat[:n] = values.astype(dst.dtype)


def _check_row_block(plan) -> None:
    b = plan.block[0]
    if b % 32 or not 32 <= b <= 1024:
        raise ValueError(f"{plan.name}: a one-block-per-row kernel needs a block of whole warps up to 1024 threads, "
                         f"got {plan.block}")


# ---- layer_norm.cu ---------------------------------------------------------------------------------------
def _ln_forward(plan, args) -> None:
    x, w, b, y, mean_out, rstd_out, rows, cols, eps = args
    _check_row_block(plan)
    rows, cols = min(int(rows), plan.grid[0]), int(cols)
    xs = _f(x, rows * cols).reshape(rows, cols)
    mean = (xs.sum(axis=1, dtype=_F32) / _F32(cols)).astype(_F32)
    d = xs - mean[:, None]
    var = ((d * d).sum(axis=1, dtype=_F32) / _F32(cols)).astype(_F32)
    rstd = (_F32(1) / np.sqrt(var + _F32(eps))).astype(_F32)
    v = d * rstd[:, None]
    if _ptr(w) is not None:
        v = v * _f(w)[None, :]
    if _ptr(b) is not None:
        v = v + _f(b)[None, :]
    _store(y, v.reshape(-1), rows * cols)
    mean_out.reshape(-1)[:rows] = mean
    rstd_out.reshape(-1)[:rows] = rstd


def _ln_backward_input(plan, args) -> None:
    dy, x, mean, rstd, w, dx, rows, cols = args
    _check_row_block(plan)
    rows, cols = min(int(rows), plan.grid[0]), int(cols)
    g = _f(dy, rows * cols).reshape(rows, cols)
    dxh = g * _f(w)[None, :] if _ptr(w) is not None else g
    mu, rs = mean.reshape(-1)[:rows, None], rstd.reshape(-1)[:rows, None]
    xh = (_f(x, rows * cols).reshape(rows, cols) - mu) * rs
    a = dxh.sum(axis=1, dtype=_F32, keepdims=True) / _F32(cols)
    c = (dxh * xh).sum(axis=1, dtype=_F32, keepdims=True) / _F32(cols)
    _store(dx, (rs * (dxh - a - xh * c)).reshape(-1), rows * cols)


def _ln_backward_affine(plan, args) -> None:
    dy, x, mean, rstd, dw, db, rows, cols = args
    rows, cols = int(rows), int(cols)
    covered = min(cols, plan.grid[0] * plan.block[0])  # one thread per column
    g = _f(dy).reshape(rows, cols)[:, :covered]
    xh = (_f(x).reshape(rows, cols)[:, :covered] - mean.reshape(-1)[:, None]) * rstd.reshape(-1)[:, None]
    if _ptr(dw) is not None:
        _store(dw, (g * xh).sum(axis=0, dtype=_F32), covered)
    if _ptr(db) is not None:
        _store(db, g.sum(axis=0, dtype=_F32), covered)


# ---- activation.cu ---------------------------------------------------------------------------------------
_SQRT1_2 = _F32(0.70710678118654752440)
_INV_SQRT_2PI = _F32(0.39894228040143267794)
_GELU_K = _F32(0.79788456080286535588)
_GELU_C = _F32(0.044715)
_erfc = np.vectorize(math.erfc, otypes=[np.float64])  # erfcf, to within its few ulp


def _erfcf(z):
    return _erfc(z.astype(np.float64)).astype(_F32) if z.size else z


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return _F32(1) / (_F32(1) + np.exp(-x))


def _gelu(x):
    return np.maximum(x, _F32(0)) - _F32(0.5) * np.abs(x) * _erfcf(np.abs(x) * _SQRT1_2)


def _gelu_d(x):
    return _F32(0.5) * _erfcf(-x * _SQRT1_2) + x * _INV_SQRT_2PI * np.exp(_F32(-0.5) * x * x)


def _gelu_tanh(x):
    return _F32(0.5) * x * (_F32(1) + np.tanh(_GELU_K * (x + _GELU_C * x * x * x)))


def _gelu_tanh_d(x):
    t = np.tanh(_GELU_K * (x + _GELU_C * x * x * x))
    return (_F32(0.5) * (_F32(1) + t)
            + _F32(0.5) * _GELU_K * x * (_F32(1) - t * t) * (_F32(1) + _F32(3) * _GELU_C * x * x))


def _silu(x):
    return x * _sigmoid(x)


def _silu_d(x):
    s = _sigmoid(x)
    return s * (_F32(1) + x * (_F32(1) - s))


_ACT = {"gelu": (_gelu, _gelu_d), "gelu_tanh": (_gelu_tanh, _gelu_tanh_d), "silu": (_silu, _silu_d)}


def _activation(plan, args) -> None:
    stem, direction, _suffix = plan.name.rsplit("_", 2)
    f, df = _ACT[stem]
    with np.errstate(over="ignore", invalid="ignore"):
        if direction == "forward":
            x, y, n = args
            n = int(n)
            _store(y, f(_f(x, n)), n)
        else:
            g, x, gx, n = args
            n = int(n)
            _store(gx, _f(g, n) * df(_f(x, n)), n)


# ---- dropout.cu ------------------------------------------------------------------------------------------
def _dropout_forward(plan, args) -> None:
    from disttorch.kernels.philox import philox4x32_10

    x, y, mask, n, keep_prob, scale, seed, offset = args
    n, seed, offset = int(n), int(seed), int(offset)
    groups = np.arange((n + 3) // 4, dtype=np.uint64)
    counters = np.stack([groups & 0xFFFFFFFF, groups >> np.uint64(32),
                         np.full_like(groups, offset & 0xFFFFFFFF), np.full_like(groups, offset >> 32)], axis=1)
    words = philox4x32_10(counters, (seed & 0xFFFFFFFF, seed >> 32)).reshape(-1)[:n]
    u = (words >> np.uint32(8)).astype(_F32) * _F32(5.9604644775390625e-08)
    keep = u < _F32(keep_prob)
    mask.reshape(-1)[:n] = keep
    _store(y, np.where(keep, _f(x, n) * _F32(scale), _F32(0)), n)


def _dropout_backward(plan, args) -> None:
    g, mask, gx, n, scale = args
    n = int(n)
    _store(gx, np.where(mask.reshape(-1)[:n] != 0, _f(g, n) * _F32(scale), _F32(0)), n)


def run(plan, args) -> None:
    """Run ``plan`` (a ``LaunchPlan`` of one of the three sources) on NumPy buffers ``args``, in place."""
    name = plan.name
    if name.startswith("layer_norm_forward_"):
        _ln_forward(plan, args)
    elif name.startswith("layer_norm_backward_input_"):
        _ln_backward_input(plan, args)
    elif name.startswith("layer_norm_backward_affine_"):
        _ln_backward_affine(plan, args)
    elif name.startswith("dropout_forward_"):
        _dropout_forward(plan, args)
    elif name.startswith("dropout_backward_"):
        _dropout_backward(plan, args)
    elif plan.source == "activation.cu":
        _activation(plan, args)
    else:
        raise NotImplementedError(f"stand-in kernel emulator: no emulation of {plan.source}:{name}")
