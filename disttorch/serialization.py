"""Checkpoints: ``disttorch.save`` / ``disttorch.load``, as ``torch.save`` / ``torch.load`` (weights-only).

A disttorch checkpoint is a safetensors file: tensor bytes in the safetensors layout, and the Python
structure around them (dicts, lists, tuples, numbers, strings, bytes, dtypes, whole objects such as
Modules) encoded with msgpack in the header's metadata. The first metadata field is a SHA-256 digest of the
whole file (an HMAC-SHA256 when a key is configured), checked before anything else is read. Loading runs no
code from the file: types are rebuilt from a fixed set of tags, and an object of a class is rebuilt only
when that class is allowlisted with ``add_safe_globals`` / ``safe_globals`` (PyTorch's weights-only rules),
by ``cls.__new__`` plus its saved ``__dict__`` (or ``__setstate__``). Saving to a path is atomic: temporary
file, fsync, rename (see ``disttorch._checkpoint_files``).

``load`` also reads older disttorch files, plain safetensors files (a dict of tensors) and PyTorch ``.pt``
zip checkpoints that hold tensors and containers only (see ``disttorch._pt_format``), without PyTorch
installed. Every reader checks sizes, offsets and nesting against limits (``set_checkpoint_options``,
``checkpoint_options``, ``DISTTORCH_CHECKPOINT_*`` variables; see ``disttorch._checkpoint_config``), and
every damaged or malformed file raises :class:`CheckpointError`.

Example:
    >>> disttorch.save({"model": model.state_dict(), "epoch": 3}, "ckpt.pt")
    >>> ckpt = disttorch.load("ckpt.pt")
    >>> with disttorch.serialization.safe_globals([MyNet]):
    ...     net = disttorch.load("whole_model.pt")
"""
from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import enum
import io
import os
import struct
import warnings
import zipfile
import zlib
from typing import Any

import msgpack
import numpy as np

from . import _checkpoint_structure as CS
from . import _dtype as D
from . import _internals as E
from . import _safetensors as ST
from . import _tensor as T
from ._checkpoint_config import (CheckpointError, CheckpointOptions, UnsupportedGlobalError, checkpoint_options,
                                 env_name, get_checkpoint_options, set_checkpoint_options)
from ._checkpoint_decode import (Decoder, GlobalsCollector, UserCodeError, builtin_global, map_device, move,
                                 unpacker)
from ._checkpoint_files import atomic_write
from ._device import device as _device_cls
from ._size import Size

__all__ = ["save", "load", "add_safe_globals", "get_safe_globals", "clear_safe_globals", "safe_globals",
           "get_unsafe_globals_in_checkpoint", "CheckpointError", "UnsupportedGlobalError", "CheckpointOptions",
           "get_checkpoint_options", "set_checkpoint_options", "checkpoint_options"]

_FORMAT, _VERSION = "disttorch", "2"
_READABLE_VERSIONS = ("1", "2")

_safe: list = []  # user allowlist (add_safe_globals)
_scoped: list = []  # safe_globals context stack


