"""Read PyTorch ``.pt`` zip checkpoints that hold tensors and plain containers, without PyTorch or pickle.

A ``torch.save`` file is a zip archive: ``<name>/data.pkl`` (a pickle describing the structure) and
``<name>/data/<key>`` (raw storage bytes). This module interprets the pickle opcodes itself with a small
stack machine that knows exactly the globals a weights-only checkpoint needs (OrderedDict, the tensor and
parameter rebuild functions and the storage types). Any other global, or any opcode outside that set,
raises an error naming it: nothing in the file is ever called or imported.
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import sys
import zipfile

import numpy as np

from . import _dtype as D
from . import _tensor as T
from ._safetensors import CheckpointError

_STORAGES = {"FloatStorage": D.float32, "DoubleStorage": D.float64, "HalfStorage": D.float16,
             "BFloat16Storage": D.bfloat16, "LongStorage": D.int64, "IntStorage": D.int32, "ShortStorage": D.int16,
             "CharStorage": D.int8, "ByteStorage": D.uint8, "BoolStorage": D.bool,
             "ComplexFloatStorage": D.complex64, "ComplexDoubleStorage": D.complex128}
_DTYPES = {"float32": D.float32, "float": D.float32, "float64": D.float64, "double": D.float64, "float16": D.float16,
           "half": D.float16, "bfloat16": D.bfloat16, "int64": D.int64, "long": D.int64, "int32": D.int32,
           "int": D.int32, "int16": D.int16, "int8": D.int8, "uint8": D.uint8, "bool": D.bool}


class _Global:
    """A resolved, allowed global: a name the interpreter knows how to 'call'."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_ALLOWED = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
            "torch._utils._rebuild_parameter_with_state", "torch.Size", "builtins.set", "builtins.frozenset",
            "torch.device", "torch.serialization._get_layout", "torch._utils._rebuild_tensor"}


class _Storage:
    __slots__ = ("key", "dtype")

    def __init__(self, key: str, dtype: D.dtype) -> None:
        self.key, self.dtype = key, dtype


