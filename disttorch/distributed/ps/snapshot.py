"""Server snapshots: every key's value, update rule, hyperparameters, optimizer state and applied-update count.

A snapshot file is ``MAGIC`` followed by one record per key; a record is the frames of one signed protocol
message (``protocol.encode``: MAC, msgpack header, raw tensors), each frame prefixed by its length (8 bytes,
little-endian) and the record by its frame count (4 bytes). Reading checks every length against the file, then
decodes each record with the same checks as network input, including the MAC under the job secret: a snapshot
that was altered or written by another job is refused. Writing goes to a temporary file in the same directory,
fsync, then ``os.replace``: a reader sees the old snapshot or the new one, never half of one.
"""
from __future__ import annotations

import os
import struct

from . import protocol as P

MAGIC = b"DTPSSNAP1\n"
_LEN = struct.Struct("<Q")
_COUNT = struct.Struct("<I")
_ZERO_ID = b"\0" * 16


def path_for(directory: str, server_id: int) -> str:
    """Where server ``server_id`` keeps its snapshot in ``directory``."""
    return os.path.join(directory, f"ps-server{server_id}.snapshot")


def write(path: str, mac, records: list) -> None:
    """Write ``records`` (``(header fields, arrays)`` per key) atomically to ``path``."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        for fields, arrays in records:
            frames = P.encode(mac, dict(fields, t="snapshot", n=0, f=_ZERO_ID), arrays)
            f.write(_COUNT.pack(len(frames)))
            for fr in frames:
                mv = memoryview(fr).cast("B")
                f.write(_LEN.pack(mv.nbytes))
                f.write(mv)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read(path: str, mac) -> list:
    """The records of the snapshot at ``path``.

    Raises:
        ValueError: the file is not a complete snapshot of this job (names the file and what is wrong).
    """
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(MAGIC):
        raise ValueError(f"parameter-server snapshot {path}: not a snapshot file (bad magic)")
    mv, pos, out = memoryview(data), len(MAGIC), []
    while pos < len(data):
        if pos + _COUNT.size > len(data):
            raise ValueError(f"parameter-server snapshot {path}: truncated at byte {pos}")
        (count,) = _COUNT.unpack_from(data, pos)
        pos += _COUNT.size
        if not 2 <= count <= P.MAX_TENSORS + 2:
            raise ValueError(f"parameter-server snapshot {path}: record of {count} frames at byte {pos}")
        frames = []
        for _ in range(count):
            if pos + _LEN.size > len(data):
                raise ValueError(f"parameter-server snapshot {path}: truncated at byte {pos}")
            (n,) = _LEN.unpack_from(data, pos)
            pos += _LEN.size
            if n > len(data) - pos:
                raise ValueError(f"parameter-server snapshot {path}: a frame of {n} bytes runs past the end "
                                 f"of the file at byte {pos}")
            frames.append(mv[pos:pos + n])
            pos += n
        try:
            header, arrays = P.decode(mac, frames)
        except P.ProtocolError as e:
            raise ValueError(f"parameter-server snapshot {path}: {e} (altered, or written by another job: its "
                             f"DISTTORCH_JOB_SECRET differs)") from None
        out.append((header, arrays))
    return out


def read_port(directory: str, server_id: int) -> int:
    """The port server ``server_id`` served on before (0 when unknown)."""
    try:
        with open(os.path.join(directory, f"ps-server{server_id}.port")) as f:
            port = int(f.read(16).strip())
    except (OSError, ValueError):
        return 0
    return port if 0 < port < 65536 else 0


def write_port(directory: str, server_id: int, port: int) -> None:
    """Record the port server ``server_id`` serves on, for its restart."""
    path = os.path.join(directory, f"ps-server{server_id}.port")
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{int(port)}\n")
    os.replace(tmp, path)
