"""Read PyTorch ``.pt`` zip checkpoints that hold tensors and plain containers, without PyTorch or pickle.

A ``torch.save`` file is a zip archive: ``<name>/data.pkl`` (a pickle describing the structure) and
``<name>/data/<key>`` (raw storage bytes). This module interprets the pickle opcodes itself with a small
stack machine that knows exactly the globals a weights-only checkpoint needs (OrderedDict, the tensor and
parameter rebuild functions and the storage types). Any other global, or any opcode outside that set,
raises ``UnsupportedGlobalError``: nothing in the file is ever called or imported.

Nothing in the file is trusted: a member's size is checked before it is read (compressed members count
against ``max_decompressed_bytes``, ``data.pkl`` against ``max_pickle_bytes``, and a member is read in chunks
so a lying size fails zipfile's CRC check instead of inflating), the interpreter counts opcodes, memo
entries and stack entries, every tensor view (offset, sizes, strides) must lie inside its storage, bytes built
beyond the storages' size (stride-0 expansion, overlapping views) count against ``max_expand_bytes``, and the
result must hold only containers, scalars and tensors, at most ``max_depth`` levels deep. Identical views of
one storage (tied weights) load as tensors sharing memory, as in PyTorch.
"""
from __future__ import annotations

import collections
import io
import struct
import sys
import zipfile
import zlib

import numpy as np

from . import _dtype as D
from . import _tensor as T
from ._checkpoint_config import CheckpointError, CheckpointOptions, UnsupportedGlobalError, over_limit
from ._checkpoint_decode import move, user_call
from ._checkpoint_structure import check_objects
from ._device import device as _device_cls

_STORAGES = {"FloatStorage": D.float32, "DoubleStorage": D.float64, "HalfStorage": D.float16,
             "BFloat16Storage": D.bfloat16, "LongStorage": D.int64, "IntStorage": D.int32, "ShortStorage": D.int16,
             "CharStorage": D.int8, "ByteStorage": D.uint8, "BoolStorage": D.bool,
             "ComplexFloatStorage": D.complex64, "ComplexDoubleStorage": D.complex128}
_DTYPES = {"float32": D.float32, "float": D.float32, "float64": D.float64, "double": D.float64, "float16": D.float16,
           "half": D.float16, "bfloat16": D.bfloat16, "int64": D.int64, "long": D.int64, "int32": D.int32,
           "int": D.int32, "int16": D.int16, "int8": D.int8, "uint8": D.uint8, "bool": D.bool}
_MAX_NDIM = 64  # NumPy's limit
_READ_CHUNK = 1 << 20


