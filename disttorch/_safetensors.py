"""The safetensors file layout: an 8-byte little-endian header length, a JSON header, then raw tensor bytes.

``write`` streams contiguous arrays straight from their memory (no copy for contiguous data);
``read`` maps every tensor onto one buffer holding the file's data section (no per-tensor copy).
Errors name the file and what is wrong, so a truncated or foreign file never yields garbage tensors.
"""
from __future__ import annotations

import json
import struct
import zlib

import numpy as np

from . import _dtype as D

# safetensors dtype codes (C64/C128 extend the format for complex tensors).
_CODES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64", "int32": "I32",
          "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL", "complex64": "C64", "complex128": "C128"}
_FROM_CODE = {v: D._NAMES[k] for k, v in _CODES.items()}
_MAX_HEADER = 100 * 1024 * 1024


class CheckpointError(RuntimeError):
    """A checkpoint file is truncated, corrupted or not in a format disttorch reads."""


def code_of(dtype: D.dtype) -> str:
    return _CODES[dtype.name]


def write(f, arrays: dict, metadata: dict) -> None:
    """Write ``arrays`` (name -> contiguous little-endian NumPy array) and string ``metadata`` to file ``f``."""
    header, offset, crc = {}, 0, 0
    for name, arr in arrays.items():
        nbytes = arr.nbytes
        header[name] = {"dtype": code_of(D.from_numpy_dtype(arr.dtype)), "shape": list(arr.shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    views = [memoryview(np.ascontiguousarray(a).reshape(-1).view(np.uint8)) for a in arrays.values()]
    for v in views:
        crc = zlib.crc32(v, crc)
    meta = dict(metadata)
    meta["data_crc32"] = str(crc)
    header["__metadata__"] = meta
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-(len(raw)) % 8)  # align the data section to 8 bytes
    f.write(struct.pack("<Q", len(raw)))
    f.write(raw)
    for v in views:
        f.write(v)


def read(buf, where: str) -> tuple:
    """Parse ``buf`` (bytes-like, the whole file) -> (metadata dict, {name: NumPy array view}).

    ``where`` names the file in error messages.
    """
    size = len(buf)
    if size < 8:
        raise CheckpointError(f"{where}: not a disttorch checkpoint (file is {size} bytes, too short for a header)")
    (hlen,) = struct.unpack("<Q", bytes(buf[:8]))
    if hlen > _MAX_HEADER or 8 + hlen > size:
        raise CheckpointError(f"{where}: not a disttorch checkpoint or truncated (header length {hlen} but the file "
                              f"has {size} bytes)")
    try:
        header = json.loads(bytes(buf[8:8 + hlen]))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{where}: not a disttorch checkpoint (header is not valid JSON: {e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{where}: not a disttorch checkpoint (header is not a JSON object)")
    meta = header.pop("__metadata__", None) or {}
    start = 8 + hlen
    data = memoryview(buf)[start:]
    arrays = {}
    end_max = 0
    for name, info in header.items():
        try:
            dt = _FROM_CODE[info["dtype"]]
            shape = tuple(int(s) for s in info["shape"])
            lo, hi = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{where}: corrupted header entry for tensor {name!r}: {info!r}") from None
        count = 1
        for s in shape:
            count *= s
        if hi - lo != count * dt.itemsize or lo < 0:
            raise CheckpointError(f"{where}: corrupted header: tensor {name!r} of shape {list(shape)} and dtype "
                                  f"{info['dtype']} cannot span bytes [{lo}, {hi})")
        if hi > len(data):
            raise CheckpointError(f"{where}: truncated: tensor {name!r} needs bytes up to {start + hi} but the file "
                                  f"has {size}")
        end_max = max(end_max, hi)
        arrays[name] = np.frombuffer(data[lo:hi], dtype=dt.np).reshape(shape)
    want = meta.get("data_crc32")
    if want is not None and str(zlib.crc32(data[:end_max])) != want:
        raise CheckpointError(f"{where}: corrupted: the tensor data does not match its checksum")
    return meta, arrays
