"""Checkpoints: ``disttorch.save`` / ``disttorch.load``, as ``torch.save`` / ``torch.load`` (weights-only).

A disttorch checkpoint is a safetensors file: tensor bytes in the safetensors layout, and the Python
structure around them (dicts, lists, tuples, numbers, strings, bytes, dtypes, whole objects such as
Modules) encoded with msgpack in the header's metadata. Loading runs no code from the file: types are
rebuilt from a fixed set of tags, and an object of a class is rebuilt only when that class is allowlisted
with ``add_safe_globals`` / ``safe_globals`` (PyTorch's weights-only rules), by ``cls.__new__`` plus its
saved ``__dict__`` (or ``__setstate__``). Saving to a path is atomic: temporary file, fsync, rename.

``load`` also reads plain safetensors files (a dict of tensors) and PyTorch ``.pt`` zip checkpoints that
hold tensors and containers only (see ``disttorch._pt_format``), without PyTorch installed.

Example:
    >>> disttorch.save({"model": model.state_dict(), "epoch": 3}, "ckpt.pt")
    >>> ckpt = disttorch.load("ckpt.pt")
    >>> with disttorch.serialization.safe_globals([MyNet]):
    ...     net = disttorch.load("whole_model.pt")
"""
from __future__ import annotations

import base64
import collections
import contextlib
import enum
import importlib
import io
import os
import pickle
import tempfile
import warnings
from typing import Any

import msgpack
import numpy as np

from . import _dtype as D
from . import _safetensors as ST
from . import _tensor as T
from ._device import device as _device_cls
from ._size import Size

__all__ = ["save", "load", "add_safe_globals", "get_safe_globals", "clear_safe_globals", "safe_globals",
           "get_unsafe_globals_in_checkpoint", "CheckpointError"]

CheckpointError = ST.CheckpointError
_FORMAT, _VERSION = "disttorch", "1"

# msgpack extension codes
_TUPLE, _TENSOR, _DTYPE, _DEVICE, _SIZE, _ODICT, _SET, _FROZENSET, _COMPLEX, _BIGINT, _GLOBAL, _OBJECT, _REF, \
    _NDARRAY, _NPSCALAR, _ENUM, _SLICE, _RANGE = range(1, 19)

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


# ------------------------------------------------------------------------------------------------------------
# save
# ------------------------------------------------------------------------------------------------------------
class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict = {}
        self.tensor_keys: dict = {}  # id(tensor) -> key, so tied weights stay one tensor
        self.objects: dict = {}  # id(obj) -> memo index
        self.keep: list = []  # keeps encoded objects alive so ids stay unique

    def pack(self, obj) -> bytes:
        return msgpack.packb(obj, default=self.default, strict_types=True, use_bin_type=True)

    def ext(self, code: int, payload) -> msgpack.ExtType:
        return msgpack.ExtType(code, self.pack(payload))

    def tensor(self, t: T.Tensor) -> msgpack.ExtType:
        key = self.tensor_keys.get(id(t))
        if key is None:
            key = f"t{len(self.arrays)}"
            self.tensor_keys[id(t)] = key
            self.keep.append(t)
            arr = t._data if t._xp is np else t._data.get()
            self.arrays[key] = arr if arr.flags.c_contiguous else arr.copy(order="C")
        kind = _qualname(type(t)) if type(t) is not T.Tensor else None
        attrs = getattr(t, "__dict__", None) or {}
        return self.ext(_TENSOR, [key, t._requires_grad, str(t.device), kind, attrs])

    def default(self, obj):  # noqa: C901 - one branch per supported type
        cls = type(obj)
        if isinstance(obj, T.Tensor):
            return self.tensor(obj)
        if cls is tuple:
            return self.ext(_TUPLE, list(obj))
        if cls is Size:
            return self.ext(_SIZE, list(obj))
        if cls is D.dtype:
            return self.ext(_DTYPE, obj.name)
        if cls is _device_cls:
            return self.ext(_DEVICE, str(obj))
        if cls is collections.OrderedDict:
            attrs = dict(getattr(obj, "__dict__", {}))
            return self.ext(_ODICT, [list(obj.items()), attrs])
        if cls is set:
            return self.ext(_SET, list(obj))
        if cls is frozenset:
            return self.ext(_FROZENSET, list(obj))
        if cls is complex:
            return self.ext(_COMPLEX, [obj.real, obj.imag])
        if cls is int:  # only reached for ints msgpack cannot hold (beyond 64 bits)
            return self.ext(_BIGINT, str(obj))
        if cls is slice:
            return self.ext(_SLICE, [obj.start, obj.stop, obj.step])
        if cls is range:
            return self.ext(_RANGE, [obj.start, obj.stop, obj.step])
        if cls is np.ndarray:
            key = f"t{len(self.arrays)}"
            self.arrays[key] = obj if obj.flags.c_contiguous else obj.copy(order="C")
            return self.ext(_NDARRAY, key)
        if isinstance(obj, np.generic):
            return self.ext(_NPSCALAR, [obj.dtype.str, obj.tobytes()])
        if isinstance(obj, type) or _is_function(obj):
            return self.ext(_GLOBAL, _qualname(obj))
        if isinstance(obj, enum.Enum):
            return self.ext(_ENUM, [_qualname(cls), obj.value])
        return self.obj(obj)

    def obj(self, obj) -> msgpack.ExtType:
        memo = self.objects.get(id(obj))
        if memo is not None:
            return msgpack.ExtType(_REF, self.pack(memo))
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
        return msgpack.ExtType(_OBJECT, self.pack(_qualname(cls)) + self.pack([how, state, extra]))


