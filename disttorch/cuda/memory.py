"""Memory statistics of ``disttorch.cuda`` over CuPy's default memory pool, as ``torch.cuda``'s caching allocator.

"allocated" is the pool's bytes in use (``used_bytes``), "reserved" the bytes it holds from the driver
(``total_bytes``). CuPy keeps no peaks, so the peaks are sampled: at every call of these functions and at every
allocation made while the hook installed on the first call is active (CuPy memory hooks are per thread: the
thread that first asked for a statistic). Without CUDA every counter is 0 and the rest are no-ops, as in
PyTorch's CPU build.
"""
from __future__ import annotations

from collections import OrderedDict

_PEAK = {"allocated": 0, "reserved": 0}
_hook = None


def _pool():
    """CuPy's default memory pool, or None without CUDA; installs the peak-sampling hook once."""
    global _hook
    from . import _cupy

    cp = _cupy()
    if cp is None:
        return None
    pool = cp.get_default_memory_pool()
    if _hook is None:
        from cupy.cuda import memory_hook

        class _PeakHook(memory_hook.MemoryHook):
            name = "disttorch_peak"

            def malloc_postprocess(self, *args, **kwargs) -> None:
                _sample(pool)

        _hook = _PeakHook()
        _hook.__enter__()  # stays active in this thread for the life of the process
    _sample(pool)
    return pool


def _sample(pool) -> None:
    _PEAK["allocated"] = max(_PEAK["allocated"], int(pool.used_bytes()))
    _PEAK["reserved"] = max(_PEAK["reserved"], int(pool.total_bytes()))


def memory_allocated(device=None) -> int:
    """Bytes of GPU memory held by tensors (CuPy's pool ``used_bytes``; 0 without CUDA)."""
    pool = _pool()
    return 0 if pool is None else int(pool.used_bytes())


def max_memory_allocated(device=None) -> int:
    """The peak of :func:`memory_allocated` since the start or :func:`reset_peak_memory_stats` (0 without CUDA)."""
    return 0 if _pool() is None else _PEAK["allocated"]


def memory_reserved(device=None) -> int:
    """Bytes of GPU memory held by the pool (CuPy's pool ``total_bytes``; 0 without CUDA)."""
    pool = _pool()
    return 0 if pool is None else int(pool.total_bytes())


def max_memory_reserved(device=None) -> int:
    """The peak of :func:`memory_reserved` (0 without CUDA)."""
    return 0 if _pool() is None else _PEAK["reserved"]


def reset_peak_memory_stats(device=None) -> None:
    """Restart the peaks from the current values (a no-op without CUDA)."""
    pool = _pool()
    if pool is not None:
        _PEAK["allocated"], _PEAK["reserved"] = int(pool.used_bytes()), int(pool.total_bytes())


def empty_cache() -> None:
    """Return the pool's unused blocks to the driver (a no-op without CUDA)."""
    pool = _pool()
    if pool is not None:
        pool.free_all_blocks()


def memory_stats(device=None) -> "OrderedDict[str, int]":
    """The counters under PyTorch's key names (an empty OrderedDict without CUDA, as PyTorch's CPU build)."""
    pool = _pool()
    if pool is None:
        return OrderedDict()
    return OrderedDict([
        ("allocated_bytes.all.current", int(pool.used_bytes())),
        ("allocated_bytes.all.peak", _PEAK["allocated"]),
        ("reserved_bytes.all.current", int(pool.total_bytes())),
        ("reserved_bytes.all.peak", _PEAK["reserved"]),
    ])
