"""``disttorch.accelerator``: the device-agnostic accelerator API, as ``torch.accelerator``.

PyTorch's accelerator is the one device type besides the CPU that the build supports (CUDA here). In
disttorch it is CUDA when CuPy is installed and sees a GPU, and None otherwise; every function then behaves
as PyTorch does on a machine without an accelerator: the queries answer (``is_available()`` is False,
``current_accelerator()`` None, ``device_count()`` 0), and the functions that need a device raise
PyTorch's ``RuntimeError("Cannot access accelerator device when none is available.")``.

The usual start-up idiom works unchanged::

    device = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else "cpu"

With CUDA present the same names delegate to ``disttorch.cuda``.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Any, Optional, Union

from ._device import device as _device_cls

__all__ = ["current_accelerator", "current_device_idx", "current_device_index", "current_stream", "device_count",
           "device_index", "empty_cache", "empty_host_cache", "get_device_capability", "get_memory_info",
           "is_available", "max_memory_allocated", "max_memory_reserved", "memory_allocated", "memory_reserved",
           "memory_stats", "reset_accumulated_memory_stats", "reset_peak_memory_stats", "set_device_idx",
           "set_device_index", "set_stream", "synchronize"]

_Device = Union[_device_cls, str, int, None]
_NONE_AVAILABLE = "Cannot access accelerator device when none is available."


def _cuda():
    """The ``disttorch.cuda`` module when CUDA is usable, else None."""
    from . import cuda

    return cuda if cuda.is_available() else None


def _require():
    """The accelerator's device module, or PyTorch's error when there is none."""
    mod = _cuda()
    if mod is None:
        raise RuntimeError(_NONE_AVAILABLE)
    return mod


def _get_device_index(device: _Device, optional: bool = False) -> int:
    """PyTorch's ``torch.accelerator._utils._get_device_index``: an int passes; a device must be the accelerator's."""
    if isinstance(device, int) and not isinstance(device, bool):
        return device
    if isinstance(device, str):
        device = _device_cls(device)
    index: Optional[int] = None
    if isinstance(device, _device_cls):
        acc = current_accelerator()
        if acc is None:
            raise RuntimeError("Accelerator expected")
        if acc.type != device.type:
            raise ValueError(f"{device.type} doesn't match the current accelerator {acc}.")
        index = device.index
    if index is None:
        if not optional:
            raise ValueError(f"Expected a torch.device with a specified index or an integer, but got:{device}")
        return current_device_index()
    return index


def is_available() -> bool:
    """True when an accelerator (a CUDA GPU through CuPy) is present and usable."""
    return _cuda() is not None


def current_accelerator(check_available: bool = False) -> Optional[_device_cls]:
    """The accelerator's device type (``device('cuda')``), or None when there is none.

    Args:
        check_available: accepted for PyTorch compatibility; disttorch only reports an accelerator it can use.
    """
    return _device_cls("cuda") if is_available() else None


def device_count() -> int:
    """Number of accelerator devices (0 without one)."""
    mod = _cuda()
    return 0 if mod is None else mod.device_count()


def current_device_index() -> int:
    """Index of the current accelerator device.

    Raises:
        RuntimeError: no accelerator is available (PyTorch's message).
    """
    return _require().current_device()


def set_device_index(device: _Device, /) -> None:
    """Make ``device`` (an index, or an accelerator device with an index) the current device.

    A negative index is a no-op, as in PyTorch.

    Raises:
        RuntimeError: no accelerator is available, or ``device`` names a device type while there is none.
    """
    index = _get_device_index(device, optional=False)
    if index < 0:
        return
    _require().set_device(index)


def current_device_idx() -> int:
    """Deprecated alias of :func:`current_device_index` (warns with PyTorch's FutureWarning)."""
    warnings.warn("Use `current_device_index` instead.", FutureWarning, stacklevel=2)
    return current_device_index()


def set_device_idx(device: _Device, /) -> None:
    """Deprecated alias of :func:`set_device_index` (warns with PyTorch's FutureWarning)."""
    warnings.warn("Use `set_device_index` instead.", FutureWarning, stacklevel=2)
    set_device_index(device)


def synchronize(device: _Device = None, /) -> None:
    """Wait for all work on the accelerator device to finish.

    Raises:
        RuntimeError: no accelerator is available (PyTorch raises here too).
    """
    index = _get_device_index(device, optional=True)
    mod = _require()
    mod.synchronize(index)


def current_stream(device: _Device = None, /):
    """The current stream of the accelerator device (CuPy's current stream with CUDA)."""
    _get_device_index(device, optional=True)
    _require()
    import cupy

    return cupy.cuda.get_current_stream()


def set_stream(stream) -> None:
    """Make ``stream`` the current stream."""
    _require()
    stream.use()


def get_device_capability(device: _Device = None, /) -> dict:
    """``{"supported_dtypes": set(...)}`` for the accelerator device."""
    _get_device_index(device, optional=True)
    _require()
    from . import _dtype as D

    return {"supported_dtypes": {D.float16, D.bfloat16, D.float32, D.float64, D.int8, D.int16, D.int32, D.int64,
                                 D.uint8, D.bool, D.complex64, D.complex128}}


class device_index:
    """Context manager that makes device ``device`` current and restores the previous one on exit.

    ``device_index(None)`` does nothing (also without an accelerator), as in PyTorch.
    """

    def __init__(self, device: Optional[int], /) -> None:
        self.idx = device
        self.prev_idx = -1

    def __enter__(self) -> None:
        if self.idx is not None:
            mod = _require()
            self.prev_idx = mod.current_device()
            if self.idx >= 0:
                mod.set_device(self.idx)

    def __exit__(self, *exc_info: object) -> None:
        if self.idx is not None and self.prev_idx >= 0:
            _require().set_device(self.prev_idx)


# ---- memory --------------------------------------------------------------------------------------------
def empty_cache() -> None:
    """Release cached, unused accelerator memory."""
    _require().empty_cache()


def empty_host_cache() -> None:
    """Release cached pinned host memory."""
    _require()
    import cupy

    cupy.get_default_pinned_memory_pool().free_all_blocks()


def memory_stats(device_index: _Device = None, /) -> "OrderedDict[str, Any]":
    """Allocator statistics (``allocated_bytes.all.current`` ... as far as CuPy's pool reports them)."""
    _require()
    _get_device_index(device_index, optional=True)
    import cupy

    pool = cupy.get_default_memory_pool()
    used, total = int(pool.used_bytes()), int(pool.total_bytes())
    return OrderedDict(sorted({"allocated_bytes.all.current": used, "allocated_bytes.all.peak": used,
                               "reserved_bytes.all.current": total, "reserved_bytes.all.peak": total}.items()))


def memory_allocated(device_index: _Device = None, /) -> int:
    """Bytes occupied by tensors on the accelerator device."""
    return memory_stats(device_index).get("allocated_bytes.all.current", 0)


def max_memory_allocated(device_index: _Device = None, /) -> int:
    """Peak bytes occupied by tensors (CuPy's pool keeps no peak: the current value)."""
    return memory_stats(device_index).get("allocated_bytes.all.peak", 0)


def memory_reserved(device_index: _Device = None, /) -> int:
    """Bytes held by the caching allocator."""
    return memory_stats(device_index).get("reserved_bytes.all.current", 0)


def max_memory_reserved(device_index: _Device = None, /) -> int:
    """Peak bytes held by the caching allocator (the current value with CuPy)."""
    return memory_stats(device_index).get("reserved_bytes.all.peak", 0)


def reset_accumulated_memory_stats(device_index: _Device = None, /) -> None:
    """Reset the accumulated allocator statistics (nothing to reset with CuPy's pool)."""
    _require()
    _get_device_index(device_index, optional=True)


def reset_peak_memory_stats(device_index: _Device = None, /) -> None:
    """Reset the peak allocator statistics (nothing to reset with CuPy's pool)."""
    _require()
    _get_device_index(device_index, optional=True)


def get_memory_info(device_index: _Device = None, /) -> tuple:
    """``(free_bytes, total_bytes)`` of the accelerator device."""
    index = _get_device_index(device_index, optional=True)
    _require()
    import cupy

    with cupy.cuda.Device(index):
        free, total = cupy.cuda.runtime.memGetInfo()
    return int(free), int(total)
