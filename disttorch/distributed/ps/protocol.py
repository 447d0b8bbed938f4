"""The parameter server's wire format over the messaging layer ``_wire`` (see docs/ps-protocol.md).

A message is ``[mac, header, *tensors]`` (a ROUTER sees the peer's identity first):

- ``header``: a msgpack map with ``v`` (protocol version), ``t`` (type), ``n`` (the sender's counter), ``f`` (the
  sender's 16-byte id), ``x`` (the receiver's 16-byte session nonce; absent in ``hello``), ``a`` (one
  ``[dtype, shape]`` per tensor frame) and type-specific fields such as ``k`` (key);
- each tensor is its raw C-order bytes in its own frame, sent and received without copies;
- ``mac``: ``_wire.Mac`` (HMAC-SHA256 over the length-prefixed header and tensor frames) under the ``ps`` sub-key
  of the job secret.

``decode`` checks everything before anything is trusted: frame count, header size, MAC, msgpack, field types,
the version, dtypes from a fixed table, shapes (non-negative, bounded rank and element count) and that each
tensor frame holds exactly ``prod(shape) * itemsize`` bytes. No pickle is involved anywhere.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _wire

VERSION = 1
MAX_HEADER = 64 << 10  # bytes of one msgpack header
MAX_TENSORS = 4096  # tensor frames in one message
MAX_NDIM = 32
_MAX_DIM = 1 << 48  # elements along one dimension
DEFAULT_MAX_MESSAGE = 1 << 30  # one frame; DISTTORCH_MAX_MESSAGE_BYTES overrides it
PURPOSE = "ps"


class ProtocolError(ValueError):
    """A message that fails a check; ``reason`` is a ``_wire.DropLog`` reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _dtypes() -> dict:
    from ... import _dtype as D

    return {d.name: np.dtype(d.np) for d in D._ALL}


_DTYPES: Optional[dict] = None
_NAMES: dict = {}  # NumPy dtype -> wire name (the reverse of the table, for encode)
_msgpack = None


def dtype_table() -> dict:
    """Wire dtype name -> NumPy dtype (disttorch's dtype names: float32, bfloat16, bool, ...)."""
    global _DTYPES
    if _DTYPES is None:
        _DTYPES = _dtypes()
        _NAMES.update((d, name) for name, d in _DTYPES.items())
    return _DTYPES


def _mp():
    global _msgpack
    if _msgpack is None:
        import msgpack

        _msgpack = msgpack
    return _msgpack


def dtype_name(dt) -> str:
    """The wire name of a NumPy dtype."""
    name = _NAMES.get(dt)
    if name is not None:
        return name
    dt = np.dtype(dt)
    for name, d in dtype_table().items():
        if d == dt:
            return name
    raise TypeError(f"parameter server: dtype {dt} cannot be sent (supported: {', '.join(dtype_table())})")


def tensor_frame(arr: np.ndarray):
    """``([dtype, shape], buffer)`` for a NumPy array; the buffer is the array itself when C-contiguous."""
    if arr.__class__ is not np.ndarray:
        arr = np.asarray(arr)
    shape = list(arr.shape)  # before ascontiguousarray, which makes a 0-d array 1-d
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    view = arr.reshape(-1).view(np.uint8) if arr.size else b""
    return [dtype_name(arr.dtype), shape], view


def pack(header: dict, arrays=()) -> tuple:
    """``(raw header, tensor buffers)`` of one message, unsigned; ``header["a"]`` is filled from ``arrays``."""
    specs, bufs = [], []
    for a in arrays:
        spec, buf = tensor_frame(a)
        specs.append(spec)
        bufs.append(buf)
    header["v"], header["a"] = VERSION, specs
    return _mp().packb(header, use_bin_type=True), bufs


def encode(mac: _wire.Mac, header: dict, arrays=()) -> list:
    """The frames ``[mac, header, *tensors]`` of one message; ``header["a"]`` is filled from ``arrays``."""
    raw, bufs = pack(dict(header), arrays)
    return [mac.sign(raw, *bufs), raw, *bufs]


def payload_bytes(frames: list) -> int:
    """The bytes a MAC of ``frames = [mac, header, *tensors]`` hashes (what decides where it is hashed)."""
    n = 0
    for f in frames[1:]:
        n += len(f)  # zmq.Frame and bytes: their length in bytes
    return n


