"""How arrays travel over MPI for the ``mpi`` backend (mpi.py): the MPI datatype and reduce op for each NumPy
dtype and ReduceOp (see "Dtypes" in mpi.py), and flat byte views, packing and unpacking of arrays.

Imported only by mpi.py, so only when the mpi backend is chosen (importing ``mpi4py.MPI`` initialises MPI).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from mpi4py import MPI

from ..process_group import REDUCE_UFUNCS, ReduceOp

_MPI_OPS = {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD, ReduceOp.MIN: MPI.MIN,
            ReduceOp.MAX: MPI.MAX, ReduceOp.BAND: MPI.BAND, ReduceOp.BOR: MPI.BOR, ReduceOp.BXOR: MPI.BXOR}
# bool travels as uint8 0/1: or/and/xor expressed with ops that keep values in {0, 1}
_BOOL_OPS = {ReduceOp.SUM: MPI.MAX, ReduceOp.AVG: MPI.MAX, ReduceOp.MAX: MPI.MAX, ReduceOp.BOR: MPI.MAX,
             ReduceOp.PRODUCT: MPI.MIN, ReduceOp.MIN: MPI.MIN, ReduceOp.BAND: MPI.MIN, ReduceOp.BXOR: MPI.BXOR}
_BITWISE = (ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR)
# by id: hashing an Enum member runs Python code (ReduceOp members live as long as the process)
_ALLREDUCE_DESC = {id(op): f"all_reduce({op.name})" for op in ReduceOp}
_TYPES = {np.dtype(np.float32): MPI.FLOAT, np.dtype(np.float64): MPI.DOUBLE,
          np.dtype(np.int8): MPI.INT8_T, np.dtype(np.int16): MPI.INT16_T, np.dtype(np.int32): MPI.INT32_T,
          np.dtype(np.int64): MPI.INT64_T, np.dtype(np.uint8): MPI.UINT8_T, np.dtype(np.uint16): MPI.UINT16_T,
          np.dtype(np.uint32): MPI.UINT32_T, np.dtype(np.uint64): MPI.UINT64_T,
          np.dtype(np.complex64): MPI.C_FLOAT_COMPLEX, np.dtype(np.complex128): MPI.C_DOUBLE_COMPLEX}


def _native_float16():
    """MPI's short-float type when this library reduces it natively (probed locally, no communication)."""
    dt = getattr(MPI, "_typedict", {}).get("e")
    if dt is None or dt == MPI.DATATYPE_NULL:
        return None
    try:
        a, b = np.ones(2, np.float16), np.ones(2, np.float16)
        MPI.SUM.Reduce_local([a, dt], [b, dt])
        return dt if float(b[0]) == 2.0 else None
    except Exception:
        return None


_F16 = _native_float16()
_USER_OPS: dict = {}  # (dtype, ReduceOp) -> MPI.Op over 2-byte values


def _user_op(dtype: np.dtype, op: ReduceOp):
    key = (dtype, op)
    mop = _USER_OPS.get(key)
    if mop is None:
        ufunc = REDUCE_UFUNCS[op]

        def combine(inbuf, inoutbuf, datatype, dtype=dtype, ufunc=ufunc):
            a = np.frombuffer(inbuf, dtype=dtype)
            b = np.frombuffer(inoutbuf, dtype=dtype)
            ufunc(a, b, out=b)

        mop = _USER_OPS[key] = MPI.Op.Create(combine, commute=True)
    return mop


_REDUCTIONS: dict = {}  # (dtype, op) -> (view dtype, MPI datatype, MPI op)


def _reduction(dtype: np.dtype, op: ReduceOp, opname: str):
    """(view dtype, MPI datatype, MPI op) for reducing arrays of ``dtype`` with ``op``."""
    key = (dtype, op)
    r = _REDUCTIONS.get(key)
    if r is None:
        r = _REDUCTIONS[key] = _find_reduction(dtype, op, opname)
    return r


def _find_reduction(dtype: np.dtype, op: ReduceOp, opname: str):
    if op not in _MPI_OPS:
        raise ValueError(f"{opname}: ReduceOp.{op.name} is not supported by the mpi backend")
    if dtype == np.bool_:
        return np.dtype(np.uint8), MPI.UINT8_T, _BOOL_OPS[op]
    if op in _BITWISE and dtype.kind not in "iu":
        raise RuntimeError(f"{opname}: cannot use ReduceOp.{op.name} with non-integral dtype {dtype}")
    dt = _TYPES.get(dtype)
    if dt is not None:
        if dtype.kind == "c" and op in (ReduceOp.MIN, ReduceOp.MAX):
            raise RuntimeError(f"{opname}: ReduceOp.{op.name} is not defined for complex dtype {dtype}")
        return dtype, dt, _MPI_OPS[op]
    if dtype == np.float16 and _F16 is not None:
        return dtype, _F16, _MPI_OPS[op]
    if dtype.itemsize == 2 and dtype.kind in "fV":  # float16 without native support, bfloat16 (ml_dtypes)
        return dtype, MPI.UINT16_T, _user_op(dtype, op)
    raise TypeError(f"{opname}: the mpi backend cannot reduce arrays of dtype {dtype}")


def _bytes(a: np.ndarray) -> np.ndarray:
    """Flat uint8 view of a C-contiguous array of any dtype (0-d included); writes go to ``a``."""
    if not a.flags.c_contiguous:
        raise ValueError(f"mpi backend: arrays must be C-contiguous, got strides {a.strides} for shape {a.shape}")
    return a.reshape(-1).view(np.uint8)


def _addr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _back_to_back(arrays: Sequence[np.ndarray]) -> Optional[np.ndarray]:
    """One flat uint8 view spanning ``arrays`` when they lie back to back in one buffer (e.g. the per-rank
    slices of an all_gather_into_tensor output), so MPI can write them without a staging copy; else None."""
    if not arrays or not all(a.flags.c_contiguous for a in arrays):
        return None
    start = pos = _addr(arrays[0])
    for a in arrays:
        if _addr(a) != pos:
            return None
        pos += a.nbytes
    root = arrays[0]
    while isinstance(root.base, np.ndarray):
        root = root.base
    if not root.flags.c_contiguous:
        return None
    off = start - _addr(root)
    if off < 0 or off + (pos - start) > root.nbytes:
        return None
    return root.reshape(-1).view(np.uint8)[off:off + pos - start]


def _displs(counts: Sequence[int]) -> list:
    out, total = [], 0
    for c in counts:
        out.append(total)
        total += c
    return out


def _pack(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The bytes of ``arrays`` concatenated into one new buffer."""
    total = sum(a.nbytes for a in arrays)
    out = np.empty(total, np.uint8)
    pos = 0
    for a in arrays:
        n = a.nbytes
        out[pos:pos + n] = _bytes(a)
        pos += n
    return out


def _unpack(buf: np.ndarray, arrays: Sequence[np.ndarray], counts: Sequence[int]) -> None:
    pos = 0
    for a, n in zip(arrays, counts):
        _bytes(a)[...] = buf[pos:pos + n]
        pos += n
