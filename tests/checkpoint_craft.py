"""Build hostile and hand-made checkpoint files for the checkpoint tests, independently of disttorch's writers.

- ``rebuild_pickle``: a protocol-2 data.pkl calling torch._utils._rebuild_tensor_v2, written opcode by opcode.
- ``zip_file``: a zip archive from members whose stored bytes, CRC and declared size the caller chooses (so a
  member can lie about its size), without zipfile's writer.
- ``deflate_repeat``: a raw deflate stream of a byte repeated up to GiBs, made in milliseconds from one
  compressed block (full flushes make the blocks identical), with its CRC-32 from ``crc32_combine``.
- ``disttorch_v2``: a disttorch version-2 file around any msgpack structure, digest computed here with hashlib.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import zlib

STORED, DEFLATED = 0, 8


def _ser_str(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _ser_int(n: int) -> bytes:
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if -2 ** 31 <= n < 2 ** 31:
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def _ser_tuple(items) -> bytes:
    return b"(" + b"".join(_ser_int(i) for i in items) + b"t"


def rebuild_pickle(offset: int, size, stride, numel: int, storage: str = "FloatStorage", key: str = "0",
                   requires_grad: bool = False, location: str = "cpu") -> bytes:
    """data.pkl for one tensor: _rebuild_tensor_v2(storage pid, offset, size, stride, requires_grad, OrderedDict())."""
    pid = b"(" + _ser_str("storage") + f"ctorch\n{storage}\n".encode() + _ser_str(key) + _ser_str(location) \
        + _ser_int(numel) + b"tQ"
    return (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(" + pid + _ser_int(offset) + _ser_tuple(size)
            + _ser_tuple(stride) + (b"\x88" if requires_grad else b"\x89")
            + b"ccollections\nOrderedDict\n)RtR.")


def zip_file(members: list) -> bytes:
    """members: (name, method, stored bytes, crc32, declared uncompressed size) -> the archive's bytes."""
    out, central = bytearray(), bytearray()
    for name, method, data, crc, usize in members:
        nb = name.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), usize, len(nb), 0)
        out += nb + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(data), usize,
                               len(nb), 0, 0, 0, 0, 0, offset) + nb
    cd_offset = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), cd_offset, 0)
    return bytes(out)


def stored(name: str, data: bytes) -> tuple:
    return (name, STORED, data, zlib.crc32(data), len(data))


def pt_zip(data_pkl: bytes, storages: dict | None = None, prefix: str = "archive") -> bytes:
    """A PyTorch-layout checkpoint: <prefix>/data.pkl, byteorder and data/<key> members, all stored."""
    members = [stored(f"{prefix}/data.pkl", data_pkl), stored(f"{prefix}/byteorder", b"little")]
    members += [stored(f"{prefix}/data/{k}", v) for k, v in (storages or {}).items()]
    return zip_file(members)


def _gf2_times(mat: list, vec: int) -> int:
    s, i = 0, 0
    while vec:
        if vec & 1:
            s ^= mat[i]
        vec >>= 1
        i += 1
    return s


def _gf2_square(mat: list) -> list:
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of A + B from crc32(A), crc32(B) and len(B) (zlib's algorithm; Python's zlib lacks it)."""
    if len2 == 0:
        return crc1
    odd = [0xEDB88320] + [1 << (n - 1) for n in range(1, 32)]
    even = _gf2_square(odd)
    odd = _gf2_square(even)
    while True:
        even = _gf2_square(odd)
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


def deflate_repeat(head: bytes, byte: bytes, count: int, tail: bytes, block: int = 1 << 20) -> tuple:
    """(raw deflate stream, crc32, size) of ``head + byte * count + tail``; ``count`` a multiple of ``block``."""
    assert count % block == 0
    chunk = byte * block
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    rep = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    assert rep == again  # after a full flush the same input compresses to the same block
    last = c.compress(tail) + c.flush()
    n = count // block
    crc_body, crc_pow, pow_len = None, zlib.crc32(chunk), block  # crc of chunk * n by binary doubling
    k = n
    while k:
        if k & 1:
            crc_body = crc_pow if crc_body is None else crc32_combine(crc_body, crc_pow, pow_len)
        k >>= 1
        if k:
            crc_pow = crc32_combine(crc_pow, crc_pow, pow_len)
            pow_len *= 2
    crc = crc32_combine(zlib.crc32(head), crc_body, count)
    crc = crc32_combine(crc, zlib.crc32(tail), len(tail))
    return first + rep * n + last, crc, len(head) + count + len(tail)


PREFIX = b'{"__metadata__":{"disttorch_digest":"'


def disttorch_v2(structure: bytes, tensors: dict | None = None, key: bytes | None = None,
                 meta_extra: dict | None = None) -> bytes:
    """A disttorch version-2 file: header JSON (digest first), tensors as little-endian bytes, digest via hashlib."""
    alg = "hmac-sha256:" if key else "sha256:"
    meta = {"disttorch_digest": alg + "0" * 64, "format": "disttorch", "version": "2",
            "structure": base64.b64encode(structure).decode()}
    meta.update(meta_extra or {})
    header, data, offset = {"__metadata__": meta}, b"", 0
    codes = {"float32": "F32", "float64": "F64", "int64": "I64", "uint8": "U8"}
    for name, arr in (tensors or {}).items():
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": codes[arr.dtype.name], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        data += raw
        offset += len(raw)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    blob = struct.pack("<Q", len(raw)) + raw + data
    digest = (hmac.new(key, blob, hashlib.sha256) if key else hashlib.sha256(blob)).hexdigest().encode()
    at = 8 + len(PREFIX) + len(alg)
    return blob[:at] + digest + blob[at + 64:]


def verify_v2(blob: bytes, key: bytes | None = None) -> dict:
    """Parse and verify a disttorch v2 file as any safetensors reader plus hashlib would; returns the header."""
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen])
    meta = header["__metadata__"]
    alg, hexd = meta["disttorch_digest"].split(":")
    at = blob.index(hexd.encode())
    zeroed = blob[:at] + b"0" * 64 + blob[at + 64:]
    want = (hmac.new(key, zeroed, hashlib.sha256) if alg == "hmac-sha256" else hashlib.sha256(zeroed)).hexdigest()
    assert hexd == want, "digest does not verify"
    assert blob[8:8 + len(PREFIX)] == PREFIX
    return header
