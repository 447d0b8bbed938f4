"""Tensor creation: tensor, as_tensor, from_numpy, zeros/ones/full/empty (+ _like), arange, linspace, eye."""
from __future__ import annotations

import builtins
import math

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from .._device import CPU, array_module, device as _device_cls

__all__ = ["tensor", "as_tensor", "asarray", "from_numpy", "zeros", "ones", "full", "empty", "zeros_like",
           "ones_like", "full_like", "empty_like", "arange", "range", "linspace", "logspace", "eye",
           "scalar_tensor", "empty_strided", "frombuffer"]


def _resolve(dtype, device):
    dt = None if dtype is None else D.to_dtype(dtype)
    dev = CPU if device is None else _device_cls(device)
    return dt, dev, array_module(dev)


def _finish(arr, requires_grad: bool, op: str):
    t = T._wrap(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _infer_dtype(data) -> D.dtype:
    """PyTorch's inference for nested Python data: bool < int64 < default float < complex."""
    cat = -1
    stack = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(x)
        elif isinstance(x, T.Tensor):
            d = x.dtype
            cat = builtins.max(cat, d._cat) if d._cat != 2 else builtins.max(cat, 2)
            if d._cat == 2 and d is not D.get_default_dtype() and cat <= 2:
                pass
        elif isinstance(x, (bool, np.bool_)):
            cat = builtins.max(cat, 0)
        elif isinstance(x, (builtins.int, np.integer)):
            cat = builtins.max(cat, 1)
        elif isinstance(x, (builtins.float, np.floating)):
            cat = builtins.max(cat, 2)
        elif isinstance(x, (builtins.complex, np.complexfloating)):
            cat = builtins.max(cat, 3)
        else:
            raise TypeError(f"tensor(): could not infer dtype of {type(x).__name__}")
    if cat == 0:
        return D.bool
    if cat == 1:
        return D.int64
    if cat == 3:
        return D.get_default_dtype().to_complex()
    return D.get_default_dtype()


def _to_array(data, dtype, xp, copy: bool):
    """An array of ``data`` (Tensor, array, scalar or nested sequences) with ``dtype`` (None: inferred)."""
    if isinstance(data, T.Tensor):
        arr = data._data
        if dtype is not None and arr.dtype != dtype.np:
            arr = arr.astype(dtype.np)
        elif copy:
            arr = arr.copy()
        if xp is not data._xp:
            arr = arr.get() if xp is np else xp.asarray(arr)
        return arr
    if isinstance(data, np.ndarray) or hasattr(data, "__cuda_array_interface__"):
        if dtype is None:
            dtype = D.from_numpy_dtype(data.dtype)
        arr = xp.array(data, dtype=dtype.np, copy=copy) if copy else xp.asarray(data, dtype=dtype.np)
        return arr
    if isinstance(data, np.generic):
        dtype = dtype or D.from_numpy_dtype(data.dtype)
        return xp.asarray(data, dtype=dtype.np)
    if isinstance(data, (list, tuple)) and _has_tensor(data):
        data = _tensors_to_lists(data)
    if dtype is None:
        dtype = _infer_dtype(data)
    try:
        if dtype.name == "bfloat16":
            return xp.asarray(np.asarray(data, dtype=np.float32).astype(dtype.np))
        return xp.asarray(np.array(data, dtype=dtype.np))
    except ValueError as e:
        raise ValueError(f"tensor(): the nested sequence is not rectangular or holds non-numbers ({e})") from None
    except OverflowError:
        return xp.asarray(np.array(data).astype(dtype.np))


def _has_tensor(seq) -> bool:
    return any(isinstance(x, T.Tensor) or (isinstance(x, (list, tuple)) and _has_tensor(x)) for x in seq)


def _tensors_to_lists(seq):
    return [x.tolist() if isinstance(x, T.Tensor) else (_tensors_to_lists(x) if isinstance(x, (list, tuple)) else x)
            for x in seq]


def tensor(data, *, dtype=None, device=None, requires_grad: bool = False, pin_memory: bool = False):
    """A new tensor that copies ``data`` (nested lists, numbers, arrays or tensors).

    Example:
        >>> disttorch.tensor([[1, 2], [3, 4]]).dtype
        disttorch.int64
    """
    dt, dev, xp = _resolve(dtype, device)
    if isinstance(data, T.Tensor):
        import warnings

        warnings.warn("To copy construct from a tensor, it is recommended to use sourceTensor.clone().detach() "
                      "or sourceTensor.clone().detach().requires_grad_(True), rather than "
                      "disttorch.tensor(sourceTensor).", UserWarning, stacklevel=2)
    arr = _to_array(data, dt, xp, copy=True)
    return _finish(arr, requires_grad, "tensor")


def as_tensor(data, dtype=None, device=None):
    """Like ``tensor`` but shares memory with a tensor or NumPy array when dtype and device allow."""
    if isinstance(data, T.Tensor):
        from .convert import _convert

        dt = None if dtype is None else D.to_dtype(dtype)
        return _convert(data, dt, None if device is None else _device_cls(device))
    dt, dev, xp = _resolve(dtype, device)
    return T._wrap(_to_array(data, dt, xp, copy=False))


def asarray(obj, *, dtype=None, device=None, copy=None, requires_grad: bool = False):
    t = as_tensor(obj, dtype=dtype, device=device)
    if copy:
        t = t.clone()
    if requires_grad:
        t.requires_grad_(True)
    return t


def from_numpy(ndarray) -> "T.Tensor":
    """A tensor sharing memory with a NumPy array (writes show through both ways)."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    D.from_numpy_dtype(ndarray.dtype)
    return T._wrap(ndarray)


def frombuffer(buffer, *, dtype, count: int = -1, offset: int = 0, requires_grad: bool = False):
    arr = np.frombuffer(buffer, dtype=D.to_dtype(dtype).np, count=count, offset=offset)
    return _finish(arr, requires_grad, "frombuffer")


def _size_args(size, op: str) -> tuple:
    if len(size) == 1 and isinstance(size[0], (list, tuple)):
        size = tuple(size[0])
    out = []
    for s in size:
        if isinstance(s, T.Tensor):
            s = s.__index__()
        if not isinstance(s, (builtins.int, np.integer)):
            raise TypeError(f"{op}(): argument 'size' must be tuple of ints, but found element of type "
                            f"{type(s).__name__}")
        if s < 0:
            raise RuntimeError(f"{op}(): Trying to create tensor with negative dimension {s}: {list(size)}")
        out.append(builtins.int(s))
    return tuple(out)


def _filled(op: str, size, fill, dtype, device, requires_grad: bool, out=None):
    shape = _size_args(size, op)
    dt, dev, xp = _resolve(dtype, device)
    dt = dt or D.get_default_dtype()
    if fill is None:
        arr = xp.empty(shape, dtype=dt.np)
    elif fill == 0:
        arr = xp.zeros(shape, dtype=dt.np)
    else:
        arr = xp.full(shape, fill, dtype=dt.np)
    t = _finish(arr, requires_grad, op)
    if out is not None:
        out._data = t._data
        out._vc[0] += 1
        return out
    return t


def zeros(*size, out=None, dtype=None, layout=None, device=None, requires_grad: bool = False):
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    return _filled("zeros", size, 0, dtype, device, requires_grad, out)


def ones(*size, out=None, dtype=None, layout=None, device=None, requires_grad: bool = False):
    """A tensor of ones."""
    return _filled("ones", size, 1, dtype, device, requires_grad, out)


def empty(*size, out=None, dtype=None, layout=None, device=None, requires_grad: bool = False,
          pin_memory: bool = False, memory_format=None):
    """An uninitialised tensor (its values are whatever the allocator left)."""
    return _filled("empty", size, None, dtype, device, requires_grad, out)


def empty_strided(size, stride, *, dtype=None, layout=None, device=None, requires_grad: bool = False,
                  pin_memory: bool = False):
    return _filled("empty_strided", (tuple(size),), None, dtype, device, requires_grad)


def full(size, fill_value, *, out=None, dtype=None, layout=None, device=None, requires_grad: bool = False):
    """A tensor filled with ``fill_value``; its dtype is inferred from the value when not given."""
    if isinstance(fill_value, T.Tensor):
        fill_value = fill_value.item()
    if dtype is None:
        dtype = D._scalar_dtype(fill_value)
    return _filled("full", (tuple(size) if isinstance(size, (list, tuple)) else (size,)), fill_value, dtype,
                   device, requires_grad, out)


def scalar_tensor(s, *, dtype=None, device=None, requires_grad: bool = False):
    return full((), s, dtype=dtype or D.get_default_dtype(), device=device, requires_grad=requires_grad)


def _like(op: str, input, fill, dtype, device, requires_grad):
    if not isinstance(input, T.Tensor):
        raise TypeError(f"{op}(): argument 'input' must be Tensor, not {type(input).__name__}")
    dtype = input.dtype if dtype is None else dtype
    device = input.device if device is None else device
    return _filled(op, (tuple(input._data.shape),), fill, dtype, device, requires_grad)


def zeros_like(input, *, dtype=None, layout=None, device=None, requires_grad: bool = False, memory_format=None):
    return _like("zeros_like", input, 0, dtype, device, requires_grad)


def ones_like(input, *, dtype=None, layout=None, device=None, requires_grad: bool = False, memory_format=None):
    return _like("ones_like", input, 1, dtype, device, requires_grad)


def empty_like(input, *, dtype=None, layout=None, device=None, requires_grad: bool = False, memory_format=None):
    return _like("empty_like", input, None, dtype, device, requires_grad)


def full_like(input, fill_value, *, dtype=None, layout=None, device=None, requires_grad: bool = False,
              memory_format=None):
    if isinstance(fill_value, T.Tensor):
        fill_value = fill_value.item()
    return _like("full_like", input, fill_value, dtype, device, requires_grad)


def _num(x):
    return x.item() if isinstance(x, T.Tensor) else x


def arange(start=0, end=None, step=1, *, out=None, dtype=None, layout=None, device=None,
           requires_grad: bool = False):
    """Values from ``start`` to ``end`` (exclusive) by ``step``; int64 unless an argument is a float."""
    start, end, step = _num(start), _num(end), _num(step)
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError(f"arange: upper bound and larger bound inconsistent with step sign "
                           f"(start={start}, end={end}, step={step})")
    dt, dev, xp = _resolve(dtype, device)
    if dt is None:
        is_float = any(isinstance(v, (builtins.float, np.floating)) for v in (start, end, step))
        dt = D.get_default_dtype() if is_float else D.int64
    n = builtins.max(0, math.ceil((end - start) / step))
    # Computed in float64/int64 then cast, so float32 ranges match PyTorch's element count.
    arr = (xp.arange(n, dtype=np.float64) * step + start) if dt.is_floating_point else \
        xp.arange(start, start + n * step, step, dtype=np.int64)[:n]
    return _finish(arr.astype(dt.np), requires_grad, "arange")


def range(start=0, end=None, step=1, *, dtype=None, device=None, requires_grad: bool = False):  # noqa: A001
    """Deprecated in PyTorch: like arange but includes ``end``; float by default."""
    if end is None:
        start, end = 0, start
    dt, dev, xp = _resolve(dtype, device)
    dt = dt or D.get_default_dtype()
    n = builtins.int(math.floor((end - start) / step)) + 1
    arr = xp.arange(n, dtype=np.float64) * step + start
    return _finish(arr.astype(dt.np), requires_grad, "range")


def linspace(start, end, steps: int, *, out=None, dtype=None, layout=None, device=None,
             requires_grad: bool = False):
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    if not isinstance(steps, (builtins.int, np.integer)) or steps < 0:
        raise RuntimeError(f"linspace: number of steps must be non-negative, got {steps}")
    dt, dev, xp = _resolve(dtype, device)
    dt = dt or D.get_default_dtype()
    arr = xp.linspace(_num(start), _num(end), steps, dtype=np.float64)
    return _finish(arr.astype(dt.np), requires_grad, "linspace")


def logspace(start, end, steps: int, base: float = 10.0, *, dtype=None, layout=None, device=None,
             requires_grad: bool = False):
    dt, dev, xp = _resolve(dtype, device)
    dt = dt or D.get_default_dtype()
    arr = xp.logspace(_num(start), _num(end), steps, base=base, dtype=np.float64)
    return _finish(arr.astype(dt.np), requires_grad, "logspace")


def eye(n: int, m: int | None = None, *, out=None, dtype=None, layout=None, device=None,
        requires_grad: bool = False):
    """The identity matrix (``n`` x ``m``)."""
    dt, dev, xp = _resolve(dtype, device)
    dt = dt or D.get_default_dtype()
    if n < 0 or (m is not None and m < 0):
        raise RuntimeError(f"eye: n and m must be non-negative, got n={n}, m={m}")
    return _finish(xp.eye(n, m, dtype=dt.np), requires_grad, "eye")


def _legacy_new(*args, dtype=None, device=None):
    """``Tensor(...)``: data (copied into the default float dtype) or a size (uninitialised)."""
    dt = D.to_dtype(dtype) if dtype is not None else D.get_default_dtype()
    if not args:
        return empty(0, dtype=dt, device=device)
    if len(args) == 1 and not isinstance(args[0], (builtins.int, np.integer)):
        return T._wrap(_to_array(args[0], dt, array_module(_device_cls(device or "cpu")), copy=True))
    return empty(*args, dtype=dt, device=device)


class CreationMethods:
    __slots__ = ()

    def new_tensor(self, data, *, dtype=None, device=None, requires_grad: bool = False):
        return tensor(data, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad: bool = False):
        return zeros(*size, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad: bool = False):
        return ones(*size, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad: bool = False):
        return empty(*size, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)

    def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad: bool = False):
        return full(size, fill_value, dtype=dtype or self.dtype, device=device or self.device,
                    requires_grad=requires_grad)
