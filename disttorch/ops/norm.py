"""Normalisation functionals: batch_norm, layer_norm, group_norm, instance_norm, rms_norm.

All of them are one computation on two reshaped views of the input: statistics over the last axis of a
2-d view (layer/group/instance/RMS norm) or over all axes but the channel axis of an ``(N, C, S)`` view
(batch norm), then a per-feature affine transform. One fused node family implements the closed-form
backward. Its fast path works on the arrays saved by the forward; under ``create_graph`` it recomputes the
statistics with Tensor ops, so double backward is exact. Half types compute in float32.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import _dtype as D
from .. import _parallel as P
from .. import _tensor as T
from .._internals import bump_version
from ..autograd.op import Op
from ..kernels import launch as L
from . import _fused, norm_compiled
from ._helpers import quiet, tensor_arg
from .join import cat

__all__ = ["layer_norm", "group_norm", "rms_norm"]
FUNCTIONAL = ("batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm", "local_response_norm")

_F32 = np.dtype(np.float32)
_LOW = (D.float16.np, D.bfloat16.np)
_EPS = {np.dtype(np.float64): 2.0 ** -52, _F32: 2.0 ** -23, D.float16.np: 2.0 ** -10, D.bfloat16.np: 2.0 ** -7}


# ---- array kernels ---------------------------------------------------------------------------------------
def _esum(xp, a, b, keep: tuple):
    """Sum of ``a`` (or ``a * b``) over every axis not in ``keep``, without a product temporary."""
    if a.ndim == 2 and xp is np:
        if b is not None and keep == (0,):
            return np.vecdot(a, b)  # a BLAS-backed row dot: about twice einsum's speed
        if b is None and a.dtype.kind == "f" and keep in ((0,), (1,)):
            # a plain row or column sum as a BLAS product with ones: 5-8x faster than einsum or .sum
            return a @ np.ones(a.shape[1], a.dtype) if keep == (0,) else np.ones(a.shape[0], a.dtype) @ a
    idx = "abcdefgh"[:a.ndim]
    out = "".join(idx[i] for i in keep)
    return xp.einsum(f"{idx}->{out}", a) if b is None else xp.einsum(f"{idx},{idx}->{out}", a, b)


# Row pieces of the pool split start at multiples of this many rows, so BLAS's row-sum kernels group the rows
# of each piece as they group the whole array's.
_ROW_ALIGN = 64


def _row_stats(a, spec: _Spec, wd, out):
    """The serial forward statistics of the rows of 2-D NumPy ``a`` (``keep == (0,)``), ``xhat`` into ``out``:
    ``(mu or None, var, rstd, xhat)``, the same operations as ``_NormBackward.forward``."""
    n = spec.n
    inv = 1.0 / n if n else math.nan
    if spec.center:
        mu = (_esum(np, a, None, (0,)) * inv).reshape(-1, 1)
        xc = np.subtract(a, mu, out=out)
    else:
        mu, xc = None, a
    var = (_esum(np, xc, xc, (0,)) * inv).reshape(-1, 1).astype(wd, copy=False)
    rstd = 1.0 / np.sqrt(var + spec.eps)
    if xc is a:
        return mu, var, rstd, np.multiply(a, rstd, out=out)
    xc *= rstd
    return mu, var, rstd, xc


def _split_row_stats(a, spec: _Spec, wd):
    """``_row_stats`` over pieces of rows on the intra-op pool, gathered into whole arrays."""
    rows = a.shape[0]
    xhat = np.empty(a.shape, dtype=np.result_type(a, wd))
    parts = P.run_ranges(rows, lambda i, j: _row_stats(a[i:j], spec, wd, xhat[i:j]), align=_ROW_ALIGN, blas=True)
    cat = np.concatenate
    mu = cat([q[0] for q in parts]) if spec.center else None
    return mu, cat([q[1] for q in parts]), cat([q[2] for q in parts]), xhat


def _row_grad(gxh, xhat, rstd, spec: _Spec) -> None:
    """The input gradient's row terms in place on NumPy rows (``_NormBackward.backward_arrays``'s steps)."""
    inv_n = 1.0 / spec.n if spec.n else math.nan
    m2 = (_esum(np, gxh, xhat, (0,)) * inv_n).reshape(-1, 1)
    if spec.center:
        gxh -= (_esum(np, gxh, None, (0,)) * inv_n).reshape(-1, 1)
    gxh -= xhat * m2
    gxh *= rstd


def _work(arr, op: str):
    """``arr`` in the dtype the statistics are computed in (float32 for half types)."""
    if arr.dtype in _LOW:
        return arr.astype(_F32)
    if arr.dtype.kind != "f":
        raise RuntimeError(f'{op}: "{op}" not implemented for \'{D.from_numpy_dtype(arr.dtype)}\' '
                           "(expected a floating point input)")
    return arr


def _param(a, wdtype, shape):
    """A weight/bias array in the compute dtype, viewed with ``shape`` for broadcasting."""
    if a.dtype != wdtype:
        a = a.astype(wdtype)
    return a.reshape(shape)


class _Spec:
    """Where the statistics and the affine transform live for one call (plain data, shared with the node)."""

    __slots__ = ("xshape", "sshape", "keep", "red", "kshape", "ashape", "wview", "waxes", "center", "eps", "n")

    def __init__(self, xshape, sshape, keep, ashape, wview, waxes, center, eps) -> None:
        self.xshape, self.sshape, self.keep, self.ashape = xshape, sshape, keep, ashape
        self.wview, self.waxes, self.center, self.eps = wview, waxes, center, eps
        self.red = tuple(i for i in range(len(sshape)) if i not in keep)
        self.kshape = tuple(s if i in keep else 1 for i, s in enumerate(sshape))
        self.n = math.prod(sshape[i] for i in self.red)


def _rows(xshape, rows: int, cols: int, ashape, wview, waxes, eps, center=True) -> _Spec:
    """Statistics per row of a ``(rows, cols)`` view; affine on the ``ashape`` view."""
    return _Spec(xshape, (rows, cols), (0,), ashape, wview, waxes, center, eps)


def _normalize(x, weight, bias, spec: _Spec, node_cls, op: str, fixed=None, stats=None):
    """Normalise Tensor ``x`` per ``spec`` through ``node_cls`` (the op's entry point).

    ``fixed = (mean, var)`` arrays use given statistics (batch norm in eval mode) instead of the input's;
    a list ``stats`` receives ``(mean, biased var)`` (arrays in the compute dtype) for the running buffers.
    """
    if fixed is None and stats is None:
        return node_cls.apply(x, weight, bias, spec=spec, op=op)
    return node_cls.apply(x, weight, bias, spec=spec, op=op, fixed=fixed, stats=stats)


def _imul(a, b):
    a *= b
    return a


def _iadd(a, b):
    a += b
    return a


class _NormBackward(Op):
    """``y = xhat * w + b`` with ``xhat = (x - mean) * rstd``: inputs (x, weight, bias); closed-form backward.

    The fast backward works on the arrays the forward keeps; under ``create_graph`` the statistics are
    recomputed with Tensor ops, so double backward is exact.
    """

    def forward(self, xp, xa, wa, ba, spec=None, op="", fixed=None, stats=None):
        a = _work(xa, op).reshape(spec.sshape)
        wd = a.dtype
        keep, kshape = spec.keep, spec.kshape
        with quiet(xp):
            if fixed is None and a.size >= P.MIN_SIZE and xp is np and keep == (0,) and a.ndim == 2:
                mu, var, rstd, xhat = _split_row_stats(a, spec, wd)  # rows over the intra-op pool
            else:
                if fixed is None:
                    n = spec.n
                    if spec.center:
                        mu = (_esum(xp, a, None, keep) * (1.0 / n if n else math.nan)).reshape(kshape)
                        xc = a - mu
                    else:
                        mu, xc = None, a
                    var = (_esum(xp, xc, xc, keep) * (1.0 / n if n else math.nan)).reshape(kshape).astype(wd,
                                                                                                          copy=False)
                else:
                    mu, var = fixed
                    xc = a - mu
                rstd = 1.0 / xp.sqrt(var + spec.eps)
                if xc is a:
                    xhat = a * rstd
                else:
                    xc *= rstd
                    xhat = xc
        if stats is not None:
            stats.append((mu, var))
        grad = bool(self.next_functions)  # backward reads xhat: no in-place affine on it then
        y = xhat.reshape(spec.ashape)
        if wa is not None:
            y = y * _param(wa, wd, spec.wview) if grad else _imul(y, _param(wa, wd, spec.wview))
        if ba is not None:
            b = _param(ba, wd, spec.wview)
            y = y + b if (grad and wa is None) else _iadd(y, b)
        if grad:
            self.spec, self.xhat, self.rstd, self.mu = spec, xhat, rstd, mu
            self.batch_stats = fixed is None
            self.bias_meta = None if ba is None else (ba.shape, ba.dtype)
            self.save(0, None if wa is None else 1)
        return y.reshape(spec.xshape).astype(xa.dtype, copy=False)

    def backward_arrays(self, xp, g):
        need_x, need_w, need_b = self._nig[:3]
        x, w = self.saved_tensors
        spec, xhat, rstd = self.spec, self.xhat, self.rstd
        ga = (g.astype(_F32) if g.dtype in _LOW else g).reshape(spec.ashape)
        wd = xhat.dtype
        keep_w = tuple(i for i in range(len(spec.ashape)) if i not in spec.waxes)
        gw = gb = gx = None
        with quiet(xp):
            if need_w:
                gw = (_esum(xp, ga, xhat.reshape(spec.ashape), keep_w).reshape(w._data.shape)
                      .astype(w._data.dtype, copy=False))
            if need_b:
                bshape, bdtype = self.bias_meta
                gb = _esum(xp, ga, None, keep_w).reshape(bshape).astype(bdtype, copy=False)
            if need_x:
                gxh = ga * _param(w._data, wd, spec.wview) if w is not None else ga.astype(wd)
                gxh = gxh.reshape(spec.sshape)
                if (self.batch_stats and spec.keep == (0,) and gxh.size >= P.MIN_SIZE and xp is np
                        and gxh.ndim == 2):  # rows are independent: split them over the intra-op pool
                    P.run_ranges(gxh.shape[0], lambda i, j: _row_grad(gxh[i:j], xhat[i:j], rstd[i:j], spec),
                                 align=_ROW_ALIGN, blas=True)
                    gx = gxh.reshape(spec.xshape).astype(x._data.dtype, copy=False)
                    return gx, gw, gb
                if self.batch_stats:
                    inv_n = 1.0 / spec.n if spec.n else math.nan
                    keep, kshape = spec.keep, spec.kshape
                    m2 = (_esum(xp, gxh, xhat, keep) * inv_n).reshape(kshape)
                    if spec.center:
                        gxh -= (_esum(xp, gxh, None, keep) * inv_n).reshape(kshape)
                    gxh -= xhat * m2
                gxh *= rstd
                gx = gxh.reshape(spec.xshape).astype(x._data.dtype, copy=False)
        return gx, gw, gb

    def backward(self, g):
        """The same formulas with Tensor ops, statistics recomputed from ``x`` (double backward)."""
        need_x, need_w, need_b = self._nig[:3]
        x, w = self.saved_tensors
        spec = self.spec
        low = x._data.dtype in _LOW
        xt = (x.float() if low else x).reshape(spec.sshape)
        ga = (g.float() if low else g).reshape(spec.ashape)
        red = spec.red
        if self.batch_stats:
            xc = xt - xt.mean(red, keepdim=True) if spec.center else xt
            rstd = ((xc * xc).mean(red, keepdim=True) + spec.eps).rsqrt()
        else:
            xc = xt - T._wrap(self.mu)
            rstd = T._wrap(self.rstd)
        xhat = xc * rstd
        gw = gb = gx = None
        if need_w:
            gw = (ga * xhat.reshape(spec.ashape)).sum(spec.waxes).reshape(w._data.shape).to(w.dtype)
        if need_b:
            bshape, bdtype = self.bias_meta
            gb = ga.sum(spec.waxes).reshape(bshape).to(D.from_numpy_dtype(bdtype))
        if need_x:
            gxh = (ga * (w.float() if w._data.dtype in _LOW else w).reshape(spec.wview) if w is not None else ga)
            gxh = gxh.reshape(spec.sshape)
            if self.batch_stats:
                inner = gxh - xhat * (gxh * xhat).mean(red, keepdim=True)
                if spec.center:
                    inner = inner - gxh.mean(red, keepdim=True)
                gxh = inner
            gx = (gxh * rstd).reshape(spec.xshape).to(x.dtype)
        return gx, gw, gb


class NativeBatchNormBackward0(_NormBackward):
    op_name = "native_batch_norm"


class NativeLayerNormBackward0(_NormBackward):
    """Layer norm; on a CUDA device with float32/float16 contiguous arrays it runs kernels/layer_norm.cu, which
    keeps the float32 mean and rstd per row (not ``xhat``) for the backward kernels."""

    op_name = "native_layer_norm"
    fused = False
    compiled = False  # the CPU forward ran the compiled row kernels (ops/norm_compiled.py)

    def forward(self, xp, xa, wa, ba, spec=None, op="", fixed=None, stats=None):
        if xp is np and fixed is None and stats is None:
            out = norm_compiled.forward(self, xa, wa, ba, spec)
            if out is not None:
                return out
        run = _fused.launcher(xp, xa, wa, ba)
        if (run is None or fixed is not None or stats is not None or not xa.size
                or any(p is not None and p.dtype != xa.dtype for p in (wa, ba))):
            return super().forward(xp, xa, wa, ba, spec=spec, op=op, fixed=fixed, stats=stats)
        rows, d = spec.sshape
        out = xp.empty_like(xa)
        mean, rstd = xp.empty(rows, dtype=_F32), xp.empty(rows, dtype=_F32)
        run(L.layer_norm_plan(xa, wa, ba, out, mean, rstd, d, spec.eps))
        if self.next_functions:
            self.spec, self.mu, self.rstd, self.xhat = spec, mean.reshape(rows, 1), rstd.reshape(rows, 1), None
            self.fused = self.batch_stats = True
            self.bias_meta = None if ba is None else (ba.shape, ba.dtype)
            self.save(0, None if wa is None else 1)
        return out

    def backward_arrays(self, xp, g):
        if self.compiled:
            grads = norm_compiled.backward(self, g)
            if grads is not None:
                return grads
        if not self.fused:
            return super().backward_arrays(xp, g)
        x, w = self.saved_tensors
        xa, wa, spec = x._data, None if w is None else w._data, self.spec
        run = _fused.launcher(xp, xa, wa) if g.shape == xa.shape and g.dtype == xa.dtype else None
        if run is None:  # the generic formulas, on xhat rebuilt from the kernel's statistics
            with quiet(xp):
                self.xhat = (_work(xa, "layer_norm").reshape(spec.sshape) - self.mu) * self.rstd
            return super().backward_arrays(xp, g)
        g = xp.ascontiguousarray(g)
        need_x, need_w, need_b = self._nig[:3]
        d = spec.sshape[1]
        mean, rstd = self.mu.reshape(-1), self.rstd.reshape(-1)
        gx = gw = gb = None
        if need_x:
            gx = xp.empty_like(xa)
            run(L.layer_norm_backward_input_plan(g, xa, mean, rstd, wa, gx, d))
        if need_w or need_b:
            gw = xp.empty(wa.shape, dtype=wa.dtype) if need_w else None
            gb = xp.empty(*self.bias_meta) if need_b else None
            run(L.layer_norm_backward_affine_plan(g, xa, mean, rstd, gw, gb, d))
        return gx, gw, gb


class NativeGroupNormBackward0(_NormBackward):
    op_name = "native_group_norm"


class FusedRmsNormBackward0(_NormBackward):
    op_name = "_fused_rms_norm"


def _opt_tensor(t, op: str, name: str):
    if t is None:
        return None
    return tensor_arg(t, op, name)


def _check_numel(t, n: int, what: str, op: str) -> None:
    if t is not None and t._data.size != n:
        raise RuntimeError(f"{op}: {what} should contain {n} elements not {t._data.size}")


# ---- batch / instance norm -------------------------------------------------------------------------------
def _channels_view(x, op: str):
    shape = tuple(x._data.shape)
    if len(shape) < 2:
        raise RuntimeError(f"{op}: expected an input with at least 2 dimensions (N, C, *), got shape {list(shape)}")
    return shape, shape[0], shape[1], math.prod(shape[2:])


def _momentum(momentum, op: str) -> float:
    if momentum is None or not isinstance(momentum, numbers.Real):
        raise TypeError(f"{op}(): argument 'momentum' must be float, not {type(momentum).__name__}")
    return float(momentum)


def _update_running(buf, new, momentum: float) -> None:
    """``buf = (1 - momentum) * buf + momentum * new`` in place (a buffer update, outside autograd)."""
    arr = buf._data
    upd = arr.astype(new.dtype) * (1.0 - momentum) + new.reshape(arr.shape) * momentum
    arr[...] = upd.astype(arr.dtype, copy=False)
    bump_version(buf)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-05):
    """Batch normalisation over all dims but 1 (``torch.nn.functional.batch_norm``).

    In training mode the batch statistics normalise the input and update ``running_mean`` and
    ``running_var`` in place (the running variance uses the unbiased estimate); in eval mode the running
    statistics are used.
    """
    op = "batch_norm"
    x = tensor_arg(input, op)
    running_mean = _opt_tensor(running_mean, op, "running_mean")
    running_var = _opt_tensor(running_var, op, "running_var")
    weight, bias = _opt_tensor(weight, op, "weight"), _opt_tensor(bias, op, "bias")
    shape, n, c, s = _channels_view(x, op)
    for t, what in ((running_mean, "running_mean"), (running_var, "running_var"), (weight, "weight"),
                    (bias, "bias")):
        _check_numel(t, c, what, op)
    m = _momentum(momentum, op)
    if training and n * s == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(shape)}")
    spec = _Spec(shape, (n, c, s), (1,), (n, c, s), (1, c, 1), (0, 2), True, eps)
    if training:
        stats: list = []
        r = _normalize(x, weight, bias, spec, NativeBatchNormBackward0, op, stats=stats)
        mu, var = stats[0]
        cnt = n * s
        if running_mean is not None:
            _update_running(running_mean, mu, m)
        if running_var is not None:
            with quiet(x._xp):
                _update_running(running_var, var * (cnt / (cnt - 1) if cnt > 1 else math.inf), m)
        return r
    if running_mean is None or running_var is None:
        raise RuntimeError(f"{op}: running_mean and running_var must be defined in evaluation mode")
    wd = _F32 if x._data.dtype in _LOW else x._data.dtype
    fixed = (_param(running_mean._data, wd, (1, c, 1)), _param(running_var._data, wd, (1, c, 1)))
    return _normalize(x, weight, bias, spec, NativeBatchNormBackward0, op, fixed)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-05):
    """Instance normalisation: statistics per sample and channel (``torch.nn.functional.instance_norm``).

    With ``use_input_stats`` and running buffers, the buffers move towards the batch average of the
    per-instance statistics; without ``use_input_stats`` the running statistics normalise the input.
    """
    op = "instance_norm"
    x = tensor_arg(input, op)
    running_mean = _opt_tensor(running_mean, op, "running_mean")
    running_var = _opt_tensor(running_var, op, "running_var")
    weight, bias = _opt_tensor(weight, op, "weight"), _opt_tensor(bias, op, "bias")
    shape, n, c, s = _channels_view(x, op)
    for t, what in ((running_mean, "running_mean"), (running_var, "running_var"), (weight, "weight"),
                    (bias, "bias")):
        _check_numel(t, c, what, op)
    m = _momentum(momentum, op)
    if not use_input_stats:
        return batch_norm(x, running_mean, running_var, weight, bias, False, m, eps)
    if s == 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input size {list(shape)}")
    spec = _rows(shape, n * c, s, (n, c, s), (1, c, 1), (0, 2), eps)
    stats: list = []
    r = _normalize(x, weight, bias, spec, NativeBatchNormBackward0, op, stats=stats)
    mu, var = stats[0]
    if running_mean is not None:
        _update_running(running_mean, mu.reshape(n, c).mean(0), m)
    if running_var is not None:
        with quiet(x._xp):
            _update_running(running_var, (var.reshape(n, c) * (s / (s - 1))).mean(0), m)
    return r


# ---- layer / group / RMS norm ----------------------------------------------------------------------------
def _normalized_shape(x, normalized_shape, op: str) -> tuple:
    ns = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    ns = tuple(int(d) for d in ns)
    shape = tuple(x._data.shape)
    if not ns or len(ns) > len(shape) or shape[len(shape) - len(ns):] != ns:
        raise RuntimeError(f"{op}: Given normalized_shape={list(ns)}, expected input with shape "
                           f"[*, {', '.join(str(d) for d in ns)}], but got input of size{list(shape)}")
    return ns


def _check_affine(t, ns: tuple, what: str, op: str) -> None:
    if t is not None and tuple(t._data.shape) != ns:
        raise RuntimeError(f"{op}: Expected {what} to be of same shape as normalized_shape, but got {what} of shape "
                           f"{list(t._data.shape)} and normalized_shape = {list(ns)}")


def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-05, cudnn_enable: bool = True):
    """Layer normalisation over the trailing ``normalized_shape`` dims (biased variance).

    Example:
        >>> disttorch.layer_norm(disttorch.tensor([[1., 3.]]), (2,))
        tensor([[-1.0000,  1.0000]])
    """
    op = "layer_norm"
    x = tensor_arg(input, op)
    weight, bias = _opt_tensor(weight, op, "weight"), _opt_tensor(bias, op, "bias")
    ns = _normalized_shape(x, normalized_shape, op)
    _check_affine(weight, ns, "weight", op)
    _check_affine(bias, ns, "bias", op)
    shape = tuple(x._data.shape)
    d = math.prod(ns)
    rows = math.prod(shape[:len(shape) - len(ns)])
    spec = _rows(shape, rows, d, (rows, d), (1, d), (0,), eps)
    return _normalize(x, weight, bias, spec, NativeLayerNormBackward0, op)


def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-05, cudnn_enabled: bool = True):
    """Group normalisation: channels split into ``num_groups`` groups, statistics per sample and group."""
    op = "group_norm"
    x = tensor_arg(input, op)
    weight, bias = _opt_tensor(weight, op, "weight"), _opt_tensor(bias, op, "bias")
    shape = tuple(x._data.shape)
    if len(shape) < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {len(shape)}")
    n, c, s = shape[0], shape[1], math.prod(shape[2:])
    if num_groups <= 0 or c % num_groups:
        raise RuntimeError(f"{op}: Expected number of channels in input to be divisible by num_groups, but got input "
                           f"of shape {list(shape)} and num_groups={num_groups}")
    for t, what in ((weight, "weight"), (bias, "bias")):
        if t is not None and (t._data.ndim != 1 or t._data.size != c):
            raise RuntimeError(f"{op}: Expected {what} to be a vector of size equal to the number of channels in "
                               f"input, but got {what} of shape {list(t._data.shape)} and input of shape {list(shape)}")
    spec = _rows(shape, n * num_groups, c // num_groups * s, (n, c, s), (1, c, 1), (0, 2), eps)
    return _normalize(x, weight, bias, spec, NativeGroupNormBackward0, op)


def rms_norm(input, normalized_shape, weight=None, eps: float | None = None):
    """Root-mean-square normalisation over the trailing dims: ``x / sqrt(mean(x^2) + eps) * weight``.

    ``eps`` defaults to the machine epsilon of the input's dtype.
    """
    op = "rms_norm"
    x = tensor_arg(input, op)
    weight = _opt_tensor(weight, op, "weight")
    ns = _normalized_shape(x, normalized_shape, op)
    _check_affine(weight, ns, "weight", op)
    if eps is None:
        eps = _EPS.get(x._data.dtype, _EPS[_F32])
    shape = tuple(x._data.shape)
    d = math.prod(ns)
    rows = math.prod(shape[:len(shape) - len(ns)])
    spec = _rows(shape, rows, d, (rows, d), (1, d), (0,), eps, center=False)
    return _normalize(x, weight, None, spec, FusedRmsNormBackward0, op)


def local_response_norm(input, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
    """Local response normalisation across channels (``torch.nn.functional.local_response_norm``).

    ``x / (k + alpha * mean(x^2 over `size` neighbouring channels)) ** beta``, zero-padded at the edges.
    """
    x = tensor_arg(input, "local_response_norm")
    nd = x._data.ndim
    if nd < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {nd} dimensions)")
    shape = x._data.shape
    c = shape[1]
    sq = x * x
    lo, hi = size // 2, (size - 1) // 2
    zeros = x._xp.zeros
    padded = cat([T._wrap(zeros((shape[0], lo) + shape[2:], dtype=x._data.dtype)), sq,
                  T._wrap(zeros((shape[0], hi) + shape[2:], dtype=x._data.dtype))], 1)
    acc = padded.narrow(1, 0, c)
    for j in range(1, size):
        acc = acc + padded.narrow(1, j, c)
    return x / (acc * (alpha / size) + k) ** beta
