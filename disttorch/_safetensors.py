"""The safetensors file layout: an 8-byte little-endian header length, a JSON header, then raw tensor bytes.

``write`` produces a disttorch file (format version 2): a valid safetensors file whose header starts with
``{"__metadata__":{"disttorch_digest":"ALG:HEX"`` at a fixed offset. ALG is ``sha256`` (a checksum) or
``hmac-sha256`` (when a key is configured, see ``disttorch._checkpoint_config``); HEX is the digest of the
whole file (length field, header and data) computed with HEX itself replaced by 64 zeros. Other safetensors
readers see one more metadata string and read the tensors as usual.

``read`` accepts three kinds of files: disttorch version 2 (the digest must verify before anything is
parsed), older disttorch files (a CRC-32 over the tensor data only) and plain safetensors files. A file whose
first header bytes are within a few bits of the version-2 prefix is treated as version 2, so damage there
cannot make a disttorch file pass for a plain safetensors file.

Tensors are mapped onto the buffer holding the file (no per-tensor copy); errors name the file and what is
wrong, so a truncated or foreign file never yields garbage tensors.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import struct
import zlib

import numpy as np

from . import _dtype as D
from ._checkpoint_config import CheckpointError, CheckpointOptions, get_checkpoint_options, over_limit

__all__ = ["CheckpointError", "write", "read", "is_disttorch_v2", "PREFIX"]

# safetensors dtype codes (C64/C128 extend the format for complex tensors).
_CODES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64", "int32": "I32",
          "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL", "complex64": "C64", "complex128": "C128"}
_FROM_CODE = {v: D._NAMES[k] for k, v in _CODES.items()}

PREFIX = b'{"__metadata__":{"disttorch_digest":"'
_ALGS = (b"sha256:", b"hmac-sha256:")
_HEX = 64
# Legitimate non-version-2 headers differ from PREFIX in 49 or more bits (measured: older disttorch files,
# files from the safetensors library, tensor-first headers); a version-2 file damaged in up to this many bits
# of its prefix is still recognised as one.
_NEAR_BITS = 12
_CHUNK = 4 << 20
_POPCOUNT = bytes(bin(i).count("1") for i in range(256))


def code_of(dtype: D.dtype) -> str:
    return _CODES[dtype.name]


def is_disttorch_v2(head) -> bool:
    """Whether a file starting with ``head`` (at least 8 + len(PREFIX) bytes) must verify as disttorch v2."""
    got = bytes(head[8:8 + len(PREFIX)])
    if len(got) < len(PREFIX):
        return False
    return sum(_POPCOUNT[a ^ b] for a, b in zip(got, PREFIX)) <= _NEAR_BITS


def _hasher(key):
    return hmac.new(key, digestmod=hashlib.sha256) if key else hashlib.sha256()


def _seekable(f) -> bool:
    try:
        return bool(f.seekable()) and "a" not in getattr(f, "mode", "")
    except (AttributeError, OSError, ValueError):
        return False


def write(f, arrays: dict, metadata: dict) -> None:
    """Write ``arrays`` (name -> contiguous little-endian NumPy array) and string ``metadata`` as a disttorch
    version-2 file to the binary file ``f``, signed with the configured key if there is one.

    The data is hashed while it is written (one pass) when ``f`` can seek back to fill in the digest.
    """
    key = get_checkpoint_options().key
    alg = _ALGS[1] if key else _ALGS[0]
    header, offset = {}, 0
    meta = {"disttorch_digest": (alg + b"0" * _HEX).decode()}
    meta.update(metadata)
    header["__metadata__"] = meta  # first, so the digest sits at a fixed offset
    for name, arr in arrays.items():
        nbytes = arr.nbytes
        header[name] = {"dtype": code_of(D.from_numpy_dtype(arr.dtype)), "shape": list(arr.shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-(len(raw)) % 8)  # align the data section to 8 bytes
    assert raw.startswith(PREFIX + alg)
    head = struct.pack("<Q", len(raw)) + raw
    views = [memoryview(np.ascontiguousarray(a).reshape(-1).view(np.uint8)) for a in arrays.values()]
    h = _hasher(key)
    h.update(head)
    at = 8 + len(PREFIX) + len(alg)
    if _seekable(f):
        start = f.tell()
        f.write(head)
        for v in views:
            for i in range(0, len(v), _CHUNK):
                chunk = v[i:i + _CHUNK]
                f.write(chunk)
                h.update(chunk)
        end = f.tell()
        f.seek(start + at)
        f.write(h.hexdigest().encode())
        f.seek(end)
    else:
        for v in views:
            h.update(v)
        f.write(head[:at] + h.hexdigest().encode() + head[at + _HEX:])
        for v in views:
            f.write(v)


def _verify(buf, where: str, opts: CheckpointOptions) -> str:
    """Check a version-2 file's digest over ``buf`` (the whole file); returns the algorithm name."""
    mv = memoryview(buf)
    if bytes(mv[8:8 + len(PREFIX)]) != PREFIX:
        raise CheckpointError(f"{where}: corrupted disttorch checkpoint (its header prefix is damaged)")
    rest = bytes(mv[8 + len(PREFIX):8 + len(PREFIX) + len(_ALGS[1])])
    alg = next((a for a in _ALGS if rest.startswith(a)), None)
    if alg is None:
        raise CheckpointError(f"{where}: corrupted disttorch checkpoint (unknown digest algorithm)")
    at = 8 + len(PREFIX) + len(alg)
    want = bytes(mv[at:at + _HEX + 1])
    if len(want) != _HEX + 1 or want[-1:] != b'"' or not all(c in b"0123456789abcdef" for c in want[:-1]):
        raise CheckpointError(f"{where}: corrupted disttorch checkpoint (its digest field is damaged)")
    if alg == _ALGS[1] and opts.key is None:
        raise CheckpointError(f"{where}: the checkpoint is signed (hmac-sha256) but no key is configured to verify "
                              "it: set DISTTORCH_CHECKPOINT_KEY (hex) or disttorch.serialization."
                              "set_checkpoint_options(key=...)")
    h = _hasher(opts.key if alg == _ALGS[1] else None)
    h.update(mv[:at])
    h.update(b"0" * _HEX)
    h.update(mv[at + _HEX:])
    if not hmac.compare_digest(h.hexdigest().encode(), want[:-1]):
        if alg == _ALGS[1]:
            raise CheckpointError(f"{where}: the checkpoint's signature does not verify: it was changed after "
                                  "saving, or signed with another key")
        raise CheckpointError(f"{where}: corrupted: the checkpoint does not match its sha256 checksum (damaged or "
                              "truncated file)")
    return alg[:-1].decode()


