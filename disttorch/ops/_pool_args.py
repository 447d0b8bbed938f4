"""Argument checks shared by the pool family (pool.py and pool_adaptive.py): kernel/stride/padding tuples,
supported dtypes and input ranks, with PyTorch's error messages."""
from __future__ import annotations

import numbers

_TORCH_NAMES = {"int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool",
                "complex64": "ComplexFloat", "complex128": "ComplexDouble"}
# Positions of the int-tuple arguments in PyTorch's signatures (input is position 1), for its argument errors.
_POSITION = {"kernel_size": 2, "stride": 3, "padding": 4, "dilation": 5, "output_size": 2, "pad": 2}


def ints_error(op: str, what: str, v, pos: int | None = None) -> TypeError:
    """PyTorch's argument-parser error for ``what`` that is not a tuple of ints: ``v`` is the argument, or its
    element at index ``pos``."""
    where = f"{op}(): argument '{what}' (position {_POSITION[what]}) must be tuple of ints"
    if pos is None:
        return TypeError(f"{where}, not {type(v).__name__}")
    return TypeError(f"{where}, but found element of type {type(v).__name__} at pos {pos}")



def _ints(v, n: int, what: str, op: str, msg: str) -> tuple:
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return (int(v),) * n
    if isinstance(v, (list, tuple)):
        for i, e in enumerate(v):
            if not (isinstance(e, numbers.Integral) and not isinstance(e, bool)):
                raise ints_error(op, what, e, i)
        if len(v) == 1:
            return (int(v[0]),) * n
        if len(v) == n:
            return tuple(int(e) for e in v)
        raise RuntimeError(msg)
    raise ints_error(op, what, v)



def _args2d(op, kernel_size, stride, padding, dilation=1):
    k = _ints(kernel_size, 2, "kernel_size", op, f"{op}: kernel_size must either be a single int, or a tuple of "
                                                 f"two ints")
    s = k if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0) else _ints(
        stride, 2, "stride", op, f"{op}: stride must either be omitted, a single int, or a tuple of two ints")
    p = _ints(padding, 2, "padding", op, f"{op}: padding must either be a single int, or a tuple of two ints")
    d = _ints(dilation, 2, "dilation", op, f"{op}: dilation must be either a single int, or a tuple of two ints")
    return k, s, p, d



def _type_name(np_name: str) -> str:
    """PyTorch's scalar-type name (``Long``, ``Int``...) of a NumPy dtype name."""
    return _TORCH_NAMES.get(np_name, np_name)


def _check_dtype(x, op: str, allow_int: bool) -> None:
    k = x._data.dtype.kind
    if k in "fV" or (allow_int and k in "iu"):
        return
    name = _type_name(x._data.dtype.name)
    raise RuntimeError(f'"{op}" not implemented for \'{name}\'')



def _check1d(op: str, v, what: str, allow_empty: bool = False):
    if isinstance(v, (list, tuple)):
        if allow_empty and len(v) == 0:
            return None
        if len(v) != 1:
            raise RuntimeError(f"{op}() argument '{what}' should contain one int (got {len(v)})")
        return v[0]
    return v



def _dim_range(x, op: str) -> None:
    if x.ndim not in (2, 3):
        raise RuntimeError(f"Expected 2 to 3 dimensions, but got {x.ndim}-dimensional tensor for argument #1 "
                           f"'self' (while checking arguments for {op})")
