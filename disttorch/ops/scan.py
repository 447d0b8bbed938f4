"""Cumulative ops: cumsum, cumprod, cummax, cummin, logcumsumexp, diff.

Backward formulas use Tensor ops (and the private differentiable ``_flip``/``_shift``/``_log``
helpers below), so create_graph works through them.
"""
from __future__ import annotations

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from .. import return_types as R
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.op import RESULT, Op
from ._helpers import as_float_array, quiet, tensor_arg
from .sort import CummaxBackward0, CumminBackward0, take_along

__all__ = ["cumsum", "cumprod", "cummax", "cummin", "logcumsumexp", "diff"]

_LOW_PRECISION = (D.float16.np, D.bfloat16.np)


# ---- private differentiable helpers ----------------------------------------------------------
class _FlipBackward(Op):
    op_name = "flip"

    def forward(self, xp, arr, dim=0):
        self.dim = dim
        # A copy: the result is a fresh tensor (these helpers feed backward formulas, never views).
        return xp.flip(arr, dim).copy()

    def backward(self, g):
        return _flip(g, self.dim)


def _flip(x, dim: int):
    """``x`` reversed along ``dim``."""
    return _FlipBackward.apply(x, dim=dim)


class _ShiftBackward(Op):
    op_name = "shift"

    def forward(self, xp, arr, dim=0, step=1, fill=0):
        self.dim, self.step = dim, step
        return _shift_array(xp, arr, dim, step, fill)

    def backward(self, g):
        return _shift(g, self.dim, -self.step, 0)


def _shift(x, dim: int, step: int, fill):
    """``x`` moved one place along ``dim`` (``step`` +1: towards higher indices), ``fill`` entering."""
    return _ShiftBackward.apply(x, dim=dim, step=step, fill=fill)


def _shift_array(xp, arr, dim: int, step: int, fill):
    out = xp.empty_like(arr)
    n = arr.shape[dim]
    src, dst, edge = [slice(None)] * arr.ndim, [slice(None)] * arr.ndim, [slice(None)] * arr.ndim
    if step > 0:
        src[dim], dst[dim], edge[dim] = slice(0, n - 1), slice(1, n), slice(0, 1)
    else:
        src[dim], dst[dim], edge[dim] = slice(1, n), slice(0, n - 1), slice(n - 1, n)
    out[tuple(dst)] = arr[tuple(src)]
    out[tuple(edge)] = fill
    return out


class _LogBackward(Op):
    op_name = "log"

    def forward(self, xp, arr):
        self.save(0)
        with quiet(xp):
            return xp.log(arr)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g / x


def _log(x):
    return _LogBackward.apply(x)


def _const(x, arr):
    """A constant tensor (no grad) of ``x``'s dtype from a mask or number array."""
    return T._wrap(arr.astype(x._data.dtype, copy=False))


def _rev_cumsum(g, d: int):
    return _flip(cumsum(_flip(g, d), d), d)


# ---- public ops ------------------------------------------------------------------------------
def _scan_setup(input, dim, dtype, op: str):
    x = tensor_arg(input, op)
    arr = x._data
    d = T._wrap_dim(dim, arr.ndim, op)
    if dtype is not None:
        out_np = D.to_dtype(dtype).np
    elif arr.dtype.kind in "biu":
        out_np = D.int64.np
    else:
        out_np = arr.dtype
    return x, arr, d, out_np


class CumsumBackward0(Op):
    op_name = "cumsum"

    def forward(self, xp, arr, dim=0, out_np=None):
        if self.next_functions:
            self.dim, self.ndim, self.in_dtype = dim, arr.ndim, D._FROM_NP[arr.dtype]
        with quiet(xp):  # inf + -inf and overflow give IEEE results silently
            if arr.ndim == 0:
                return arr.astype(out_np)
            if arr.dtype in _LOW_PRECISION or out_np in _LOW_PRECISION:
                return arr.astype(np.float32).cumsum(axis=dim).astype(out_np)
            return arr.cumsum(axis=dim, dtype=out_np)

    def backward(self, g):
        if self.ndim == 0:
            return g.to(self.in_dtype)
        return _rev_cumsum(g, self.dim).to(self.in_dtype)


