"""Decode a disttorch checkpoint's structure (msgpack with tags) back into Python objects.

The structure has passed ``_checkpoint_structure.check`` first (depth, tags, extents), so the recursion through
msgpack's ext hook is bounded; each tag's payload is still checked here for the types it must have, and any
mismatch raises CheckpointError. Extension payloads are unpacked with ``msgpack.Unpacker`` objects, which keep
their parse stack on the heap (``msgpack.unpackb`` keeps about 40 KB of it on the C stack per nesting level).

What the file can make happen: with ``weights_only=True`` nothing is imported and only allowlisted classes are
instantiated. With ``weights_only=False`` the modules named in the file are imported (running their import-time
code) and objects of any class are rebuilt with ``cls.__new__(cls)`` plus ``__setstate__`` or ``__dict__``
(running that class's ``__setstate__``); enum members are looked up by value. A global (function or class
reference) is returned, never called.
"""
from __future__ import annotations

import collections
import enum
import importlib

import msgpack
import numpy as np

from . import _dtype as D
from . import _tensor as T
from ._checkpoint_config import CheckpointError, UnsupportedGlobalError
from ._checkpoint_structure import (BIGINT, COMPLEX, DEVICE, DTYPE, ENUM, FROZENSET, GLOBAL, NDARRAY, NPSCALAR,
                                    OBJECT, ODICT, RANGE, REF, SET, SIZE, SLICE, TENSOR, TUPLE)
from ._device import device as _device_cls
from ._size import Size


class UserCodeError(Exception):
    """Wraps an exception raised by user code (map_location, a class's __setstate__): load re-raises the cause."""


def user_call(fn, *args):
    """``fn(*args)`` for user code: its exceptions reach the caller of load unchanged."""
    try:
        return fn(*args)
    except Exception as e:
        raise UserCodeError() from e


def unpacker(data: bytes, hook) -> msgpack.Unpacker:
    up = msgpack.Unpacker(None, ext_hook=hook, raw=False, strict_map_key=False, use_list=True,
                          max_buffer_size=max(len(data), 1))
    up.feed(data)
    return up


def _is_str_dict(x) -> bool:
    return isinstance(x, dict) and all(isinstance(k, str) for k in x)


def _attr_name_ok(name) -> bool:
    return isinstance(name, str) and not (name.startswith("__") and name.endswith("__"))


