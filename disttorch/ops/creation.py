"""Tensor creation: tensor, as_tensor, from_numpy, zeros/ones/full/empty (+ _like), arange, linspace, eye.

Factories take ``dtype``, ``device``, ``requires_grad`` and (where PyTorch has it) ``out=``; with ``out``
and no ``dtype`` the result takes ``out``'s dtype. Sizes are varargs or one sequence (``zeros(2, 3)``,
``zeros((2, 3))``, ``zeros(size=(2, 3))``).
"""
from __future__ import annotations

import builtins
import math
import warnings

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from .._device import CPU, array_module, to_host
from .._device import device as _device_cls
from ._helpers import quiet
from .elementwise import _out
from .inplace import _type_name

__all__ = ["tensor", "as_tensor", "asarray", "from_numpy", "zeros", "ones", "full", "empty", "zeros_like",
           "ones_like", "full_like", "empty_like", "arange", "range", "linspace", "logspace", "eye",
           "scalar_tensor", "empty_strided", "frombuffer"]

_NUMBER = (builtins.bool, builtins.int, builtins.float, builtins.complex, np.number, np.bool_)


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


# ------------------------------------------------------------------------------------------
# tensor() and friends: Python data -> array
# ------------------------------------------------------------------------------------------
def _leaf_dtype(x) -> D.dtype:
    if isinstance(x, (builtins.bool, np.bool_)):
        return D.bool
    if isinstance(x, np.generic):
        return D.from_numpy_dtype(x.dtype)
    if isinstance(x, builtins.int):
        return D.int64
    if isinstance(x, builtins.float):
        return D.get_default_dtype()
    if isinstance(x, builtins.complex):
        return D.get_default_dtype().to_complex()
    raise TypeError(f"Could not infer dtype of {type(x).__name__}")


def _infer_dtype(data):
    """PyTorch's inference: promote the dtypes of all leaves (bool, int -> int64, float -> the default dtype;
    NumPy scalars/arrays and tensors keep theirs); an empty sequence gives the default dtype.

    Returns ``(dtype, whether a Tensor is nested inside)``.
    """
    res = None
    has_tensor = False
    stack = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(x)
            continue
        if isinstance(x, T.Tensor):
            d = x.dtype
            has_tensor = True
        elif isinstance(x, np.ndarray):
            d = D.from_numpy_dtype(x.dtype)
        else:
            d = _leaf_dtype(x)
        res = d if res is None else D.promote_types(res, d)
    return (D.get_default_dtype() if res is None else res), has_tensor


def _int_fits(lo, hi, is_float: bool, npdt: np.dtype) -> bool:
    """PyTorch's range rule for numbers going into integer dtype ``npdt`` (``lo``/``hi``: the extremes):
    floats must lie in [min, max] compared as doubles (NaN and inf never do); ints too, except that unsigned
    dtypes take ints down to -max (they wrap, two's complement)."""
    info = np.iinfo(npdt)
    if is_float:
        return builtins.float(info.min) <= lo and hi <= builtins.float(info.max)  # False for NaN
    low = -builtins.int(info.max) if npdt.kind == "u" else builtins.int(info.min)
    return low <= builtins.int(lo) and builtins.int(hi) <= builtins.int(info.max)


def _check_int_range(wide: np.ndarray, npdt: np.dtype, dtype: D.dtype) -> None:
    """``tensor(data, dtype=<integer>)``'s check of ``data`` (as an array ``wide``) by :func:`_int_fits`."""
    if wide.size and wide.dtype.kind in "iuf" and not _int_fits(wide.min(), wide.max(), wide.dtype.kind == "f",
                                                                   npdt):
        raise RuntimeError(f"value cannot be converted to type {dtype.name} without overflow")


def _ragged_error(data) -> ValueError:
    """The PyTorch-style message for a nested sequence that is not rectangular."""
    shape = []
    x = data
    while isinstance(x, (list, tuple, np.ndarray, T.Tensor)) and len(x):
        shape.append(len(x))
        x = x[0]

    def walk(x, d):
        is_seq = isinstance(x, (list, tuple, np.ndarray, T.Tensor)) and not (hasattr(x, "ndim") and x.ndim == 0)
        if d == len(shape):
            if is_seq:
                return f"found a sequence at dim {d} where a number was expected"
            return None
        if not is_seq:
            return f"expected sequence of length {shape[d]} at dim {d} (got {type(x).__name__})"
        if len(x) != shape[d]:
            return f"expected sequence of length {shape[d]} at dim {d} (got {len(x)})"
        for y in x:
            msg = walk(y, d + 1)
            if msg:
                return msg
        return None

    return ValueError(walk(data, 0) or "tensor: the nested sequence is not rectangular")


