"""dtypes, the NumPy dtype each one maps to, and PyTorch's type-promotion rules."""
from __future__ import annotations

import builtins

import ml_dtypes
import numpy as np

__all__ = [
    "dtype", "float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
    "uint8", "bool", "half", "float", "double", "long", "int", "short", "cfloat",
    "complex64", "complex128", "cdouble",
    "set_default_dtype", "get_default_dtype", "promote_types", "result_type", "can_cast",
    "finfo", "iinfo",
]

# Category ranks for promotion: bool < integer < floating < complex.
_BOOL, _INT, _FLOAT, _COMPLEX = 0, 1, 2, 3


class dtype:
    """A tensor element type (``disttorch.float32`` ...), as ``torch.dtype``."""

    __slots__ = ("name", "np", "itemsize", "is_floating_point", "is_complex", "is_signed", "_cat")

    def __init__(self, name: str, np_dtype, cat: builtins.int) -> None:
        self.name = name
        self.np = np.dtype(np_dtype)
        self.itemsize = self.np.itemsize
        self.is_floating_point = cat == _FLOAT
        self.is_complex = cat == _COMPLEX
        self.is_signed = name not in ("uint8", "bool")
        self._cat = cat

    def __repr__(self) -> str:
        return "disttorch." + self.name

    def to_real(self) -> "dtype":
        return {"complex64": float32, "complex128": float64}.get(self.name, self)

    def to_complex(self) -> "dtype":
        return {"float64": complex128}.get(self.name, complex64)

    def __reduce__(self):
        # Pickles by name, so DataLoader workers and deepcopy keep the singleton.
        return (_by_name, (self.name,))


def _by_name(name: str) -> dtype:
    return _NAMES[name]


float16 = dtype("float16", np.float16, _FLOAT)
bfloat16 = dtype("bfloat16", ml_dtypes.bfloat16, _FLOAT)
float32 = dtype("float32", np.float32, _FLOAT)
float64 = dtype("float64", np.float64, _FLOAT)
complex64 = dtype("complex64", np.complex64, _COMPLEX)
complex128 = dtype("complex128", np.complex128, _COMPLEX)
int8 = dtype("int8", np.int8, _INT)
int16 = dtype("int16", np.int16, _INT)
int32 = dtype("int32", np.int32, _INT)
int64 = dtype("int64", np.int64, _INT)
uint8 = dtype("uint8", np.uint8, _INT)
bool = dtype("bool", np.bool_, _BOOL)  # noqa: A001 - PyTorch's name

half, float, double = float16, float32, float64  # noqa: A001
long, int, short = int64, int32, int16  # noqa: A001
cfloat, cdouble = complex64, complex128

_ALL = (float16, bfloat16, float32, float64, complex64, complex128, int8, int16, int32, int64, uint8, bool)
_NAMES = {d.name: d for d in _ALL}
_FROM_NP = {d.np: d for d in _ALL}

_default_float = float32


def from_numpy_dtype(np_dtype) -> dtype:
    """The disttorch dtype for a NumPy dtype; raises TypeError for unsupported ones."""
    d = _FROM_NP.get(np_dtype)
    if d is None:
        np_dtype = np.dtype(np_dtype)
        d = _FROM_NP.get(np_dtype)
        if d is None:
            if np_dtype.kind in "ui" and np_dtype.itemsize == 8 or np_dtype == np.uint16 or np_dtype == np.uint32:
                raise TypeError(f"can't convert np.ndarray of type numpy.{np_dtype}. The only supported types "
                                "are: float64, float32, float16, bfloat16, complex64, complex128, int64, int32, "
                                "int16, int8, uint8, and bool.")
            raise TypeError(f"unsupported NumPy dtype {np_dtype}")
    return d


