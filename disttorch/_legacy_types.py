"""The legacy typed constructors (``FloatTensor``, ``LongTensor`` ...), ``autograd.Variable`` and
``set_default_tensor_type``, for scripts written before PyTorch 0.4.

As in PyTorch, ``FloatTensor`` is not a Tensor subclass: calling it returns a plain ``Tensor`` of its
dtype, and ``isinstance(x, FloatTensor)`` is true exactly when ``x`` is a CPU float32 dense tensor (the
metaclass decides). ``disttorch.sparse.FloatTensor`` and friends do the same for sparse COO tensors.
"""
from __future__ import annotations

import warnings

import numpy as np

from . import _dtype as D

__all__ = ["FloatTensor", "DoubleTensor", "HalfTensor", "BFloat16Tensor", "LongTensor", "IntTensor",
           "ShortTensor", "CharTensor", "ByteTensor", "BoolTensor", "Variable", "set_default_tensor_type",
           "type_by_name"]


def _tensor_cls():
    from ._tensor import Tensor

    return Tensor


class _TensorType(type):
    """Metaclass of the typed constructors: ``isinstance`` compares dtype, device and layout."""

    def __instancecheck__(cls, obj) -> bool:
        if not isinstance(obj, _tensor_cls()):
            return False
        return obj.dtype is cls.dtype and obj.device.type == "cpu" and obj.is_sparse == cls.is_sparse

    def __subclasscheck__(cls, sub) -> bool:
        return type.__subclasscheck__(cls, sub)

    def __call__(cls, *args, **kwargs):
        return cls._new(*args, **kwargs)

    def __repr__(cls) -> str:
        return f"<class '{cls.__module__}.{cls.__qualname__}'>"

    def __getattr__(cls, name: str):
        # As in PyTorch, the Tensor methods are reachable unbound: FloatTensor.add(x, y).
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(_tensor_cls(), name)

    @property
    def layout(cls):
        from ._layout import sparse_coo, strided

        return sparse_coo if cls.is_sparse else strided


def _check_device(kwargs, name: str) -> None:
    dev = kwargs.pop("device", None)
    if kwargs:
        raise TypeError(f"{name}() got unexpected keyword arguments {sorted(kwargs)} (only device= is accepted)")
    if dev is not None:
        from ._device import device

        if device(dev).type != "cpu":
            raise RuntimeError("legacy constructor expects device type: cpu but device type: "
                               f"{device(dev).type} was passed")


def _is_size(args) -> bool:
    from ._size import Size

    if len(args) == 1 and isinstance(args[0], Size):
        return True
    return all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in args)


class _DenseType(metaclass=_TensorType):
    dtype: D.dtype = None
    is_sparse = False
    is_cuda = False

    @classmethod
    def _new(cls, *args, **kwargs):
        from . import ops
        from .ops.creation import _size_args

        name = cls.__name__
        _check_device(kwargs, name)
        if not args:
            return ops.zeros(0, dtype=cls.dtype)
        if _is_size(args):
            return ops.zeros(*_size_args(args, name), dtype=cls.dtype)
        if len(args) > 1:
            raise TypeError(f"{name}: expected sizes (ints), one sequence of data or one tensor, got "
                            f"{len(args)} arguments of types {[type(a).__name__ for a in args]}")
        data = args[0]
        if isinstance(data, _tensor_cls()):
            if not isinstance(data, cls):
                raise TypeError(f"{name}: expected a tensor of type {type_name(cls.dtype)} (dtype "
                                f"{cls.dtype}, cpu, strided), got {data.type()}; convert with "
                                f"x.to({cls.dtype}) instead")
            return data.detach()
        if isinstance(data, (int, float, complex, bool, np.number, str, bytes)):
            raise TypeError(f"new(): data must be a sequence (got {type(data).__name__})")
        return ops.tensor(data, dtype=cls.dtype)


class _SparseType(metaclass=_TensorType):
    dtype: D.dtype = None
    is_sparse = True
    is_cuda = False

    @classmethod
    def _new(cls, *args, **kwargs):
        from .ops.sparse import sparse_coo_tensor

        name = "sparse." + cls.__name__
        _check_device(kwargs, name)
        warnings.warn(f"disttorch.{name}(...) is deprecated; use disttorch.sparse_coo_tensor(indices, values, size, "
                      "dtype=...) instead", UserWarning, stacklevel=3)
        if not args:
            return sparse_coo_tensor((0,), dtype=cls.dtype)
        if _is_size(args):
            return sparse_coo_tensor(tuple(int(a) for a in (args[0] if len(args) == 1 and isinstance(args[0], tuple)
                                                            else args)), dtype=cls.dtype)
        if len(args) in (2, 3):
            # As PyTorch's legacy sparse constructors: the values keep their own dtype.
            return sparse_coo_tensor(*args)
        raise TypeError(f"{name}: expected (indices, values[, size]) or sizes, got {len(args)} arguments")


_NAMES = {"FloatTensor": D.float32, "DoubleTensor": D.float64, "HalfTensor": D.float16,
          "BFloat16Tensor": D.bfloat16, "LongTensor": D.int64, "IntTensor": D.int32, "ShortTensor": D.int16,
          "CharTensor": D.int8, "ByteTensor": D.uint8, "BoolTensor": D.bool}
