"""Page-locked ("pinned") host memory: what ``Tensor.pin_memory``, ``DataLoader(pin_memory=True)`` and the staging
of CPU backends allocate, so that host<->device copies run at full bus speed and ``non_blocking`` copies can run
asynchronously on a stream.

Pinned arrays are NumPy arrays over CuPy's pinned allocation (``cupy.cuda.alloc_pinned_memory``); an array is
recognised as pinned by the allocation at the root of its ``base`` chain, so views of a pinned array are pinned too.
"""
from __future__ import annotations

import numpy as np

__all__ = ["empty_pinned", "is_pinned_array", "pinned_copy"]

_PINNED_TYPES = ("PinnedMemoryPointer", "PinnedMemory")


def empty_pinned(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised host array in pinned memory when CuPy (or the stand-in device) can allocate it, else a plain
    NumPy array (callers that require pinning check ``is_pinned_array``)."""
    from . import _cupy_module as cp

    dtype = np.dtype(dtype)
    alloc = getattr(getattr(cp, "cuda", None), "alloc_pinned_memory", None)
    if alloc is None:
        return np.empty(shape, dtype)
    n = int(np.prod(shape, dtype=np.int64))
    mem = alloc(max(n * dtype.itemsize, 1))
    return np.frombuffer(mem, dtype, n).reshape(shape)


def is_pinned_array(arr) -> bool:
    """Whether the NumPy array ``arr`` lies in pinned host memory: allocated by CuPy's pinned allocator (seen at
    the root of its ``base`` chain), or, once CUDA is initialised, page-locked by anyone (the driver's pointer
    attributes: memory another library pinned)."""
    obj = arr
    for _ in range(64):  # base chains are short; the bound keeps a pathological chain from looping long
        base = getattr(obj, "base", None)
        if base is None:
            break
        if isinstance(base, memoryview):  # np.frombuffer keeps the exporter behind a memoryview
            base = base.obj
        if type(base).__name__ in _PINNED_TYPES:
            return True
        obj = base
    from . import _cupy_module as cp
    from . import is_initialized

    if not is_initialized() or getattr(arr, "size", 0) == 0:
        return False
    get_attributes = getattr(getattr(getattr(cp, "cuda", None), "runtime", None), "pointerGetAttributes", None)
    if get_attributes is None:
        return False
    try:
        attrs = get_attributes(arr.ctypes.data)
    except Exception:  # noqa: BLE001 - older drivers raise for memory CUDA does not know: not pinned
        return False
    return int(attrs.type) == 1  # cudaMemoryTypeHost


def pinned_copy(arr: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of the host array ``arr`` in pinned memory.

    Raises:
        RuntimeError: no CUDA device is available (PyTorch's message), as pinning needs the driver.
    """
    from . import is_available

    if not is_available():
        raise RuntimeError("Cannot access accelerator device when none is available.")
    out = empty_pinned(arr.shape, arr.dtype)
    np.copyto(out, arr, casting="no")
    return out
