"""Devices and the array module (numpy or cupy) behind each one.

Ops never import numpy for tensor math: they take ``xp = tensor._xp`` from their inputs, so the
same code runs on CuPy arrays once the CUDA backend is present.
"""
from __future__ import annotations

import numpy as np

__all__ = ["device", "array_module", "device_of"]


class device:
    """A device: ``device('cpu')``, ``device('cuda', 0)`` or ``device('cuda:1')``, as ``torch.device``."""

    __slots__ = ("type", "index")

    def __init__(self, type, index: int | None = None) -> None:  # noqa: A002
        if isinstance(type, device):
            self.type, self.index = type.type, type.index
            return
        if isinstance(type, int) and index is None:
            self.type, self.index = "cuda", type
            return
        if not isinstance(type, str):
            raise TypeError(f"device: expected a string or device, got {type.__class__.__name__}")
        name, _, idx = type.partition(":")
        if name not in ("cpu", "cuda", "meta"):
            raise RuntimeError(f"Expected one of cpu, cuda, meta device type at start of device string: {type}")
        if idx:
            if index is not None:
                raise RuntimeError(f"type (string) must not include an index because index was passed explicitly: {type}")
            if not idx.isdigit():
                raise RuntimeError(f"Invalid device string: '{type}'")
            index = int(idx)
        self.type, self.index = name, index

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and self.type == other.type and self.index == other.index

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __repr__(self) -> str:
        return f"device(type='{self.type}')" if self.index is None else f"device(type='{self.type}', index={self.index})"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __reduce__(self):
        return (device, (self.type, self.index))


CPU = device("cpu")


def array_module(dev: device):
    """numpy for the CPU, cupy for CUDA (imported only when a CUDA device is first used)."""
    if dev.type == "cpu":
        return np
    if dev.type == "cuda":
        from . import cuda

        cp = cuda._cupy()  # cupy itself, or the stand-in device of disttorch.testing in its test mode
        if cp is None:
            raise cuda._unavailable(f"device {dev}")  # says why: no CuPy, no driver or no device
        return cp
    raise RuntimeError(f"device type {dev.type!r} has no array module")


def array_module_of(arr):
    """``numpy`` or ``cupy``: the module that computes on the raw array ``arr``."""
    if arr.__class__ is np.ndarray:
        return np
    return array_module(device_of(arr))


def to_host(arr) -> np.ndarray:
    """A NumPy array with the values of ``arr``: NumPy arrays as they are (no copy), NumPy scalars as 0-d arrays,
    CuPy arrays copied to the host (after the pending device checks of ``disttorch.cuda._checks`` ran)."""
    if isinstance(arr, np.ndarray):
        return arr
    if isinstance(arr, np.generic):
        return np.asarray(arr)
    from .cuda import _checks

    if _checks._PENDING:  # a host transfer is a synchronisation: deferred device checks report here
        _checks.flush()
    get = getattr(arr, "get", None)  # CuPy's device-to-host copy
    return np.asarray(get() if get is not None else arr)


def device_of(arr) -> device:
    """The device an array lives on."""
    if isinstance(arr, np.ndarray):
        return CPU
    dev = getattr(arr, "device", None)
    if dev is not None and hasattr(dev, "id"):
        return device("cuda", dev.id)
    return CPU