_TYPE_OF_DTYPE = {dt.name: n for n, dt in _NAMES.items()}
_TYPE_OF_DTYPE.update(complex64="ComplexFloatTensor", complex128="ComplexDoubleTensor")


def _make(base, name: str, dtype: D.dtype, module: str):
    doc = (f"Legacy constructor of {'sparse ' if base is _SparseType else ''}{dtype} tensors: ``{name}(*sizes)``, "
           f"``{name}(data)`` or ``{name}(tensor)``; ``isinstance(x, {name})`` checks dtype, device and layout.")
    return _TensorType(name, (base,), {"dtype": dtype, "__module__": module, "__qualname__": name, "__doc__": doc})


FloatTensor = _make(_DenseType, "FloatTensor", D.float32, "disttorch")
DoubleTensor = _make(_DenseType, "DoubleTensor", D.float64, "disttorch")
HalfTensor = _make(_DenseType, "HalfTensor", D.float16, "disttorch")
BFloat16Tensor = _make(_DenseType, "BFloat16Tensor", D.bfloat16, "disttorch")
LongTensor = _make(_DenseType, "LongTensor", D.int64, "disttorch")
IntTensor = _make(_DenseType, "IntTensor", D.int32, "disttorch")
ShortTensor = _make(_DenseType, "ShortTensor", D.int16, "disttorch")
CharTensor = _make(_DenseType, "CharTensor", D.int8, "disttorch")
ByteTensor = _make(_DenseType, "ByteTensor", D.uint8, "disttorch")
BoolTensor = _make(_DenseType, "BoolTensor", D.bool, "disttorch")

SPARSE_TYPES = {n: _make(_SparseType, n, dt, "disttorch.sparse") for n, dt in _NAMES.items()}
_DENSE_TYPES = {n: globals()[n] for n in _NAMES}


def type_name(dtype: D.dtype, *, sparse: bool = False, cuda: bool = False) -> str:
    """PyTorch's type string for a dtype: ``'torch.FloatTensor'``, ``'torch.sparse.LongTensor'`` ...

    The ``torch.`` prefix is kept (not ``disttorch.``) because scripts compare these strings.
    """
    return "torch." + ("cuda." if cuda else "") + ("sparse." if sparse else "") + _TYPE_OF_DTYPE[dtype.name]


def type_by_name(t):
    """``(dtype, is_sparse)`` for a typed constructor class or a type string such as ``'torch.FloatTensor'``."""
    if isinstance(t, _TensorType):
        return t.dtype, t.is_sparse
    if isinstance(t, str) and t.endswith("Tensor"):
        parts = t.split(".")
        base = parts[-1]
        dt = _NAMES.get(base) or {"ComplexFloatTensor": D.complex64, "ComplexDoubleTensor": D.complex128}.get(base)
        if dt is None or parts[0] not in ("torch", "disttorch") or not set(parts[1:-1]) <= {"cuda", "sparse"}:
            raise ValueError(f"invalid tensor type name {t!r} (expected e.g. 'torch.FloatTensor')")
        if "cuda" in parts[1:-1]:
            raise RuntimeError(f"type({t!r}): CUDA tensor types need the CUDA backend; use .to('cuda') and "
                               "check disttorch.cuda.is_available()")
        return dt, "sparse" in parts[1:-1]
    return None


class _VariableMeta(type):
    def __instancecheck__(cls, obj) -> bool:
        return isinstance(obj, _tensor_cls())

    def __call__(cls, data=None, requires_grad: bool = False, volatile: bool = False):
        from . import ops

        if data is None:
            return ops.zeros(0)
        if not isinstance(data, _tensor_cls()):
            raise TypeError(f"Variable data has to be a tensor, but got {type(data).__name__}")
        if volatile:
            warnings.warn("volatile was removed and now has no effect. Use `with disttorch.no_grad():` instead.",
                          UserWarning, stacklevel=2)
        out = data.detach()
        return out.requires_grad_(True) if requires_grad else out


class Variable(metaclass=_VariableMeta):
    """The pre-0.4 wrapper, now a no-op as in PyTorch: ``Variable(t)`` is ``t.detach()`` (with requires_grad).

    ``isinstance(x, Variable)`` is true for every tensor.
    """

    __module__ = "disttorch.autograd"


def set_default_tensor_type(t) -> None:
    """Deprecated PyTorch API: set the default float dtype from a type (``disttorch.DoubleTensor`` or
    ``'torch.DoubleTensor'``). CUDA types raise: disttorch has no default device."""
    warnings.warn("set_default_tensor_type() is deprecated, please use set_default_dtype() instead",
                  UserWarning, stacklevel=2)
    found = type_by_name(t)
    if found is None:
        raise TypeError(f"set_default_tensor_type: expected a tensor type or its name, got {t!r}")
    dt, sparse = found
    if sparse or not dt.is_floating_point:
        raise TypeError(f"only floating-point types are supported as the default type (got {t!r})")
    D.set_default_dtype(dt)
