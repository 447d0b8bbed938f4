"""Loss functions of ``torch.nn.functional``: regression losses, nll/cross-entropy and binary cross-entropy.

``cross_entropy`` with class-index targets is one fused node (log-softmax + nll; its backward is
``scale * (softmax * A - a)`` with ``a`` the weighted, smoothed, ignore-masked one-hot target): it is on the
training hot path. ``nll_loss`` and ``binary_cross_entropy`` have their own nodes; the rest compose
differentiable Tensor ops. Every function takes ``reduction='mean'|'sum'|'none'`` (PyTorch's integer enum
0/1/2 too) and the deprecated ``size_average``/``reduce`` pair, mapped as ``torch.nn._reduction`` does.
The reduction plumbing and the less common losses live in ``loss_extra.py``; this module re-exports them.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from ..amp._state import fp32_op as _autocast_fp32
from ..cuda import _checks
from ..autograd.op import Op
from . import _fused_ce
from ._helpers import broadcast_shapes, quiet, tensor_arg
from ._kept import attach_kept
from .activation import logsigmoid as log_sigmoid
from .loss_extra import (apply_reduction, check_reduction, cosine_embedding_loss, gaussian_nll_loss,  # noqa: F401
                         hinge_embedding_loss, kl_div, legacy_get_string, margin_ranking_loss,
                         multi_margin_loss, multilabel_soft_margin_loss, poisson_nll_loss, reduction_arg,
                         soft_margin_loss, torch_name, triplet_margin_loss)
from .pointwise_binary import where
from .softmax import log_softmax

# Only the losses PyTorch also exposes as ``torch.<name>``; FUNCTIONAL lists every nn.functional name here.
__all__ = ["binary_cross_entropy_with_logits", "kl_div", "cosine_embedding_loss", "margin_ranking_loss",
           "triplet_margin_loss", "hinge_embedding_loss", "poisson_nll_loss"]

FUNCTIONAL = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "nll_loss", "cross_entropy",
              "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "cosine_embedding_loss",
              "margin_ranking_loss", "triplet_margin_loss", "hinge_embedding_loss", "soft_margin_loss",
              "multilabel_soft_margin_loss", "poisson_nll_loss", "gaussian_nll_loss", "multi_margin_loss")

_LOW = (D.float16.np, D.bfloat16.np)
_F32 = np.dtype(np.float32)


def _target_error(tt, bad) -> IndexError:
    """nll/cross-entropy's error for the first out-of-range class index (``bad``: its mask over ``tt``)."""
    return IndexError(f"Target {int(tt[bad].ravel()[0])} is out of bounds.")


def _bce_range_error() -> RuntimeError:
    return RuntimeError("all elements of input should be between 0 and 1")


# ---- regression losses --------------------------------------------------------------------------------
def _pair(input, target, op: str):
    """Check the operands of an elementwise loss; warns (as PyTorch) when their sizes differ."""
    x = tensor_arg(input, op)
    t = tensor_arg(target, op, "target")
    if x._data.shape != t._data.shape:
        warnings.warn(f"Using a target size ({t.size()}) that is different to the input size ({x.size()}). "
                      "This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.", UserWarning, stacklevel=3)
        broadcast_shapes(x._data.shape, t._data.shape, op=op)
    return x, t


