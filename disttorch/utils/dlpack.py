"""DLPack exchange, as ``torch.utils.dlpack``: ``from_dlpack`` and ``to_dlpack``, zero-copy.

Tensors share memory with NumPy arrays, CuPy arrays and PyTorch tensors (or anything with ``__dlpack__``).
Writes through the other side show in the disttorch tensor, but they do not bump its version counter (it lives
in the tensor, not in the memory), so autograd cannot detect an in-place change made that way to a tensor saved
for backward: do not modify exchanged memory between a forward pass and its backward.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["from_dlpack", "to_dlpack"]

_KDL_CPU, _KDL_CUDA = 1, 2


class _Capsule:
    """Wraps a bare DLPack capsule (``to_dlpack``'s output) so that NumPy's ``from_dlpack`` can consume it."""

    def __init__(self, capsule) -> None:
        self.capsule = capsule

    def __dlpack__(self, **_):
        return self.capsule

    def __dlpack_device__(self):
        return (_KDL_CPU, 0)


class _Writeable:
    """Holds a read-only array alive and exposes its memory as writeable (see :func:`_writeable_view`)."""

    def __init__(self, arr: np.ndarray) -> None:
        self.arr = arr
        self.__array_interface__ = {"shape": arr.shape, "typestr": arr.dtype.str, "strides": arr.strides,
                                    "data": (arr.ctypes.data, False), "version": 3}


def _writeable_view(arr: np.ndarray) -> np.ndarray:
    """A writeable view of ``arr``. NumPy marks arrays from legacy (unversioned) capsules read-only because they
    carry no read-only flag; PyTorch treats such capsules as writeable, and so does ``from_dlpack`` here."""
    return np.asarray(_Writeable(arr))


def from_dlpack(ext_tensor: Any, *, device=None, copy: bool | None = None):
    """A tensor sharing the memory of ``ext_tensor``, as ``torch.from_dlpack``.

    Args:
        ext_tensor: an object with ``__dlpack__``/``__dlpack_device__`` (NumPy/CuPy array, PyTorch tensor, ...)
            or a DLPack capsule from :func:`to_dlpack` (a capsule can be consumed only once).
        device: where the result must live (None: where ``ext_tensor`` is). A different device copies.
        copy: True always copies, False never does (raising when that is impossible), None copies only when
            needed.

    Returns:
        A ``disttorch.Tensor``.
    """
    from .._device import device as _device_cls
    from .._tensor import Tensor, _wrap

    if isinstance(ext_tensor, Tensor) and device is None and not copy:
        return ext_tensor
    if not hasattr(ext_tensor, "__dlpack__"):
        if type(ext_tensor).__name__ != "PyCapsule":
            raise TypeError(f"from_dlpack: expected an object with __dlpack__ or a DLPack capsule, got "
                            f"{type(ext_tensor).__name__}")
        ext_tensor = _Capsule(ext_tensor)
    src_type, src_index = (int(v) for v in ext_tensor.__dlpack_device__())
    target = None if device is None else _device_cls(device)
    if src_type == _KDL_CUDA and (target is None or target.type == "cuda"):
        from ..cuda import _require

        arr = _require("from_dlpack").from_dlpack(ext_tensor)  # CuPy checks the stream hand-over
        if copy:
            arr = arr.copy()
        out = _wrap(arr)
        return out if target is None or target.index in (None, src_index) else out.to(target)
    if src_type == _KDL_CUDA:  # a CUDA producer asked for a CPU result: let it copy to the host
        arr = np.from_dlpack(ext_tensor, device="cpu", copy=True if copy is None else copy)
    else:
        arr = np.from_dlpack(ext_tensor, copy=copy)
        if isinstance(ext_tensor, _Capsule) and not arr.flags.writeable:
            arr = _writeable_view(arr)
    out = _wrap(arr)
    return out if target is None or target.type == "cpu" else out.to(target)


def to_dlpack(tensor):
    """A DLPack capsule of ``tensor``'s memory (zero-copy), as ``torch.utils.dlpack.to_dlpack``."""
    return tensor.__dlpack__()