def _check_spec(spec, buf, table) -> np.ndarray:
    if not (spec.__class__ is list and len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], list)):
        raise ProtocolError("malformed", "tensor spec is not [dtype, shape]")
    name, shape = spec
    dt = table.get(name)
    if dt is None:
        raise ProtocolError("malformed", f"unknown dtype {name[:40]!r}")
    if len(shape) > MAX_NDIM:
        raise ProtocolError("malformed", f"bad shape {shape[:8]!r}")
    n = 1
    for s in shape:
        if type(s) is not int or not 0 <= s < _MAX_DIM:
            raise ProtocolError("malformed", f"bad shape {shape[:8]!r}")
        n *= s
    nbytes = memoryview(buf).nbytes
    if n * dt.itemsize != nbytes:
        raise ProtocolError("truncated", f"shape {shape} of {name} needs {n * dt.itemsize} bytes, the frame "
                                         f"has {nbytes}")
    if not n:
        return np.empty(tuple(shape), dt)
    arr = np.frombuffer(buf, dtype=dt, count=n)
    return arr if len(shape) == 1 else arr.reshape(tuple(shape))


def split(frames: list) -> tuple:
    """``(mac, header, tensors)`` of ``frames = [mac, header, *tensors]`` (bytes or zmq.Frame) after the checks
    that come before any hashing: the frame count and the header size.

    Raises:
        ProtocolError: ``malformed``.
    """
    if not 2 <= len(frames) <= MAX_TENSORS + 2:
        raise ProtocolError("malformed", f"{len(frames)} frames")
    bufs = [f.buffer if hasattr(f, "buffer") else f for f in frames]
    raw = bufs[1]
    if memoryview(raw).nbytes > MAX_HEADER:
        raise ProtocolError("malformed", f"header of {memoryview(raw).nbytes} bytes (limit {MAX_HEADER})")
    return bytes(bufs[0]), raw, bufs[2:]


def parse(raw, tensors: list) -> tuple:
    """``(header, arrays)`` of a message whose MAC verified: msgpack, field types, version, tensor specs.

    Raises:
        ProtocolError: ``malformed`` or ``truncated``, with what is wrong.
    """
    try:
        header = _mp().unpackb(raw, raw=False, max_bin_len=MAX_HEADER, max_str_len=MAX_HEADER,
                               max_array_len=MAX_TENSORS * 2, max_map_len=64)
    except Exception as e:  # noqa: BLE001 - signed but not msgpack: another version or a bug
        raise ProtocolError("malformed", f"header is not msgpack ({type(e).__name__})") from None
    if header.__class__ is not dict:
        raise ProtocolError("malformed", "header is not a map")
    if header.get("v") != VERSION:
        raise ProtocolError("malformed", f"protocol version {header.get('v')!r}, expected {VERSION}")
    if not isinstance(header.get("t"), str) or type(header.get("n")) is not int or not _is_id(header.get("f")):
        raise ProtocolError("malformed", "header lacks type (t), counter (n) or sender (f)")
    specs = header.get("a")
    if specs.__class__ is not list or len(specs) != len(tensors):
        raise ProtocolError("malformed", f"header announces {len(specs) if isinstance(specs, list) else '?'} "
                                         f"tensors, the message has {len(tensors)}")
    if not specs:
        return header, []
    table = _DTYPES or dtype_table()
    return header, [_check_spec(s, b, table) for s, b in zip(specs, tensors)]


def decode(mac: _wire.Mac, frames: list) -> tuple:
    """``(header, arrays)`` of ``frames = [mac, header, *tensors]`` (frames as bytes or zmq.Frame).

    Raises:
        ProtocolError: with the DropLog reason (``malformed``, ``bad_mac``, ``truncated``) and what is wrong.
    """
    sig, raw, tensors = split(frames)
    if not mac.verify(sig, raw, *tensors):
        raise ProtocolError("bad_mac", "bad MAC")
    return parse(raw, tensors)


def _is_id(x) -> bool:
    return isinstance(x, bytes) and len(x) == _wire.NONCE_SIZE


is_id = _is_id


def make_mac(secret: bytes) -> _wire.Mac:
    """The parameter server's MAC under the ``ps`` sub-key of the job secret."""
    return _wire.Mac(_wire.subkey(secret, PURPOSE))