def _weighted(loss, weight, x, reduction: str, mean_by_weight: bool = True):
    """PyTorch's weighted mse/l1/huber: 'mean' divides by the summed weights (huber: by the element count)."""
    weight = tensor_arg(weight, "loss", "weight")
    if weight._data.shape != x._data.shape:
        raise ValueError("Weights and input must have the same size.")
    loss = loss * weight
    if reduction == "mean" and mean_by_weight:
        return loss.sum() / weight.sum()
    return apply_reduction(loss, reduction)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", weight=None):
    """Mean squared error ``(input - target)**2``, optionally weighted per element.

    Example:
        >>> mse_loss(disttorch.tensor([1., 2.]), disttorch.tensor([1., 4.]))
        tensor(2.)
    """
    x, t = _pair(input, target, "mse_loss")
    reduction = reduction_arg(size_average, reduce, reduction)
    loss = (x - t).square()
    if weight is not None:
        return _weighted(loss, weight, x, reduction)
    return apply_reduction(loss, reduction)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", weight=None):
    """Mean absolute error ``|input - target|``, optionally weighted per element."""
    x, t = _pair(input, target, "l1_loss")
    reduction = reduction_arg(size_average, reduce, reduction)
    loss = (x - t).abs()
    if weight is not None:
        return _weighted(loss, weight, x, reduction)
    return apply_reduction(loss, reduction)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0):
    """``0.5 d**2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (``d = input - target``)."""
    x, t = _pair(input, target, "smooth_l1_loss")
    reduction = reduction_arg(size_average, reduce, reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    d = x - t
    ad = d.abs()
    if beta == 0.0:
        return apply_reduction(ad, reduction)
    loss = where(ad < beta, d.square() * (0.5 / beta), ad - 0.5 * beta)
    return apply_reduction(loss, reduction)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0, weight=None):
    """``0.5 d**2`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)`` (``d = input - target``)."""
    x, t = _pair(input, target, "huber_loss")
    reduction = check_reduction(reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    d = x - t
    ad = d.abs()
    loss = where(ad < delta, d.square() * 0.5, (ad - 0.5 * delta) * delta)
    if weight is not None:
        return _weighted(loss, weight, x, reduction, mean_by_weight=False)
    return apply_reduction(loss, reduction)


# ---- class-index targets: shared checks and layout ------------------------------------------------------
class _Classes:
    """Validated class-index problem viewed as (N, C) or (N, C, S) arrays with a (N,) or (N, S) target."""

    __slots__ = ("x", "xshape", "C", "N", "S", "lay", "tshape", "valid", "tsafe", "w", "wv", "idx")

    def __init__(self, x, target, weight, ignore_index: int, op: str) -> None:
        t = tensor_arg(target, op, "target")
        xs, ts = x._data.shape, t._data.shape
        nd = len(xs)
        if nd < 1:
            raise ValueError(f"Expected 1 or more dimensions (got {nd})")
        if x._data.dtype.kind not in "fV":
            raise RuntimeError(f'"{op}" not implemented for \'{torch_name(x.dtype)}\'')
        if nd == 1:
            if len(ts) > 1:
                raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
            if len(ts) == 1:
                raise RuntimeError(f"size mismatch (got input: {list(xs)}, target: {list(ts)})")
        else:
            if not ts:
                raise IndexError("Dimension specified as 0 but tensor has no dimensions")
            if xs[0] != ts[0]:
                raise ValueError(f"Expected input batch_size ({xs[0]}) to match target batch_size ({ts[0]}).")
            if nd == 2 and len(ts) != 1:
                raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
            if nd > 2 and ts[1:] != xs[2:]:
                raise RuntimeError(f"Expected target size {[xs[0], *xs[2:]]}, got {list(ts)}")
        if t._data.dtype.kind not in "iu":
            raise RuntimeError(f"expected scalar type Long but found {torch_name(t.dtype)}")
        C = xs[0] if nd == 1 else xs[1]
        if weight is not None:
            weight = tensor_arg(weight, op, "weight")
            if weight._data.ndim != 1 or weight._data.size != C:
                raise RuntimeError(f"weight tensor should be defined either for all {C} classes or no classes but "
                                   f"got weight tensor of shape: {list(weight._data.shape)}")
        xp = x._xp
        N = 1 if nd == 1 else xs[0]
        S = 1
        for s in xs[2:]:
            S *= s
        self.x, self.xshape, self.C, self.N, self.S, self.tshape = x, xs, C, N, S, ts
        self.lay = (N, C) if S == 1 else (N, C, S)
        tt = t._data.reshape((N,) if S == 1 else (N, S))
        valid = tt != ignore_index
        if xp is not np and tt.size:
            # No host sync on the device: checked at the next synchronisation (disttorch.cuda._checks), as
            # PyTorch's CUDA device-side assert; out-of-range targets read class 0 meanwhile.
            bad = valid & ((tt < 0) | (tt >= C))
            _checks.defer(bad.any(), lambda: _target_error(tt, bad))
            valid = valid & ~bad
        elif tt.size and (tt.min() < 0 or tt.max() >= C):  # cheap test first; the masked one only on failure
            bad = valid & ((tt < 0) | (tt >= C))
            if bad.any():
                raise _target_error(tt, bad)
        self.valid = valid
        self.tsafe = xp.where(valid, tt, 0)
        # Index tuple that picks element [n, t[n, s], s] of an (N, C[, S]) array.
        self.idx = (xp.arange(N), self.tsafe) if S == 1 else \
            (xp.arange(N)[:, None], self.tsafe, xp.arange(S)[None, :])
        wd = _F32 if x._data.dtype in _LOW else x._data.dtype
        if weight is None:
            self.w = None
            self.wv = valid.astype(wd)
        else:
            self.w = weight._data.astype(wd, copy=False)
            self.wv = xp.where(valid, self.w[self.tsafe], 0).astype(wd, copy=False)

    def bcast(self, arr):
        """A target-layout array with a unit class axis, to broadcast over (N, C[, S])."""
        return arr[:, None] if arr.ndim else arr

    def unit_shape(self) -> tuple:
        """The input's shape with a unit class dimension."""
        xs = self.xshape
        return (1,) if len(xs) == 1 else (xs[0], 1, *xs[2:])

    def wb(self):
        """The class weights shaped to broadcast over (N, C[, S])."""
        return self.w[None, :] if self.S == 1 else self.w[None, :, None]

    def onehot(self, xp, vals, dtype):
        """A zero (N, C[, S]) array with ``vals`` at each target's class."""
        out = xp.zeros(self.lay, dtype=dtype)
        out[self.idx] = vals
        return out


def _reduce_elem(xp, c, loss_el, reduction: str, out_dtype):
    """Reduce per-target losses; 'mean' divides by the summed weights of non-ignored targets."""
    if reduction == "none":
        return loss_el.reshape(c.tshape).astype(out_dtype, copy=False), None
    total = loss_el.sum()
    if reduction == "sum":
        return total.astype(out_dtype), None
    denom = c.wv.sum()
    with quiet(xp):
        return (total / denom).astype(out_dtype), denom


def _grad_scale(xp, g, c, reduction: str, denom, wd):
    """The incoming gradient array ``g`` to broadcast over per-target losses (target layout or 0-d)."""
    ga = g.astype(wd, copy=False)
    if reduction == "none":
        return ga.reshape(c.valid.shape)
    if reduction == "mean":
        with quiet(xp):
            return ga / denom
    return ga


def _grad_scale_tensor(g, c, reduction: str, denom):
    """As ``_grad_scale`` but a Tensor shaped to broadcast over the input (differentiable in ``g``)."""
    if reduction == "none":
        return g.unsqueeze(0 if len(c.xshape) == 1 else 1)
    if reduction == "mean":
        return g / T._wrap(g._xp.asarray(denom, dtype=g._data.dtype))
    return g


def _to_input_shape(c, arr):
    """An (N, C[, S]) array back in the input's layout."""
    return arr.reshape(c.xshape)


# ---- nll_loss ----------------------------------------------------------------------------------------
class NllLossBackward0(Op):
    """Negative log-likelihood of class indices: one input (log-probabilities); the targets live in ``c``."""

    op_name = "nll_loss"

    def forward(self, xp, xa, c=None, reduction="mean"):
        wd = c.wv.dtype
        with quiet(xp):
            picked = xa.reshape(c.lay)[c.idx].astype(wd, copy=False)
            loss_el = xp.where(c.valid, -picked * c.wv if c.w is not None else -picked, 0)
        res, denom = _reduce_elem(xp, c, loss_el, reduction, xa.dtype)
        if self.next_functions:
            self.reduction, self.dtype = reduction, xa.dtype
            self.kept = (c, denom)
        return res

    def backward_arrays(self, xp, g):
        c, denom = self.saved_tensors[-1]
        s = _grad_scale(xp, g, c, self.reduction, denom, c.wv.dtype)
        return _to_input_shape(c, c.onehot(xp, -(s * c.wv), self.dtype))

    def backward(self, g):
        """The gradient as a differentiable function of ``g`` (create_graph)."""
        c, denom = self.saved_tensors[-1]
        a = _to_input_shape(c, c.onehot(g._xp, -c.wv, self.dtype))
        return _grad_scale_tensor(g, c, self.reduction, denom) * T._wrap(a)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
             reduction: str = "mean"):
    """Negative log-likelihood of class-index ``target`` under log-probabilities ``input``.

    ``input`` is (N, C), (N, C, d1, ...) or unbatched (C,); ``target`` holds class indices of shape (N),
    (N, d1, ...) or (). ``weight`` rescales each class; targets equal to ``ignore_index`` contribute
    nothing, and 'mean' divides by the summed weights of the other targets (nan when all are ignored).
    """
    x = tensor_arg(input, "nll_loss")
    reduction = reduction_arg(size_average, reduce, reduction)
    c = _Classes(x, target, weight, ignore_index, "nll_loss")
    r = NllLossBackward0.apply(x, c=c, reduction=reduction)
    return attach_kept(r, NllLossBackward0) if r._requires_grad else r


