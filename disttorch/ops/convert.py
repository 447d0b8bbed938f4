"""dtype and device conversion (``to``, ``type``, ``float()`` ...) and ``clone``/``contiguous``."""
from __future__ import annotations

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from .._device import CPU, array_module, device, to_host
from ..autograd.op import Op
from ..cuda._pinned import is_pinned_array, pinned_copy
from ._helpers import tensor_arg

__all__ = ["clone"]


class PinMemoryBackward0(Op):
    op_name = "_pin_memory"

    def forward(self, xp, arr):
        return pinned_copy(arr)

    def backward(self, g):
        return g


class ToCopyBackward0(Op):
    op_name = "_to_copy"

    def forward(self, xp, arr, dtype=None, dev=None, src_dev=None, copy=False, non_blocking=False):
        if self.next_functions:
            self.src_dtype, self.src_device = D._FROM_NP[arr.dtype], src_dev
        same_dev = dev is None
        if not same_dev:
            if dev.type == "cpu":
                arr = to_host(arr)
            else:
                xp = array_module(dev)
                with xp.cuda.Device(dev.index or 0):
                    arr = _to_device(xp, arr, non_blocking)
        if dtype is not None:
            arr = arr.astype(dtype.np)
        elif same_dev and copy:
            arr = arr.copy()
        return arr

    def backward(self, g):
        if g._data.dtype.kind == "c" and not self.src_dtype.is_complex:  # real -> complex cast: the real part
            from .complex_ops import real

            g = real(g)
        return _convert(g, self.src_dtype, self.src_device, copy=False)


def _to_device(xp, arr, non_blocking: bool):
    """``arr`` on the current CUDA device. From pinned host memory with ``non_blocking`` the copy is queued on the
    current stream and returns at once (PyTorch's semantics: the host buffer must not change until the stream
    reaches the copy); otherwise it is synchronous."""
    if non_blocking and arr.__class__ is np.ndarray and is_pinned_array(arr):
        out = xp.empty(arr.shape, arr.dtype)
        get_stream = getattr(xp.cuda, "get_current_stream", None)
        out.set(np.ascontiguousarray(arr), stream=get_stream() if get_stream is not None else None)
        return out
    return xp.asarray(arr)


def _convert(x, dtype: D.dtype | None, dev: device | None, copy: bool = False, non_blocking: bool = False):
    """``x`` cast to ``dtype`` and moved to ``dev``; returns ``x`` itself when nothing changes."""
    arr = x._data
    same_dtype = dtype is None or arr.dtype == dtype.np
    src_dev = x.device
    same_dev = dev is None or _same_device(src_dev, dev)
    if same_dtype and same_dev and not copy:
        return x
    return ToCopyBackward0.apply(x, dtype=None if same_dtype else dtype, dev=None if same_dev else dev,
                                 src_dev=src_dev, copy=copy, non_blocking=non_blocking)


def _same_device(a: device, b: device) -> bool:
    if a.type != b.type:
        return False
    return a.type == "cpu" or b.index is None or (a.index or 0) == b.index


def _invalid_to(args, kwargs) -> TypeError:
    """PyTorch's argument-parser error for ``to()``."""
    got = [type(a).__name__ for a in args] + [f"{k}={type(v).__name__}" for k, v in kwargs.items()]
    return TypeError("to() received an invalid combination of arguments - got (" + ", ".join(got)
                     + (", " if kwargs else "") + "), but expected one of:\n"
                     " * (torch.device device = None, torch.dtype dtype = None, bool non_blocking = False, "
                     "bool copy = False, *, torch.memory_format memory_format = None)\n"
                     " * (torch.dtype dtype, bool non_blocking = False, bool copy = False, *, "
                     "torch.memory_format memory_format = None)\n"
                     " * (Tensor tensor, bool non_blocking = False, bool copy = False, *, "
                     "torch.memory_format memory_format = None)")