def cumsum(input, dim: int, *, dtype=None, out=None):
    """Cumulative sum along ``dim`` (bool and int inputs accumulate in int64)."""
    x, arr, d, out_np = _scan_setup(input, dim, dtype, "cumsum")
    return CumsumBackward0.apply(x, dim=d, out_np=out_np, out=out)


def _accumulate(xp, arr, scan):
    """``scan(arr)`` quietly (IEEE results, no warnings): a 0-d input is copied, float16/bfloat16 are scanned in
    float32 and cast back."""
    with quiet(xp):
        if arr.ndim == 0:
            return arr.copy()
        if arr.dtype in _LOW_PRECISION:
            return scan(arr.astype(np.float32)).astype(arr.dtype)
        return scan(arr)


class CumprodBackward0(Op):
    op_name = "cumprod"

    def forward(self, xp, arr, dim=0):
        if self.next_functions:
            self.dim, self.ndim = dim, arr.ndim
            self.save(0, RESULT)
        return _accumulate(xp, arr, lambda a: a.cumprod(axis=dim))

    def backward(self, g):
        x, y = self.saved_tensors
        if self.ndim == 0:
            return g
        d = self.dim
        iszero = x._data == 0
        # On NumPy one host test picks the cheaper formula when there is no zero; on a device that test would be a
        # synchronisation, and the formula with zeros gives the division formula's values on zero-free slices.
        if x._xp is np and not iszero.any():
            return _rev_cumsum(g * y, d) / x
        if is_grad_enabled():  # create_graph: a formula whose own derivative is cumprod's second derivative
            return _cumprod_grad_omitted(x, g, d)
        return _cumprod_grad_zeros(x, y, g, d, iszero)


def _cumprod_grad_omitted(x, g, d: int):
    """cumprod's gradient as ``sum_{j >= k} g[j] * prod_{i <= j, i != k} x[i]`` (PyTorch's O(n^2) form under
    create_graph): no division, so it stays right, and differentiable, at zeros; the O(n) forms above are not
    (their derivative misses the terms through a slice's first zero)."""
    from .pointwise_binary import where

    xp, n = x._xp, x.shape[d]
    xm, gm = x.movedim(d, -1), g.movedim(d, -1)
    omit = T._wrap(xp.eye(n, dtype=bool))
    rows = where(omit, 1.0, xm.unsqueeze(-2).expand(*xm.shape[:-1], n, n))  # row k: x with x[k] taken as one
    later = T._wrap(xp.triu(xp.ones((n, n), dtype=bool)))  # j >= k
    return where(later, cumprod(rows, -1) * gm.unsqueeze(-2), 0.0).sum(-1).movedim(-1, d)


def _cumprod_grad_zeros(x, y, g, d: int, iszero):
    """cumprod's gradient where slices may hold zeros: positions before a slice's first zero use the division
    formula (the whole of a zero-free slice), the first zero gets the sum over later outputs of the product of
    everything else, later positions get 0. Written with ``where`` (not with 0/1 masks, which turn a discarded inf
    into NaN), and the divisor is one where it is not used, so no 0/0 reaches double backward either."""
    from .pointwise_binary import where

    cz = x._xp.cumsum(iszero, axis=d)
    before = T._wrap(cz == 0)
    first = T._wrap(iszero & (cz == 1))
    part_a = where(before, _rev_cumsum(g * y, d) / where(before, x, 1.0), 0.0)
    # The first zero's gradient: sum over k >= it of g[k] * (product of x[:k + 1] with that zero taken as one).
    part_b = where(before, 0.0, g * cumprod(where(first, 1.0, x), d)).sum(d, keepdim=True)
    return where(first, part_b, part_a)


def cumprod(input, dim: int, *, dtype=None, out=None):
    """Cumulative product along ``dim`` (the gradient is exact where the input has zeros)."""
    x, arr, d, out_np = _scan_setup(input, dim, dtype, "cumprod")
    if arr.dtype != out_np:
        x = x.to(D._FROM_NP[out_np])
    return CumprodBackward0.apply(x, dim=d, out=out)


