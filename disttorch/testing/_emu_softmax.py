"""NumPy emulator of ``kernels/softmax.cu`` and ``kernels/cross_entropy.cu`` for the stand-in device.

Written from the CUDA source, not from ``ops/softmax.py``/``ops/loss.py``: each entry point reads its arguments in
the order and C types of the kernel's parameters (a mismatch raises, as a wrong launch would misread memory),
computes row by row in float32 (the kernels' working precision for every storage dtype; ``fmaxf`` ignores NaN,
so ``numpy.fmax``) and writes its outputs in place. Called by ``_kernel_emulator.launch`` with the stand-in
arrays already unwrapped to their NumPy buffers.
"""
from __future__ import annotations

import numpy as np

__all__ = ["run"]

_F32 = np.float32
_STORAGE = {"f32": np.dtype(np.float32), "f16": np.dtype(np.float16)}  # NumPy has no bfloat16


class _Args:
    """Reads a kernel's arguments one by one, checking each against its C parameter type."""

    def __init__(self, plan, args) -> None:
        self.name, self.args, self.i = plan.name, args, 0

    def _next(self, what: str):
        if self.i >= len(self.args):
            raise TypeError(f"{self.name}: no argument for parameter {what} (got {len(self.args)} arguments)")
        a = self.args[self.i]
        self.i += 1
        return a

    def ptr(self, what: str, dtype, n: int, nullable: bool = False):
        """A ``T*`` parameter: a C-contiguous array of ``dtype`` holding at least ``n`` elements (or null)."""
        a = self._next(what)
        if nullable and isinstance(a, np.uint64) and int(a) == 0:
            return None
        if not isinstance(a, np.ndarray) or a.dtype != np.dtype(dtype) or not a.flags.c_contiguous:
            raise TypeError(f"{self.name}: parameter {what} is a contiguous {np.dtype(dtype).name} pointer, got "
                            f"{type(a).__name__} {getattr(a, 'dtype', '')}")
        if a.size < n:
            raise ValueError(f"{self.name}: {what} holds {a.size} elements, the kernel reads/writes {n}")
        return a.reshape(-1)  # a view: writes land in the caller's buffer

    def scalar(self, what: str, ctype):
        """A by-value parameter of C type ``ctype`` (np.int64 for long long, np.float32 for float)."""
        a = self._next(what)
        if type(a) is not ctype:
            raise TypeError(f"{self.name}: parameter {what} is {ctype.__name__}, got {type(a).__name__}")
        return a

    def done(self) -> None:
        if self.i != len(self.args):
            raise TypeError(f"{self.name}: {len(self.args)} arguments for {self.i} parameters")


def _storage(name: str):
    suffix = name.rsplit("_", 1)[1]
    if suffix not in _STORAGE:
        raise NotImplementedError(f"stand-in kernel emulator: {name}: NumPy has no {suffix} dtype")
    return _STORAGE[suffix]


def _rowmax(x):
    m = np.fmax.reduce(x, axis=1, initial=-np.inf)  # fmaxf over the row, from -inf
    return m.astype(_F32)


def _softmax_forward(a: _Args, dt, log: bool) -> None:
    x, y = a.ptr("x", dt, 0), a.ptr("y", dt, 0)
    rows, cols = int(a.scalar("rows", np.int64)), int(a.scalar("cols", np.int64))
    a.done()
    n = rows * cols
    for what, arr in (("x", x), ("y", y)):
        if arr.size < n:
            raise ValueError(f"{a.name}: {what} holds {arr.size} elements, rows x cols = {n}")
    xr = x[:n].reshape(rows, cols).astype(_F32)
    with np.errstate(all="ignore"):
        m = _rowmax(xr)
        m = np.where(m == -np.inf, _F32(0), m)[:, None]
        s = np.exp(xr - m).sum(axis=1, dtype=_F32)[:, None]
        if log:
            out = xr - m - np.log(s)
        else:
            out = np.exp(xr - m) * (_F32(1) / s)
    y[:n] = out.reshape(-1).astype(dt)


def _softmax_backward(a: _Args, dt, log: bool) -> None:
    g, y, gx = a.ptr("g", dt, 0), a.ptr("y", dt, 0), a.ptr("gx", dt, 0)
    rows, cols = int(a.scalar("rows", np.int64)), int(a.scalar("cols", np.int64))
    a.done()
    n = rows * cols
    for what, arr in (("g", g), ("y", y), ("gx", gx)):
        if arr.size < n:
            raise ValueError(f"{a.name}: {what} holds {arr.size} elements, rows x cols = {n}")
    gr = g[:n].reshape(rows, cols).astype(_F32)
    yr = y[:n].reshape(rows, cols).astype(_F32)
    with np.errstate(all="ignore"):
        if log:
            s = gr.sum(axis=1, dtype=_F32)[:, None]
            out = gr - np.exp(yr) * s
        else:
            s = (gr * yr).sum(axis=1, dtype=_F32)[:, None]
            out = yr * (gr - s)
    gx[:n] = out.reshape(-1).astype(dt)