# ---- cross_entropy -----------------------------------------------------------------------------------
class CrossEntropyLossBackward0(Op):
    """Fused log_softmax + nll (+ label smoothing): d loss / d x = scale * (A * softmax(x) - a).

    The forward keeps ``e = exp(x - max)`` and its sum ``se`` (softmax unnormalised), so normalising costs no
    pass of its own. The input itself is not saved (PyTorch's log_softmax saves its output, so changing the
    input in place after the loss does not raise); the create_graph path reads it from ``c``. On a CUDA device
    the (N, C) layout runs the fused kernels instead (ops/_fused_ce.py); the reduction is shared.
    """

    op_name = "cross_entropy_loss"

    def forward(self, xp, xa, c=None, reduction="mean", label_smoothing=0.0, ignore_index=-100):
        dt = xa.dtype
        xa = xa.reshape(c.lay)
        fused = _fused_ce.forward(xp, xa, c, ignore_index, label_smoothing, bool(self.next_functions))
        if fused is not None:  # the CUDA kernel (ops/_fused_ce.py): per-row losses, reduced as below
            loss_el, state = fused
            res, denom = _reduce_elem(xp, c, loss_el, reduction, dt)
            if self.next_functions:
                self.reduction, self.label_smoothing, self.dtype = reduction, label_smoothing, dt
                self.kept = (c, None, state, denom)
            return res
        low = xa.dtype in _LOW
        if low:
            xa = xa.astype(_F32)  # a private copy: the scratch array below
        C, eps = c.C, label_smoothing
        with quiet(xp):
            # One scratch array: z = x - max, the target logits and smoothing sums read from it, then exp in place.
            if C:
                z = xp.subtract(xa, xa.max(axis=1, keepdims=True), out=xa if low else xp.empty(xa.shape, dtype=xa.dtype))
            else:
                z = xa.copy()
            zt = z[c.idx]
            if eps:
                zs = z.sum(axis=1) if c.w is None else (z * c.wb()).sum(axis=1)
            e = xp.exp(z, out=z)
            se = _row_sum(xp, e)
            lse = xp.log(se)
            nll = lse - zt
            loss_el = xp.where(c.valid, nll if c.w is None else nll * c.wv, 0)
            if eps:
                smooth = (C if c.w is None else c.w.sum()) * lse - zs
                loss_el = (1.0 - eps) * loss_el + (eps / C) * xp.where(c.valid, smooth, 0)
        res, denom = _reduce_elem(xp, c, loss_el, reduction, dt)
        if self.next_functions:
            self.reduction, self.label_smoothing, self.dtype = reduction, eps, dt
            self.kept = (c, e, se, denom)  # softmax(x) = e / se, normalised in the backward's one pass
        return res

    def _masses(self, c):
        """A: the total target mass per row (what multiplies softmax)."""
        eps, C = self.label_smoothing, c.C
        A = (1.0 - eps) * c.wv
        if eps:
            W = C if c.w is None else c.w.sum()
            A = A + (eps / C * W) * c.valid
        return A

    def backward_arrays(self, xp, g):
        c, e, se, denom = self.saved_tensors[-1]
        eps, C = self.label_smoothing, c.C
        wd = c.wv.dtype
        s = _grad_scale(xp, g, c, self.reduction, denom, wd)
        if e is None:  # the forward ran the kernel: se is its _fused_ce.State
            return _to_input_shape(c, _fused_ce.backward(xp, se, s, self.dtype))
        s = xp.where(c.valid, s, 0)  # ignored rows get 0, not inf * 0 (a 'mean' over no kept target), as PyTorch
        A = self._masses(c)
        with quiet(xp):
            gx = e * c.bcast(s * A / se)  # a new array: e must survive for retain_graph=True
            gx[c.idx] -= s * ((1.0 - eps) * c.wv)
            if eps:
                sm = c.bcast(s * (eps / C) * c.valid)
                gx -= sm if c.w is None else sm * c.wb()
        return _to_input_shape(c, gx).astype(self.dtype, copy=False)

    def backward(self, g):
        """Rebuilt with Tensor ops so the gradient is differentiable (create_graph)."""
        c, _, _, denom = self.saved_tensors[-1]
        xp = g._xp
        eps, C = self.label_smoothing, c.C
        wd = c.wv.dtype
        dt = self.dtype
        A = self._masses(c)
        a = c.onehot(xp, (1.0 - eps) * c.wv, wd)
        if eps:
            a += c.bcast((eps / C) * c.valid.astype(wd)) * (1.0 if c.w is None else c.wb())
        probs = c.x.softmax(0 if len(c.xshape) == 1 else 1)
        A_t = T._wrap(c.bcast(A).reshape(c.unit_shape()).astype(dt))
        a_t = T._wrap(_to_input_shape(c, a.astype(dt)))
        kept = T._wrap(c.bcast(c.valid).reshape(c.unit_shape()))
        return where(kept, _grad_scale_tensor(g, c, self.reduction, denom), 0.0) * (probs * A_t - a_t)