def read(buf, where: str, opts: CheckpointOptions | None = None) -> tuple:
    """Parse ``buf`` (bytes-like, the whole file) -> (metadata dict, {name: NumPy array view}, digest).

    ``digest`` is "sha256" or "hmac-sha256" for a verified version-2 file, None for other files.
    ``where`` names the file in error messages.
    """
    opts = opts or get_checkpoint_options()
    size = len(buf)
    if size < 8:
        raise CheckpointError(f"{where}: not a disttorch checkpoint (file is {size} bytes, too short for a header)")
    digest = _verify(buf, where, opts) if is_disttorch_v2(buf[:8 + len(PREFIX)]) else None
    (hlen,) = struct.unpack("<Q", bytes(buf[:8]))
    if 8 + hlen > size:
        raise CheckpointError(f"{where}: not a disttorch checkpoint or truncated (header length {hlen} but the file "
                              f"has {size} bytes)")
    if hlen > opts.max_header_bytes:
        raise over_limit(where, "header size", hlen, "max_header_bytes", opts)
    try:
        header = json.loads(bytes(buf[8:8 + hlen]))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{where}: not a disttorch checkpoint (header is not valid JSON: {e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{where}: not a disttorch checkpoint (header is not a JSON object)")
    meta = header.pop("__metadata__", None)
    if meta is None:
        meta = {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{where}: corrupted header (__metadata__ must map names to strings)")
    start = 8 + hlen
    data = memoryview(buf)[start:]
    arrays = {}
    end_max = 0
    for name, info in header.items():
        dt, shape, lo, hi = _entry(where, name, info)
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
    if digest is None and want is not None and str(zlib.crc32(data[:end_max])) != want:
        raise CheckpointError(f"{where}: corrupted: the tensor data does not match its checksum")
    return meta, arrays, digest


def _entry(where: str, name: str, info) -> tuple:
    """(dtype, shape, start, end) of one header entry, checked."""
    ok = isinstance(info, dict) and isinstance(info.get("shape"), list) and isinstance(info.get("data_offsets"), list)
    if ok:
        shape, offs = info["shape"], info["data_offsets"]
        ok = (len(offs) == 2 and all(type(x) is int and x >= 0 for x in offs)
              and all(type(s) is int and s >= 0 for s in shape) and len(shape) <= 64)
    if not ok:
        raise CheckpointError(f"{where}: corrupted header entry for tensor {name!r}: {str(info)[:200]}")
    dt = _FROM_CODE.get(info.get("dtype"))
    if dt is None:
        raise CheckpointError(f"{where}: tensor {name!r} has dtype {str(info.get('dtype'))[:20]!r}, which disttorch "
                              f"does not read (known: {', '.join(_FROM_CODE)})")
    return dt, tuple(shape), offs[0], offs[1]
