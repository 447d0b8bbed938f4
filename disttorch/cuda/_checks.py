"""Pending device-side checks: value checks of device ops reported at the next synchronisation, as CUDA asserts.

On the CPU an op checks its data at once (``Target 5 is out of bounds.``). On a GPU that check would copy a flag
to the host and wait for the device on every call. PyTorch's CUDA kernels instead fail a device-side assert that
surfaces at the next synchronisation; disttorch does the same: a device op records a 0-d device boolean (True
means the check failed) and a function that builds the error, and computes on indices made safe (clipped into
range). The next host transfer (``Tensor.cpu()``/``tolist()``/``numpy()``, anything that goes through
``disttorch._device.to_host``) or :func:`disttorch.cuda.synchronize` runs :func:`flush`: one reduction over all
pending flags and one device-to-host copy; when a flag is set it raises the error the CPU path would have raised
(its message computed then, from the recorded arrays).

At most :data:`LIMIT` checks wait: the next one flushes first, so a loop that never synchronises pays one sync per
``LIMIT`` checked ops and keeps a bounded number of arrays alive.
"""
from __future__ import annotations

import threading
from typing import Callable

__all__ = ["defer", "defer_range", "flush", "pending", "LIMIT"]

LIMIT = 1024
_PENDING: list = []  # (0-d device bool flag, () -> Exception), in the order the ops ran
_LOCK = threading.Lock()


def pending() -> int:
    """How many device checks wait for the next synchronisation."""
    return len(_PENDING)


def defer(flag, make_error: Callable[[], BaseException]) -> None:
    """Record a device check: ``flag`` a 0-d device boolean array (True: failed), ``make_error`` builds the
    exception (called only on failure, at the flush, so it may read device values)."""
    if len(_PENDING) >= LIMIT:
        flush()
    _PENDING.append((flag, make_error))


def defer_range(xp, idx, low: int, high: int, make_error: Callable[[], BaseException]):
    """Check ``low <= idx < high`` on the device (deferred) and return ``idx`` clipped into that range, so the op
    computes on valid positions (CuPy would wrap out-of-range indices; the check reports them at the next sync)."""
    if idx.size == 0:
        return idx
    flag = (idx.min() < low) | (idx.max() >= high)
    defer(flag, make_error)
    return xp.clip(idx, low, high - 1) if high > low else idx


def flush() -> None:
    """Evaluate every pending check with one reduction and one transfer per device; raise the first failure."""
    if not _PENDING:
        return
    with _LOCK:
        items = list(_PENDING)
        del _PENDING[:len(items)]
    groups: dict = {}
    for flag, make in items:
        dev = getattr(getattr(flag, "device", None), "id", None)
        groups.setdefault(dev, []).append((flag, make))
    failed = False
    for group in groups.values():
        flags = [f for f, _ in group]
        xp = _module_of(flags[0])
        any_bad = flags[0] if len(flags) == 1 else xp.stack(flags).any()
        if bool(any_bad):  # the one device-to-host copy of the flush
            failed = True
            break
    if not failed:
        return
    for flag, make in items:  # error path: find the first failure in op order (more copies are fine here)
        if bool(flag):
            raise make()


def _module_of(arr):
    from .._device import array_module_of

    return array_module_of(arr)