def _row_sum(xp, e):
    """Sum over axis 1 of an (N, C[, S]) array; a BLAS product with ones for the 2-d case (several times
    faster than NumPy's reduction along the last axis)."""
    if e.ndim == 2 and e.shape[1] and e.dtype.kind == "f":
        return xp.matmul(e, xp.ones(e.shape[1], dtype=e.dtype))
    return e.sum(axis=1)


def _ce_index(x, target, weight, ignore_index: int, reduction: str, label_smoothing: float):
    c = _Classes(x, target, weight, ignore_index, "cross_entropy")
    r = CrossEntropyLossBackward0.apply(x, c=c, reduction=reduction, label_smoothing=label_smoothing,
                                        ignore_index=ignore_index)
    return attach_kept(r, CrossEntropyLossBackward0) if r._requires_grad else r


def _ce_probs(x, t, weight, reduction: str, label_smoothing: float):
    """Cross entropy against class probabilities (composed: every operand is differentiable)."""
    if t._data.dtype.kind not in "fV":
        raise RuntimeError(f"Expected floating point type for target with class probabilities, got "
                           f"{torch_name(t.dtype)}")
    nd = x._data.ndim
    ca = 0 if nd == 1 else 1
    C = x._data.shape[ca]
    if weight is not None:
        weight = tensor_arg(weight, "cross_entropy", "weight")
        if weight._data.ndim != 1 or weight._data.size != C:
            raise RuntimeError(f"weight tensor should be defined either for all {C} classes or no "
                               f"classes but got weight tensor of shape: {list(weight._data.shape)}")
    logp = log_softmax(x, ca)
    if label_smoothing > 0.0:
        t = t * (1.0 - label_smoothing) + label_smoothing / C
    prod = logp * t
    if weight is not None:
        prod = prod * (weight.reshape([C] + [1] * (nd - 2)) if nd > 1 else weight)
    if reduction == "none":
        return -prod.sum(ca)
    total = -prod.sum()
    if reduction == "sum":
        return total
    n = x._data.size // C if C else 0
    if n == 0:
        return total * float("nan")
    return total / n


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def cross_entropy(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                  reduction: str = "mean", label_smoothing: float = 0.0):
    """Cross entropy between logits ``input`` and ``target`` (class indices or class probabilities).

    ``input`` is (N, C), (N, C, d1, ...) or unbatched (C,). A target of the same shape as ``input`` holds
    class probabilities; otherwise class indices as for ``nll_loss`` (with ``weight`` and
    ``ignore_index``). ``label_smoothing`` mixes the target with the uniform distribution:
    ``(1 - eps) * nll + eps / C * sum_c(-w_c log p_c)``, 'mean' dividing both by the summed target weights.

    Example:
        >>> cross_entropy(disttorch.zeros(2, 4), disttorch.tensor([0, 3]))
        tensor(1.3863)
    """
    x = tensor_arg(input, "cross_entropy")
    t = tensor_arg(target, "cross_entropy", "target")
    reduction = reduction_arg(size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if x._data.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {x._data.ndim})")
    if x._data.shape == t._data.shape:
        if ignore_index >= 0:
            raise RuntimeError("ignore_index is not supported for floating point target")
        return _ce_probs(x, t, weight, reduction, label_smoothing)
    return _ce_index(x, t, weight, ignore_index, reduction, float(label_smoothing))