def _qualname(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _entry_name(entry) -> tuple:
    """(object, qualified name) for an allowlist entry: a class/function or a (object, "module.name") pair."""
    if isinstance(entry, tuple):
        return entry[0], entry[1]
    return entry, _qualname(entry)


def add_safe_globals(safe_globals: list) -> None:
    """Allow ``load`` to rebuild objects of these classes (or reference these functions).

    Example:
        >>> disttorch.serialization.add_safe_globals([MyNet, disttorch.nn.Linear])
    """
    _safe.extend(safe_globals)


def get_safe_globals() -> list:
    """The user allowlist set by ``add_safe_globals``."""
    return list(_safe)


def clear_safe_globals() -> None:
    """Empty the user allowlist."""
    _safe.clear()


@contextlib.contextmanager
def safe_globals(safe_globals: list):
    """Context manager: allowlist these classes/functions for ``load`` inside the block."""
    _scoped.append(list(safe_globals))
    try:
        yield
    finally:
        _scoped.pop()


def _allowed() -> dict:
    table = {}
    for entry in list(_safe) + [e for scope in _scoped for e in scope]:
        obj, name = _entry_name(entry)
        table[name] = obj
    return table


def _depth_hint() -> str:
    return (f"set {env_name('max_depth')} or disttorch.serialization.set_checkpoint_options(max_depth=...) to "
            "raise it")


# ------------------------------------------------------------------------------------------------------------
# save
# ------------------------------------------------------------------------------------------------------------
class _Encoder:
    def __init__(self, max_depth: int) -> None:
        self.arrays: dict = {}
        self.tensor_keys: dict = {}  # id(tensor) -> key, so tied weights stay one tensor
        self.objects: dict = {}  # id(obj) -> memo index
        self.keep: list = []  # keeps encoded objects alive so ids stay unique
        self.max_depth = max_depth
        self.chain: list = []  # kinds of the tagged values being encoded, outermost first

    def pack(self, obj) -> bytes:
        return msgpack.packb(obj, default=self.default, strict_types=True, use_bin_type=True)

    def ext(self, code: int, payload) -> msgpack.ExtType:
        # packb called here rather than through self.pack: one Python frame less per nesting level
        if code in CS.LEAF_TAGS:
            return msgpack.ExtType(code, msgpack.packb(payload, default=self.default, strict_types=True,
                                                       use_bin_type=True))
        self.enter(code)
        try:
            return msgpack.ExtType(code, msgpack.packb(payload, default=self.default, strict_types=True,
                                                       use_bin_type=True))
        finally:
            self.chain.pop()

    def enter(self, code: int) -> None:
        # Each tagged container recurses through msgpack: stop before the C stack gets deep. Untagged lists and
        # dicts between them also count, so the exact check runs on the packed bytes afterwards (with the path).
        self.chain.append(CS.TAG_NAMES[code])
        if len(self.chain) > self.max_depth:
            shown = self.chain[:3] + ["..."] + self.chain[-2:]
            raise CheckpointError(f"disttorch.save: nesting depth exceeds the limit max_depth={self.max_depth} "
                                  f"(at least {len(self.chain)} nested {' > '.join(shown)}) ({_depth_hint()})")

    def tensor(self, t: T.Tensor) -> msgpack.ExtType:
        key = self.tensor_keys.get(id(t))
        if key is None:
            key = f"t{len(self.arrays)}"
            self.tensor_keys[id(t)] = key
            self.keep.append(t)
            arr = E.to_host(E.array(t))
            self.arrays[key] = arr if arr.flags.c_contiguous else arr.copy(order="C")
        kind = _qualname(type(t)) if type(t) is not T.Tensor else None
        attrs = getattr(t, "__dict__", None) or {}
        return self.ext(CS.TENSOR, [key, t._requires_grad, str(t.device), kind, attrs])

    def default(self, obj):  # noqa: C901 - one branch per supported type
        cls = type(obj)
        if isinstance(obj, T.Tensor):
            return self.tensor(obj)
        if cls is tuple:
            return self.ext(CS.TUPLE, list(obj))
        if cls is Size:
            return self.ext(CS.SIZE, list(obj))
        if cls is D.dtype:
            return self.ext(CS.DTYPE, obj.name)
        if cls is _device_cls:
            return self.ext(CS.DEVICE, str(obj))
        if cls is collections.OrderedDict:
            attrs = dict(getattr(obj, "__dict__", {}))
            return self.ext(CS.ODICT, [list(obj.items()), attrs])
        if cls is set:
            return self.ext(CS.SET, list(obj))
        if cls is frozenset:
            return self.ext(CS.FROZENSET, list(obj))
        if cls is complex:
            return self.ext(CS.COMPLEX, [obj.real, obj.imag])
        if cls is int:  # only reached for ints msgpack cannot hold (beyond 64 bits)
            return self.ext(CS.BIGINT, str(obj))
        if cls is slice:
            return self.ext(CS.SLICE, [obj.start, obj.stop, obj.step])
        if cls is range:
            return self.ext(CS.RANGE, [obj.start, obj.stop, obj.step])
        if cls is np.ndarray:
            key = f"t{len(self.arrays)}"
            self.arrays[key] = obj if obj.flags.c_contiguous else obj.copy(order="C")
            return self.ext(CS.NDARRAY, key)
        if isinstance(obj, np.generic):
            return self.ext(CS.NPSCALAR, [obj.dtype.str, obj.tobytes()])
        if isinstance(obj, type) or _is_function(obj):
            return self.ext(CS.GLOBAL, _qualname(obj))
        if isinstance(obj, enum.Enum):
            return self.ext(CS.ENUM, [_qualname(cls), obj.value])
        return self.obj(obj)

    def obj(self, obj) -> msgpack.ExtType:
        memo = self.objects.get(id(obj))
        if memo is not None:
            return msgpack.ExtType(CS.REF, self.pack(memo))
        self.objects[id(obj)] = len(self.objects)
        self.keep.append(obj)
        cls = type(obj)
        if cls.__getstate__ is not object.__getstate__:
            state, how = obj.__getstate__(), "setstate"
        elif hasattr(obj, "__dict__"):
            state, how = obj.__dict__, "dict"
        else:
            raise TypeError(f"disttorch.save: cannot save an object of type {_qualname(cls)} (it has neither "
                            "__dict__ nor __getstate__)")
        extra = None
        if isinstance(obj, dict):
            extra = ["dict", list(obj.items())]
        elif isinstance(obj, list):
            extra = ["list", list(obj)]
        # class name first, so the loader can create the object before decoding its state (cycles, shared refs)
        self.enter(CS.OBJECT)
        try:
            return msgpack.ExtType(CS.OBJECT, self.pack(_qualname(cls)) + self.pack([how, state, extra]))
        finally:
            self.chain.pop()


def _is_function(obj) -> bool:
    import types
    return isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type(len)))


