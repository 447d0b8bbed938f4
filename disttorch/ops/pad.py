"""Padding (``F.pad``, ``constant_pad_nd``) and the fixed-linear-map machinery shared with pool.py and upsample.py.

Padding, resampling and pooling with fixed indices are linear maps ``y = A x``. ``linear_apply`` records a
``LinearNode`` whose backward applies the adjoint ``A^T`` through ``linear_apply`` again, so gradients of any
order come from the same two array functions. Reflect/replicate/circular padding and separable resampling
are "tap" maps: along one axis, output ``i`` is ``sum_t w[i, t] * x[idx[i, t]]``; the adjoint is the tap map
of the transposed table, again a few gathers.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np  # index bookkeeping on the host; tensor math goes through ``xp``

from .. import _tensor as T
from .._device import array_module_of
from ..amp import _state as _amp
from ..autograd.op import Op
from ._helpers import tensor_arg
from ._pool_args import ints_error

__all__ = ["constant_pad_nd"]
FUNCTIONAL = ("pad",)


# ---- fixed linear maps ----------------------------------------------------------------------------------
class LinearNode(Op):
    """Op ``y = fwd(x)`` for a linear ``fwd``; backward is ``adj(g)``, itself recorded as ``adj_cls``.

    An op whose map is only known once the forward ran (the winners of a max pool) passes ``run`` instead:
    ``run(xp, x, need_grad) -> (result, fwd, adj)``, where ``result`` may be ``(values, indices)``.
    """

    op_name = "linear_map"

    def forward(self, xp, x, fwd=None, adj=None, adj_cls=None, run=None):
        if run is not None:
            res, fwd, adj = run(xp, x, bool(self.next_functions))
        else:
            res = fwd(x)
        if self.next_functions:
            self.fwd, self.adj, self.adj_cls = fwd, adj, adj_cls
        return res

    def backward(self, g, *indices):  # indices: the integer output of a pool's return_indices (no gradient)
        return linear_apply(g, self.adj, self.fwd, self.adj_cls, type(self))


def linear_apply(x, fwd, adj, cls, adj_cls):
    """``fwd(x)`` on arrays through ``cls.apply`` (backward: ``adj``, recorded as ``adj_cls``)."""
    return cls.apply(x, fwd=fwd, adj=adj, adj_cls=adj_cls)


def compute_dtype(arr):
    """The NumPy dtype resampling arithmetic runs in: float16/bfloat16 go through float32."""
    d = arr.dtype
    if d.kind == "V" or (d.kind == "f" and d.itemsize < 4):
        return np.dtype(np.float32)
    return d


def simplify_taps(idx, w, n: int):
    """Drop all-zero tap columns; ``w`` becomes None for unit weights; None overall for the identity map."""
    if w is not None:
        keep = np.any(w != 0, axis=0)
        if not keep.all() and keep.any():
            idx, w = idx[:, keep], w[:, keep]
        if idx.shape[1] == 1 and np.all(w == 1):
            w = None
    if w is None and idx.shape[1] == 1 and idx.shape[0] == n and np.array_equal(idx[:, 0], np.arange(n)):
        return None
    return idx, w


_TABLES: "OrderedDict[tuple, object]" = OrderedDict()
_TABLES_MAX = 256


def device_table(xp, table, like, dtype=None):
    """The host index/weight ``table`` as an array of ``xp`` on ``like``'s device, cached by content and device.

    Tap and pooling tables depend only on shapes and options, so on a device each distinct table is uploaded
    once (later calls of the same op shape make no host-to-device copy); on the CPU it is ``table`` itself.
    """
    if xp is np:
        return table if dtype is None else table.astype(dtype, copy=False)
    dt = np.dtype(table.dtype if dtype is None else dtype)
    dev = getattr(getattr(like, "device", None), "id", None)
    key = (id(xp), dev, dt.str, table.shape, table.tobytes())
    hit = _TABLES.get(key)
    if hit is not None:
        _TABLES.move_to_end(key)
        return hit
    arr = xp.asarray(table, dtype=dt)
    _TABLES[key] = arr
    if len(_TABLES) > _TABLES_MAX:
        _TABLES.popitem(last=False)
    return arr


def take_taps(xp, a, axis: int, idx, w):
    """``out[..., i, ...] = sum_t w[i, t] * a[..., idx[i, t], ...]`` along ``axis`` (``w`` None: one unit tap)."""
    if w is None:
        return xp.take(a, idx[:, 0], axis=axis)
    bshape = (-1,) + (1,) * (a.ndim - 1 - axis)
    out = None
    for t in range(idx.shape[1]):
        term = xp.take(a, idx[:, t], axis=axis)
        term *= w[:, t].reshape(bshape)
        if out is None:
            out = term
        else:
            out += term
    return out


def reverse_taps(idx, w, n: int):
    """The transposed tap table: for each of the ``n`` inputs, the outputs that read it and their weights.

    The adjoint of a tap map is then another gather (``take_taps``), much faster than a scatter-add.
    """
    out_n, t = idx.shape
    flat = idx.reshape(-1)
    wt = np.ones(flat.shape) if w is None else w.reshape(-1)
    src = np.repeat(np.arange(out_n), t)
    keep = wt != 0
    flat, wt, src = flat[keep], wt[keep], src[keep]
    order = np.argsort(flat, kind="stable")
    flat, wt, src = flat[order], wt[order], src[order]
    counts = np.bincount(flat, minlength=n)
    width = max(int(counts.max()) if counts.size else 0, 1)
    pos = np.arange(flat.size) - (np.cumsum(counts) - counts)[flat]
    ridx = np.zeros((n, width), np.int64)
    rw = np.zeros((n, width))
    ridx[flat, pos] = src
    rw[flat, pos] = wt
    if w is None and width == 1 and bool((counts == 1).all()):
        rw = None
    return ridx, rw


def tap_maps(plans):
    """``(fwd, adj)`` array functions for a list of ``(axis, idx, w, n_in)`` tap plans applied in turn."""
    reverse = []

    def run(a, steps):
        if not steps:
            return a.copy()
        xp = array_module_of(a)
        cd = compute_dtype(a)
        b = a.astype(cd) if cd != a.dtype else a
        for axis, idx, w, n in steps:
            if b.shape[axis] == 0 or n == 0:
                shape = list(b.shape)
                shape[axis] = len(idx)
                b = xp.zeros(tuple(shape), dtype=cd)
                continue
            b = take_taps(xp, b, axis, device_table(xp, idx, b), None if w is None else device_table(xp, w, b, cd))
        return b.astype(a.dtype) if b.dtype != a.dtype else b

    def fwd(a):
        return run(a, plans)

    def adj(g):
        if not reverse and plans:
            for axis, idx, w, n in reversed(plans):
                reverse.append((axis,) + reverse_taps(idx, w, n) + (len(idx),))
        return run(g, reverse)

    return fwd, adj


# ---- constant padding -----------------------------------------------------------------------------------
class ConstantPadNdBackward0(Op):
    """``x`` copied from region ``src`` into region ``dst`` of an array of ``shape`` filled with ``value``."""

    op_name = "constant_pad_nd"

    def forward(self, xp, x, shape=(), src=(), dst=(), value=0, pad=()):
        if value == 0 or value is None:
            out = xp.zeros(shape, dtype=x.dtype)
        else:
            out = xp.empty(shape, dtype=x.dtype)
            out[...] = value
        out[dst] = x[src]
        if self.next_functions:
            self.pad = pad
        return out

    def backward(self, g):
        return constant_pad_nd(g, [-p for p in self.pad])


def _pad_list(pad, op: str) -> list:
    if isinstance(pad, T.Tensor):
        pad = pad.tolist()
    if isinstance(pad, (str, bytes)):
        raise ints_error(op, "pad", pad)
    for i, p in enumerate(pad if hasattr(pad, "__iter__") else ()):
        if isinstance(p, float) or (hasattr(p, "dtype") and np.dtype(p.dtype).kind == "f"):
            raise ints_error(op, "pad", p, i)
    try:
        return [int(p) for p in pad]
    except (TypeError, ValueError):
        raise ints_error(op, "pad", pad) from None


def constant_pad_nd(input, pad, value=0):
    """Pad the last ``len(pad) // 2`` dims of ``input`` with ``value`` (negative pads crop).

    ``pad`` lists (left, right) pairs starting from the last dimension, as ``F.pad``.
    """
    x = tensor_arg(input, "constant_pad_nd")
    pad = _pad_list(pad, "constant_pad_nd")
    arr = x._data
    nd = arr.ndim
    if len(pad) % 2:
        raise RuntimeError(f"Length of pad must be even but instead it equals {len(pad)}")
    if len(pad) // 2 > nd:
        # (sic: PyTorch's message lacks the spaces around the numbers)
        raise RuntimeError(f"Length of pad should be no more than twice the number of dimensions of the input. "
                           f"Pad length is {len(pad)}while the input has {nd}dimensions.")
    new_shape = list(arr.shape)
    src, dst = [slice(None)] * nd, [slice(None)] * nd
    for k in range(len(pad) // 2):
        d = nd - 1 - k
        lo, hi = pad[2 * k], pad[2 * k + 1]
        n = arr.shape[d]
        size = n + lo + hi
        if size < 0:
            raise RuntimeError(f"The input size {n}, plus negative padding {lo} and {hi} resulted in a negative "
                               f"output size, which is invalid. Check dimension {d} of your input.")
        new_shape[d] = size
        s0, s1 = max(-lo, 0), n - max(-hi, 0)
        src[d] = slice(s0, max(s1, s0))
        dst[d] = slice(max(lo, 0), max(lo, 0) + max(s1 - s0, 0))
    return ConstantPadNdBackward0.apply(x, shape=tuple(new_shape), src=tuple(src), dst=tuple(dst), value=value,
                                        pad=pad)


# ---- reflect / replicate / circular ---------------------------------------------------------------------
class ReflectionPad1DBackward0(LinearNode):
    op_name = "reflection_pad1d"


class ReflectionPad2DBackward0(LinearNode):
    op_name = "reflection_pad2d"


class ReflectionPad3DBackward0(LinearNode):
    op_name = "reflection_pad3d"


class ReplicationPad1DBackward0(LinearNode):
    op_name = "replication_pad1d"


class ReplicationPad2DBackward0(LinearNode):
    op_name = "replication_pad2d"


class ReplicationPad3DBackward0(LinearNode):
    op_name = "replication_pad3d"


class CircularPadBackward0(LinearNode):
    op_name = "_pad_circular"


class PadBackwardBackward0(LinearNode):
    """The adjoint (scatter-add) of a non-constant padding, recorded in double backward."""

    op_name = "pad_backward"


_NODES = {("reflect", 1): ReflectionPad1DBackward0, ("reflect", 2): ReflectionPad2DBackward0,
          ("reflect", 3): ReflectionPad3DBackward0, ("replicate", 1): ReplicationPad1DBackward0,
          ("replicate", 2): ReplicationPad2DBackward0, ("replicate", 3): ReplicationPad3DBackward0}


def _source_index(mode: str, n: int, lo: int, hi: int):
    j = np.arange(-lo, n + hi, dtype=np.int64)
    if mode == "replicate":
        return np.clip(j, 0, n - 1)
    if mode == "circular":
        return np.mod(j, n)
    if n == 1:
        return np.zeros_like(j)
    period = 2 * (n - 1)
    j = np.mod(j, period)
    return np.where(j >= n, period - j, j)


def _check_nonconst(x, mode: str, pad: list, k: int) -> None:
    shape = list(x._data.shape)
    nd = len(shape)
    name = {"reflect": "reflection", "replicate": "replication"}.get(mode)
    if name is not None and (0 in shape[nd - k:] or (nd == k + 2 and shape[1] == 0)):
        raise RuntimeError(f"Expected {k + 1}D or {k + 2}D (batch mode) tensor with possibly 0 batch size and "
                           f"other non-zero dimensions for input, but got: {shape}")
    for i in range(k):
        d = nd - 1 - i
        lo, hi, n = pad[2 * i], pad[2 * i + 1], shape[d]
        if mode == "reflect" and (lo >= n or hi >= n):
            raise RuntimeError(f"Argument #{4 + 2 * i}: Padding size should be less than the corresponding input "
                               f"dimension, but got: padding ({lo}, {hi}) at dimension {d} of input {shape}")
        if mode == "circular" and (lo > n or hi > n):
            raise RuntimeError("Padding value causes wrapping around more than once.")
        if n + lo + hi < (1 if mode != "circular" else 0):
            raise _too_small(mode, shape, pad, k, d)


def _too_small(mode: str, shape: list, pad: list, k: int, d: int) -> RuntimeError:
    """PyTorch's error for a negative padding that leaves dimension ``d`` of ``shape`` empty or negative."""
    n, lo, hi = shape[d], pad[2 * (len(shape) - 1 - d)], pad[2 * (len(shape) - 1 - d) + 1]
    if mode == "circular":
        return RuntimeError("Negative padding value is resulting in an empty dimension")
    if mode == "replicate" and k > 1:
        out = shape[:len(shape) - k] + [shape[len(shape) - 1 - i] + pad[2 * i] + pad[2 * i + 1]
                                        for i in reversed(range(k))]
        return RuntimeError(f"Trying to create tensor with negative dimension {n + lo + hi}: {out}")
    if k > 1:  # PyTorch fails here with an unrelated overflow message: name what is wrong instead
        return RuntimeError(f"pad: input (dimension {d} of size {n}) is too small for padding ({lo}, {hi}): "
                            f"calculated output size {n + lo + hi}")
    return RuntimeError(f"input (W: {n}) is too small. Calculated output W: {n + lo + hi}")