def _tensors_to_lists(seq):
    out = []
    for x in seq:
        if isinstance(x, T.Tensor):
            if x._data.ndim == 0:
                x = x.item()
            elif x._data.size != 1:
                raise ValueError("only one element tensors can be converted to Python scalars")
            else:
                x = x.tolist()
        elif isinstance(x, (list, tuple)):
            x = _tensors_to_lists(x)
        out.append(x)
    return out


def _native(arr):
    """A NumPy array in native byte order (big-endian data is converted)."""
    if arr.dtype.byteorder not in "=|":
        return arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _to_array(data, dtype, xp, copy: bool):
    """An array of ``data`` (Tensor, array, scalar or nested sequences) with ``dtype`` (None: inferred)."""
    if isinstance(data, T.Tensor):
        arr = data._data
        if dtype is not None and arr.dtype != dtype.np:
            arr = arr.astype(dtype.np)
        elif copy:
            arr = arr.copy()
        if xp is not data._xp:
            arr = to_host(arr) if xp is np else xp.asarray(arr)
        return arr
    if isinstance(data, np.ndarray) or hasattr(data, "__cuda_array_interface__"):
        if isinstance(data, np.ndarray):
            data = _native(data)
        if dtype is None:
            dtype = D.from_numpy_dtype(data.dtype)
        with quiet(np):
            return xp.array(data, dtype=dtype.np, copy=True) if copy else xp.asarray(data, dtype=dtype.np)
    if isinstance(data, (str, bytes)) or not isinstance(data, (list, tuple) + _NUMBER):
        if hasattr(data, "__len__") and hasattr(data, "__getitem__") and not isinstance(data, (str, bytes, dict)):
            data = list(data)  # range, deque, other sequences
        else:
            raise TypeError(f"Could not infer dtype of {type(data).__name__}")
    inferred, has_tensor = _infer_dtype(data)  # also rejects non-number leaves
    if dtype is None:
        dtype = inferred
    if has_tensor and isinstance(data, (list, tuple)):
        data = _tensors_to_lists(data)
    npdt = np.dtype(np.float32) if dtype is D.bfloat16 else dtype.np
    try:
        with quiet(np):
            arr = np.array(data, dtype=npdt)
    except OverflowError:
        # A Python int out of the dtype's range: PyTorch's check (negative ints wrap into unsigned dtypes down
        # to -max); beyond int64 is an error of its own.
        arr = np.array(data)
        if arr.dtype.kind == "O":
            raise RuntimeError("Overflow when unpacking long long") from None
        _check_int_range(arr, npdt, dtype)
        with quiet(np):
            arr = arr.astype(npdt)
    except ValueError:
        if npdt.kind in "iu" and inferred.is_floating_point:  # NaN into an integer dtype (or ragged data)
            try:
                wide = np.array(data, dtype=np.float64)
            except ValueError:
                wide = None
            if wide is not None:
                _check_int_range(wide, npdt, dtype)
        raise _ragged_error(data) from None
    else:
        if npdt.kind in "iu" and inferred.is_floating_point:  # NumPy casts floats silently; PyTorch checks
            _check_int_range(np.array(data, dtype=np.float64), npdt, dtype)
    if dtype is D.bfloat16:
        arr = arr.astype(dtype.np)
    return arr if xp is np else xp.asarray(arr)


def tensor(data, *, dtype=None, device=None, requires_grad: bool = False, pin_memory: bool = False):
    """A new tensor that copies ``data`` (nested lists, numbers, NumPy arrays or tensors).

    Args:
        data: the values; its dtype is inferred when ``dtype`` is None (bool -> bool, int -> int64,
            float -> the default dtype, NumPy arrays and tensors keep theirs).
        dtype: the result's dtype.
        device: the result's device.
        requires_grad: make the result a leaf that requires grad (floating/complex dtypes only).

    Example:
        >>> disttorch.tensor([[1, 2], [3, 4]]).dtype
        disttorch.int64
    """
    dt, dev, xp = _resolve(dtype, device)
    if isinstance(data, T.Tensor):
        warnings.warn("To copy construct from a tensor, it is recommended to use sourceTensor.clone().detach() "
                      "or sourceTensor.clone().detach().requires_grad_(True), rather than "
                      "disttorch.tensor(sourceTensor).", UserWarning, stacklevel=2)
    return _finish(_to_array(data, dt, xp, copy=True), requires_grad)