class _Global:
    """A resolved, allowed global: a name the interpreter knows how to 'call'."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_ALLOWED = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
            "torch._utils._rebuild_parameter_with_state", "torch.Size", "builtins.set", "builtins.frozenset",
            "torch.device", "torch.serialization._get_layout", "torch._utils._rebuild_tensor"}


class _Storage:
    __slots__ = ("key", "dtype", "numel")

    def __init__(self, key: str, dtype: D.dtype, numel) -> None:
        self.key, self.dtype, self.numel = key, dtype, numel


def _is_uint(x) -> bool:
    return type(x) is int and x >= 0


class _Reader:
    def __init__(self, data: bytes, where: str, storages: "_Members", to_device, opts: CheckpointOptions) -> None:
        self.f = io.BytesIO(data)
        self.where, self.members, self.to_device, self.opts = where, storages, to_device, opts
        self.stack: list = []
        self.marks: list = []
        self.memo: dict = {}
        self.storages: dict = {}
        self.views: dict = {}  # (storage key, offset, size, stride) -> array: identical views share memory
        self.built = 0  # bytes of tensor data built so far

    def fail(self, what: str):
        raise UnsupportedGlobalError(f"{self.where}: not a weights-only PyTorch checkpoint: {what}. disttorch reads "
                                     "only tensors, parameters and plain containers from .pt files")

    def bad(self, what: str) -> CheckpointError:
        return CheckpointError(f"{self.where}: corrupted data.pkl ({what})")

    def read(self, n: int) -> bytes:
        b = self.f.read(n)
        if len(b) != n:
            raise CheckpointError(f"{self.where}: truncated data.pkl")
        return b

    def pop(self):
        if not self.stack:
            raise self.bad("pop from an empty stack")
        return self.stack.pop()

    def top(self):
        if not self.stack:
            raise self.bad("empty stack")
        return self.stack[-1]

    def pop_mark(self) -> list:
        if not self.marks:
            raise self.bad("no MARK to close")
        k = self.marks.pop()
        items = self.stack[k:]
        del self.stack[k:]
        return items

    def put(self, idx: int) -> None:
        if len(self.memo) >= self.opts.max_pickle_memo and idx not in self.memo:
            raise over_limit(self.where, "pickle memo entries", len(self.memo) + 1, "max_pickle_memo", self.opts)
        self.memo[idx] = self.top()

    def get(self, idx: int):
        try:
            return self.memo[idx]
        except KeyError:
            raise self.bad(f"memo entry {idx} was never stored") from None

    def run(self):  # noqa: C901 - the opcode table
        s, read, opts = self.stack, self.read, self.opts
        ops = 0
        while True:
            ops += 1
            if ops > opts.max_pickle_ops:
                raise over_limit(self.where, "pickle opcodes", ops, "max_pickle_ops", opts)
            if len(s) + len(self.marks) > opts.max_pickle_stack:
                raise over_limit(self.where, "pickle stack entries", len(s) + len(self.marks), "max_pickle_stack",
                                 opts)
            op = read(1)
            if op == b"\x80":  # PROTO
                if read(1)[0] > 5:
                    raise self.bad("unknown pickle protocol")
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
                self.put(read(1)[0])
            elif op == b"r":
                self.put(struct.unpack("<I", read(4))[0])
            elif op == b"\x94":
                self.put(len(self.memo))
            elif op == b"h":
                s.append(self.get(read(1)[0]))
            elif op == b"j":
                s.append(self.get(struct.unpack("<I", read(4))[0]))
            elif op == b"c":
                module = self.f.readline()[:-1].decode("utf-8")
                name = self.f.readline()[:-1].decode("utf-8")
                s.append(self.global_(module, name))
            elif op == b"\x93":
                name = self.pop()
                module = self.pop()
                if not (isinstance(module, str) and isinstance(name, str)):
                    raise self.bad("STACK_GLOBAL of non-strings")
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
            elif op in (b"\x85", b"\x86", b"\x87"):
                n = op[0] - 0x84
                if len(s) < n:
                    raise self.bad("TUPLE from an empty stack")
                s[-n:] = [tuple(s[-n:])]
            elif op == b"\x88":
                s.append(True)
            elif op == b"\x89":
                s.append(False)
            elif op == b"N":
                s.append(None)
            elif op == b"Q":
                s.append(self.persistent(self.pop()))
            elif op == b"R":
                args = self.pop()
                fn = self.pop()
                s.append(self.call(fn, args))
            elif op == b"b":
                state = self.pop()
                self.build(self.top(), state)
            elif op == b"s":
                v = self.pop()
                k = self.pop()
                self.setitems(self.top(), [k, v])
            elif op == b"u":
                items = self.pop_mark()
                self.setitems(self.top(), items)
            elif op == b"a":
                v = self.pop()
                self.list_of(self.top()).append(v)
            elif op == b"e":
                items = self.pop_mark()
                self.list_of(self.top()).extend(items)
            elif op == b".":
                return self.pop()
            else:
                self.fail(f"pickle opcode {op!r} is not allowed")

    def setitems(self, target, items: list) -> None:
        if not isinstance(target, dict):
            self.fail(f"SETITEM on {type(target).__name__}")
        if len(items) % 2:
            raise self.bad("SETITEMS with an odd number of items")
        try:
            for i in range(0, len(items), 2):
                target[items[i]] = items[i + 1]
        except TypeError:
            raise self.bad("a dict key is unhashable") from None

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
            self.fail(f"global {full[:200]} is not allowed")
        return _Global(full)

    def persistent(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            self.fail(f"unexpected persistent id {str(pid)[:100]}")
        _, stype, key, location, numel = pid[:5]
        if not isinstance(stype, D.dtype):
            self.fail(f"unknown storage type {str(stype)[:100]}")
        if not (isinstance(key, str) and isinstance(location, str) and _is_uint(numel)):
            raise self.bad("a storage record has fields of the wrong types")
        try:
            location = str(_device_cls(location))
        except (RuntimeError, ValueError):
            raise self.bad(f"storage {key[:20]} has the invalid location {location[:40]!r}") from None
        st = self.storages.get(key)
        if st is None:
            st = self.storages[key] = _Storage(key, stype, numel)
        elif st.dtype is not stype or st.numel != numel:
            raise self.bad(f"storage {key} is described twice, differently")
        return (st, location)

    def build(self, obj, state) -> None:
        if isinstance(obj, collections.OrderedDict) and isinstance(state, dict):
            for k, v in state.items():
                if not isinstance(k, str) or k.startswith("__") or hasattr(collections.OrderedDict, k):
                    raise self.bad(f"BUILD sets attribute {str(k)[:40]!r} on an OrderedDict")
                setattr(obj, k, v)
        elif isinstance(obj, T.Tensor) and (state is None or isinstance(state, dict)):
            if state:
                raise self.bad("BUILD sets attributes on a tensor")
        else:
            self.fail(f"BUILD on {type(obj).__name__}")

    def call(self, fn, args):  # noqa: C901 - one branch per allowed global
        if not isinstance(fn, _Global) or not isinstance(args, tuple):
            self.fail(f"call of {str(fn)[:100]}")
        name = fn.name
        try:
            if name == "collections.OrderedDict":
                return collections.OrderedDict(*args)
            if name == "builtins.set":
                return set(*args)
            if name == "builtins.frozenset":
                return frozenset(*args)
        except (TypeError, ValueError) as e:
            raise self.bad(f"{name}{str(args)[:60]}: {e}") from None
        if name == "torch.Size":
            from ._size import Size
            if len(args) != 1 or not isinstance(args[0], (tuple, list)) or not all(_is_uint(d) for d in args[0]):
                raise self.bad("torch.Size of something other than non-negative ints")
            return Size(args[0])
        if name == "torch.device":
            if not (1 <= len(args) <= 2 and isinstance(args[0], str) and (len(args) == 1 or _is_uint(args[1]))):
                raise self.bad("torch.device with arguments of the wrong types")
            return args[0] if len(args) == 1 else f"{args[0]}:{args[1]}"
        if name in ("torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor"):
            if len(args) < 4:
                raise self.bad(f"{name} with {len(args)} arguments")
            requires_grad = args[4] if len(args) > 4 else False
            return self.tensor(*args[:4], requires_grad=requires_grad)
        if name in ("torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state"):
            from .nn.parameter import Parameter
            if len(args) < 2 or not isinstance(args[0], T.Tensor) or type(args[1]) is not bool:
                raise self.bad(f"{name} of something other than a tensor")
            data, requires_grad = args[0], args[1]
            if requires_grad and not (data.dtype.is_floating_point or data.dtype.is_complex):
                raise self.bad(f"a parameter of dtype {data.dtype.name} marked as requiring grad")
            return Parameter(data, requires_grad)
        self.fail(f"call of {name}")

    def tensor(self, storage, offset, size, stride, requires_grad=False):
        if not (isinstance(storage, tuple) and len(storage) == 2 and isinstance(storage[0], _Storage)):
            self.fail("tensor without storage")
        st, location = storage
        if isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list)):
            size, stride = tuple(size), tuple(stride)
        if not (_is_uint(offset) and isinstance(size, tuple) and isinstance(stride, tuple)
                and len(size) == len(stride) <= _MAX_NDIM and all(map(_is_uint, size))
                and all(map(_is_uint, stride)) and type(requires_grad) is bool):
            raise self.bad(f"tensor view offset={str(offset)[:30]} size={str(size)[:80]} stride={str(stride)[:80]}: "
                           "offset, sizes and strides must be non-negative ints, as many strides as sizes")
        itemsize = st.dtype.itemsize
        if requires_grad and not (st.dtype.is_floating_point or st.dtype.is_complex):
            raise self.bad(f"a tensor of dtype {st.dtype.name} marked as requiring grad")
        numel = 1
        for n in size:
            numel *= n
        view = (st.key, offset, size, stride)
        arr = self.views.get(view)
        if arr is None:
            arr = self.materialize(st, offset, size, stride, numel, itemsize)
            self.views[view] = arr
        t = T._wrap(arr)
        target = self.to_device(location)
        if target is not None and str(target) != "cpu":
            t = move(t, target, location, self.where)
        if requires_grad:
            t.requires_grad_(True)
        return t

    def materialize(self, st: _Storage, offset: int, size: tuple, stride: tuple, numel: int, itemsize: int):
        flat = self.members.storage(st)
        if numel == 0:
            return np.empty(size, dtype=st.dtype.np)
        highest = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if highest >= flat.size:
            raise CheckpointError(f"{self.where}: tensor of size {list(size)} and stride {list(stride)} at offset "
                                  f"{offset} reaches element {highest} but storage {st.key} has {flat.size}")
        nbytes = numel * itemsize
        self.built += nbytes
        allowed = self.members.storage_bytes + self.opts.max_expand_bytes
        if self.built > allowed:
            raise over_limit(self.where, f"tensor bytes built beyond the storages' {self.members.storage_bytes} "
                             f"bytes (a {list(size)} view with strides {list(stride)})",
                             self.built - self.members.storage_bytes, "max_expand_bytes", self.opts)
        strides = tuple(s * itemsize if n > 1 else 0 for n, s in zip(size, stride))  # unused strides may be huge
        return np.lib.stride_tricks.as_strided(flat[offset:], shape=size, strides=strides).copy()


class _Members:
    """Reads zip members with their sizes checked first and bounded memory per read."""

    def __init__(self, z: zipfile.ZipFile, prefix: str, where: str, archive_size: int, swap: bool,
                 opts: CheckpointOptions) -> None:
        self.z, self.prefix, self.where, self.archive_size, self.swap, self.opts = \
            z, prefix, where, archive_size, swap, opts
        self.inflated = 0  # bytes read from compressed members
        self.stored = 0  # bytes read from stored members
        self.storage_bytes = 0
        self.cache: dict = {}

    def read(self, name: str, cap_field: str | None = None) -> bytearray:
        try:
            info = self.z.getinfo(name)
        except KeyError:
            raise CheckpointError(f"{self.where}: {name} is missing from the archive") from None
        size = info.file_size
        if cap_field is not None and size > getattr(self.opts, cap_field):
            raise over_limit(self.where, f"size of {name}", size, cap_field, self.opts)
        if info.flag_bits & 0x1:
            raise CheckpointError(f"{self.where}: {name} is encrypted")
        if info.compress_type == zipfile.ZIP_STORED:
            self.stored += size
            if info.compress_size != size or self.stored > self.archive_size:
                raise CheckpointError(f"{self.where}: corrupted zip archive ({name} claims {size} bytes; stored "
                                      f"members hold {self.stored} bytes in a {self.archive_size}-byte file)")
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            self.inflated += size
            if self.inflated > self.opts.max_decompressed_bytes:
                raise over_limit(self.where, f"bytes of compressed members (up to {name})", self.inflated,
                                 "max_decompressed_bytes", self.opts)
        else:
            raise CheckpointError(f"{self.where}: {name} uses zip compression method {info.compress_type}; PyTorch "
                                  "checkpoints store members uncompressed (deflate is also read)")
        buf = bytearray(size)
        view = memoryview(buf)
        pos = 0
        # Read in chunks: zipfile inflates at most the bytes asked for, stops at the declared size and checks the
        # CRC there, so a member that lies about its size fails instead of inflating without bound.
        try:
            with self.z.open(info) as fh:
                while pos < size:
                    chunk = fh.read(min(_READ_CHUNK, size - pos))
                    if not chunk:
                        raise CheckpointError(f"{self.where}: {name} is truncated ({pos} of {size} bytes)")
                    view[pos:pos + len(chunk)] = chunk
                    pos += len(chunk)
        except (zipfile.BadZipFile, EOFError, zlib.error, OSError, ValueError, NotImplementedError,
                RuntimeError) as e:
            if isinstance(e, CheckpointError):
                raise
            raise CheckpointError(f"{self.where}: {name} is corrupted ({type(e).__name__}: {e})") from None
        return buf

    def storage(self, st: _Storage) -> np.ndarray:
        flat = self.cache.get(st.key)
        if flat is None:
            raw = self.read(f"{self.prefix}data/{st.key}")
            if len(raw) != st.numel * st.dtype.itemsize:
                raise CheckpointError(f"{self.where}: storage {st.key} has {len(raw)} bytes but its record says "
                                      f"{st.numel} elements of {st.dtype.itemsize} bytes ({st.dtype.name})")
            self.storage_bytes += len(raw)
            flat = np.frombuffer(raw, dtype=st.dtype.np)
            if self.swap:
                flat = flat.byteswap()
            self.cache[st.key] = flat
        return flat


def load_torch_zip(source, where: str, to_device, map_location, opts: CheckpointOptions):
    """Parse a PyTorch zip checkpoint from ``source`` (a path or a seekable binary file)."""
    try:
        z = zipfile.ZipFile(source)
        infos = z.infolist()
    # NotImplementedError: a directory record claiming a zip version this zipfile cannot read; UnicodeDecodeError:
    # a name flagged UTF-8 that is not
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, struct.error, OSError,
            NotImplementedError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{where}: corrupted or truncated zip archive ({type(e).__name__}: {e})") from None
    with z:
        fp = z.fp
        archive_size = fp.seek(0, io.SEEK_END) if fp is not None else 0
        pkl = [i.filename for i in infos if i.filename.endswith("/data.pkl") or i.filename == "data.pkl"]
        if not pkl:
            raise CheckpointError(f"{where}: a zip file but not a PyTorch checkpoint (no data.pkl inside)")
        if len(pkl) > 1:
            raise CheckpointError(f"{where}: a zip file with {len(pkl)} data.pkl records: not a PyTorch checkpoint")
        prefix = pkl[0][: -len("data.pkl")]
        members = _Members(z, prefix, where, archive_size, False, opts)
        try:
            if f"{prefix}byteorder" in z.NameToInfo:
                info = z.getinfo(f"{prefix}byteorder")
                if info.file_size > 16:
                    raise CheckpointError(f"{where}: corrupted byteorder record")
                order = bytes(members.read(f"{prefix}byteorder"))
                if order not in (b"little", b"big"):
                    raise CheckpointError(f"{where}: corrupted byteorder record")
                members.swap = order.decode() != sys.byteorder
            blob = bytes(members.read(pkl[0], "max_pickle_bytes"))
            out = _Reader(blob, where, members, to_device, opts).run()
        except (IndexError, KeyError, struct.error, UnicodeDecodeError) as e:
            raise CheckpointError(f"{where}: corrupted data.pkl ({type(e).__name__}: {e})") from None
    check_objects(out, (T.Tensor, D.dtype), opts.max_depth, where)
    if callable(map_location) and not isinstance(map_location, (str, dict)):
        out = _apply_callable(out, map_location)
    return out


def _apply_callable(obj, fn):
    if isinstance(obj, T.Tensor):
        r = user_call(fn, obj, "cpu")
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
