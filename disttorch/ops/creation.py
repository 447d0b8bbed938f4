"""Tensor creation: tensor, as_tensor, from_numpy, zeros/ones/full/empty (+ _like), arange, linspace, eye.

Factories take ``dtype``, ``device``, ``requires_grad`` and (where PyTorch has it) ``out=``; with ``out``
and no ``dtype`` the result takes ``out``'s dtype. Sizes are varargs or one sequence (``zeros(2, 3)``,
``zeros((2, 3))``, ``zeros(size=(2, 3))``).

Tensors from data (``tensor``, ``as_tensor``, ...) live in creation_data.py, the ``*_like`` functions in
creation_like.py and the helpers they share in _creation_common.py; all are importable from here.
"""
from __future__ import annotations

import builtins
import math
import warnings

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from .._device import CPU, array_module, to_host  # noqa: F401
from .._device import device as _device_cls
from ..autograd import op as _op
from ._creation_common import (  # noqa: F401
    _C_TYPE, _checked_int_fill, _fill_array, _filled, _finish, _int_fits, _num, _overflow, _resolve, _size_args)
from ._helpers import quiet
from .creation_data import (  # noqa: F401
    _NUMBER, _check_int_range, _infer_dtype, _leaf_dtype, _native, _ragged_error, _tensors_to_lists, _to_array,
    as_tensor, asarray, from_numpy, frombuffer, tensor)
from .creation_like import _like, empty_like, full_like, ones_like, zeros_like  # noqa: F401
from .elementwise import _out  # noqa: F401
from .inplace import _type_name  # noqa: F401

__all__ = ["tensor", "as_tensor", "asarray", "from_numpy", "zeros", "ones", "full", "empty", "zeros_like",
           "ones_like", "full_like", "empty_like", "arange", "range", "linspace", "logspace", "eye",
           "scalar_tensor", "empty_strided", "frombuffer"]


# ------------------------------------------------------------------------------------------
# filled tensors
# ------------------------------------------------------------------------------------------
def zeros(*sizes, out=None, dtype=None, layout=None, device=None, requires_grad: bool = False,
          pin_memory: bool = False, size=None):
    """A tensor of zeros: ``zeros(2, 3)``, ``zeros((2, 3))`` or ``zeros(size=(2, 3))``."""
    return _filled("zeros", sizes, 0, dtype, device, requires_grad, out, size)


def ones(*sizes, out=None, dtype=None, layout=None, device=None, requires_grad: bool = False,
         pin_memory: bool = False, size=None):
    """A tensor of ones."""
    return _filled("ones", sizes, 1, dtype, device, requires_grad, out, size)


def empty(*sizes, out=None, dtype=None, layout=None, device=None, requires_grad: bool = False,
          pin_memory: bool = False, memory_format=None, size=None):
    """An uninitialised tensor (its values are whatever the allocator left)."""
    return _filled("empty", sizes, None, dtype, device, requires_grad, out, size)


def empty_strided(size, stride, *, dtype=None, layout=None, device=None, requires_grad: bool = False,
                  pin_memory: bool = False):
    """An uninitialised tensor with the given element strides."""
    shape = _size_args((size,), "empty_strided")
    stride = tuple(builtins.int(s) for s in stride)
    if len(stride) != len(shape):
        raise RuntimeError(f"dimensionality of sizes ({len(shape)}) must match dimensionality of strides "
                           f"({len(stride)})")
    dt, dev, xp = _resolve(dtype, device, None, D.get_default_dtype())
    if 0 in shape or not shape:
        return _finish(xp.empty(shape, dtype=dt.np), requires_grad)
    if any(s < 0 for s in stride):
        raise RuntimeError(f"empty_strided: strides must be non-negative, got {list(stride)}")
    n = 1 + builtins.sum((d - 1) * s for d, s in zip(shape, stride))
    buf = xp.empty(n, dtype=dt.np)
    arr = xp.lib.stride_tricks.as_strided(buf, shape, tuple(s * dt.itemsize for s in stride))
    return _finish(arr, requires_grad)


def full(size, fill_value, *, out=None, dtype=None, layout=None, device=None, requires_grad: bool = False,
         pin_memory: bool = False):
    """A tensor filled with ``fill_value``; without ``dtype`` it is inferred from the value.

    Example:
        >>> disttorch.full((2,), 1).dtype, disttorch.full((2,), 1.5).dtype, disttorch.full((2,), True).dtype
        (disttorch.int64, disttorch.float32, disttorch.bool)
    """
    if isinstance(fill_value, T.Tensor):
        if fill_value.numel() != 1:
            raise RuntimeError(f"full: fill_value must be a number or a one-element tensor, got shape "
                               f"{list(fill_value.shape)}")
        fill_value = fill_value.item()
    if dtype is None and out is None:
        dtype = D._scalar_dtype(fill_value)
    return _filled("full", (size if isinstance(size, (list, tuple)) else (size,),), fill_value, dtype, device,
                   requires_grad, out)


