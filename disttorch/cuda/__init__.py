"""``disttorch.cuda``: device queries. CUDA tensors arrive with the GPU backend (CuPy)."""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def _cupy():
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception:  # noqa: BLE001 - any import or driver failure means "no CUDA"
        return None
    return None


def is_available() -> bool:
    """True when CuPy is installed and at least one NVIDIA GPU is visible."""
    return _cupy() is not None


def device_count() -> int:
    cp = _cupy()
    return 0 if cp is None else int(cp.cuda.runtime.getDeviceCount())


def current_device() -> int:
    cp = _cupy()
    if cp is None:
        raise RuntimeError("current_device: CUDA is not available")
    return int(cp.cuda.runtime.getDevice())


def set_device(device) -> None:
    cp = _cupy()
    if cp is None:
        raise RuntimeError(f"set_device({device}): CUDA is not available")
    idx = device if isinstance(device, int) else (getattr(device, "index", None) or 0)
    cp.cuda.runtime.setDevice(idx)


def synchronize(device=None) -> None:
    cp = _cupy()
    if cp is not None:
        cp.cuda.Device().synchronize()


def manual_seed(seed: int) -> None:
    """Seed the GPU generator (a no-op without CUDA, as in PyTorch)."""


def manual_seed_all(seed: int) -> None:
    """Seed every GPU's generator (a no-op without CUDA)."""


def is_bf16_supported() -> bool:
    return is_available()


def empty_cache() -> None:
    cp = _cupy()
    if cp is not None:
        cp.get_default_memory_pool().free_all_blocks()


def memory_allocated(device=None) -> int:
    cp = _cupy()
    return 0 if cp is None else int(cp.get_default_memory_pool().used_bytes())


def max_memory_allocated(device=None) -> int:
    return memory_allocated(device)


from . import amp  # noqa: E402,F401 - torch.cuda.amp is an attribute of torch.cuda