def _is_function(obj) -> bool:
    import types
    return isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type(len)))


def _encode(obj) -> tuple:
    enc = _Encoder()
    try:
        structure = enc.pack(obj)
    except TypeError as e:
        raise TypeError(f"disttorch.save: {e}") from None
    return structure, enc.arrays


def save(obj: Any, f, pickle_module=None, pickle_protocol: int = 2, _use_new_zipfile_serialization: bool = True,
         _disable_byteorder_record: bool = False) -> None:
    """Save ``obj`` (tensors, state_dicts, optimizer state, containers, Modules) to a path or binary file.

    Writing to a path is atomic: the data goes to a temporary file in the same directory, which is
    fsynced and renamed over ``f``, so a crash mid-save leaves any previous checkpoint intact.

    Example:
        >>> disttorch.save({"model": net.state_dict(), "step": 100}, "ckpt.pt")
    """
    structure, arrays = _encode(obj)
    meta = {"format": _FORMAT, "version": _VERSION, "structure": base64.b64encode(structure).decode("ascii")}
    if isinstance(f, (str, os.PathLike)):
        path = os.fspath(f)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                ST.write(out, arrays, meta)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):  # make the rename itself durable
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    else:
        ST.write(f, arrays, meta)


# ------------------------------------------------------------------------------------------------------------
# load
# ------------------------------------------------------------------------------------------------------------
class _Decoder:
    def __init__(self, arrays: dict, where: str, map_location, weights_only: bool) -> None:
        self.arrays, self.where, self.map_location, self.weights_only = arrays, where, map_location, weights_only
        self.tensors: dict = {}
        self.objects: list = []
        self.allowed = _allowed()

    def unpack(self, data: bytes):
        return msgpack.unpackb(data, ext_hook=self.hook, raw=False, strict_map_key=False, use_list=True)

    def resolve(self, name: str, what: str):
        obj = self.allowed.get(name)
        if obj is not None:
            return obj
        builtin = _builtin_global(name)
        if builtin is not None:
            return builtin
        if not self.weights_only:
            return _import_qualified(name)
        raise pickle.UnpicklingError(
            f"Weights only load failed for {self.where}: Unsupported global: GLOBAL {name} was not an allowed "
            f"global by default. Please use `disttorch.serialization.add_safe_globals([{name.rsplit('.', 1)[-1]}])` "
            f"or the `disttorch.serialization.safe_globals([{name.rsplit('.', 1)[-1]}])` context manager to allowlist "
            f"this {what} if you trust it.")

    def hook(self, code: int, data: bytes):  # noqa: C901 - one branch per tag
        if code == _TUPLE:
            return tuple(self.unpack(data))
        if code == _TENSOR:
            key, requires_grad, dev, kind, attrs = self.unpack(data)
            return self.tensor(key, requires_grad, dev, kind, attrs)
        if code == _DTYPE:
            return D._NAMES[self.unpack(data)]
        if code == _DEVICE:
            return _device_cls(self.unpack(data))
        if code == _SIZE:
            return Size(self.unpack(data))
        if code == _ODICT:
            items, attrs = self.unpack(data)
            od = collections.OrderedDict((k, v) for k, v in items)
            for k, v in attrs.items():
                setattr(od, k, v)
            return od
        if code == _SET:
            return set(self.unpack(data))
        if code == _FROZENSET:
            return frozenset(self.unpack(data))
        if code == _COMPLEX:
            re, im = self.unpack(data)
            return complex(re, im)
        if code == _BIGINT:
            return int(self.unpack(data))
        if code == _SLICE:
            return slice(*self.unpack(data))
        if code == _RANGE:
            return range(*self.unpack(data))
        if code == _NDARRAY:
            return self.array(self.unpack(data)).copy()
        if code == _NPSCALAR:
            dt, raw = self.unpack(data)
            return np.frombuffer(raw, dtype=np.dtype(dt))[0]
        if code == _GLOBAL:
            return self.resolve(self.unpack(data), "global")
        if code == _ENUM:
            name, value = self.unpack(data)
            return self.resolve(name, "class")(value)
        if code == _REF:
            return self.objects[self.unpack(data)]
        if code == _OBJECT:
            return self.obj(data)
        raise CheckpointError(f"{self.where}: corrupted structure (unknown tag {code})")

    def array(self, key: str) -> np.ndarray:
        try:
            return self.arrays[key]
        except KeyError:
            raise CheckpointError(f"{self.where}: corrupted: the structure refers to tensor {key!r}, which the file "
                                  "does not contain") from None

    def tensor(self, key, requires_grad, dev, kind, attrs):
        cached = self.tensors.get(key)
        if cached is not None:
            return cached
        t = T._wrap(self.array(key))
        target = _map_device(self.map_location, dev)
        if target is not None and str(target) != "cpu":
            t = t.to(target)
        elif callable(self.map_location):
            mapped = self.map_location(t, dev)
            t = mapped if isinstance(mapped, T.Tensor) else t
        if kind is None:
            if requires_grad:
                t.requires_grad_(True)
        else:
            cls = _builtin_global(kind) or self.resolve(kind, "tensor subclass")
            t = T._rebuild(cls, t._data, requires_grad, attrs)
        self.tensors[key] = t
        return t

    def obj(self, data: bytes):
        up = msgpack.Unpacker(io.BytesIO(data), ext_hook=self.hook, raw=False, strict_map_key=False, use_list=True)
        cls = self.resolve(next(up), "class")
        if not isinstance(cls, type):
            raise CheckpointError(f"{self.where}: corrupted: {cls!r} is not a class")
        obj = cls.__new__(cls)
        self.objects.append(obj)
        how, state, extra = next(up)
        if extra is not None:
            kind, items = extra
            if kind == "dict":
                dict.update(obj, items)
            else:
                list.extend(obj, items)
        if how == "setstate":
            obj.__setstate__(state)
        else:
            obj.__dict__.update(state)
        return obj


