"""Autocast state (per thread, as in PyTorch) and the casts the autocast-aware ops apply.

Ops read one flag, ``STATE.active`` (true while autocast is enabled for any device type); only then do
they call :func:`cast_lower` (PyTorch's ``lower_precision_fp`` policy: matmul, linear, conv, bmm, ...) or
:func:`cast_fp32` (the ``fp32`` policy: losses, prod, cdist, ...). The casts are ordinary differentiable
dtype conversions, so gradients flow back to the parameters in their own dtype.

The weight cache follows PyTorch's ``cached_cast``: a float32 leaf that requires grad (a parameter) is cast
once per outermost autocast region; the cache is emptied when the outermost region exits.

This module imports nothing that imports the ops, so the ops can import it.
"""
from __future__ import annotations

import functools
import threading
import warnings
import weakref

from .. import _dtype as D
from ..autograd.grad_mode import STATE as _GRAD

# Device types torch.device accepts, in PyTorch's error message order.
_DEVICE_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve", "fpga", "maia",
                 "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia", "privateuseone")
# Device types with an autocast dispatch key (at::autocast::_AUTOCAST_SUPPORTED_DEVICES).
AUTOCAST_DEVICES = ("cpu", "cuda", "mtia", "maia", "xpu", "ipu", "hpu", "xla", "privateuseone", "mps")


class _State(threading.local):
    def __init__(self) -> None:
        self.active = False  # autocast enabled for some device type: the one flag the ops read
        self.enabled: dict = {}
        self.dtype: dict = {"cpu": D.bfloat16}  # every other device type defaults to float16
        self.cache_enabled = True
        self.nesting = 0
        self.cache: dict = {}  # id(parameter) -> (weakref to it, its cast)


STATE = _State()


def _device_type(device_type, fn: str) -> str:
    if not isinstance(device_type, str):
        raise TypeError(f"{fn}(): argument 'device_type' (position 1) must be str, not {type(device_type).__name__}")
    kind = device_type.partition(":")[0]
    if kind not in _DEVICE_TYPES:
        raise RuntimeError(f"Expected one of {', '.join(_DEVICE_TYPES)} device type at start of device string: "
                           f"{device_type}")
    return kind


def _autocast_device(device_type, fn: str) -> str:
    kind = _device_type(device_type, fn)
    if kind not in AUTOCAST_DEVICES:
        raise RuntimeError("unknown device type for autocast in get_autocast_dispatch_key_from_device_type")
    return kind


# ---- the torch.* state functions -----------------------------------------------------------------------
def is_autocast_available(device_type: str) -> bool:
    """Whether autocast exists for ``device_type`` (cpu, cuda, mps, xpu, ...), as ``torch.amp.is_autocast_available``."""
    return _device_type(device_type, "is_autocast_available") in AUTOCAST_DEVICES


def is_autocast_enabled(device_type: str | None = None) -> bool:
    """Whether autocast is enabled for ``device_type`` (default ``"cuda"``, as in PyTorch)."""
    kind = "cuda" if device_type is None else _autocast_device(device_type, "is_autocast_enabled")
    return STATE.enabled.get(kind, False)


def set_autocast_enabled(device_type, enabled=None) -> None:
    """``set_autocast_enabled(device_type, enabled)``, or ``set_autocast_enabled(enabled)`` for CUDA."""
    position = 2
    if enabled is None:
        device_type, enabled, position = "cuda", device_type, 1
    if not isinstance(enabled, bool):
        raise TypeError(f"set_autocast_enabled(): argument 'enabled' (position {position}) must be bool, not "
                        f"{type(enabled).__name__}")
    kind = _autocast_device(device_type, "set_autocast_enabled")
    STATE.enabled[kind] = enabled
    STATE.active = any(STATE.enabled.values())


def get_autocast_dtype(device_type: str) -> D.dtype:
    """The dtype autocast casts to on ``device_type`` (bfloat16 on the CPU, float16 elsewhere by default)."""
    kind = _device_type(device_type, "get_autocast_dtype")
    if kind not in AUTOCAST_DEVICES:
        raise RuntimeError("unsupported scalarType")
    return STATE.dtype.get(kind, D.float16)


def set_autocast_dtype(device_type: str, dtype: D.dtype) -> None:
    """Set the dtype autocast casts to on ``device_type``."""
    kind = _device_type(device_type, "set_autocast_dtype")
    if not isinstance(dtype, D.dtype):
        raise TypeError(f"set_autocast_dtype(): argument 'dtype' (position 2) must be torch.dtype, not "
                        f"{type(dtype).__name__}")
    STATE.dtype[kind] = dtype


def is_autocast_cache_enabled() -> bool:
    """Whether autocast caches the casts of parameters (default True)."""
    return STATE.cache_enabled


def set_autocast_cache_enabled(enabled: bool) -> None:
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool (got {type(enabled).__name__})")
    STATE.cache_enabled = enabled


def clear_autocast_cache() -> None:
    """Drop the cached casts of parameters."""
    STATE.cache.clear()


def autocast_increment_nesting() -> int:
    STATE.nesting += 1
    return STATE.nesting


def autocast_decrement_nesting() -> int:
    STATE.nesting -= 1
    return STATE.nesting


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"torch.{old} is deprecated. Please use torch.{new} instead.", DeprecationWarning, stacklevel=3)


def is_autocast_cpu_enabled() -> bool:
    """Deprecated: ``is_autocast_enabled("cpu")``."""
    _deprecated("is_autocast_cpu_enabled()", "is_autocast_enabled('cpu')")
    return is_autocast_enabled("cpu")


