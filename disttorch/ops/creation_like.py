"""``zeros_like``, ``ones_like``, ``empty_like``, ``full_like``: a new tensor with another's shape (and its dtype and
device unless given)."""
from __future__ import annotations

from .. import _dtype as D
from .. import _tensor as T
from .._device import array_module
from .._device import device as _device_cls
from ._creation_common import _fill_array, _finish, _num

__all__ = ["zeros_like", "ones_like", "full_like", "empty_like"]


def _like(op: str, input, fill, dtype, device, requires_grad):
    if not isinstance(input, T.Tensor):
        raise TypeError(f"{op}(): argument 'input' (position 1) must be Tensor, not {type(input).__name__}")
    dt = input.dtype if dtype is None else D.to_dtype(dtype)
    dev = input.device if device is None else _device_cls(device)
    return _finish(_fill_array(array_module(dev), input._data.shape, fill, dt, op), requires_grad)


def zeros_like(input, *, dtype=None, layout=None, device=None, requires_grad: bool = False, memory_format=None):
    """Zeros with ``input``'s shape (and dtype/device unless given)."""
    return _like("zeros_like", input, 0, dtype, device, requires_grad)


def ones_like(input, *, dtype=None, layout=None, device=None, requires_grad: bool = False, memory_format=None):
    """Ones with ``input``'s shape."""
    return _like("ones_like", input, 1, dtype, device, requires_grad)


def empty_like(input, *, dtype=None, layout=None, device=None, requires_grad: bool = False, memory_format=None):
    """An uninitialised tensor with ``input``'s shape."""
    return _like("empty_like", input, None, dtype, device, requires_grad)


def full_like(input, fill_value, *, dtype=None, layout=None, device=None, requires_grad: bool = False,
              memory_format=None):
    """``fill_value`` in ``input``'s shape and dtype (the value is cast to it)."""
    return _like("full_like", input, _num(fill_value), dtype, device, requires_grad)