def scalar_tensor(s, *, dtype=None, layout=None, device=None, requires_grad: bool = False,
                  pin_memory: bool = False):
    """A 0-d tensor holding ``s`` (default dtype unless ``dtype`` is given)."""
    return full((), _num(s), dtype=dtype or D.get_default_dtype(), device=device, requires_grad=requires_grad)


# ------------------------------------------------------------------------------------------
# ranges
# ------------------------------------------------------------------------------------------
def _is_float(v) -> bool:
    return isinstance(v, (builtins.float, np.floating))


def arange(start=0, end=None, step=1, *, out=None, dtype=None, layout=None, device=None,
           requires_grad: bool = False, pin_memory: bool = False):
    """Values from ``start`` to ``end`` (exclusive) by ``step``: ``ceil((end - start) / step)`` of them.

    The dtype is int64 when all arguments are integers, else the default float dtype.

    Example:
        >>> disttorch.arange(0, 1, 0.25)
        tensor([0.0000, 0.2500, 0.5000, 0.7500])
    """
    start, end, step = _num(start), _num(end), _num(step)
    names = ("start", "end", "step")
    if end is None:
        start, end = 0, start
        names = ("", "end", "step")
    for pos, (name, v) in enumerate(zip(names, (start, end, step))):
        if not isinstance(v, (builtins.int, builtins.float, np.integer, np.floating)):
            raise TypeError(f"arange(): argument '{name}' (position {pos + (names[0] != '')}) must be Number, not "
                            f"{type(v).__name__}")
    if not (math.isfinite(start) and math.isfinite(end)):
        raise RuntimeError(f"unsupported range: {start} -> {end}")
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    any_float = _is_float(start) or _is_float(end) or _is_float(step)
    dt, dev, xp = _resolve(dtype, device, out, D.get_default_dtype() if any_float else D.int64)
    if any_float:
        n = builtins.max(0, math.ceil((end - start) / step))  # in double, as PyTorch sizes it
        arr = xp.arange(n, dtype=np.float64) * step + start
    else:
        start, end, step = builtins.int(start), builtins.int(end), builtins.int(step)
        n = builtins.max(0, -((start - end) // step))  # exact ceil for integers
        arr = xp.arange(n, dtype=np.int64) * step + start
    with quiet(xp):
        arr = arr if arr.dtype == dt.np else arr.astype(dt.np)
    t = _finish(arr, requires_grad, out)
    if _op.OBSERVERS:  # tracing (ONNX: positions built from the input's sizes); not an Op.apply op
        _op.notify_untimed("arange", (), {"start": start, "end": end, "step": step}, (t,))
    return t


def range(start=0, end=None, step=1, *, out=None, dtype=None, layout=None, device=None,  # noqa: A001
          requires_grad: bool = False):
    """Deprecated in PyTorch: like arange but includes ``end``; the default float dtype."""
    warnings.warn("disttorch.range is deprecated and will be removed in a future release because its behavior "
                  "is inconsistent with Python's range builtin. Instead, use disttorch.arange, which produces "
                  "values in [start, end).", UserWarning, stacklevel=2)
    start, end, step = _num(start), _num(end), _num(step)
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("step must be nonzero")
    dt, dev, xp = _resolve(dtype, device, out, D.get_default_dtype())
    n = builtins.max(0, builtins.int(math.floor((end - start) / step)) + 1)
    arr = xp.arange(n, dtype=np.float64) * step + start
    return _finish(arr.astype(dt.np), requires_grad, out)


def _steps_arg(steps, op: str) -> int:
    steps = _num(steps)
    if isinstance(steps, builtins.bool) or not isinstance(steps, (builtins.int, np.integer)):
        raise TypeError(f"{op}(): argument 'steps' (position 3) must be int, not {type(steps).__name__}")
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    return builtins.int(steps)


def _linspace_f64(xp, start, end, steps: int):
    # PyTorch's symmetric formula: the first half counts up from start, the second down from end.
    if steps == 1:
        return xp.full(1, start, dtype=np.float64)
    step = (end - start) / (steps - 1)
    i = xp.arange(steps, dtype=np.float64)
    return xp.where(i < steps // 2, start + step * i, end - step * (steps - 1 - i))


def linspace(start, end, steps: int, *, out=None, dtype=None, layout=None, device=None,
             requires_grad: bool = False):
    """``steps`` evenly spaced values from ``start`` to ``end``, both included."""
    steps = _steps_arg(steps, "linspace")
    start, end = _num(start), _num(end)
    dt, dev, xp = _resolve(dtype, device, out, D.get_default_dtype())
    if isinstance(start, complex) or isinstance(end, complex):
        if dtype is None and out is None:
            dt = D.get_default_dtype().to_complex()
        arr = xp.linspace(start, end, steps)
    else:
        arr = _linspace_f64(xp, start, end, steps)
    with quiet(xp):
        return _finish(arr.astype(dt.np), requires_grad, out)


def logspace(start, end, steps: int, base: float = 10.0, *, out=None, dtype=None, layout=None, device=None,
             requires_grad: bool = False):
    """``base ** linspace(start, end, steps)``."""
    steps = _steps_arg(steps, "logspace")
    dt, dev, xp = _resolve(dtype, device, out, D.get_default_dtype())
    with quiet(xp):
        arr = xp.power(float(base), _linspace_f64(xp, _num(start), _num(end), steps))
        return _finish(arr.astype(dt.np), requires_grad, out)


def eye(n: int, m: int | None = None, *, out=None, dtype=None, layout=None, device=None,
        requires_grad: bool = False, pin_memory: bool = False):
    """The ``n`` x ``m`` identity matrix (``m`` defaults to ``n``)."""
    n, m = _num(n), _num(m)
    for pos, (name, v) in enumerate((("n", n), ("m", m)), 1):
        if v is not None and (isinstance(v, builtins.bool) or not isinstance(v, (builtins.int, np.integer))):
            raise TypeError(f"eye(): argument '{name}' (position {pos}) must be int, not {type(v).__name__}")
        if v is not None and v < 0:
            raise RuntimeError(f"{name} must be greater or equal to 0, got {v}")
    dt, dev, xp = _resolve(dtype, device, out, D.get_default_dtype())
    return _finish(xp.eye(n, m, dtype=dt.np), requires_grad, out)


def _legacy_new(*args, dtype=None, device=None):
    """``Tensor(...)``: data (copied into the default float dtype) or a size (uninitialised)."""
    dt = D.to_dtype(dtype) if dtype is not None else D.get_default_dtype()
    if not args:
        return empty(0, dtype=dt, device=device)
    if len(args) == 1:
        a = args[0]
        from .._size import Size

        if not isinstance(a, (builtins.int, np.integer, Size)):
            return T._wrap(_to_array(a, dt, array_module(_device_cls(device or "cpu")), copy=True))
    return empty(*args, dtype=dt, device=device)


class CreationMethods:
    __slots__ = ()

    def new_tensor(self, data, *, dtype=None, device=None, requires_grad: bool = False, layout=None,
                   pin_memory: bool = False):
        """A new tensor copying ``data``, with this tensor's dtype and device unless given."""
        if isinstance(data, T.Tensor):
            warnings.warn("To copy construct from a tensor, it is recommended to use sourceTensor.clone().detach() "
                          "or sourceTensor.clone().detach().requires_grad_(True), rather than "
                          "tensor.new_tensor(sourceTensor).", UserWarning, stacklevel=2)
        dt, dev, xp = _resolve(dtype or self.dtype, device or self.device)
        return _finish(_to_array(data, dt, xp, copy=True), requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad: bool = False, layout=None,
                  pin_memory: bool = False):
        return zeros(*size, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad: bool = False, layout=None,
                 pin_memory: bool = False):
        return ones(*size, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad: bool = False, layout=None,
                  pin_memory: bool = False):
        return empty(*size, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)

    def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad: bool = False, layout=None,
                 pin_memory: bool = False):
        return full(size, fill_value, dtype=dtype or self.dtype, device=device or self.device,
                    requires_grad=requires_grad)

    def new_empty_strided(self, size, stride, *, dtype=None, device=None, requires_grad: bool = False,
                          layout=None, pin_memory: bool = False):
        return empty_strided(size, stride, dtype=dtype or self.dtype, device=device or self.device,
                             requires_grad=requires_grad)

    def new(self, *args, **kwargs):
        """Legacy constructor with this tensor's dtype and device: ``x.new(2, 3)`` or ``x.new([1, 2])``."""
        return _legacy_new(*args, dtype=kwargs.pop("dtype", self.dtype), device=kwargs.pop("device", self.device))