def to_dtype(d) -> dtype:
    """Normalise a dtype-like (disttorch dtype, Python type, NumPy dtype or name) to a disttorch dtype."""
    if d.__class__ is dtype:
        return d
    if d is builtins.float:  # PyTorch maps the Python type to double, not to the default dtype
        return float64
    if d is builtins.int:
        return int64
    if d is builtins.bool:
        return bool
    if d is builtins.complex:
        return complex128
    if isinstance(d, str):
        name = d[len("torch."):] if d.startswith("torch.") else d
        name = name[len("disttorch."):] if name.startswith("disttorch.") else name
        alias = {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32"}
        name = alias.get(name, name)
        if name in _NAMES:
            return _NAMES[name]
        raise TypeError(f"unknown dtype name {d!r}")
    return from_numpy_dtype(d)


def set_default_dtype(d) -> None:
    """Set the floating-point dtype used for Python floats and new float tensors (float32 or float64...)."""
    global _default_float
    d = to_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default_float = d


def get_default_dtype() -> dtype:
    """The current default floating-point dtype (float32 unless changed)."""
    return _default_float


def promote_types(a: dtype, b: dtype) -> dtype:
    """PyTorch's pairwise promotion: the smallest dtype both ``a`` and ``b`` cast to safely."""
    if a is b:
        return a
    if a._cat != b._cat:
        hi, lo = (a, b) if a._cat > b._cat else (b, a)
        if hi._cat == _COMPLEX and lo._cat == _FLOAT and lo is float64:
            return complex128
        return hi
    if a._cat == _FLOAT:
        if {a.name, b.name} == {"float16", "bfloat16"}:
            return float32
        return a if a.itemsize >= b.itemsize else b
    return _FROM_NP[np.promote_types(a.np, b.np)]


def _scalar_dtype(x) -> dtype:
    """The dtype of a Python (or NumPy) scalar operand; NumPy scalars count as Python numbers, as in PyTorch."""
    if isinstance(x, (builtins.bool, np.bool_)):
        return bool
    if isinstance(x, (builtins.int, np.integer)):
        return int64
    if isinstance(x, (builtins.float, np.floating)):
        return _default_float
    if isinstance(x, (builtins.complex, np.complexfloating)):
        return _default_float.to_complex()
    raise TypeError(f"unsupported scalar type {type(x).__name__}")


def result_type(*operands) -> dtype:
    """The dtype an op on these operands produces, by PyTorch's rules.

    Tensors with dimensions win over 0-d tensors, which win over Python scalars, unless
    the lower-priority operands belong to a higher category (bool < int < float < complex).

    Example:
        >>> result_type(disttorch.ones(3, dtype=disttorch.int32), 2.5)
        disttorch.float32
    """
    dims = zero = scal = None
    for x in operands:
        d = getattr(x, "dtype", None)
        if d is not None and d.__class__ is not dtype and hasattr(x, "shape") and not isinstance(x, np.generic):
            d = _FROM_NP[d]  # an array (the entry point hands ops arrays): a tensor operand
        if d is not None and d.__class__ is dtype:
            if x.ndim:
                dims = d if dims is None else promote_types(dims, d)
            else:
                zero = d if zero is None else promote_types(zero, d)
        else:
            d = _scalar_dtype(x)
            scal = d if scal is None else promote_types(scal, d)
    res = dims
    if zero is not None:
        if res is None or zero._cat > res._cat:
            res = zero
    if scal is not None:
        if res is None:
            res = scal
        elif scal._cat > res._cat:
            if scal._cat == _FLOAT:
                res = _default_float
            elif scal._cat == _COMPLEX:
                res = complex128 if res is float64 else _default_float.to_complex()
            else:
                res = scal
    return res


def can_cast(from_: dtype, to: dtype) -> builtins.bool:
    """True when an in-place op may write a ``from_`` result into a ``to`` tensor (no category down-cast)."""
    return from_._cat <= to._cat


class finfo:
    """Machine limits of a floating dtype (eps, max, min, tiny), as ``torch.finfo``."""

    def __init__(self, type: dtype | None = None) -> None:  # noqa: A002
        d = to_dtype(type) if type is not None else _default_float
        info = ml_dtypes.finfo(d.np) if d is bfloat16 else np.finfo(d.np)
        self.dtype = d.name
        self.bits = d.itemsize * 8
        self.eps = builtins.float(info.eps)
        self.max = builtins.float(info.max)
        self.min = builtins.float(info.min)
        self.tiny = self.smallest_normal = builtins.float(info.tiny)
        self.resolution = builtins.float(info.resolution)


class iinfo:
    """Limits of an integer dtype (min, max, bits), as ``torch.iinfo``."""

    def __init__(self, type: dtype) -> None:  # noqa: A002
        d = to_dtype(type)
        info = np.iinfo(d.np)
        self.dtype = d.name
        self.bits = d.itemsize * 8
        self.min = builtins.int(info.min)
        self.max = builtins.int(info.max)