class _Reader:
    def __init__(self, data: bytes, where: str, storage_bytes, to_device) -> None:
        self.f = io.BytesIO(data)
        self.where, self.storage_bytes, self.to_device = where, storage_bytes, to_device
        self.stack: list = []
        self.marks: list = []
        self.memo: dict = {}
        self.storages: dict = {}

    def fail(self, what: str):
        raise pickle.UnpicklingError(f"{self.where}: not a weights-only PyTorch checkpoint: {what}. disttorch reads "
                                     "only tensors, parameters and plain containers from .pt files")

    def read(self, n: int) -> bytes:
        b = self.f.read(n)
        if len(b) != n:
            raise CheckpointError(f"{self.where}: truncated data.pkl")
        return b

    def pop_mark(self) -> list:
        k = self.marks.pop()
        items = self.stack[k:]
        del self.stack[k:]
        return items

    def run(self):  # noqa: C901 - the opcode table
        s, read = self.stack, self.read
        while True:
            op = read(1)
            if op == b"\x80":  # PROTO
                read(1)
            elif op == b"\x95":  # FRAME
                read(8)
            elif op == b"}":
                s.append({})
            elif op == b"]":
                s.append([])
            elif op == b")":
                s.append(())
            elif op == b"(":
                self.marks.append(len(s))
            elif op == b"X":
                s.append(read(struct.unpack("<I", read(4))[0]).decode("utf-8"))
            elif op == b"\x8c":
                s.append(read(read(1)[0]).decode("utf-8"))
            elif op == b"\x8d":
                s.append(read(struct.unpack("<Q", read(8))[0]).decode("utf-8"))
            elif op == b"B":
                s.append(read(struct.unpack("<I", read(4))[0]))
            elif op == b"C":
                s.append(read(read(1)[0]))
            elif op == b"q":
                self.memo[read(1)[0]] = s[-1]
            elif op == b"r":
                self.memo[struct.unpack("<I", read(4))[0]] = s[-1]
            elif op == b"\x94":
                self.memo[len(self.memo)] = s[-1]
            elif op == b"h":
                s.append(self.memo[read(1)[0]])
            elif op == b"j":
                s.append(self.memo[struct.unpack("<I", read(4))[0]])
            elif op == b"c":
                module = self.f.readline()[:-1].decode("utf-8")
                name = self.f.readline()[:-1].decode("utf-8")
                s.append(self.global_(module, name))
            elif op == b"\x93":
                name = s.pop()
                module = s.pop()
                s.append(self.global_(module, name))
            elif op == b"J":
                s.append(struct.unpack("<i", read(4))[0])
            elif op == b"K":
                s.append(read(1)[0])
            elif op == b"M":
                s.append(struct.unpack("<H", read(2))[0])
            elif op == b"\x8a":
                s.append(int.from_bytes(read(read(1)[0]), "little", signed=True))
            elif op == b"G":
                s.append(struct.unpack(">d", read(8))[0])
            elif op == b"t":
                s.append(tuple(self.pop_mark()))
            elif op == b"\x85":
                s[-1:] = [(s[-1],)]
            elif op == b"\x86":
                s[-2:] = [(s[-2], s[-1])]
            elif op == b"\x87":
                s[-3:] = [(s[-3], s[-2], s[-1])]
            elif op == b"\x88":
                s.append(True)
            elif op == b"\x89":
                s.append(False)
            elif op == b"N":
                s.append(None)
            elif op == b"Q":
                s.append(self.persistent(s.pop()))
            elif op == b"R":
                args = s.pop()
                fn = s.pop()
                s.append(self.call(fn, args))
            elif op == b"b":
                state = s.pop()
                self.build(s[-1], state)
            elif op == b"s":
                v = s.pop()
                k = s.pop()
                self.dict_of(s[-1])[k] = v
            elif op == b"u":
                items = self.pop_mark()
                d = self.dict_of(s[-1])
                for i in range(0, len(items), 2):
                    d[items[i]] = items[i + 1]
            elif op == b"a":
                v = s.pop()
                self.list_of(s[-1]).append(v)
            elif op == b"e":
                items = self.pop_mark()
                self.list_of(s[-1]).extend(items)
            elif op == b".":
                return s.pop()
            else:
                self.fail(f"pickle opcode {op!r} is not allowed")

    def dict_of(self, obj) -> dict:
        if not isinstance(obj, dict):
            self.fail(f"SETITEM on {type(obj).__name__}")
        return obj

    def list_of(self, obj) -> list:
        if not isinstance(obj, list):
            self.fail(f"APPEND on {type(obj).__name__}")
        return obj

    def global_(self, module: str, name: str):
        full = f"{module}.{name}"
        if module == "torch" and name in _STORAGES:
            return _STORAGES[name]
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        if full not in _ALLOWED:
            self.fail(f"global {full} is not allowed")
        return _Global(full)

    def persistent(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            self.fail(f"unexpected persistent id {pid!r}")
        _, stype, key, location, _numel = pid[:5]
        if not isinstance(stype, D.dtype):
            self.fail(f"unknown storage type {stype!r}")
        st = self.storages.get(key)
        if st is None:
            st = self.storages[key] = _Storage(str(key), stype)
        return (st, location)

    def build(self, obj, state) -> None:
        if isinstance(obj, collections.OrderedDict) and isinstance(state, dict):
            for k, v in state.items():
                setattr(obj, k, v)
        elif isinstance(obj, T.Tensor) and (state is None or isinstance(state, dict)):
            if state:
                obj.__dict__.update(state)
        else:
            self.fail(f"BUILD on {type(obj).__name__}")

    def call(self, fn, args):
        if not isinstance(fn, _Global) or not isinstance(args, tuple):
            self.fail(f"call of {fn!r}")
        name = fn.name
        if name == "collections.OrderedDict":
            return collections.OrderedDict(*args)
        if name == "builtins.set":
            return set(*args)
        if name == "builtins.frozenset":
            return frozenset(*args)
        if name == "torch.Size":
            from ._size import Size
            return Size(*args)
        if name == "torch.device":
            return str(args[0]) if len(args) == 1 else f"{args[0]}:{args[1]}"
        if name in ("torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor"):
            return self.tensor(*args[:4], requires_grad=args[4] if len(args) > 4 else False)
        if name in ("torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state"):
            from .nn.parameter import Parameter
            data, requires_grad = args[0], args[1]
            return Parameter(data, requires_grad)
        self.fail(f"call of {name}")

    def tensor(self, storage, offset, size, stride, requires_grad=False):
        if not (isinstance(storage, tuple) and isinstance(storage[0], _Storage)):
            self.fail("tensor without storage")
        st, location = storage
        raw = self.storage_bytes(st.key)
        itemsize = st.dtype.itemsize
        if len(raw) % itemsize:
            raise CheckpointError(f"{self.where}: storage {st.key} has {len(raw)} bytes, not a multiple of "
                                  f"{itemsize} ({st.dtype})")
        flat = np.frombuffer(raw, dtype=st.dtype.np)
        if sys.byteorder != "little":
            flat = flat.byteswap()
        size, stride = tuple(size), tuple(stride)
        need = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if all(size) else 0
        if need > flat.size:
            raise CheckpointError(f"{self.where}: tensor of size {list(size)} at offset {offset} needs {need} "
                                  f"elements but storage {st.key} has {flat.size}")
        arr = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                              strides=tuple(s * itemsize for s in stride)).copy()
        t = T._wrap(arr)
        target = self.to_device(str(location))
        if target is not None and str(target) != "cpu":
            t = t.to(target)
        if requires_grad:
            t.requires_grad_(True)
        return t


