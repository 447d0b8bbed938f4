"""Reduction-argument plumbing shared by every loss, and the less common losses (composed from Tensor ops).

kl_div, poisson/gaussian nll, margin and embedding losses. ``loss.py`` imports from here and re-exports
everything, so callers (and the namespaces) use ``loss.py``.
"""
from __future__ import annotations

import math
import warnings


from .. import _tensor as T
from ..amp._state import fp32_op as _autocast_fp32
from ..autograd.grad_mode import no_grad
from ._helpers import tensor_arg
from .creation import full_like
from .activation import logsigmoid as log_sigmoid
from .distance import pairwise_distance
from .pointwise_binary import minimum, where, xlogy

# Every name here is re-exported (and listed in __all__ / FUNCTIONAL) by loss.py.
__all__: list = []

_ENUM = ("none", "mean", "sum")
_NAMES = {"int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool",
          "float32": "Float", "float64": "Double", "float16": "Half", "bfloat16": "BFloat16"}


# ---- reduction arguments ------------------------------------------------------------------------------
def legacy_get_string(size_average, reduce, emit_warning: bool = True) -> str:
    """The reduction the deprecated ``size_average``/``reduce`` pair means (None counts as True)."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    ret = "mean" if size_average and reduce else "sum" if reduce else "none"
    if emit_warning:
        warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{ret}' instead.",
                      UserWarning, stacklevel=4)
    return ret


def check_reduction(reduction) -> str:
    """``reduction`` as 'none'|'mean'|'sum' (PyTorch's 0/1/2 enum accepted), else a ValueError."""
    if reduction == "mean" or reduction == "sum" or reduction == "none":
        return reduction
    if reduction.__class__ is int and 0 <= reduction <= 2:
        return _ENUM[reduction]
    if reduction == "elementwise_mean":
        warnings.warn("reduction='elementwise_mean' is deprecated. Please use reduction='mean' instead.",
                      UserWarning, stacklevel=4)
        return "mean"
    raise ValueError(f"{reduction} is not a valid value for reduction")


def reduction_arg(size_average, reduce, reduction) -> str:
    """The effective reduction: the legacy pair (with its warning) when either is given, else ``reduction``."""
    if size_average is not None or reduce is not None:
        return legacy_get_string(size_average, reduce)
    return check_reduction(reduction)


def apply_reduction(loss, reduction: str):
    """``loss.mean()``, ``loss.sum()`` or ``loss`` itself for 'none'."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def torch_name(dtype) -> str:
    """PyTorch's scalar-type name for error messages ("Long", "Float", ...)."""
    return _NAMES.get(dtype.name, dtype.name)


_EPSILON = 1e-12  # PyTorch's guard on the squared norms of cosine_embedding_loss


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def kl_div(input, target, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False):
    """Pointwise KL divergence ``target * (log(target) - input)`` for log-probabilities ``input``.

    ``log_target=True`` takes ``target`` as log-probabilities too. 'batchmean' divides the sum by the
    batch size (the mathematical KL divergence); 'mean' divides by the element count and warns.
    """
    x = tensor_arg(input, "kl_div")
    t = tensor_arg(target, "kl_div", "target")
    if size_average is not None or reduce is not None:
        reduction = reduction_arg(size_average, reduce, reduction)
    else:
        if reduction == "mean":
            warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                          "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                          "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                          UserWarning, stacklevel=2)
        if reduction != "batchmean":
            reduction = check_reduction(reduction)
    if x._data.dtype.kind in "biu" or t._data.dtype.kind in "biu":
        raise RuntimeError("kl_div: Integral inputs not supported.")
    out = t.exp() * (t - x) if log_target else xlogy(t, t) - t * x
    if reduction == "batchmean":
        total = out.sum()
        return total / x._data.shape[0] if x._data.ndim else total
    return apply_reduction(out, reduction)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def cosine_embedding_loss(input1, input2, target, margin: float = 0, size_average=None, reduce=None,
                          reduction: str = "mean"):
    """``1 - cos(x1, x2)`` where ``target == 1``, ``max(0, cos(x1, x2) - margin)`` where ``target == -1``."""
    a = tensor_arg(input1, "cosine_embedding_loss", "input1")
    b = tensor_arg(input2, "cosine_embedding_loss", "input2")
    y = tensor_arg(target, "cosine_embedding_loss", "target")
    reduction = reduction_arg(size_average, reduce, reduction)
    td = y._data.ndim
    if td > 1:
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    if a._data.ndim != td + 1 or b._data.ndim != td + 1:
        raise RuntimeError(f"{td}D target tensor expects {td + 1}D input tensors, but found inputs with sizes "
                           f"{list(a._data.shape)} and {list(b._data.shape)}.")
    prod = (a * b).sum(td)
    mag1 = (a * a).sum(td) + _EPSILON
    mag2 = (b * b).sum(td) + _EPSILON
    cos = prod / (mag1 * mag2).sqrt()
    out = where(y == 1, 1 - cos, 0.0) + where(y == -1, (cos - margin).clamp_min(0), 0.0)
    return apply_reduction(out, reduction)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def margin_ranking_loss(input1, input2, target, margin: float = 0, size_average=None, reduce=None,
                        reduction: str = "mean"):
    """``max(0, -target * (input1 - input2) + margin)``."""
    a = tensor_arg(input1, "margin_ranking_loss", "input1")
    b = tensor_arg(input2, "margin_ranking_loss", "input2")
    y = tensor_arg(target, "margin_ranking_loss", "target")
    reduction = reduction_arg(size_average, reduce, reduction)
    if not a._data.ndim == b._data.ndim == y._data.ndim:
        raise RuntimeError(f"margin_ranking_loss : All input tensors should have same dimension but got sizes: "
                           f"input1: {a.size()}, input2: {b.size()}, target: {y.size()} ")
    return apply_reduction((-y * (a - b) + margin).clamp_min(0), reduction)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def triplet_margin_loss(anchor, positive, negative, margin: float = 1.0, p: float = 2, eps: float = 1e-6,
                        swap: bool = False, size_average=None, reduce=None, reduction: str = "mean"):
    """``max(d(a, p) - d(a, n) + margin, 0)`` with ``d`` the p-norm distance over the last dimension.

    ``swap=True`` uses ``min(d(a, n), d(p, n))`` as the negative distance.
    """
    a = tensor_arg(anchor, "triplet_margin_loss", "anchor")
    pos = tensor_arg(positive, "triplet_margin_loss", "positive")
    neg = tensor_arg(negative, "triplet_margin_loss", "negative")
    reduction = reduction_arg(size_average, reduce, reduction)
    ad, pd, nd = a._data.ndim, pos._data.ndim, neg._data.ndim
    if not ad == pd == nd:
        raise RuntimeError(f"The anchor, positive, and negative tensors are expected to have the same number of "
                           f"dimensions, but got: anchor {ad}D, positive {pd}D, and negative {nd}D inputs")
    d_pos = pairwise_distance(a, pos, p, eps)
    d_neg = pairwise_distance(a, neg, p, eps)
    if swap:
        d_neg = minimum(d_neg, pairwise_distance(pos, neg, p, eps))
    return apply_reduction((d_pos - d_neg + margin).clamp_min(0), reduction)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def hinge_embedding_loss(input, target, margin: float = 1.0, size_average=None, reduce=None,
                         reduction: str = "mean"):
    """``input`` where ``target == 1``, ``max(0, margin - input)`` where ``target == -1``."""
    x = tensor_arg(input, "hinge_embedding_loss")
    y = tensor_arg(target, "hinge_embedding_loss", "target")
    reduction = reduction_arg(size_average, reduce, reduction)
    out = where(y != 1, (margin - x).clamp_min(0), 0.0) + where(y != -1, x, 0.0)
    return apply_reduction(out, reduction)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def soft_margin_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    """``log(1 + exp(-target * input))``."""
    x = tensor_arg(input, "soft_margin_loss")
    y = tensor_arg(target, "soft_margin_loss", "target")
    reduction = reduction_arg(size_average, reduce, reduction)
    return apply_reduction((-y * x).exp().log1p(), reduction)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction: str = "mean"):
    """Per-sample mean over classes of ``-(t log sigmoid(x) + (1 - t) log sigmoid(-x))``, times ``weight``."""
    x = tensor_arg(input, "multilabel_soft_margin_loss")
    t = tensor_arg(target, "multilabel_soft_margin_loss", "target")
    reduction = reduction_arg(size_average, reduce, reduction)
    loss = -(t * log_sigmoid(x) + (1 - t) * log_sigmoid(-x))
    if weight is not None:
        loss = loss * tensor_arg(weight, "multilabel_soft_margin_loss", "weight")
    cd = x._data.ndim - 1
    loss = loss.sum(cd) / x._data.shape[cd]
    return apply_reduction(loss, reduction)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def poisson_nll_loss(input, target, log_input: bool = True, full: bool = False, size_average=None,
                     eps: float = 1e-8, reduce=None, reduction: str = "mean"):
    """Poisson negative log likelihood: ``exp(input) - target * input`` (``log_input``) or
    ``input - target * log(input + eps)``; ``full`` adds Stirling's term where ``target > 1``."""
    x = tensor_arg(input, "poisson_nll_loss")
    t = tensor_arg(target, "poisson_nll_loss", "target")
    reduction = reduction_arg(size_average, reduce, reduction)
    loss = x.exp() - t * x if log_input else x - t * (x + eps).log()
    if full:
        stirling = t * t.log() - t + 0.5 * (t * (2 * math.pi)).log()
        loss = loss + stirling.masked_fill(t <= 1, 0)
    return apply_reduction(loss, reduction)