def _encode(obj, opts: CheckpointOptions) -> tuple:
    enc = _Encoder(opts.max_depth)
    try:
        structure = enc.pack(obj)
    except TypeError as e:
        raise TypeError(f"disttorch.save: {e}") from None
    except (ValueError, RecursionError) as e:
        if isinstance(e, ValueError) and "recursion limit" not in str(e):
            raise
        raise CheckpointError(f"disttorch.save: nesting depth exceeds the limit max_depth={opts.max_depth} (or a "
                              f"list or dict contains itself) ({_depth_hint()})") from None
    # The same check load runs: save refuses exactly what load would refuse.
    CS.check(structure, opts.max_depth, "disttorch.save", _depth_hint())
    return structure, enc.arrays


def save(obj: Any, f, pickle_module=None, pickle_protocol: int = 2, _use_new_zipfile_serialization: bool = True,
         _disable_byteorder_record: bool = False) -> None:
    """Save ``obj`` (tensors, state_dicts, optimizer state, containers, Modules) to a path or binary file.

    Writing to a path is atomic: the data goes to a temporary file in the same directory, which is
    fsynced and renamed over ``f`` (over the file a symlink ``f`` points to), so a crash mid-save leaves any
    previous checkpoint intact. A new file gets the permissions ``open()`` would give it; a replaced file
    keeps its permissions. The file carries a SHA-256 digest of its content, or an HMAC-SHA256 signature
    when a key is configured (``DISTTORCH_CHECKPOINT_KEY``).

    Raises:
        CheckpointError: ``obj`` nests deeper than the ``max_depth`` limit (which ``load`` would refuse).
        TypeError: ``obj`` holds something that cannot be saved.

    Example:
        >>> disttorch.save({"model": net.state_dict(), "step": 100}, "ckpt.pt")
    """
    opts = get_checkpoint_options()
    structure, arrays = _encode(obj, opts)
    meta = {"format": _FORMAT, "version": _VERSION, "structure": base64.b64encode(structure).decode("ascii")}
    if isinstance(f, (str, os.PathLike)):
        atomic_write(f, lambda out: ST.write(out, arrays, meta))
    else:
        ST.write(f, arrays, meta)


# ------------------------------------------------------------------------------------------------------------
# load
# ------------------------------------------------------------------------------------------------------------
_PARSE_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError, UnicodeDecodeError,
                 struct.error, zipfile.BadZipFile, zipfile.LargeZipFile, RecursionError, MemoryError, EOFError,
                 zlib.error, msgpack.exceptions.ExtraData, msgpack.exceptions.FormatError,
                 msgpack.exceptions.StackError, msgpack.exceptions.OutOfData)


def _where(f) -> str:
    return os.fspath(f) if isinstance(f, (str, os.PathLike)) else str(getattr(f, "name", "<file object>"))


def _read_all(f, where: str) -> bytearray:
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            buf = bytearray(size)
            n = fh.readinto(buf)
            if n != size:
                raise CheckpointError(f"{where}: short read ({n} of {size} bytes)")
            return buf
    return bytearray(f.read())


def _refuse_unsigned(where: str, what: str, opts: CheckpointOptions) -> None:
    if opts.key is not None and not opts.allow_unsigned:
        raise CheckpointError(f"{where}: {what} is not signed, and a checkpoint key is configured, so only files "
                              f"signed with it load (set {env_name('allow_unsigned')}=1 or "
                              "disttorch.serialization.checkpoint_options(allow_unsigned=True) to load it anyway)")