def load_torch_zip(data: bytes, where: str, to_device, map_location):
    """Parse a PyTorch zip checkpoint held in ``data`` (its whole content)."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        names = z.namelist()
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{where}: corrupted or truncated zip archive ({e})") from None
    pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if not pkl:
        raise CheckpointError(f"{where}: a zip file but not a PyTorch checkpoint (no data.pkl inside)")
    prefix = pkl[0][: -len("data.pkl")]
    if f"{prefix}byteorder" in names and z.read(f"{prefix}byteorder") not in (b"little", b"big"):
        raise CheckpointError(f"{where}: corrupted byteorder record")
    cache: dict = {}

    def storage_bytes(key: str) -> bytes:
        if key not in cache:
            try:
                cache[key] = z.read(f"{prefix}data/{key}")
            except KeyError:
                raise CheckpointError(f"{where}: storage {key} is missing from the archive") from None
            except zipfile.BadZipFile as e:
                raise CheckpointError(f"{where}: storage {key} is corrupted ({e})") from None
        return cache[key]
    try:
        blob = z.read(pkl[0])
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{where}: data.pkl is corrupted ({e})") from None
    reader = _Reader(blob, where, storage_bytes, to_device)
    try:
        out = reader.run()
    except (IndexError, KeyError, struct.error, UnicodeDecodeError) as e:
        raise CheckpointError(f"{where}: corrupted data.pkl ({type(e).__name__}: {e})") from None
    if callable(map_location) and not isinstance(map_location, (str, dict)):
        out = _apply_callable(out, map_location)
    return out


def _apply_callable(obj, fn):
    if isinstance(obj, T.Tensor):
        r = fn(obj, "cpu")
        return r if isinstance(r, T.Tensor) else obj
    if isinstance(obj, dict):
        for k in list(obj):
            obj[k] = _apply_callable(obj[k], fn)
        return obj
    if isinstance(obj, list):
        return [_apply_callable(v, fn) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_apply_callable(v, fn) for v in obj)
    return obj