def gaussian_nll_loss(input, target, var, full: bool = False, eps: float = 1e-6, reduction: str = "mean"):
    """``0.5 (log(max(var, eps)) + (input - target)**2 / max(var, eps))`` (+ ``0.5 log(2 pi)`` if ``full``).

    ``var`` is a tensor of input's shape, one with the last dimension 1 or missing (homoscedastic), or a
    number. The clamp at ``eps`` does not stop the gradient, as in PyTorch.
    """
    x = tensor_arg(input, "gaussian_nll_loss")
    t = tensor_arg(target, "gaussian_nll_loss", "target")
    if isinstance(var, (int, float)):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        v = full_like(x, var)
    else:
        v = tensor_arg(var, "gaussian_nll_loss", "var")
        xs, vs = tuple(x._data.shape), tuple(v._data.shape)
        if vs != xs:
            if xs[:-1] == vs:
                v = v.unsqueeze(-1)
            elif not (xs[:-1] == vs[:-1] and vs and vs[-1] == 1):
                raise ValueError("var is of incorrect size")
    if reduction != "none" and reduction != "mean" and reduction != "sum":
        raise ValueError(f"{reduction} is not valid")
    if bool((v._data < 0).any()):
        raise ValueError("var has negative entry/entries")
    v = v.clone()
    with no_grad():
        v.clamp_(min=eps)
    loss = 0.5 * (v.log() + (x - t).square() / v)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return apply_reduction(loss, reduction)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def multi_margin_loss(input, target, p: int = 1, margin: float = 1.0, weight=None, size_average=None,
                      reduce=None, reduction: str = "mean"):
    """Multi-class hinge loss: ``sum_{j != y} max(0, margin - x[y] + x[j])**p * w[y] / C`` per sample."""
    x = tensor_arg(input, "multi_margin_loss")
    y = tensor_arg(target, "multi_margin_loss", "target")
    reduction = reduction_arg(size_average, reduce, reduction)
    if p != 1 and p != 2:
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None:
        weight = tensor_arg(weight, "multi_margin_loss", "weight")
        if weight._data.ndim != 1:
            raise ValueError("weight must be one-dimensional")
    xs = x._data.shape
    nd = len(xs)
    if not ((nd == 2 and xs[1] != 0) or (nd == 1 and xs[0] != 0) or nd == 0):
        raise RuntimeError(f"Expected non-empty vector or matrix with optional 0-dim batch size, but got: {list(xs)}")
    nframe = xs[0] if nd == 2 else 1
    dim = xs[-1] if nd else 1
    if y._data.ndim > 1 or y._data.size != nframe:
        raise RuntimeError(f"inconsistent target size, expected {nframe} but got {list(y._data.shape)}")
    if y._data.dtype.kind not in "iu":
        raise RuntimeError(f"expected scalar type Long but found {torch_name(y.dtype)}")
    if y._data.size and bool(((y._data < 0) | (y._data >= dim)).any()):
        raise RuntimeError("target out of range")
    x2 = x.reshape(nframe, dim)
    t1 = y.reshape(nframe)
    z = (margin - x2.gather(1, t1.unsqueeze(1)) + x2).clamp_min(0)
    if p == 2:
        z = z * z
    if weight is not None:
        z = z * weight.index_select(0, t1).unsqueeze(1)
    xp = x._xp
    own = T._wrap(xp.arange(dim)[None, :] == t1._data[:, None])
    loss = z.masked_fill(own, 0.0).sum(1) / dim
    if reduction == "none" and y._data.ndim == 0:
        loss = loss.reshape(())
    return apply_reduction(loss, reduction)