def _builtin_global(name: str):
    """Globals PyTorch's weights-only loader allows by default: disttorch's own tensor/parameter types."""
    if name in ("disttorch.nn.parameter.Parameter", "disttorch.nn.parameter.Buffer"):
        from .nn import parameter
        return getattr(parameter, name.rsplit(".", 1)[1])
    if name == "disttorch._tensor.Tensor":
        return T.Tensor
    return None


def _import_qualified(name: str):
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise pickle.UnpicklingError(f"cannot find global {name}")


def _map_device(map_location, saved: str):
    if map_location is None or callable(map_location) and not isinstance(map_location, (str, _device_cls)):
        return None if saved == "cpu" else saved
    if isinstance(map_location, dict):
        return map_location.get(saved, saved)
    return map_location


def _read_all(f, where: str) -> bytearray:
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            buf = bytearray(size)
            n = fh.readinto(buf)
            if n != size:
                raise CheckpointError(f"{where}: short read ({n} of {size} bytes)")
            return buf
    data = f.read()
    return bytearray(data)


def load(f, map_location=None, pickle_module=None, *, weights_only: bool | None = None, mmap: bool | None = None,
         **pickle_load_args) -> Any:
    """Load an object saved by ``disttorch.save`` (or a safetensors file, or a PyTorch tensor-only ``.pt``).

    Args:
        f: a path or a readable binary file.
        map_location: where tensors go: a device or string, a dict {saved device: target}, or a callable
            ``(tensor, saved_location) -> tensor``, as in PyTorch.
        weights_only: True (the default) rebuilds only data and allowlisted classes. False also imports any
            class named in the file (still without running pickle) and warns, because the file then chooses
            which classes are instantiated.

    Example:
        >>> state = disttorch.load("ckpt.pt", map_location="cpu")
    """
    where = os.fspath(f) if isinstance(f, (str, os.PathLike)) else getattr(f, "name", "<file object>")
    if weights_only is False:
        warnings.warn(f"disttorch.load({where!r}, weights_only=False): classes named in the file are imported and "
                      "instantiated without an allowlist. Only do this for files you trust. (disttorch never "
                      "unpickles checkpoint data.)", UserWarning, stacklevel=2)
    buf = _read_all(f, where)
    if buf[:4] == b"PK\x03\x04":
        from ._pt_format import load_torch_zip
        return load_torch_zip(bytes(buf), where, lambda dev: _map_device(map_location, dev), map_location)
    if buf[8:9] != b"{" and buf[:1] == b"\x80" and len(buf) > 1 and buf[1] <= 5:
        raise CheckpointError(f"{where}: this is a raw pickle file (e.g. PyTorch's legacy format); disttorch never "
                              "unpickles data. Re-save it in PyTorch with torch.save(obj, path) (zip format, "
                              "tensors and containers only) or with safetensors.")
    meta, arrays = ST.read(buf, where)
    if meta.get("format") != _FORMAT:
        # A plain safetensors file: its tensors by name.
        out = collections.OrderedDict()
        for name, arr in arrays.items():
            t = T._wrap(arr)
            target = _map_device(map_location, "cpu")
            out[name] = t.to(target) if target not in (None, "cpu") else t
        return out
    try:
        structure = base64.b64decode(meta["structure"], validate=True)
    except (KeyError, ValueError):
        raise CheckpointError(f"{where}: corrupted disttorch checkpoint (structure record missing or damaged)") \
            from None
    dec = _Decoder(arrays, where, map_location, weights_only is not False)
    try:
        return dec.unpack(structure)
    except (msgpack.exceptions.ExtraData, msgpack.exceptions.FormatError, msgpack.exceptions.StackError,
            ValueError, StopIteration) as e:
        raise CheckpointError(f"{where}: corrupted disttorch checkpoint (structure does not decode: {e})") from None