class Decoder:
    """Rebuild one structure; ``arrays`` are the file's tensors by key, ``allowed`` the allowlist by name."""

    def __init__(self, arrays: dict, where: str, map_location, weights_only: bool, allowed: dict) -> None:
        self.arrays, self.where, self.map_location, self.weights_only = arrays, where, map_location, weights_only
        self.allowed = allowed
        self.tensors: dict = {}
        self.objects: list = []

    def bad(self, what: str) -> CheckpointError:
        return CheckpointError(f"{self.where}: corrupted structure ({what})")

    def decode(self, data: bytes):
        return unpacker(data, self.hook).unpack()

    def unpack(self, data: bytes):
        return unpacker(data, self.hook).unpack()

    def items(self, data: bytes, n: int | None = None, what: str = "record") -> list:
        """The payload as a list (of ``n`` items when given)."""
        val = unpacker(data, self.hook).unpack()  # not via self.unpack: one Python frame less per nesting level
        if not isinstance(val, list) or (n is not None and len(val) != n):
            raise self.bad(f"a {what} record is not a list" + (f" of {n} items" if n is not None else ""))
        return val

    def text(self, data: bytes, what: str) -> str:
        val = self.unpack(data)
        if not isinstance(val, str):
            raise self.bad(f"a {what} record is not a string")
        return val

    def resolve(self, name, what: str):
        if not isinstance(name, str):
            raise self.bad(f"a {what} name is not a string")
        obj = self.allowed.get(name)
        if obj is not None:
            return obj
        builtin = builtin_global(name)
        if builtin is not None:
            return builtin
        if not self.weights_only:
            return import_qualified(name, self.where)
        short = name.rsplit(".", 1)[-1]
        raise UnsupportedGlobalError(
            f"Weights only load failed for {self.where}: Unsupported global: GLOBAL {name} was not an allowed "
            f"global by default. Please use `disttorch.serialization.add_safe_globals([{short}])` or the "
            f"`disttorch.serialization.safe_globals([{short}])` context manager to allowlist this {what} if you "
            "trust it.")

    def hook(self, code: int, data: bytes):  # noqa: C901 - one branch per tag
        if code == TUPLE:
            return tuple(self.items(data, what="tuple"))
        if code == TENSOR:
            key, requires_grad, dev, kind, attrs = self.items(data, 5, "tensor")
            if not (isinstance(key, str) and type(requires_grad) is bool and isinstance(dev, str)
                    and (kind is None or isinstance(kind, str)) and _is_str_dict(attrs)):
                raise self.bad("a tensor record has fields of the wrong types")
            return self.tensor(key, requires_grad, dev, kind, attrs)
        if code == DTYPE:
            name = self.text(data, "dtype")
            if name not in D._NAMES:
                raise self.bad(f"unknown dtype {name[:40]!r}")
            return D._NAMES[name]
        if code == DEVICE:
            return self.device(self.text(data, "device"))
        if code == SIZE:
            dims = self.items(data, what="Size")
            if not all(type(d) is int for d in dims):
                raise self.bad("a Size holds something other than ints")
            return Size(dims)
        if code == ODICT:
            items, attrs = self.items(data, 2, "OrderedDict")
            if not isinstance(items, list) or not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in items):
                raise self.bad("an OrderedDict's items are not key/value pairs")
            if not isinstance(attrs, dict) or not all(_attr_name_ok(k) and not hasattr(collections.OrderedDict, k)
                                                      for k in attrs):
                raise self.bad("an OrderedDict's attributes are not plain names (or would hide its methods)")
            try:
                od = collections.OrderedDict((k, v) for k, v in items)
            except TypeError:
                raise self.bad("an OrderedDict key is unhashable") from None
            for k, v in attrs.items():
                setattr(od, k, v)
            return od
        if code in (SET, FROZENSET):
            elems = self.items(data, what="set")
            try:
                return set(elems) if code == SET else frozenset(elems)
            except TypeError:
                raise self.bad("a set element is unhashable") from None
        if code == COMPLEX:
            re, im = self.items(data, 2, "complex")
            if not all(type(x) in (int, float) for x in (re, im)):
                raise self.bad("a complex number's parts are not numbers")
            return complex(re, im)
        if code == BIGINT:
            digits = self.text(data, "int")
            try:
                return int(digits)
            except ValueError:
                raise self.bad("an int record is not a number") from None
        if code == SLICE:
            return slice(*self.items(data, 3, "slice"))
        if code == RANGE:
            args = self.items(data, 3, "range")
            if not all(type(x) is int for x in args) or args[2] == 0:
                raise self.bad("a range record is not three ints with a non-zero step")
            return range(*args)
        if code == NDARRAY:
            return self.array(self.text(data, "ndarray")).copy()
        if code == NPSCALAR:
            return self.npscalar(*self.items(data, 2, "numpy scalar"))
        if code == GLOBAL:
            return self.resolve(self.unpack(data), "global")  # returned, never called
        if code == ENUM:
            return self.enum(*self.items(data, 2, "enum"))
        if code == REF:
            idx = self.unpack(data)
            if type(idx) is not int or not 0 <= idx < len(self.objects):
                raise self.bad("a reference to an object that does not precede it")
            return self.objects[idx]
        if code == OBJECT:
            return self.obj(data)
        raise self.bad(f"unknown tag {code}")

    def device(self, text: str):
        try:
            return _device_cls(text)
        except (RuntimeError, ValueError, TypeError):
            raise self.bad(f"invalid device {text[:40]!r}") from None

    def npscalar(self, dt, raw):
        if not (isinstance(dt, str) and isinstance(raw, bytes)):
            raise self.bad("a numpy scalar record has fields of the wrong types")
        try:
            dtype = np.dtype(dt)
        except TypeError:
            raise self.bad(f"unknown numpy dtype {dt[:20]!r}") from None
        if dtype.kind not in "biufcmMSUV" or dtype.hasobject or dtype.itemsize != len(raw):
            raise self.bad(f"a numpy scalar of dtype {dt[:20]!r} with {len(raw)} bytes")
        return np.frombuffer(raw, dtype=dtype)[0]

    def enum(self, name, value):
        cls = self.resolve(name, "class")
        if not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
            raise self.bad(f"{name} is not an enum class")
        try:
            return cls(value)
        except (ValueError, TypeError):
            raise self.bad(f"{value!r} is not a member of {name}") from None

    def array(self, key) -> np.ndarray:
        try:
            return self.arrays[key]
        except (KeyError, TypeError):
            raise CheckpointError(f"{self.where}: corrupted: the structure refers to tensor {key!r}, which the file "
                                  "does not contain") from None

    def tensor(self, key, requires_grad, dev, kind, attrs):
        cached = self.tensors.get(key)
        if cached is not None:
            return cached
        arr = self.array(key)
        if requires_grad and not (arr.dtype.kind in "fc" or D.from_numpy_dtype(arr.dtype).is_floating_point):
            raise self.bad(f"tensor {key!r} of dtype {arr.dtype} is marked as requiring grad")
        t = T._wrap(arr)
        saved = str(self.device(dev))
        target = map_device(self.map_location, saved)
        if target is not None and str(target) != "cpu":
            t = move(t, target, saved, self.where)
        elif callable(self.map_location):
            mapped = user_call(self.map_location, t, saved)
            t = mapped if isinstance(mapped, T.Tensor) else t
        if kind is None:
            if attrs:
                raise self.bad(f"a plain tensor {key!r} carries attributes")
            if requires_grad:
                t.requires_grad_(True)
        else:
            cls = builtin_global(kind) or self.resolve(kind, "tensor subclass")
            if not (isinstance(cls, type) and issubclass(cls, T.Tensor)):
                raise self.bad(f"{kind} is not a tensor class")
            if attrs and not all(_attr_name_ok(k) for k in attrs):
                raise self.bad(f"tensor {key!r} has attributes that are not plain names")
            if cls is T.Tensor and attrs:
                raise self.bad(f"a plain tensor {key!r} carries attributes")
            t = T._rebuild(cls, t._data, requires_grad, attrs)
        self.tensors[key] = t
        return t

    def obj(self, data: bytes):
        up = unpacker(data, self.hook)
        cls = self.resolve(up.unpack(), "class")
        if not isinstance(cls, type):
            raise self.bad(f"{cls!r} is not a class")
        try:
            obj = cls.__new__(cls)
        except TypeError as e:
            raise self.bad(f"cannot create an object of class {cls.__qualname__} ({e})") from None
        self.objects.append(obj)
        record = up.unpack()
        if not (isinstance(record, list) and len(record) == 3 and record[0] in ("setstate", "dict")):
            raise self.bad(f"the state record of a {cls.__qualname__} is malformed")
        how, state, extra = record
        if extra is not None:
            if not (isinstance(extra, list) and len(extra) == 2 and isinstance(extra[1], list)):
                raise self.bad(f"the items record of a {cls.__qualname__} is malformed")
            kind, items = extra
            if kind == "dict" and isinstance(obj, dict) and all(isinstance(p, (tuple, list)) and len(p) == 2
                                                                for p in items):
                try:
                    dict.update(obj, items)
                except TypeError:
                    raise self.bad(f"a {cls.__qualname__} key is unhashable") from None
            elif kind == "list" and isinstance(obj, list):
                list.extend(obj, items)
            else:
                raise self.bad(f"a {cls.__qualname__} cannot hold {kind!r} items")
        if how == "setstate":
            if getattr(cls, "__setstate__", None) is None:
                raise self.bad(f"class {cls.__qualname__} has no __setstate__")
            user_call(obj.__setstate__, state)
        else:
            if not (_is_str_dict(state) and hasattr(obj, "__dict__")):
                raise self.bad(f"the __dict__ of a {cls.__qualname__} is malformed or the class has none")
            obj.__dict__.update(state)
        return obj