def _cum_extreme(input, dim: int, high: bool):
    op = "cummax" if high else "cummin"
    x = tensor_arg(input, op)
    xp, arr = x._xp, x._data
    d = T._wrap_dim(dim, arr.ndim, op)
    cls, node_cls = (R.cummax, CummaxBackward0) if high else (R.cummin, CumminBackward0)
    if arr.ndim == 0:
        return cls((x.reshape(()), T._wrap(xp.zeros((), dtype=np.int64))))
    work = arr.astype(np.float32) if arr.dtype == D.bfloat16.np else arr
    with quiet(xp):
        acc = (xp.maximum if high else xp.minimum).accumulate(work, axis=d)
    # PyTorch moves the index on ties (>=), and a NaN, once seen, keeps its index.
    mark = work == acc
    if work.dtype.kind in "fc":
        isnan = xp.isnan(work)
        mark |= isnan & (xp.cumsum(isnan, axis=d) == 1)
    pos = xp.arange(arr.shape[d]).reshape((-1,) + (1,) * (arr.ndim - 1 - d))
    idx = xp.maximum.accumulate(xp.where(mark, pos, 0), axis=d).astype(np.int64)
    values = take_along(x, idx, d, node_cls, unique=False)
    return cls((values, T._wrap(idx)))


def cummax(input, dim: int):
    """Running maximum along ``dim``: ``return_types.cummax(values, indices)``."""
    return _cum_extreme(input, dim, True)


def cummin(input, dim: int):
    """Running minimum along ``dim``: ``return_types.cummin(values, indices)``."""
    return _cum_extreme(input, dim, False)


class LogcumsumexpBackward0(Op):
    op_name = "logcumsumexp"

    def forward(self, xp, arr, dim=0):
        if self.next_functions:
            self.dim, self.ndim = dim, arr.ndim
            self.save(0, RESULT)
        return _accumulate(xp, arr, lambda a: xp.logaddexp.accumulate(a, axis=dim))

    def backward(self, g):
        x, y = self.saved_tensors
        if self.ndim == 0:
            return g
        d = self.dim
        # Positive and negative parts of g travel in log space so nothing overflows
        # (PyTorch's formula, after TensorFlow's).
        xp, ga = g._xp, g._data
        # A huge finite stand-in for log(0): -inf would give inf - inf = nan in double backward,
        # and the dtype's lowest value would overflow when shifted.
        low = (float(np.finfo(ga.dtype).min) if ga.dtype != D.bfloat16.np else -3.0e38) / 16
        pos, neg = ga > 0, ga < 0
        sign = _const(g, pos.astype(np.int8) - neg.astype(np.int8))
        log_abs = _log(g * sign + _const(g, ga == 0))
        log_pos = log_abs * _const(g, pos) + _const(g, xp.where(pos, 0, low))
        log_neg = log_abs * _const(g, neg) + _const(g, xp.where(neg, 0, low))
        out_pos = (_flip(logcumsumexp(_flip(log_pos - y, d), d), d) + x).exp()
        out_neg = (_flip(logcumsumexp(_flip(log_neg - y, d), d), d) + x).exp()
        return out_pos - out_neg


def logcumsumexp(input, dim: int):
    """``log(cumsum(exp(input)))`` along ``dim``, computed stably."""
    x = tensor_arg(input, "logcumsumexp")
    d = T._wrap_dim(dim, x._data.ndim, "logcumsumexp")
    if x._data.dtype.kind not in "fcV":  # integers and bool: the default float dtype (they need no grad)
        x = T._wrap(as_float_array(x))
    return LogcumsumexpBackward0.apply(x, dim=d)


class _Diff1Backward(Op):
    op_name = "diff"

    def forward(self, xp, arr, dim=0):
        self.dim = dim
        n = arr.shape[dim]
        hi, lo = [slice(None)] * arr.ndim, [slice(None)] * arr.ndim
        hi[dim], lo[dim] = slice(1, n), slice(0, max(n - 1, 0))
        return arr[tuple(hi)] - arr[tuple(lo)]

    def backward(self, g):
        return _diff1_adjoint(g, self.dim)


