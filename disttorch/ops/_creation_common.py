"""What every creation function shares: dtype/device/``out=`` resolution, size arguments, PyTorch's integer
range rule, filling an array with a checked value, and wrapping the result (``requires_grad``, ``out=``).

creation.py, creation_data.py (``tensor()``), creation_like.py (``*_like``) and random.py build on these.
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from .._device import CPU, array_module
from .._device import device as _device_cls
from ..autograd import op as _op
from ._helpers import quiet
from .elementwise import _out
from .inplace import _type_name


def _resolve(dtype, device, out=None, default=None):
    """(dtype, device, array module) for a factory; ``out`` supplies dtype and device when not given."""
    if dtype is not None:
        dt = D.to_dtype(dtype)
        if out is not None and out.dtype is not dt:
            raise RuntimeError(f"dtype {_type_name(dt)} does not match dtype of out parameter "
                               f"({_type_name(out.dtype)})")
    else:
        dt = out.dtype if out is not None else default
    if device is not None:
        dev = device if device.__class__ is _device_cls else _device_cls(device)
    else:
        dev = out.device if out is not None else CPU
    return dt, dev, array_module(dev)


def _finish(arr, requires_grad: bool, out=None):
    t = T._wrap(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t if out is None else _out(t, out)


def _num(x):
    return x.item() if isinstance(x, T.Tensor) else x


def _int_fits(lo, hi, is_float: bool, npdt: np.dtype) -> bool:
    """PyTorch's range rule for numbers going into integer dtype ``npdt`` (``lo``/``hi``: the extremes):
    floats must lie in [min, max] compared as doubles (NaN and inf never do); ints too, except that unsigned
    dtypes take ints down to -max (they wrap, two's complement)."""
    info = np.iinfo(npdt)
    if is_float:
        return builtins.float(info.min) <= lo and hi <= builtins.float(info.max)  # False for NaN
    low = -builtins.int(info.max) if npdt.kind == "u" else builtins.int(info.min)
    return low <= builtins.int(lo) and builtins.int(hi) <= builtins.int(info.max)


def _size_args(size, op: str, kw=None) -> tuple:
    """Normalise varargs sizes (``2, 3``), one sequence (``(2, 3)``) or the ``size=`` keyword."""
    if kw is not None:
        if size:
            raise TypeError(f"{op}() got multiple values for argument 'size'")
        size = (kw,)
    if len(size) == 1 and isinstance(size[0], (list, tuple)):
        size = tuple(size[0])
    elif not size:
        raise TypeError(f'{op}() missing 1 required positional arguments: "size"')
    out = []
    for s in size:
        if isinstance(s, T.Tensor):
            s = s.__index__()
        if isinstance(s, builtins.bool) or not isinstance(s, (builtins.int, np.integer)):
            raise TypeError(f"{op}(): argument 'size' failed to unpack the object at pos {len(out) + 1} with error "
                            f"\"type must be tuple of ints,but got {type(s).__name__}\"")
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: {list(size)}")
        out.append(builtins.int(s))
    return tuple(out)


# PyTorch names the C++ type in its overflow errors.
_C_TYPE = {"bool": "bool", "uint8": "uint8_t", "int8": "int8_t", "int16": "int16_t", "int32": "int", "int64": "int64_t",
           "float16": "c10::Half", "bfloat16": "c10::BFloat16", "float32": "float", "float64": "double",
           "complex64": "c10::complex<float>", "complex128": "c10::complex<double>"}


def _overflow(dt: D.dtype) -> RuntimeError:
    return RuntimeError(f"value cannot be converted to type {_C_TYPE.get(dt.name, dt.name)} without overflow")


def _checked_int_fill(fill, dt: D.dtype):
    """``fill`` for an integer dtype, with PyTorch's range check (NumPy would wrap floats silently).

    Integers into an unsigned dtype may be negative down to ``-max`` and wrap (two's complement), as in
    PyTorch: ``full((1,), -1, dtype=uint8)`` is 255. Floats must lie within ``[min, max]``.
    """
    info = np.iinfo(dt.np)
    is_float = isinstance(fill, (builtins.float, np.floating))
    if not is_float:
        fill = builtins.int(fill)
    if not _int_fits(fill, fill, is_float, dt.np):
        raise _overflow(dt)
    if is_float:
        return builtins.int(info.min) if fill > info.max else fill  # 2.0 ** 63 is int64's max as a double: wraps
    return fill + builtins.int(info.max) + 1 if fill < 0 and dt.np.kind == "u" else fill


def _fill_array(xp, shape: tuple, fill, dt: D.dtype, op: str):
    if fill is None:
        return xp.empty(shape, dtype=dt.np)
    if (fill.__class__ is builtins.int or fill.__class__ is builtins.bool) and fill == 0:
        return xp.zeros(shape, dtype=dt.np)
    if isinstance(fill, (builtins.float, np.floating)) and not math.isfinite(fill) and dt._cat == 1:
        raise _overflow(dt)
    if dt.np.kind in "iu" and isinstance(fill, (builtins.int, builtins.float, np.integer, np.floating)) \
            and not isinstance(fill, builtins.bool):
        fill = _checked_int_fill(fill, dt)
    try:
        if dt is D.bfloat16:
            return xp.full(shape, fill, dtype=np.float32).astype(dt.np)
        with quiet(xp):  # a float fill past float16's range is inf, as in PyTorch
            return xp.full(shape, fill, dtype=dt.np)
    except (OverflowError, TypeError, ValueError):
        raise _overflow(dt) from None


def _filled(op: str, size, fill, dtype, device, requires_grad: bool, out=None, size_kw=None):
    shape = _size_args(size, op, size_kw)
    dt, dev, xp = _resolve(dtype, device, out, D.get_default_dtype())
    t = _finish(_fill_array(xp, shape, fill, dt, op), requires_grad, out)
    if _op.OBSERVERS:  # tracing (ONNX: a mask built from the input's sizes); not an Op.apply op
        _op.notify_untimed("full", (), {"size": shape, "fill": 0 if fill is None else fill}, (t,))
    return t
