"""Flatten parameters into one vector and back, as `torch.nn.utils.parameters_to_vector`."""
from __future__ import annotations

from typing import Iterable

from ... import _tensor as T
from ...autograd.grad_mode import no_grad
from ...ops.join import cat

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def _check_device(param, old_device):
    if old_device is not None and param.device != old_device:
        raise TypeError("Found two parameters on different devices, this is currently not supported.")
    return param.device


def parameters_to_vector(parameters: Iterable[T.Tensor]) -> T.Tensor:
    """One 1-D tensor holding all ``parameters`` flattened, in order (differentiable)."""
    device, flat = None, []
    for p in parameters:
        device = _check_device(p, device)
        flat.append(p.reshape(-1))
    return cat(flat)


def vector_to_parameters(vec: T.Tensor, parameters: Iterable[T.Tensor]) -> None:
    """Copy consecutive slices of ``vec`` into ``parameters`` (each slice replaces the parameter's data)."""
    if not isinstance(vec, T.Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    device, ptr = None, 0
    for p in parameters:
        device = _check_device(p, device)
        n = p.numel()
        with no_grad():
            p.data = vec[ptr:ptr + n].view_as(p).data
        ptr += n
