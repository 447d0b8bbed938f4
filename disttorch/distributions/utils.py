"""Helpers shared by the distributions, as ``torch.distributions.utils``."""
from __future__ import annotations

import numbers

from .. import broadcast_tensors, randn, tensor as _tensor_fn
from .. import _dtype as D
from .. import _tensor as T
from .._size import Size

__all__ = ["broadcast_all", "lazy_property", "logits_to_probs", "probs_to_logits", "clamp_probs"]


def broadcast_all(*values):
    """Broadcast Tensors and Python numbers to one shape; numbers become tensors of the tensors' dtype.

    Raises:
        ValueError: an argument is neither a Tensor nor a number.
    """
    tensor = None
    for v in values:
        if isinstance(v, T.Tensor):
            tensor = v if tensor is None else tensor
        elif not isinstance(v, numbers.Number):
            raise ValueError("Input arguments must all be instances of numbers.Number, disttorch.Tensor or objects "
                             f"implementing __torch_function__ (got {type(v).__name__}).")
    if tensor is None:
        dt, dev = D.get_default_dtype(), None
    else:
        dt, dev = tensor.dtype, tensor.device
    values = [v if isinstance(v, T.Tensor) else _tensor_fn(v, dtype=dt, device=dev) for v in values]
    if len(values) == 1:
        return (values[0],)
    if all(v._data.shape == values[0]._data.shape for v in values):
        return tuple(values)
    return tuple(broadcast_tensors(*values))


def _standard_normal(shape, dtype, device):
    return randn(Size(shape), dtype=dtype, device=device)


def _sum_rightmost(value, dim: int):
    """Sum out the ``dim`` rightmost dimensions of ``value``."""
    if dim == 0:
        return value
    return value.sum(tuple(range(-dim, 0)))


def clamp_probs(probs):
    """Clamp probabilities to the open interval ``(eps, 1 - eps)`` of their dtype."""
    eps = D.finfo(probs.dtype).eps
    return probs.clamp(min=eps, max=1 - eps)


def logits_to_probs(logits, is_binary: bool = False):
    """Sigmoid (binary) or softmax over the last dim (categorical) of ``logits``."""
    if is_binary:
        return logits.sigmoid()
    return logits.softmax(-1)


def probs_to_logits(probs, is_binary: bool = False):
    """Logits of clamped ``probs``: log-odds (binary) or log-probabilities (categorical)."""
    ps_clamped = clamp_probs(probs)
    if is_binary:
        return ps_clamped.log() - (-ps_clamped).log1p()
    return ps_clamped.log()


class lazy_property:  # noqa: N801 - PyTorch's name
    """A property computed on first access and then cached in the instance ``__dict__``.

    Accessed with grad mode on, as in PyTorch, so the cached value carries the graph to the parameters.
    """

    def __init__(self, wrapped) -> None:
        self.wrapped = wrapped
        self.__doc__ = wrapped.__doc__
        self.__name__ = wrapped.__name__

    def __get__(self, instance, obj_type=None):
        if instance is None:
            return _lazy_property_and_property(self.wrapped)
        from ..autograd.grad_mode import enable_grad

        with enable_grad():
            value = self.wrapped(instance)
        instance.__dict__[self.wrapped.__name__] = value
        return value


class _lazy_property_and_property(lazy_property, property):  # noqa: N801
    """What ``Class.lazy_attr`` returns: a lazy_property that documentation tools also see as a property."""

    def __init__(self, wrapped) -> None:
        property.__init__(self, wrapped)
        lazy_property.__init__(self, wrapped)