def load(f, map_location=None, pickle_module=None, *, weights_only: bool | None = None, mmap: bool | None = None,
         **pickle_load_args) -> Any:
    """Load an object saved by ``disttorch.save`` (or a safetensors file, or a PyTorch tensor-only ``.pt``).

    Args:
        f: a path or a readable binary file.
        map_location: where tensors go: a device or string, a dict {saved device: target}, or a callable
            ``(tensor, saved_location) -> tensor``, as in PyTorch.
        weights_only: True (the default) rebuilds only data, disttorch's tensor types and allowlisted classes,
            and imports nothing. False is for files you trust: it imports every module the file names (running
            their import-time code) and rebuilds objects of any class the file names with ``cls.__new__`` plus
            the saved ``__dict__`` or the class's ``__setstate__`` (running that method). Functions and classes
            the file names are returned as references, never called; there is still no pickle.

    Raises:
        CheckpointError: the file is damaged, truncated, malformed, over a limit (the message names it and how
            to raise it), unsigned while a key is configured, or in no format disttorch reads.
        UnsupportedGlobalError: (a CheckpointError and a ``pickle.UnpicklingError``) the file names a class or
            function that is not allowlisted, with ``weights_only=True``.

    Example:
        >>> state = disttorch.load("ckpt.pt", map_location="cpu")
    """
    where = _where(f)
    if weights_only is False:
        warnings.warn(f"disttorch.load({where!r}, weights_only=False) imports the modules named in the file (running "
                      "their import-time code) and rebuilds objects of any class it names via __new__ and "
                      "__setstate__/__dict__. Only do this for files you trust. (Functions it names are returned, "
                      "never called, and nothing is unpickled.)", UserWarning, stacklevel=2)
    opts = get_checkpoint_options()
    try:
        return _load(f, where, map_location, weights_only is not False, opts)
    except UserCodeError as e:
        raise e.__cause__ from None
    except CheckpointError:
        raise
    except _PARSE_ERRORS as e:
        raise CheckpointError(f"{where}: corrupted or malformed checkpoint ({type(e).__name__}: {e})") from e


def _load(f, where: str, map_location, weights_only: bool, opts: CheckpointOptions):
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as fh:
            head = fh.read(8 + len(ST.PREFIX))
    else:
        buf = _read_all(f, where)
        head = bytes(buf[:8 + len(ST.PREFIX)])
    if head[:4] == b"PK\x03\x04" and not ST.is_disttorch_v2(head):
        _refuse_unsigned(where, "a PyTorch .pt file", opts)
        from ._pt_format import load_torch_zip
        source = f if isinstance(f, (str, os.PathLike)) else io.BytesIO(bytes(buf))
        return load_torch_zip(source, where, lambda dev: map_device(map_location, dev), map_location, opts)
    if isinstance(f, (str, os.PathLike)):
        buf = _read_all(f, where)
    if not ST.is_disttorch_v2(head) and head[8:9] != b"{" and head[:1] == b"\x80" and len(head) > 1 \
            and head[1] <= 5:
        raise CheckpointError(f"{where}: this is a raw pickle file (e.g. PyTorch's legacy format); disttorch never "
                              "unpickles data. Re-save it in PyTorch with torch.save(obj, path) (zip format, "
                              "tensors and containers only) or with safetensors.")
    meta, arrays, digest = ST.read(buf, where, opts)
    if digest != "hmac-sha256":
        _refuse_unsigned(where, "this checkpoint" if meta.get("format") == _FORMAT else "a safetensors file", opts)
    if meta.get("format") != _FORMAT:
        if digest is not None:
            raise CheckpointError(f"{where}: corrupted disttorch checkpoint (format record missing)")
        # A plain safetensors file: its tensors by name.
        out = collections.OrderedDict()
        target = map_device(map_location, "cpu")
        for name, arr in arrays.items():
            t = T._wrap(arr)
            out[name] = move(t, target, "cpu", where) if target is not None and str(target) != "cpu" else t
        return out
    version = meta.get("version")
    if version not in _READABLE_VERSIONS or (version == "2") != (digest is not None):
        raise CheckpointError(f"{where}: disttorch checkpoint version {str(version)[:20]!r} is not one this "
                              f"disttorch reads ({', '.join(_READABLE_VERSIONS)}), or its digest is missing")
    structure = _structure(meta, where)
    CS.check(structure, opts.max_depth, where, _depth_hint())
    dec = Decoder(arrays, where, map_location, weights_only, _allowed())
    return dec.decode(structure)


def _structure(meta: dict, where: str) -> bytes:
    try:
        return base64.b64decode(meta["structure"], validate=True)
    except (KeyError, ValueError, binascii.Error):
        raise CheckpointError(f"{where}: corrupted disttorch checkpoint (structure record missing or damaged)") \
            from None


def get_unsafe_globals_in_checkpoint(f) -> list:
    """Qualified names of the classes/functions in a disttorch checkpoint that the allowlist does not cover."""
    where = _where(f)
    opts = get_checkpoint_options()
    try:
        meta, _, _ = ST.read(_read_all(f, where), where, opts)
        structure = _structure(meta, where)
        CS.check(structure, opts.max_depth, where, _depth_hint())
        collector = GlobalsCollector()
        unpacker(structure, collector.hook).unpack()
    except CheckpointError:
        raise
    except _PARSE_ERRORS as e:
        raise CheckpointError(f"{where}: corrupted or malformed checkpoint ({type(e).__name__}: {e})") from e
    allowed = _allowed()
    return sorted({n for n in collector.names if isinstance(n, str) and n not in allowed
                   and builtin_global(n) is None})