class GlobalsCollector:
    """Walks a checked structure and lists the class/function names it refers to, building nothing."""

    def __init__(self) -> None:
        self.names: list = []

    def hook(self, code: int, data: bytes):
        up = unpacker(data, self.hook)
        first = up.unpack()
        if code == OBJECT:
            self.names.append(first)
            up.unpack()
        elif code == GLOBAL:
            self.names.append(first)
        elif code == ENUM and isinstance(first, list) and first:
            self.names.append(first[0])
        elif code == TENSOR and isinstance(first, list) and len(first) == 5 and first[3] is not None:
            self.names.append(first[3])
        return None


def builtin_global(name: str):
    """Globals PyTorch's weights-only loader allows by default: disttorch's own tensor/parameter types."""
    if name in ("disttorch.nn.parameter.Parameter", "disttorch.nn.parameter.Buffer"):
        from .nn import parameter
        return getattr(parameter, name.rsplit(".", 1)[1])
    if name == "disttorch._tensor.Tensor":
        return T.Tensor
    return None


def import_qualified(name: str, where: str):
    """The object ``module.attr...`` names, importing the longest module prefix (weights_only=False only)."""
    parts = name.split(".")
    if not all(p.isidentifier() for p in parts):
        raise UnsupportedGlobalError(f"{where}: cannot find global {name[:100]!r} (not a dotted name)")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        return obj
    raise UnsupportedGlobalError(f"{where}: cannot find global {name}")


def move(t: T.Tensor, target, saved: str, where: str) -> T.Tensor:
    """``t.to(target)``; a device this machine lacks raises CheckpointError (a RuntimeError, as in PyTorch)."""
    try:
        return t.to(target)
    except RuntimeError as e:
        raise CheckpointError(f"{where}: cannot place a tensor saved on {saved!r} on {str(target)!r}: {e} (pass "
                              "map_location='cpu' to load it on the CPU)") from None


def map_device(map_location, saved: str):
    if map_location is None or callable(map_location) and not isinstance(map_location, (str, _device_cls)):
        return None if saved == "cpu" else saved
    if isinstance(map_location, dict):
        return map_location.get(saved, saved)
    return map_location
