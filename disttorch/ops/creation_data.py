"""Tensors from data: ``tensor``, ``as_tensor``, ``asarray``, ``from_numpy``, ``frombuffer``, and the conversion of
Python data (numbers, nested sequences, NumPy arrays, tensors) into an array with PyTorch's dtype inference,
range checks and error messages.
"""
from __future__ import annotations

import builtins
import warnings

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from .._device import to_host
from .._device import device as _device_cls
from ._creation_common import _finish, _int_fits, _resolve
from ._helpers import quiet

__all__ = ["tensor", "as_tensor", "asarray", "from_numpy", "frombuffer"]

_NUMBER = (builtins.bool, builtins.int, builtins.float, builtins.complex, np.number, np.bool_)


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
