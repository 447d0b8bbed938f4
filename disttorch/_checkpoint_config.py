"""Checkpoint errors, limits and keys: what ``disttorch.load`` / ``disttorch.save`` accept, set in one place.

Every reader of checkpoint bytes (disttorch files, plain safetensors files, PyTorch ``.pt`` zips, the object
collectives) takes its limits from :func:`get_checkpoint_options`. Each field can be set three ways, the first
that is set wins:

1. ``with disttorch.serialization.checkpoint_options(max_depth=200): ...`` (this thread/task only),
2. ``disttorch.serialization.set_checkpoint_options(max_depth=200)`` (the whole process),
3. the environment variable ``DISTTORCH_CHECKPOINT_MAX_DEPTH=200`` (read at every save/load),

else the default below. An error caused by a limit names the limit, its value and how to raise it.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import pickle
from typing import Iterator, Optional

__all__ = ["CheckpointError", "UnsupportedGlobalError", "CheckpointOptions", "get_checkpoint_options",
           "set_checkpoint_options", "checkpoint_options"]

# Decoding and encoding recurse once per nesting level through msgpack's hooks: measured, about 1.3 KB of C stack
# per level (a 1 MiB thread stack overflows near 790 levels, the 8 MiB main thread near 6,400; unpackb instead of
# Unpacker: 23 and 194) and 3 Python frames (Python's default recursion limit of 1000 stops both near 330 levels).
# The ceiling keeps any setting inside both with margin; the default of 100 uses about 130 KB of stack.
MAX_DEPTH_CEILING = 250


class CheckpointError(RuntimeError):
    """A checkpoint file is truncated, corrupted, over a limit or not in a format disttorch reads."""


class UnsupportedGlobalError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint names a class, function or pickle opcode that weights-only loading does not allow.

    It is a ``pickle.UnpicklingError`` as in PyTorch, and a :class:`CheckpointError` like every other refusal.
    """


@dataclasses.dataclass(frozen=True)
class CheckpointOptions:
    """The limits and keys in force for checkpoint reading and writing.

    Attributes:
        max_depth: nesting levels of a saved/loaded object: every list, dict, tuple, set, OrderedDict, tensor,
            object, enum and slice is one level. Save refuses what load would refuse. At most 250.
        max_header_bytes: size of a safetensors/disttorch JSON header.
        max_pickle_bytes: decompressed size of a ``.pt`` file's ``data.pkl``.
        max_pickle_ops: pickle opcodes a ``.pt`` file's ``data.pkl`` may execute.
        max_pickle_memo: entries of the pickle memo.
        max_pickle_stack: entries of the pickle stack plus open marks.
        max_decompressed_bytes: total bytes that compressed (deflate) members of a ``.pt`` zip may expand to
            (PyTorch stores members uncompressed).
        max_expand_bytes: bytes the ``.pt`` reader may build beyond the size of the storages it read (stride-0
            expansion, overlapping views of one storage).
        key: HMAC-SHA256 key (bytes, at least 16) for signing and verifying disttorch files; None for none.
            With a key, load refuses files that are not signed with it.
        allow_unsigned: with a key set, still load unsigned files (disttorch files with only a checksum,
            older disttorch files, plain safetensors and ``.pt`` files).
    """

    max_depth: int = 100
    max_header_bytes: int = 100 << 20
    max_pickle_bytes: int = 64 << 20
    max_pickle_ops: int = 10_000_000
    max_pickle_memo: int = 1_000_000
    max_pickle_stack: int = 1_000_000
    max_decompressed_bytes: int = 256 << 20
    max_expand_bytes: int = 256 << 20
    key: Optional[bytes] = None
    allow_unsigned: bool = False


_INT_FIELDS = ("max_depth", "max_header_bytes", "max_pickle_bytes", "max_pickle_ops", "max_pickle_memo",
               "max_pickle_stack", "max_decompressed_bytes", "max_expand_bytes")
_FIELDS = _INT_FIELDS + ("key", "allow_unsigned")
_process: dict = {}
_scoped: contextvars.ContextVar = contextvars.ContextVar("disttorch_checkpoint_options", default={})


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return f"DISTTORCH_CHECKPOINT_{field.upper()}"


def _check(field: str, value, source: str):
    if field not in _FIELDS:
        raise TypeError(f"checkpoint options: unknown option {field!r} (known: {', '.join(_FIELDS)})")
    if field in _INT_FIELDS:
        if type(value) is not int or value < 1:
            raise ValueError(f"checkpoint options: {field} from {source} must be a positive int, got {value!r}")
        if field == "max_depth" and value > MAX_DEPTH_CEILING:
            raise ValueError(f"checkpoint options: max_depth from {source} is {value}, above the ceiling "
                             f"{MAX_DEPTH_CEILING} that keeps loading within a 1 MiB thread stack and "
                             "Python's default recursion limit")
        return value
    if field == "allow_unsigned":
        return bool(value)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value)
        except ValueError:
            raise ValueError(f"checkpoint options: key from {source} is not a hex string") from None
    if not isinstance(value, (bytes, bytearray)) or len(value) < 16:
        raise ValueError(f"checkpoint options: key from {source} must be at least 16 bytes (32 hex digits)")
    return bytes(value)


def _from_env() -> dict:
    out = {}
    for field in _FIELDS:
        raw = os.environ.get(env_name(field))
        if raw is None or raw == "":
            continue
        if field in _INT_FIELDS:
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"{env_name(field)}={raw!r} is not an integer") from None
        elif field == "allow_unsigned":
            value = raw.strip().lower() not in ("0", "false", "no")
        else:
            value = raw.strip()
        out[field] = _check(field, value, env_name(field))
    return out


def get_checkpoint_options() -> CheckpointOptions:
    """The options in force here: ``checkpoint_options`` > ``set_checkpoint_options`` > environment > default."""
    merged = _from_env()
    merged.update(_process)
    merged.update(_scoped.get())
    return CheckpointOptions(**merged)


def set_checkpoint_options(**options) -> None:
    """Set checkpoint options for the whole process; ``name=None`` removes that setting again.

    Example:
        >>> disttorch.serialization.set_checkpoint_options(max_depth=200, key=bytes.fromhex("00" * 32))
    """
    for field, value in options.items():
        if value is None and field in _FIELDS:
            _process.pop(field, None)
        else:
            _process[field] = _check(field, value, "set_checkpoint_options")


@contextlib.contextmanager
def checkpoint_options(**options) -> Iterator[CheckpointOptions]:
    """Context manager: these checkpoint options inside the block (this thread or asyncio task only).

    Example:
        >>> with disttorch.serialization.checkpoint_options(max_pickle_ops=50_000_000):
        ...     sd = disttorch.load("huge.pt")
    """
    new = dict(_scoped.get())
    new.update({field: _check(field, value, "checkpoint_options") for field, value in options.items()})
    token = _scoped.set(new)
    try:
        yield get_checkpoint_options()
    finally:
        _scoped.reset(token)


def over_limit(where: str, what: str, value, field: str, opts: CheckpointOptions) -> CheckpointError:
    """The error for ``what`` (amounting to ``value``) over the limit ``field``: names both and how to raise it."""
    return CheckpointError(f"{where}: {what} ({value}) exceeds the limit {field}={getattr(opts, field)} (set "
                           f"{env_name(field)} or disttorch.serialization.set_checkpoint_options({field}=...) "
                           "to raise it)")
