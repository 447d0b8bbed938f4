"""softmax, log_softmax and logsumexp: max-shifted for stability, with fused backward formulas.

On a CUDA device softmax and log_softmax over the last dim (dims after it of size 1 allowed) of a contiguous
float32/float16 input run the kernels of ``kernels/softmax.cu`` (forward, and backward when no graph is recorded
for the gradient); any other case, and ``DISTTORCH_KERNELS=0``, runs the generic array code below, the reference.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from ..autograd.grad_mode import STATE as _GRAD
from ..autograd.op import RESULT, Op
from ..kernels import launch as L
from . import _fused
from ._helpers import dims_arg, quiet, tensor_arg

__all__ = ["softmax", "log_softmax", "logsumexp"]

_LOW = (D.float16.np, D.bfloat16.np)
_NAMES = {"int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}


def _legacy_dim(ndim: int, op: str) -> int:
    warnings.warn(f"Implicit dimension choice for {op} has been deprecated. Change the call to include dim=X as an "
                  "argument.", UserWarning, stacklevel=4)
    return 0 if ndim in (0, 1, 3) else 1


def _prepare(input, dim, dtype, op: str):
    """The input cast to ``dtype`` (differentiably), the wrapped dim and the axis NumPy uses."""
    x = tensor_arg(input, op)
    if dtype is not None:
        x = x.to(D.to_dtype(dtype))
    elif x._data.dtype.kind in "biu":
        raise RuntimeError(f'"{op}_lastdim_kernel_impl" not implemented for '
                           f"'{_NAMES.get(x.dtype.name, x.dtype.name)}' (pass dtype= to compute in floating point)")
    nd = x._data.ndim
    if dim is None:
        dim = _legacy_dim(nd, op)
    d = T._wrap_dim(dim, nd, op)
    return x, d, (d if nd else None)


def _shifted(xp, arr, axis):
    """``arr - max(arr)`` along ``axis`` (in float32 for half types) and the working dtype."""
    work = arr.astype(np.float32) if arr.dtype in _LOW else arr
    return work - work.max(axis=axis, keepdims=True)


def _rows(arr, d):
    """``arr`` as the (rows, cols) array the softmax kernels take, or None when ``d`` is not its last dim.

    Dims after ``d`` of size 1 do not count: the reshape of a contiguous array is a view, no transpose.
    """
    if arr.ndim == 0 or arr.size == 0 or any(n != 1 for n in arr.shape[d + 1:]):
        return None
    return arr.reshape(-1, arr.shape[d])


def _fused_forward(xp, arr, d, log: bool):
    """softmax/log_softmax by the CUDA kernel (one block per row), or None when the kernel does not apply."""
    run = _fused.launcher(xp, arr)
    rows = _rows(arr, d) if run is not None else None
    if rows is None:
        return None
    out = xp.empty_like(rows)
    run(L.softmax_plan(rows, out, log=log))
    return out.reshape(arr.shape)


def _fused_backward(g, y, d, log: bool):
    """The input gradient by the CUDA kernel, or None: only when no graph is recorded for it (no create_graph)."""
    if _GRAD.enabled:
        return None
    xp, ya, ga = g._xp, y._data, g._data
    run = _fused.launcher(xp, ya)
    if run is None or ga.dtype != ya.dtype or ga.shape != ya.shape:
        return None
    rows = _rows(ya, d)
    if rows is None:
        return None
    # The incoming gradient is often a broadcast view (sum's backward): one device copy makes it a row array.
    gr = xp.ascontiguousarray(ga).reshape(rows.shape)
    out = xp.empty_like(rows)
    run(L.softmax_backward_plan(gr, rows, out, log=log))
    return T._wrap(out.reshape(ya.shape))


class SoftmaxBackward0(Op):
    op_name = "softmax"

    def forward(self, xp, arr, d, axis):
        self.dim = d
        self.save(RESULT)
        if arr.size == 0:
            return arr.copy()
        out = _fused_forward(xp, arr, d, False)
        if out is not None:
            return out
        with quiet(xp):
            e = xp.exp(_shifted(xp, arr, axis))
            e /= e.sum(axis=axis, keepdims=True)
        return e.astype(arr.dtype, copy=False)

    def backward(self, g):
        (y,) = self.saved_tensors
        gx = _fused_backward(g, y, self.dim, False)
        if gx is not None:
            return gx
        return y * (g - (g * y).sum(self.dim, keepdim=True))


def softmax(input, dim: int | None = None, dtype=None):
    """``exp(x) / sum(exp(x))`` along ``dim``; ``dtype`` casts the input first.

    Example:
        >>> disttorch.softmax(disttorch.tensor([0., 0.]), 0)
        tensor([0.5, 0.5])
    """
    x, d, axis = _prepare(input, dim, dtype, "softmax")
    return SoftmaxBackward0.apply(x, d=d, axis=axis)


class LogSoftmaxBackward0(Op):
    op_name = "log_softmax"

    def forward(self, xp, arr, d, axis):
        self.dim = d
        self.save(RESULT)
        if arr.size == 0:
            return arr.copy()
        out = _fused_forward(xp, arr, d, True)
        if out is not None:
            return out
        with quiet(xp):
            z = _shifted(xp, arr, axis)
            z -= xp.log(xp.exp(z).sum(axis=axis, keepdims=True))
        return z.astype(arr.dtype, copy=False)

    def backward(self, g):
        (y,) = self.saved_tensors
        gx = _fused_backward(g, y, self.dim, True)
        if gx is not None:
            return gx
        return g - y.exp() * g.sum(self.dim, keepdim=True)


def log_softmax(input, dim: int | None = None, dtype=None):
    """``x - logsumexp(x)`` along ``dim``, computed stably; ``dtype`` casts the input first."""
    x, d, axis = _prepare(input, dim, dtype, "log_softmax")
    return LogSoftmaxBackward0.apply(x, d=d, axis=axis)


class LogsumexpBackward0(Op):
    op_name = "logsumexp"

    def forward(self, xp, arr, dims, keepdim):
        self.dims, self.keepdim = dims, keepdim
        self.save(0, RESULT)
        nd = arr.ndim
        if arr.dtype.kind in "biu":
            arr = arr.astype(D.get_default_dtype().np)
        work = arr.astype(np.float32) if arr.dtype in _LOW else arr
        with quiet(xp):
            if work.size and all(work.shape[i] for i in dims):
                m = work.max(axis=dims, keepdims=True)
                m = xp.where(xp.isfinite(m), m, 0)
            else:
                m = xp.zeros((1,) * nd, dtype=work.dtype)
            s = xp.exp(work - m).sum(axis=dims, keepdims=True)
            res = xp.log(s) + m
        if not keepdim:
            res = res.reshape(tuple(n for i, n in enumerate(res.shape) if i not in dims))
        return res.astype(arr.dtype, copy=False)

    def backward(self, g):
        x, r = self.saved_tensors
        shape, dims = x._data.shape, self.dims
        if not self.keepdim and dims:
            keep = tuple(1 if i in dims else s for i, s in enumerate(shape))
            g, r = g.reshape(keep), r.reshape(keep)
        return g * (x - r).exp()


def logsumexp(input, dim=None, keepdim: bool = False):
    """``log(sum(exp(input)))`` over ``dim`` (an int or tuple; all dims when None), computed stably.

    Rows of -inf give -inf; integer inputs compute in the default float dtype.
    """
    x = tensor_arg(input, "logsumexp")
    if x._data.dtype.kind in "biu":
        x = x.to(D.get_default_dtype())
    nd = x._data.ndim
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        dims = tuple(range(nd))
    else:
        dims = dims_arg(dim, nd, "logsumexp") if nd else ()
    return LogsumexpBackward0.apply(x, dims=dims, keepdim=keepdim)


class SoftmaxMethods:
    __slots__ = ()

    def softmax(self, dim: int | None = None, dtype=None):
        return softmax(self, dim, dtype)

    def log_softmax(self, dim: int | None = None, dtype=None):
        return log_softmax(self, dim, dtype)

    logsumexp = logsumexp
