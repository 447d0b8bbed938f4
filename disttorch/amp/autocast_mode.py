"""``autocast`` and ``custom_fwd``/``custom_bwd``, as ``torch.amp.autocast_mode``.

Inside ``autocast("cpu")`` (bfloat16 by default, float16 on request) the ops on PyTorch's CPU
lower-precision list (matmul, mm, bmm, addmm, baddbmm, addbmm, linear, conv*, conv_transpose*, prelu,
scaled_dot_product_attention) cast their float inputs to the autocast dtype and return that dtype; NumPy
has no bfloat16 BLAS, so they compute in float32 and round once, which gives the values of PyTorch's
float32-accumulating kernels. Ops on the float32 list (the losses, prod, cdist, trace, 3-d pooling,
reflection/replication padding) cast half-precision inputs to float32. ``autocast("cuda")`` on a machine
without CUDA warns and disables itself, as PyTorch does.
"""
from __future__ import annotations

import collections.abc
import functools
import warnings
from typing import Any, Optional

import numpy as np

from .. import _dtype as D
from . import _state as S

__all__ = ["autocast_decorator", "autocast", "is_autocast_available", "custom_fwd", "custom_bwd"]

is_autocast_available = S.is_autocast_available


def _cuda_available() -> bool:
    from .. import cuda

    return cuda.is_available()


def autocast_decorator(autocast_instance, func):
    """``func`` run inside ``autocast_instance``."""

    @functools.wraps(func)
    def decorate_autocast(*args, **kwargs):
        with autocast_instance:
            return func(*args, **kwargs)

    return decorate_autocast


class autocast:
    """Run the ops of a region in mixed precision, as ``torch.autocast`` / ``torch.amp.autocast``.

    Works as a context manager and as a decorator. Regions nest; ``enabled=False`` turns autocast off in a
    sub-region. Wrap only the forward pass and the loss: backward runs each op in the dtype its forward used.

    Args:
        device_type: ``"cpu"`` (or ``"cuda"``, ``"mps"``, ... which PyTorch knows; ``"cuda"`` without CUDA
            warns and disables the region).
        dtype: the lower-precision dtype; default ``get_autocast_dtype(device_type)`` (bfloat16 on the CPU).
            The CPU supports bfloat16 and float16; another dtype warns and disables the region.
        enabled: whether the region autocasts.
        cache_enabled: cache the casts of parameters within the outermost region (default: the global
            setting, ``is_autocast_cache_enabled()``, True unless changed).

    Example:
        >>> with disttorch.autocast(device_type="cpu", dtype=disttorch.bfloat16):
        ...     out = model(x)              # Linear/conv outputs are bfloat16
        ...     loss = F.cross_entropy(out, y)   # computed in float32
        >>> loss.backward()                 # parameter gradients are float32
    """

    def __init__(self, device_type: str, dtype: Optional[D.dtype] = None, enabled: bool = True,
                 cache_enabled: Optional[bool] = None) -> None:
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
        self.fast_dtype = S.get_autocast_dtype(device_type) if dtype is None else dtype
        self.device = device_type
        if not is_autocast_available(self.device):
            raise RuntimeError(f"User specified an unsupported autocast device_type '{self.device}'")
        supported = [D.bfloat16, D.float16]
        self._cache_enabled = S.is_autocast_cache_enabled() if cache_enabled is None else cache_enabled
        name = self.device.upper()
        if enabled:
            if self.device == "cuda":
                if not _cuda_available():
                    warnings.warn("CUDA is not available or torch_xla is imported. Disabling autocast.", stacklevel=2)
                    enabled = False
            elif self.fast_dtype not in supported:
                warnings.warn(f"In {name} autocast, but the target dtype is not supported. Disabling autocast.\n"
                              f"{name} Autocast only supports dtypes of "
                              + ", ".join(map(str, supported)) + " currently.", stacklevel=2)
                enabled = False
        self._enabled = enabled

    def __enter__(self):
        self.prev_cache_enabled = S.is_autocast_cache_enabled()
        self.prev = S.is_autocast_enabled(self.device)
        self.prev_fastdtype = S.get_autocast_dtype(self.device)
        S.set_autocast_enabled(self.device, self._enabled)
        S.set_autocast_dtype(self.device, self.fast_dtype)
        S.autocast_increment_nesting()
        S.set_autocast_cache_enabled(self._cache_enabled)
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> bool:
        # Drop the cache when leaving the outermost autocast region.
        if S.autocast_decrement_nesting() == 0:
            S.clear_autocast_cache()
        S.set_autocast_enabled(self.device, self.prev)
        S.set_autocast_dtype(self.device, self.prev_fastdtype)
        S.set_autocast_cache_enabled(self.prev_cache_enabled)
        return False

    def __call__(self, func):
        if not callable(func):
            raise TypeError(f"autocast()(func) requires a callable, but got {type(func).__name__}. "
                            f"Did you mean to use autocast as a context manager? For example:\n"
                            f"    with torch.autocast(device_type=...):\n"
                            f"        output = model(input)")
        return autocast_decorator(self, func)


def _cast(value, device_type: str, dtype: D.dtype):
    """``value`` with its floating tensors on ``device_type`` (not float64) cast to ``dtype``, recursively."""
    from .._tensor import Tensor

    if isinstance(value, Tensor):
        eligible = value.is_floating_point() and value.device.type == device_type and value.dtype is not D.float64
        return value.to(dtype) if eligible else value
    if isinstance(value, (str, bytes, np.ndarray)):
        return value
    if isinstance(value, collections.abc.Mapping):
        return {_cast(k, device_type, dtype): _cast(v, device_type, dtype) for k, v in value.items()}
    if isinstance(value, collections.abc.Iterable):
        iterable = (_cast(v, device_type, dtype) for v in value)
        return type(value)(iterable) if isinstance(value, (list, tuple)) else iterable
    return value


def custom_fwd(fwd=None, *, device_type: str, cast_inputs: Optional[D.dtype] = None):
    """Decorator for ``forward`` of a custom ``autograd.Function`` under autocast, as ``torch.amp.custom_fwd``.

    With ``cast_inputs``, floating tensor inputs are cast to it and ``forward`` runs with autocast off
    (only inside an autocast-enabled region); without, ``forward`` runs under the current autocast state.
    """
    if not isinstance(device_type, str):
        raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)

    @functools.wraps(fwd)
    def decorate_fwd(*args, **kwargs):
        args[0]._dtype = S.get_autocast_dtype(device_type)
        if cast_inputs is None:
            args[0]._fwd_used_autocast = S.is_autocast_enabled(device_type)
            return fwd(*args, **kwargs)
        autocast_context = S.is_autocast_enabled(device_type)
        args[0]._fwd_used_autocast = False
        if autocast_context:
            with autocast(device_type=device_type, enabled=False):
                return fwd(*_cast(args, device_type, cast_inputs), **_cast(kwargs, device_type, cast_inputs))
        return fwd(*args, **kwargs)

    return decorate_fwd


def custom_bwd(bwd=None, *, device_type: str):
    """Decorator for ``backward`` of a custom ``autograd.Function``: runs it with the autocast state of forward."""
    if not isinstance(device_type, str):
        raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)

    @functools.wraps(bwd)
    def decorate_bwd(*args, **kwargs):
        with autocast(device_type=device_type, enabled=args[0]._fwd_used_autocast, dtype=args[0]._dtype):
            return bwd(*args, **kwargs)

    return decorate_bwd
