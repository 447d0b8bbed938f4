"""The fused-kernel fast path of the ops: when a CUDA kernel of ``disttorch.kernels`` applies, and how it runs.

An op asks :func:`launcher` with its array module and the arrays the kernel would read and write. It gets a
function that runs a ``LaunchPlan`` only when every condition of the fast path holds:

* ``disttorch.kernels.enabled()`` (``DISTTORCH_KERNELS=0`` turns the fast path off everywhere);
* ``xp`` is the CUDA array module of ``disttorch.cuda`` (CuPy, or the stand-in device of ``disttorch.testing``);
* every array is C-contiguous and of a dtype the kernels have an entry point for (float32, float16).

Otherwise it gets None and the op runs its generic array code, which stays the reference. On real CuPy the plan
goes to ``disttorch.kernels.launch.launch``, behind a first-use self-check of each entry point
(``_kernel_check``); the stand-in device runs it through a NumPy emulator of the CUDA code
(``disttorch.testing._kernel_emulator``), so CPU-only CI checks each op's plan arguments and its use of the
kernel's outputs, and can count which kernels ran.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["launcher", "KERNEL_DTYPES"]

KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))


def launcher(xp, *arrays, dtypes=KERNEL_DTYPES) -> Callable | None:
    """The function that runs a launch plan on ``xp``, or None when the fused kernels do not apply.

    Args:
        xp: the array module of the op's inputs.
        *arrays: the arrays the kernel would take (None entries are skipped: optional weights).
        dtypes: the dtypes the kernel family has entry points for.
    """
    if xp is np:
        return None
    from .. import cuda

    if xp is not cuda._cupy_module:
        return None
    from ..kernels import enabled
    from . import _kernel_check

    if not enabled() or _kernel_check.disabled_reason() is not None:
        return None
    for a in arrays:
        if a is None:
            continue
        if a.dtype not in dtypes or not a.flags.c_contiguous:
            return None
    run = getattr(xp, "_disttorch_kernel_launch", None)  # the stand-in's emulator
    if run is not None:
        return run
    return _device_launch(xp)


def _device_launch(xp) -> Callable:
    """CuPy's plan launcher behind the first-use self-check (``_kernel_check``), made on first use."""
    if not _LAUNCH:
        from ..kernels.launch import launch
        from ._kernel_check import checked

        _LAUNCH.append(checked(launch, xp))
    return _LAUNCH[0]


_LAUNCH: list = []
