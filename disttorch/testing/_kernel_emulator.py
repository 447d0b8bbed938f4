"""Runs launch plans of ``disttorch.kernels`` on the stand-in device, in NumPy, as the CUDA code would.

The stand-in device (``_standin_cuda``) hands this module's :func:`launch` to ``ops._fused.launcher`` in place of
``disttorch.kernels.launch.launch``. Each kernel family has an emulator module (``_emu_*``) written from the
``.cu`` source, not from the op that calls it: it reads the plan's arguments in the order and C types of the
kernel's parameters, computes in the kernel's working precision and writes the kernel's outputs in place. So
CPU-only CI checks that an op packs the plan the kernel expects and uses what the kernel writes; the CUDA code
itself is checked on a GPU (tests/gpu).

:data:`LAUNCHES` counts the entry points run, for tests that assert a kernel was (or was not) used.
"""
from __future__ import annotations

import ctypes
import importlib
from collections import Counter

import numpy as np

__all__ = ["launch", "emulate", "LAUNCHES", "array_at"]

LAUNCHES: Counter = Counter()

# source file -> emulator module (in this package)
_FAMILIES = {
    "softmax.cu": "_emu_softmax",
    "cross_entropy.cu": "_emu_softmax",
    "layer_norm.cu": "_emu_norm_act",
    "activation.cu": "_emu_norm_act",
    "dropout.cu": "_emu_norm_act",
    "adam.cu": "_emu_multi",
    "bucket.cu": "_emu_multi",
    "im2col.cu": "_emu_multi",
}


def _device_buffer(a):
    """The NumPy buffer behind a stand-in array (no transfer is counted: the kernel runs 'on the device')."""
    from ._standin_cuda import StandinArray

    if a.__class__ is StandinArray:
        return a._a
    return a


def array_at(ptr: int, numel: int, dtype) -> np.ndarray:
    """A writable NumPy view of ``numel`` elements of ``dtype`` at address ``ptr`` (a multi-tensor table entry).

    Only for addresses a plan took from live stand-in arrays (``StandinArray.data.ptr``).
    """
    dt = np.dtype(dtype)
    if numel == 0:
        return np.empty(0, dtype=dt)
    buf = (ctypes.c_char * (numel * dt.itemsize)).from_address(int(ptr))
    return np.frombuffer(buf, dtype=dt, count=numel)


def launch(plan, device_id: int | None = None) -> None:
    """Emulate ``plan`` (a ``disttorch.kernels.launch.LaunchPlan``) on the stand-in device's buffers and count it."""
    if plan.grid[0] == 0:
        return
    emulate(plan, [_device_buffer(a) for a in plan.args])
    LAUNCHES[plan.name] += 1


def emulate(plan, args) -> None:
    """Run the emulator of ``plan``'s kernel on ``args`` (NumPy arrays and the plan's scalars, in the plan's
    order), writing its outputs into them; nothing is counted. The GPU self-check (``ops._kernel_check``) runs it
    on host copies of a real launch's arguments."""
    family = _FAMILIES.get(plan.source)
    if family is None:
        raise NotImplementedError(f"kernel emulator: no emulator for {plan.source} ({plan.name})")
    importlib.import_module(f".{family}", __package__).run(plan, tuple(args))
