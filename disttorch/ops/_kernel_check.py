"""First-use self-check of the fused CUDA kernels on a real GPU.

The kernels are checked against the generic code by tests/gpu when a GPU is at hand; this module guards a user's
process as well. The first launch of each entry point whose arrays are small (``CHECK_BYTES`` in all) also runs
the kernel's NumPy emulator (``disttorch.testing._kernel_emulator``, written from the ``.cu`` source) on host
copies of the arguments and compares every array argument afterwards. A mismatch writes the emulator's result
into the outputs (so the call is still right), turns the fast path off for the rest of the process and warns
once, naming the entry point, the argument and the error. Multi-tensor kernels (``adam.cu``, ``bucket.cu``) read
address tables the host cannot follow; they are checked by tests/gpu only. ``DISTTORCH_KERNELS_SELF_CHECK=0``
skips the check.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

__all__ = ["checked", "disabled_reason", "reset", "CHECK_BYTES"]

CHECK_BYTES = 4 << 20
_UNCHECKED_SOURCES = ("adam.cu", "bucket.cu")
_VERIFIED: set = set()
_STATE: dict = {"disabled": None}
# (rtol, atol) per output dtype: the kernels and the emulator both compute in float32; float16 rounds once more
_TOLERANCE = {np.dtype(np.float32): (1e-3, 1e-4), np.dtype(np.float16): (1e-2, 1e-2)}


def reset() -> None:
    """Forget the checks made so far and turn the fast path back on (tests)."""
    _VERIFIED.clear()
    _STATE["disabled"] = None


def disabled_reason() -> str | None:
    """Why a self-check turned the fused kernels off in this process, or None."""
    return _STATE["disabled"]


def _is_device(a, np_mod=np) -> bool:
    return hasattr(a, "dtype") and a.__class__ is not np_mod.ndarray and not isinstance(a, np_mod.generic)


def _needs_check(plan) -> bool:
    if plan.name in _VERIFIED or plan.source in _UNCHECKED_SOURCES or plan.grid[0] == 0:
        return False
    if os.environ.get("DISTTORCH_KERNELS_SELF_CHECK", "1").strip().lower() in ("0", "false", "off", "no"):
        return False
    return sum(int(a.nbytes) for a in plan.args if _is_device(a)) <= CHECK_BYTES


def _mismatch(i: int, got: np.ndarray, want: np.ndarray) -> str | None:
    if got.shape != want.shape:
        return f"argument {i}: shape {got.shape}, emulator {want.shape}"
    if got.dtype.kind in "fc":
        rtol, atol = _TOLERANCE.get(got.dtype, (1e-3, 1e-4))
        g, w = got.astype(np.float64), want.astype(np.float64)
        bad = ~np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
        if bad.any():
            k = int(np.flatnonzero(bad.reshape(-1))[0])
            return (f"argument {i} ({got.dtype}): {int(bad.sum())} of {got.size} elements differ, first at flat index "
                    f"{k}: kernel {g.reshape(-1)[k]!r}, emulator {w.reshape(-1)[k]!r} (rtol {rtol}, atol {atol})")
        return None
    if not np.array_equal(got, want):
        k = int(np.flatnonzero((got != want).reshape(-1))[0])
        return f"argument {i} ({got.dtype}): differs at flat index {k}: kernel {got.reshape(-1)[k]!r}, " \
               f"emulator {want.reshape(-1)[k]!r}"
    return None


def checked(launch, xp):
    """``launch`` (CuPy's plan launcher) with the first-use self-check of each entry point."""
    def run(plan, device_id=None) -> None:
        if not _needs_check(plan):
            return launch(plan, device_id)
        from ..testing._kernel_emulator import emulate

        copies: dict = {}  # one host copy per device array: an argument passed twice (in place) stays one array
        host = [copies.setdefault(id(a), xp.asnumpy(a)) if _is_device(a) else a for a in plan.args]
        emulate(plan, host)
        launch(plan, device_id)
        for i, a in enumerate(plan.args):
            if not _is_device(a):
                continue
            problem = _mismatch(i, xp.asnumpy(a), host[i])
            if problem is not None:
                for j, b in enumerate(plan.args):  # this call's outputs from the emulator: the result stays right
                    if _is_device(b):
                        b.set(np.ascontiguousarray(host[j]))
                _STATE["disabled"] = f"{plan.name} ({plan.source}): {problem}"
                warnings.warn(f"disttorch.kernels: the fused kernel {plan.name} disagrees with its reference on this "
                              f"GPU ({problem}); the fused kernels are off for the rest of this process (the generic "
                              "code runs instead). Please report this with the GPU model and CUDA version.",
                              RuntimeWarning, stacklevel=3)
                return None
        _VERIFIED.add(plan.name)
        return None

    return run