def _diff1(x, d: int):
    """``x[1:] - x[:-1]`` along ``d``."""
    return _Diff1Backward.apply(x, dim=d)


class _Diff1AdjointBackward(Op):
    op_name = "diff_backward"

    def forward(self, xp, arr, dim=0):
        self.dim = dim
        return _diff1_adjoint_array(xp, arr, dim)

    def backward(self, g):
        return _diff1(g, self.dim)


def _diff1_adjoint(g, d: int):
    """The transpose of ``_diff1``: ``G[j] = g[j-1] - g[j]`` with zeros beyond both ends."""
    return _Diff1AdjointBackward.apply(g, dim=d)


def _diff1_adjoint_array(xp, arr, d: int):
    shape = list(arr.shape)
    shape[d] += 1
    out = xp.zeros(shape, dtype=arr.dtype)
    n = arr.shape[d]
    a, b = [slice(None)] * arr.ndim, [slice(None)] * arr.ndim
    a[d], b[d] = slice(1, n + 1), slice(0, n)
    out[tuple(a)] += arr
    out[tuple(b)] -= arr
    return out


class _CatBackward(Op):
    op_name = "cat"

    def forward(self, xp, *arrs, dim=0):
        if self.next_functions:
            self.dim, self.sizes = dim, [a.shape[dim] for a in arrs]
        return xp.concatenate(arrs, axis=dim)

    def backward(self, g):
        xp = g._xp
        outs, start = [], 0
        for size, (fn, _) in zip(self.sizes, self.next_functions):
            if fn is None:
                outs.append(None)
            else:
                shape = [1] * g._data.ndim
                shape[self.dim] = size
                idx = xp.broadcast_to(xp.arange(start, start + size).reshape(shape),
                                      tuple(size if i == self.dim else s for i, s in enumerate(g._data.shape)))
                outs.append(take_along(g, idx, self.dim))
            start += size
        return tuple(outs)


def _cat(parts, d: int):
    return _CatBackward.apply(*parts, dim=d)


def diff(input, n: int = 1, dim: int = -1, prepend=None, append=None):
    """The ``n``-th forward difference along ``dim`` (``prepend``/``append`` join ``input`` first)."""
    x = tensor_arg(input, "diff")
    if x._data.ndim == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    d = T._wrap_dim(dim, x._data.ndim, "diff")
    parts = [p for p in (prepend, x, append) if p is not None]
    if len(parts) > 1:
        for p in parts:
            tensor_arg(p, "diff", "prepend/append")
            if p._data.ndim != x._data.ndim:
                raise RuntimeError("diff expects prepend or append to be the same dimension as input")
            for i, (a, b) in enumerate(zip(p._data.shape, x._data.shape)):
                if i != d and a != b:
                    raise RuntimeError(f"diff expects the shape of tensor to prepend or append to match that of input "
                                       f"except along the differencing dimension; input.size({i}) = {b}, but got "
                                       f"tensor.size({i}) = {a}")
        x = _cat(parts, d)
    if x._data.dtype.kind == "b":
        arr = x._data
        for _ in range(int(n)):
            k = arr.shape[d]
            hi, lo = [slice(None)] * arr.ndim, [slice(None)] * arr.ndim
            hi[d], lo[d] = slice(1, k), slice(0, max(k - 1, 0))
            arr = arr[tuple(hi)] ^ arr[tuple(lo)]
        return T._wrap(arr)
    for _ in range(min(int(n), x._data.shape[d])):
        x = _diff1(x, d)
    return x


class ScanMethods:
    __slots__ = ()

    cumsum = cumsum
    cumprod = cumprod
    cummax = cummax
    cummin = cummin
    logcumsumexp = logcumsumexp
    diff = diff

    def cumsum_(self, dim: int, *, dtype=None):
        from .inplace import inplace

        return inplace(self, "cumsum_", cumsum, dim, dtype=dtype)

    def cumprod_(self, dim: int, *, dtype=None):
        from .inplace import inplace

        return inplace(self, "cumprod_", cumprod, dim, dtype=dtype)