def _parse_to(args, kwargs):
    given = dict(kwargs)
    dtype = kwargs.pop("dtype", None)
    dev = kwargs.pop("device", None)
    copy = kwargs.pop("copy", False)
    non_blocking = bool(kwargs.pop("non_blocking", False))
    kwargs.pop("memory_format", None)
    if kwargs:
        raise _invalid_to(args, given)
    for a in args:
        if isinstance(a, T.Tensor):
            dtype, dev = a.dtype, a.device
        elif isinstance(a, D.dtype):
            dtype = a
        elif isinstance(a, bool):  # positional non_blocking (checked before int: bool is an int)
            non_blocking = a
        elif isinstance(a, (str, device, int)):
            dev = a
        elif isinstance(a, type) or a is None:
            dtype = None if a is None else D.to_dtype(a)
        else:
            raise _invalid_to(args, given)
    if dev is not None:
        dev = device(dev)
    if dtype is not None:
        dtype = D.to_dtype(dtype)
    return dtype, dev, copy, non_blocking


class CloneBackward0(Op):
    op_name = "clone"

    def forward(self, xp, arr):
        return arr.copy()

    def backward(self, g):
        return g


def clone(input, *, memory_format=None):
    """A copy of ``input`` that stays in the graph (gradient flows back unchanged)."""
    return CloneBackward0.apply(tensor_arg(input, "clone"))


class ConvertMethods:
    __slots__ = ()

    clone = clone

    def to(self, *args, **kwargs):
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)`` or ``to(other)``; differentiable."""
        dtype, dev, copy, non_blocking = _parse_to(args, kwargs)
        return _convert(self, dtype, dev, copy, non_blocking)

    def type(self, dtype=None, non_blocking: bool = False, **kwargs):
        """Without arguments, PyTorch's type name (``'torch.FloatTensor'``, ``'torch.sparse.LongTensor'``: the
        ``torch.`` prefix is kept because scripts compare these strings); with a dtype, a typed constructor
        (``disttorch.DoubleTensor``) or a type name (``'torch.DoubleTensor'``), a cast (self when unchanged)."""
        from .._legacy_types import type_by_name, type_name

        if dtype is None:
            return type_name(self.dtype, sparse=self.is_sparse, cuda=self.is_cuda)
        found = type_by_name(dtype)
        return _convert(self, found[0] if found is not None else D.to_dtype(dtype), None)

    def type_as(self, other):
        return _convert(self, other.dtype, None)

    def float(self, memory_format=None):
        return _convert(self, D.float32, None)

    def double(self, memory_format=None):
        return _convert(self, D.float64, None)

    def half(self, memory_format=None):
        return _convert(self, D.float16, None)

    def bfloat16(self, memory_format=None):
        return _convert(self, D.bfloat16, None)

    def long(self, memory_format=None):
        return _convert(self, D.int64, None)

    def int(self, memory_format=None):
        return _convert(self, D.int32, None)

    def short(self, memory_format=None):
        return _convert(self, D.int16, None)

    def char(self, memory_format=None):
        return _convert(self, D.int8, None)

    def byte(self, memory_format=None):
        return _convert(self, D.uint8, None)

    def bool(self, memory_format=None):
        return _convert(self, D.bool, None)

    def cpu(self, memory_format=None):
        return _convert(self, None, CPU)

    def cuda(self, device_=None, non_blocking: bool = False, memory_format=None, **kwargs):
        idx = kwargs.pop("device", device_)
        if isinstance(idx, device):
            dev = idx
        else:
            dev = device("cuda", idx if idx is not None else 0)
        return _convert(self, None, dev, non_blocking=non_blocking)

    def contiguous(self, memory_format=None):
        if self._data.flags.c_contiguous:
            return self
        return clone(self)

    def pin_memory(self, device=None):
        """A copy of this CPU tensor in page-locked host memory (``self`` when it is pinned already).

        Copies from pinned memory to the GPU run at full bus speed, and ``.to('cuda', non_blocking=True)`` from it
        returns before the copy ends. Needs a CUDA device.
        """
        if self.device.type != "cpu":
            raise RuntimeError(f"cannot pin '{self.type()}' only dense CPU tensors can be pinned")
        if is_pinned_array(self._data):
            return self
        return PinMemoryBackward0.apply(self)

    def is_pinned(self, device=None) -> bool:
        """Whether this tensor lies in page-locked host memory (always False for a CUDA tensor)."""
        return self.device.type == "cpu" and is_pinned_array(self._data)