def set_autocast_cpu_enabled(enabled: bool) -> None:
    """Deprecated: ``set_autocast_enabled("cpu", enabled)``."""
    _deprecated("set_autocast_cpu_enabled(enabled)", "set_autocast_enabled('cpu', enabled)")
    set_autocast_enabled("cpu", enabled)


def get_autocast_cpu_dtype() -> D.dtype:
    """Deprecated: ``get_autocast_dtype("cpu")``."""
    _deprecated("get_autocast_cpu_dtype()", "get_autocast_dtype('cpu')")
    return get_autocast_dtype("cpu")


def set_autocast_cpu_dtype(dtype: D.dtype) -> None:
    """Deprecated: ``set_autocast_dtype("cpu", dtype)``."""
    _deprecated("set_autocast_cpu_dtype(dtype)", "set_autocast_dtype('cpu', dtype)")
    set_autocast_dtype("cpu", dtype)


def get_autocast_gpu_dtype() -> D.dtype:
    """Deprecated: ``get_autocast_dtype("cuda")``."""
    _deprecated("get_autocast_gpu_dtype()", "get_autocast_dtype('cuda')")
    return get_autocast_dtype("cuda")


def set_autocast_gpu_dtype(dtype: D.dtype) -> None:
    """Deprecated: ``set_autocast_dtype("cuda", dtype)``."""
    _deprecated("set_autocast_gpu_dtype(dtype)", "set_autocast_dtype('cuda', dtype)")
    set_autocast_dtype("cuda", dtype)


# ---- the casts the ops apply ---------------------------------------------------------------------------
_T = {}  # Tensor class and the conversion primitive, bound on first use (they import the ops)


def _tensor_and_convert():
    if not _T:
        from .._tensor import Tensor
        from ..ops.convert import _convert

        _T["Tensor"], _T["convert"] = Tensor, _convert
    return _T["Tensor"], _T["convert"]


def _kind(t) -> str:
    return t.device.type


def _cast_low(t, Tensor, convert):
    if not isinstance(t, Tensor):
        return t
    kind = _kind(t)
    if not STATE.enabled.get(kind, False):
        return t
    dt = t.dtype
    if not dt.is_floating_point or dt is D.float64:
        return t
    to = STATE.dtype.get(kind, D.float16)
    if dt is to:
        return t
    if dt is D.float32 and t._requires_grad and t.grad_fn is None and t._base is None and STATE.cache_enabled:
        hit = STATE.cache.get(id(t))
        if hit is not None and hit[0]() is t:
            return hit[1]
        # Cast with grad mode on even inside no_grad: a later use in grad mode gets the cached cast and must
        # still reach the parameter (PyTorch caches the same way).
        prev, _GRAD.enabled = _GRAD.enabled, True
        try:
            cast = convert(t, to, None)
        finally:
            _GRAD.enabled = prev
        STATE.cache[id(t)] = (weakref.ref(t), cast)
        return cast
    return convert(t, to, None)


def cast_lower(*tensors):
    """``tensors`` cast as autocast's lower-precision policy casts an op's inputs (None and non-floats pass)."""
    Tensor, convert = _tensor_and_convert()
    return tuple(_cast_low(t, Tensor, convert) for t in tensors)


def _cast_f32(t, Tensor, convert):
    if not isinstance(t, Tensor):
        return t
    dt = t.dtype
    if dt is D.float32 or dt is D.float64 or not dt.is_floating_point or not STATE.enabled.get(_kind(t), False):
        return t
    return convert(t, D.float32, None)


def cast_fp32(*tensors):
    """``tensors`` with float16/bfloat16 ones cast to float32 (autocast's fp32 policy)."""
    Tensor, convert = _tensor_and_convert()
    return tuple(_cast_f32(t, Tensor, convert) for t in tensors)


def fp32_op(fn):
    """Decorator for ops on autocast's float32 list: inside autocast, half-precision tensor arguments are
    cast to float32 first, so the op runs (and returns) in float32. Outside autocast it costs one flag read."""

    @functools.wraps(fn)
    def run_in_fp32(*args, **kwargs):
        if STATE.active:
            Tensor, convert = _tensor_and_convert()
            args = tuple(_cast_f32(a, Tensor, convert) for a in args)
            kwargs = {k: _cast_f32(v, Tensor, convert) for k, v in kwargs.items()}
        return fn(*args, **kwargs)

    return run_in_fp32


class suspended:
    """Context manager: ops inside see autocast off (an autocast-aware op computing its float32 reference)."""

    __slots__ = ("prev",)

    def __enter__(self) -> None:
        self.prev = STATE.active
        STATE.active = False

    def __exit__(self, *exc) -> None:
        STATE.active = self.prev


def enabled_for(t) -> bool:
    """Whether autocast is on for the device type of tensor ``t``."""
    return STATE.enabled.get(t.device.type, False)


def cast_promote(*tensors):
    """``tensors`` cast to the widest floating dtype among them (autocast's promote policy: float32 wins over
    the autocast dtype; float64 tensors are left alone and do not count)."""
    Tensor, convert = _tensor_and_convert()
    eligible = [t for t in tensors if isinstance(t, Tensor) and t.dtype.is_floating_point
                and t.dtype is not D.float64 and STATE.enabled.get(_kind(t), False)]
    if not eligible:
        return tensors
    to = D.float32 if any(t.dtype is D.float32 for t in eligible) else eligible[0].dtype
    ids = {id(t) for t in eligible}
    return tuple(convert(t, to, None) if id(t) in ids and t.dtype is not to else t for t in tensors)