def as_tensor(data, dtype=None, device=None):
    """Like ``tensor`` but shares memory with a tensor or NumPy array when dtype and device allow."""
    if isinstance(data, T.Tensor):
        from .convert import _convert

        dt = None if dtype is None else D.to_dtype(dtype)
        return _convert(data, dt, None if device is None else _device_cls(device))
    dt, dev, xp = _resolve(dtype, device)
    return T._wrap(_to_array(data, dt, xp, copy=False))


def asarray(obj, *, dtype=None, device=None, copy=None, requires_grad: bool = False):
    """``as_tensor`` with ``copy=True`` to force a copy (``copy=None``/False share memory when possible)."""
    t = as_tensor(obj, dtype=dtype, device=device)
    if copy:
        t = T._wrap(t._data.copy())
    elif t is obj:
        t = obj.detach()  # an alias: never change the caller's tensor's flags
    if requires_grad:
        t.requires_grad_(True)
    return t


def from_numpy(ndarray) -> "T.Tensor":
    """A tensor sharing memory with a NumPy array (writes show through both ways).

    Example:
        >>> a = np.zeros(3); disttorch.from_numpy(a)[0] = 1; a[0]
        1.0
    """
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    if ndarray.dtype.byteorder not in "=|":
        raise ValueError("given numpy array has byte order different from the native byte order. Conversion "
                         "between byte orders is currently not supported.")
    D.from_numpy_dtype(ndarray.dtype)
    return T._wrap(ndarray)


def frombuffer(buffer, *, dtype, count: int = -1, offset: int = 0, requires_grad: bool = False):
    """A 1-D tensor sharing memory with a Python buffer (``offset`` in bytes, ``count`` elements)."""
    dt = D.to_dtype(dtype)
    try:
        arr = np.frombuffer(buffer, dtype=dt.np, count=count, offset=offset)
    except ValueError as e:
        n = memoryview(buffer).nbytes
        if count > 0 and offset + count * dt.itemsize > n:
            raise ValueError(f"requested buffer length ({count} * {dt.itemsize} bytes) after offset ({offset} bytes) "
                             f"must not be greater than actual buffer length ({n} bytes)") from None
        raise ValueError(f"frombuffer: cannot read count={count} elements of {dt} at offset={offset} from a buffer "
                         f"of {n} bytes ({e})") from None
    return _finish(arr, requires_grad)


# ------------------------------------------------------------------------------------------
# filled tensors
# ------------------------------------------------------------------------------------------
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
    return _finish(_fill_array(xp, shape, fill, dt, op), requires_grad, out)


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


def _like(op: str, input, fill, dtype, device, requires_grad):
    if not isinstance(input, T.Tensor):
        raise TypeError(f"{op}(): argument 'input' (position 1) must be Tensor, not {type(input).__name__}")
    dt = input.dtype if dtype is None else D.to_dtype(dtype)
    dev = input.device if device is None else _device_cls(device)
    return _finish(_fill_array(array_module(dev), input._data.shape, fill, dt, op), requires_grad)


def zeros_like(input, *, dtype=None, layout=None, device=None, requires_grad: bool = False, memory_format=None):
    """Zeros with ``input``'s shape (and dtype/device unless given)."""
    return _like("zeros_like", input, 0, dtype, device, requires_grad)


def ones_like(input, *, dtype=None, layout=None, device=None, requires_grad: bool = False, memory_format=None):
    """Ones with ``input``'s shape."""
    return _like("ones_like", input, 1, dtype, device, requires_grad)


def empty_like(input, *, dtype=None, layout=None, device=None, requires_grad: bool = False, memory_format=None):
    """An uninitialised tensor with ``input``'s shape."""
    return _like("empty_like", input, None, dtype, device, requires_grad)


def full_like(input, fill_value, *, dtype=None, layout=None, device=None, requires_grad: bool = False,
              memory_format=None):
    """``fill_value`` in ``input``'s shape and dtype (the value is cast to it)."""
    return _like("full_like", input, _num(fill_value), dtype, device, requires_grad)


# ------------------------------------------------------------------------------------------
# ranges
# ------------------------------------------------------------------------------------------
def _num(x):
    return x.item() if isinstance(x, T.Tensor) else x


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
    return _finish(arr, requires_grad, out)


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