def pad(input, pad, mode: str = "constant", value=None):
    """Pad ``input``; ``pad`` holds (left, right) pairs starting from the last dimension.

    Args:
        input: the tensor.
        pad: ``(pad_left, pad_right, pad_top, pad_bottom, ...)``; negative values crop (constant mode).
        mode: ``'constant'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.
        value: fill value for constant padding (default 0).

    Example:
        >>> pad(disttorch.ones(1, 2), (1, 1))
        tensor([[0., 1., 1., 0.]])
    """
    x = tensor_arg(input, "pad")
    pads = _pad_list(pad, "pad")
    nd = x._data.ndim
    if len(pads) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pads) > 2 * nd:
        raise RuntimeError(f"Padding length should be less than or equal to two times the input dimension but got "
                           f"padding length {len(pads)} and input of dimension {nd}")
    if mode == "constant":
        return constant_pad_nd(x, pads, 0 if value is None else value)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if value is not None and value != 0:
        raise RuntimeError(f'Padding mode "{mode}" doesn\'t take in value argument')
    k = len(pads) // 2
    if _amp.STATE.active and (k in (1, 2) if mode == "reflect" else k in (1, 2, 3) if mode == "replicate" else False):
        x, = _amp.cast_fp32(x)  # reflection_pad1d/2d and replication_pad1d/2d/3d are on the float32 list
    if k not in (1, 2, 3) or nd not in (k + 1, k + 2):
        raise NotImplementedError(f"Padding size {len(pads)} is not supported for {nd}D input tensor.")
    _check_nonconst(x, mode, pads, k)
    plans = []
    for i in range(k):
        d = nd - 1 - i
        n = x._data.shape[d]
        idx = _source_index(mode, n, pads[2 * i], pads[2 * i + 1])[:, None]
        plan = simplify_taps(idx, None, n)
        if plan is not None:
            plans.append((d, plan[0], None, n))
    fwd, adj = tap_maps(plans)
    cls = CircularPadBackward0 if mode == "circular" else _NODES[(mode, k)]
    return linear_apply(x, fwd, adj, cls, PadBackwardBackward0)