def get_unsafe_globals_in_checkpoint(f) -> list:
    """Qualified names of the classes/functions in a disttorch checkpoint that the allowlist does not cover."""
    where = os.fspath(f) if isinstance(f, (str, os.PathLike)) else "<file object>"
    meta, arrays = ST.read(_read_all(f, where), where)
    names: list = []

    def hook(code, data):
        if code == _OBJECT:
            up = msgpack.Unpacker(io.BytesIO(data), ext_hook=hook, raw=False, strict_map_key=False)
            names.append(next(up))
            next(up)
        elif code in (_GLOBAL, _ENUM):
            val = msgpack.unpackb(data, ext_hook=hook, raw=False, strict_map_key=False)
            names.append(val if code == _GLOBAL else val[0])
        elif code == _TENSOR:
            val = msgpack.unpackb(data, ext_hook=hook, raw=False, strict_map_key=False)
            if val[3] is not None:
                names.append(val[3])
        else:
            msgpack.unpackb(data, ext_hook=hook, raw=False, strict_map_key=False)
        return None
    msgpack.unpackb(base64.b64decode(meta.get("structure", "")), ext_hook=hook, raw=False, strict_map_key=False)
    allowed = _allowed()
    return sorted({n for n in names if n not in allowed and _builtin_global(n) is None})