# ---- binary cross entropy ----------------------------------------------------------------------------
class BinaryCrossEntropyBackward0(Op):
    """``-w (t log x + (1 - t) log(1 - x))`` elementwise: inputs (x, t, weight), the weight never differentiated."""

    op_name = "binary_cross_entropy"

    def forward(self, xp, x, t, w):
        xa, ta = x, t
        if xa.dtype in _LOW:
            xa, ta = xa.astype(_F32), ta.astype(_F32)
        in_range = ((xa >= 0) & (xa <= 1)).all()
        if xp is not np:  # checked at the next synchronisation (disttorch.cuda._checks), as on CUDA
            _checks.defer(~in_range, _bce_range_error)
        elif not bool(in_range):
            raise _bce_range_error()
        with quiet(xp):
            loss = -(ta * xp.maximum(xp.log(xa), -100) + (1 - ta) * xp.maximum(xp.log1p(-xa), -100))
        if w is not None:
            loss = loss * w
        if self.next_functions:
            self.save(0, 1, None if w is None else 2)
        return loss.astype(x.dtype, copy=False)

    def backward(self, g):
        x, t, w = self.saved_tensors
        gx = gt = None
        if self._nig[0]:
            gx = g * (x - t) / (x * (1 - x)).clamp_min(1e-12)
            gx = gx if w is None else gx * w
        if self._nig[1]:
            gt = g * ((-x).log1p().clamp_min(-100) - x.log().clamp_min(-100))
            gt = gt if w is None else gt * w
        return gx, gt, None


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
    """``-w (t log x + (1 - t) log(1 - x))`` for probabilities ``input``, each log clamped at -100."""
    x = tensor_arg(input, "binary_cross_entropy")
    t = tensor_arg(target, "binary_cross_entropy", "target")
    if x._data.shape != t._data.shape:
        raise ValueError(f"Using a target size ({t.size()}) that is different to the input size ({x.size()}) is "
                         "deprecated. Please ensure they have the same size.")
    reduction = reduction_arg(size_average, reduce, reduction)
    if x._data.dtype.kind not in "fV":
        raise RuntimeError(f'"binary_cross_entropy" not implemented for \'{torch_name(x.dtype)}\'')
    if t._data.dtype != x._data.dtype:
        t = t.to(x.dtype)
    if weight is not None:
        weight = tensor_arg(weight, "binary_cross_entropy", "weight").detach()
        shape = broadcast_shapes(t._data.shape, weight._data.shape, op="binary_cross_entropy")
        if shape != t._data.shape:
            raise RuntimeError(f"binary_cross_entropy: weight of shape {list(weight._data.shape)} cannot be "
                               f"expanded to the target size {list(t._data.shape)}")
        if weight._data.dtype != x._data.dtype:
            weight = weight.to(x.dtype)
    r = BinaryCrossEntropyBackward0.apply(x, t, weight)
    return apply_reduction(r, reduction)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction: str = "mean", pos_weight=None):
    """Binary cross entropy on logits: ``-w (pos_weight t log sigmoid(x) + (1 - t) log(1 - sigmoid(x)))``.

    Computed stably as ``(1 - t) x - (1 + (pos_weight - 1) t) log_sigmoid(x)``; ``pos_weight``
    broadcasts against the last (class) dimension.
    """
    x = tensor_arg(input, "binary_cross_entropy_with_logits")
    t = tensor_arg(target, "binary_cross_entropy_with_logits", "target")
    reduction = reduction_arg(size_average, reduce, reduction)
    if x._data.shape != t._data.shape:
        raise ValueError(f"Target size ({t.size()}) must be the same as input size ({x.size()})")
    if x._data.dtype.kind not in "fV":
        raise RuntimeError(f'"binary_cross_entropy_with_logits" not implemented for \'{torch_name(x.dtype)}\'')
    ls = log_sigmoid(x)
    if pos_weight is not None:
        ls = ls * ((tensor_arg(pos_weight, "binary_cross_entropy_with_logits", "pos_weight") - 1) * t + 1)
    loss = (1 - t) * x - ls
    if weight is not None:
        loss = loss * tensor_arg(weight, "binary_cross_entropy_with_logits", "weight")
    return apply_reduction(loss, reduction)