def _ce_forward(a: _Args, dt) -> None:
    x = a.ptr("x", dt, 0)
    target = a.ptr("target", np.int64, 0)
    weight = a.ptr("weight", _F32, 0, nullable=True)
    loss, lse_out = a.ptr("loss", _F32, 0), a.ptr("lse", _F32, 0)
    bad = a.ptr("bad", np.int32, 1, nullable=True)
    rows, cols = int(a.scalar("rows", np.int64)), int(a.scalar("cols", np.int64))
    ignore_index = int(a.scalar("ignore_index", np.int64))
    eps = a.scalar("label_smoothing", np.float32)
    a.done()
    _check_rows(a.name, rows, cols, x=x, target=target, loss=loss, lse=lse_out, weight=weight)
    xr = x[:rows * cols].reshape(rows, cols).astype(_F32)
    t = target[:rows]
    w = np.ones(cols, _F32) if weight is None else weight[:cols]
    with np.errstate(all="ignore"):
        m = _rowmax(xr)
        shift = np.where(m == -np.inf, _F32(0), m)
        s = np.exp(xr - shift[:, None]).sum(axis=1, dtype=_F32)
        lse = (shift + np.log(s)).astype(_F32)
        lse_out[:rows] = lse
        keep = t != ignore_index
        out_of_range = keep & ((t < 0) | (t >= cols))
        ok = keep & ~out_of_range
        ts = np.where(ok, t, 0)
        xt = xr[np.arange(rows), ts]
        val = (_F32(1) - eps) * w[ts] * (lse - xt)
        if eps > 0:
            swx = (xr * w[None, :]).sum(axis=1, dtype=_F32)
            sw = w.sum(dtype=_F32)
            val = val + eps / _F32(cols) * (sw * lse - swx)
    out = np.where(ok, val, _F32(0)).astype(_F32)
    out[out_of_range] = np.nan
    loss[:rows] = out
    if bad is not None and out_of_range.any():
        bad[0] = 1


def _ce_backward(a: _Args, dt) -> None:
    x = a.ptr("x", dt, 0)
    target = a.ptr("target", np.int64, 0)
    weight = a.ptr("weight", _F32, 0, nullable=True)
    lse = a.ptr("lse", _F32, 0)
    grad_loss = a.ptr("grad_loss", _F32, 1)
    stride = int(a.scalar("grad_stride", np.int64))
    grad_x = a.ptr("grad_x", dt, 0)
    rows, cols = int(a.scalar("rows", np.int64)), int(a.scalar("cols", np.int64))
    ignore_index = int(a.scalar("ignore_index", np.int64))
    eps = a.scalar("label_smoothing", np.float32)
    a.done()
    _check_rows(a.name, rows, cols, x=x, target=target, lse=lse, grad_x=grad_x, weight=weight)
    if grad_loss.size < (rows - 1) * stride + 1:
        raise ValueError(f"{a.name}: grad_loss holds {grad_loss.size} elements, stride {stride} reads "
                         f"{(rows - 1) * stride + 1}")
    xr = x[:rows * cols].reshape(rows, cols).astype(_F32)
    t = target[:rows]
    g = grad_loss[np.arange(rows) * stride]
    skip = (t == ignore_index) | (t < 0) | (t >= cols)
    ts = np.where(skip, 0, t)
    wsum = _F32(cols) if not (eps > 0 and weight is not None) else weight[:cols].sum(dtype=_F32)
    wt = _F32(1) if weight is None else weight[ts]
    with np.errstate(all="ignore"):
        ca = g * (_F32(1) - eps) * wt
        cb = g * eps / _F32(cols)
        p = np.exp(xr - lse[:rows, None])
        onehot = np.zeros((rows, cols), _F32)
        onehot[np.arange(rows), ts] = 1
        v = ca[:, None] * (p - onehot)
        if eps > 0:
            wj = np.ones(cols, _F32) if weight is None else weight[:cols]
            v = v + cb[:, None] * (wsum * p - wj[None, :])
    v[skip] = 0
    grad_x[:rows * cols] = v.reshape(-1).astype(dt)


def _check_rows(name: str, rows: int, cols: int, **arrays) -> None:
    need = {"x": rows * cols, "grad_x": rows * cols, "weight": cols}
    for what, arr in arrays.items():
        n = need.get(what, rows)
        if arr is not None and arr.size < n:
            raise ValueError(f"{name}: {what} holds {arr.size} elements, the kernel reads/writes {n}")


def run(plan, args) -> None:
    """Run the softmax / cross-entropy entry point ``plan.name`` on NumPy buffers ``args`` (in place)."""
    name = plan.name
    a = _Args(plan, args)
    dt = _storage(name)
    if name.startswith(("softmax_forward_", "log_softmax_forward_")):
        _softmax_forward(a, dt, name.startswith("log_"))
    elif name.startswith(("softmax_backward_", "log_softmax_backward_")):
        _softmax_backward(a, dt, name.startswith("log_"))
    elif name.startswith("cross_entropy_forward_"):
        _ce_forward(a, dt)
    elif name.startswith("cross_entropy_backward_"):
        _ce_backward(a, dt)
    else:
        raise NotImplementedError(f"stand-in kernel emulator: no entry point {name} in {plan.source}")
