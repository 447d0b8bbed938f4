"""``disttorch.cuda``: device queries and the GPU generators' seeds. CUDA tensors run on CuPy."""
from __future__ import annotations

from typing import Callable

_SEED_MASK = (1 << 64) - 1

# CUDA is probed (CuPy imported, devices counted) once, on first use. Calls made before that (manual_seed) wait
# in _QUEUED and run right after a successful probe; on a machine without CUDA they are dropped, as PyTorch's.
_probed = False
_cupy_module = None
_QUEUED: list = []


def _cupy():
    """The cupy module when CUDA is usable here, else None (probed once)."""
    global _probed, _cupy_module
    if not _probed:
        _probed = True
        try:
            import cupy

            if cupy.cuda.runtime.getDeviceCount() > 0:
                _cupy_module = cupy
        except Exception:  # noqa: BLE001 - any import or driver failure means "no CUDA"
            _cupy_module = None
        queued, _QUEUED[:] = list(_QUEUED), []
        if _cupy_module is not None:
            for fn in queued:
                fn(_cupy_module)
    return _cupy_module


def _lazy_call(fn: Callable) -> None:
    """Run ``fn(cupy)`` now if CUDA is initialised, else when it is (never on a machine without CUDA)."""
    if _probed:
        if _cupy_module is not None:
            fn(_cupy_module)
    else:
        _QUEUED.append(fn)


def is_initialized() -> bool:
    """Whether CUDA has been initialised in this process (as ``torch.cuda.is_initialized``)."""
    return _probed and _cupy_module is not None


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
    """Seed the random number generator of the current GPU, as ``torch.cuda.manual_seed``.

    The call is lazy, as PyTorch's: before CUDA is initialised the seed is remembered and applied to CuPy's
    generator of the then-current device (``cupy.random``) when CUDA first starts; on a machine without CUDA it
    is a no-op. Note that disttorch's own sampling functions (``disttorch.randn(..., device="cuda")`` and the
    rest) draw on the host from ``disttorch.default_generator`` and copy to the GPU, so their values follow
    ``disttorch.manual_seed``; this seed governs code that draws with CuPy's generator.

    Args:
        seed: the seed (an int in [-2**63, 2**64); negative values wrap around as in PyTorch).
    """
    seed = int(seed) & _SEED_MASK
    _lazy_call(lambda cp: cp.random.seed(seed))


def manual_seed_all(seed: int) -> None:
    """Seed the random number generator of every GPU, as ``torch.cuda.manual_seed_all`` (lazy like
    :func:`manual_seed`: applied when CUDA initialises; a no-op on a machine without CUDA)."""
    seed = int(seed) & _SEED_MASK

    def apply(cp) -> None:
        for i in range(int(cp.cuda.runtime.getDeviceCount())):
            with cp.cuda.Device(i):
                cp.random.seed(seed)

    _lazy_call(apply)


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
