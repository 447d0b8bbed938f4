"""What the nccl backend tells NCCL about a buffer: its datatype, element count and reduction, and the unique id.

Pure functions over NumPy dtypes and the ``nccl`` module's constants (``cupy.cuda.nccl`` or a test's stand-in),
so they are tested without a GPU. Reductions use NCCL's typed ops; data movement (broadcast, gathers,
all-to-all, send/recv) moves raw bytes, so every dtype (complex, bool, int16, ...) works there.
"""
from __future__ import annotations

import numpy as np

from ..process_group import ReduceOp

__all__ = ["UID_BYTES", "datatype", "reduction", "uid_to_bytes", "uid_from_bytes", "TORCH_NAMES"]

UID_BYTES = 128  # sizeof(ncclUniqueId)

# backend method -> torch.distributed name, for error messages
TORCH_NAMES = {"allreduce": "all_reduce", "broadcast": "broadcast", "reduce": "reduce", "allgather": "all_gather",
               "reduce_scatter": "reduce_scatter", "gather": "gather", "scatter": "scatter", "alltoall": "all_to_all",
               "send": "send", "recv": "recv", "barrier": "barrier"}

# NumPy dtype name -> the nccl module's constant name
_TYPES = {"int8": "NCCL_INT8", "uint8": "NCCL_UINT8", "int32": "NCCL_INT32", "uint32": "NCCL_UINT32",
          "int64": "NCCL_INT64", "uint64": "NCCL_UINT64", "float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32",
          "float64": "NCCL_FLOAT64", "bfloat16": "NCCL_BFLOAT16", "bool": "NCCL_UINT8"}

# AVG is reduced as SUM: the torch.distributed layer divides by the group size afterwards (as for every backend)
_OPS = {ReduceOp.SUM: "NCCL_SUM", ReduceOp.AVG: "NCCL_SUM", ReduceOp.PRODUCT: "NCCL_PROD",
        ReduceOp.MIN: "NCCL_MIN", ReduceOp.MAX: "NCCL_MAX"}
# bool is reduced as uint8 0/1: "or" is MAX, "and" is MIN
_BOOL_OPS = {ReduceOp.SUM: ReduceOp.MAX, ReduceOp.AVG: ReduceOp.MAX, ReduceOp.MAX: ReduceOp.MAX,
             ReduceOp.BOR: ReduceOp.MAX, ReduceOp.PRODUCT: ReduceOp.MIN, ReduceOp.MIN: ReduceOp.MIN,
             ReduceOp.BAND: ReduceOp.MIN}


def datatype(nccl, dtype: np.dtype, op: str) -> tuple:
    """``(nccl datatype, elements per array element)`` for reducing arrays of ``dtype`` in ``op``.

    complex64/complex128 reduce as pairs of float32/float64 (only SUM/AVG make sense that way, which
    :func:`reduction` checks).

    Raises:
        RuntimeError: NCCL (or this CuPy build) has no type for ``dtype``.
    """
    dtype = np.dtype(dtype)
    per = 1
    name = dtype.name
    if dtype.kind == "c":
        name, per = ("float32" if dtype.itemsize == 8 else "float64"), 2
    const = _TYPES.get(name)
    value = getattr(nccl, const, None) if const else None
    if value is None:
        have = sorted(k for k, c in _TYPES.items() if hasattr(nccl, c))
        why = f"this CuPy build's nccl module lacks {const}" if const else "NCCL has no such type"
        raise RuntimeError(f"{op} on the nccl backend: dtype {dtype.name} cannot be reduced ({why}); reduce "
                           f"one of {', '.join(have)} instead (e.g. cast to float32)")
    return value, per


def reduction(nccl, op: ReduceOp, dtype: np.dtype, opname: str):
    """The nccl reduction constant for ``op`` on arrays of ``dtype``.

    Raises:
        RuntimeError: NCCL has no such reduction (BAND/BOR/BXOR on integers, MIN/MAX/PRODUCT on complex).
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        if op not in _BOOL_OPS:
            raise RuntimeError(f"{opname} on the nccl backend: ReduceOp.{op.name} is not supported for bool tensors")
        op = _BOOL_OPS[op]
    if dtype.kind == "c" and op not in (ReduceOp.SUM, ReduceOp.AVG):
        raise RuntimeError(f"{opname} on the nccl backend: ReduceOp.{op.name} is not supported for complex tensors "
                           f"({dtype.name}); only SUM and AVG are")
    const = _OPS.get(op)
    if const is None:
        raise RuntimeError(f"{opname} on the nccl backend: ReduceOp.{op.name} is not supported (NCCL reduces with "
                           "SUM, PRODUCT, MIN, MAX and AVG; bitwise ops work on bool tensors only)")
    return getattr(nccl, const)


def uid_to_bytes(uid) -> bytes:
    """The 128 bytes of a unique id as ``nccl.get_unique_id()`` returns it (a tuple of C chars as ints)."""
    raw = bytes(int(v) & 0xFF for v in uid)
    if len(raw) != UID_BYTES:
        raise RuntimeError(f"nccl backend: get_unique_id() returned {len(raw)} bytes, expected {UID_BYTES}")
    return raw


def uid_from_bytes(raw: bytes, where: str) -> tuple:
    """The id tuple ``NcclCommunicator`` takes, from 128 bytes received from rank 0 (``where``: via what).

    Raises:
        RuntimeError: ``raw`` is not 128 bytes (a peer that is not this job's rank 0, or a corrupted store).
    """
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != UID_BYTES:
        size = len(raw) if isinstance(raw, (bytes, bytearray)) else type(raw).__name__
        raise RuntimeError(f"nccl backend: the NCCL unique id received {where} has {size} bytes, expected "
                           f"{UID_BYTES}; the rendezvous is shared with something that is not this job's rank 0")
    return tuple(b - 256 if b > 127 else b for b in raw)
