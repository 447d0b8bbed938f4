"""A stand-in CUDA device backed by NumPy, so that CPU-only CI exercises the device path of the engine.

:func:`enable` registers :data:`standin` as the array module of ``device('cuda')`` (and makes
``disttorch.cuda.is_available()`` true) until :func:`disable`. Its arrays (:class:`StandinArray`) behave as
CuPy's where it matters for catching bugs:

* they are not ``numpy.ndarray`` instances, and ``numpy.asarray``/``numpy.array`` on them raise TypeError
  ("Implicit conversion to a NumPy array is not allowed"), as CuPy's do;
* NumPy ufuncs and functions called on them dispatch to the stand-in (as CuPy's ``__array_ufunc__`` and
  ``__array_function__`` do), but refuse a NumPy array argument beside them (host/device mixing);
* reductions return 0-d device arrays, never NumPy scalars;
* every device-to-host copy (``get``, ``asnumpy``, ``item``, ``tolist``, ``float()``, ``int()``, ``bool()``)
  and every host-to-device copy (``asarray`` of host data, a NumPy index or value in ``[]``) is counted in
  :data:`TRANSFERS`, with the place in the caller that made it, so tests can assert that a training step
  makes none.

Nothing here is imported by ``import disttorch``; the mode is opt-in (tests/gpu_standin/).
"""
from __future__ import annotations

import sys
import threading
import traceback
import types
from contextlib import contextmanager

import numpy as np

__all__ = ["StandinArray", "standin", "standin_cupyx", "enable", "disable", "enabled", "TRANSFERS", "count_transfers"]

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy "
             "array explicitly.")


class _Transfers:
    """Counters of host<->device copies made through the stand-in, with where each one came from."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.to_host = 0
        self.to_device = 0
        self.events: list[tuple[str, str, str]] = []  # (direction, what, caller "file:line in fn")

    def reset(self) -> None:
        with self._lock:
            self.to_host = self.to_device = 0
            self.events.clear()

    @property
    def total(self) -> int:
        return self.to_host + self.to_device

    def _record(self, direction: str, what: str) -> None:
        where = "?"
        for fr in reversed(traceback.extract_stack(limit=12)[:-1]):
            if not fr.filename.endswith("_standin_cuda.py"):
                where = f"{fr.filename}:{fr.lineno} in {fr.name}"
                break
        with self._lock:
            if direction == "to_host":
                self.to_host += 1
            else:
                self.to_device += 1
            if len(self.events) < 1000:
                self.events.append((direction, what, where))

    def summary(self) -> str:
        """The recorded transfers, one a line (for assertion messages)."""
        return "\n".join(f"{d} via {w} at {loc}" for d, w, loc in self.events) or "no transfers"


TRANSFERS = _Transfers()


class _Device:
    """What ``StandinArray.device`` returns: CuPy's ``cupy.cuda.Device`` has ``id``."""

    __slots__ = ("id", "_prev")

    def __init__(self, i: int | None = None) -> None:
        self.id = _STATE["device"] if i is None else int(i)

    def __enter__(self):
        self._prev = _STATE["device"]
        _STATE["device"] = self.id
        return self

    def __exit__(self, *exc) -> bool:
        _STATE["device"] = self._prev
        return False

    def synchronize(self) -> None:
        pass

    def __eq__(self, other) -> bool:
        return isinstance(other, _Device) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id} (stand-in)>"


_STATE = {"device": 0}
_DEVICE_COUNT = 1


def _unwrap(x, fname: str, allow_host: bool = False):
    """``x`` with stand-in arrays replaced by their NumPy buffers; a NumPy array argument is host/device mixing."""
    cls = x.__class__
    if cls is StandinArray:
        return x._a
    if cls is tuple or cls is list:
        return cls(_unwrap(v, fname, allow_host) for v in x)
    if isinstance(x, np.ndarray) and not allow_host:
        raise TypeError(f"stand-in cuda: {fname}: unsupported type {type(x).__module__}.{type(x).__name__} "
                        f"(a host NumPy array of shape {x.shape} passed to a device op); move it with "
                        "cupy.asarray first, as CuPy requires")
    return x


def _wrap(r, inputs=()):
    """NumPy results as stand-in arrays (NumPy scalars as 0-d arrays, as CuPy's reductions return)."""
    if isinstance(r, np.ndarray):
        for a in inputs:  # out= returns the very array that was passed
            if a.__class__ is StandinArray and a._a is r:
                return a
        return StandinArray(r)
    if isinstance(r, np.generic):
        return StandinArray(np.asarray(r))
    if r.__class__ is tuple or r.__class__ is list:
        return r.__class__(_wrap(v, inputs) for v in r)
    return r


def _call(fn, fname: str, args, kwargs):
    uargs = _unwrap(args, fname)
    ukw = {k: _unwrap(v, fname) for k, v in kwargs.items()} if kwargs else {}
    with np.errstate(all="ignore"):  # CuPy never warns about floating-point errors (NaN from log(-1) and such)
        res = fn(*uargs, **ukw)
    out = kwargs.get("out") if kwargs else None
    return _wrap(res, (out,) if out is not None else args)


class StandinArray:
    """A device array of the stand-in: a NumPy buffer that refuses to be a NumPy array implicitly."""

    __slots__ = ("_a",)
    __array_priority__ = 100.0
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    # -- what CuPy refuses or counts ---------------------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(_IMPLICIT)

    def get(self, stream=None, order="C", out=None) -> np.ndarray:
        """A NumPy copy (a device-to-host transfer)."""
        TRANSFERS._record("to_host", "get")
        return np.array(self._a, order=order)

    def set(self, arr, stream=None) -> None:
        """Copy the host array ``arr`` in (a host-to-device transfer; CuPy's is asynchronous from pinned memory
        when a stream is given)."""
        TRANSFERS._record("to_device", "set")
        if self._a.shape != np.shape(arr):
            raise ValueError(f"Shape mismatch. Old shape: {self._a.shape}, new shape: {np.shape(arr)}")
        np.copyto(self._a, arr, casting="unsafe")

    def item(self, *args):
        TRANSFERS._record("to_host", "item")
        return self._a.item(*args)

    def tolist(self):
        TRANSFERS._record("to_host", "tolist")
        return self._a.tolist()

    def __float__(self) -> float:
        TRANSFERS._record("to_host", "float()")
        return float(self._a)

    def __int__(self) -> int:
        TRANSFERS._record("to_host", "int()")
        return int(self._a)

    def __index__(self) -> int:
        TRANSFERS._record("to_host", "index")
        return self._a.__index__()

    def __complex__(self) -> complex:
        TRANSFERS._record("to_host", "complex()")
        return complex(self._a)

    def __bool__(self) -> bool:
        TRANSFERS._record("to_host", "bool()")
        return bool(self._a)

    def __repr__(self) -> str:  # diagnostics only: not counted
        return "standin_" + repr(self._a)

    __str__ = __repr__

    # -- NumPy protocols: dispatch to the stand-in, as CuPy does ------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        fname = f"numpy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
        fn = ufunc if method == "__call__" else getattr(ufunc, method)
        return _call(fn, fname, inputs, kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        name = func.__name__
        if name in ("asarray", "array", "asanyarray", "ascontiguousarray"):
            raise TypeError(_IMPLICIT)
        return _call(func, f"numpy.{name}", args, kwargs)

    # -- array attributes -----------------------------------------------------------------------------------
    @property
    def device(self) -> _Device:
        return _Device(0)

    @property
    def shape(self):
        return self._a.shape

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    @property
    def dtype(self):
        return self._a.dtype

    @property
    def ndim(self) -> int:
        return self._a.ndim

    @property
    def size(self) -> int:
        return self._a.size

    @property
    def T(self):  # noqa: N802
        return StandinArray(self._a.T)

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self):
        return (StandinArray(np.asarray(v)) if isinstance(v, np.generic) else StandinArray(v) for v in self._a)

    @property
    def data(self):
        """``.data.ptr``: the buffer's address, as CuPy's ``MemoryPointer`` gives (the multi-tensor kernel tables)."""
        return types.SimpleNamespace(ptr=int(self._a.ctypes.data))

    def __getattr__(self, name: str):
        if name.startswith("__"):  # __array_interface__ and friends would let NumPy convert silently
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            def method(*args, **kwargs):
                return _call(attr, f"ndarray.{name}", args, kwargs)

            return method
        return _wrap(attr)

    def __getitem__(self, key):
        return _wrap(self._a[_index_key(key)])

    def __setitem__(self, key, value) -> None:
        if isinstance(value, np.ndarray):
            TRANSFERS._record("to_device", "setitem value")
        elif value.__class__ is StandinArray:
            value = value._a
        self._a[_index_key(key)] = value

    def diagonal(self, offset=0, axis1=0, axis2=1):
        return StandinArray(_writable_diagonal(self._a, offset, axis1, axis2))

    def __copy__(self):
        return StandinArray(self._a.copy())

    def __deepcopy__(self, memo):
        return StandinArray(self._a.copy())

    def __reduce__(self):
        return (StandinArray, (self._a,))


def _writable_diagonal(a: np.ndarray, offset: int = 0, axis1: int = 0, axis2: int = 1) -> np.ndarray:
    """``numpy.diagonal`` as a writable view: CuPy's diagonal can be assigned to, NumPy's is read-only."""
    b = np.moveaxis(a, (axis1, axis2), (-2, -1))
    b = b[..., :, offset:] if offset >= 0 else b[..., -offset:, :]
    n = max(min(b.shape[-2], b.shape[-1]), 0)
    return np.lib.stride_tricks.as_strided(b, b.shape[:-2] + (n,), b.strides[:-2] + (b.strides[-2] + b.strides[-1],),
                                           writeable=a.flags.writeable)


def _index_key(key):
    if key.__class__ is StandinArray:
        return key._a
    if isinstance(key, np.ndarray):
        TRANSFERS._record("to_device", "NumPy index array")
        return key
    if key.__class__ is tuple:
        return tuple(_index_key(k) for k in key)
    return key


def _binop(name: str, reflected: bool = False, inplace: bool = False):
    ufunc = getattr(np, name)

    def op(self, other):
        o = _unwrap(other, f"operator {name}")
        with np.errstate(all="ignore"):  # as CuPy: no floating-point warnings
            if inplace:
                ufunc(self._a, o, out=self._a)
                return self
            return _wrap(ufunc(o, self._a) if reflected else ufunc(self._a, o))

    return op


def _unop(fn):
    return lambda self: _wrap(fn(self._a))


for _dunder, _ufunc in (("add", "add"), ("sub", "subtract"), ("mul", "multiply"), ("truediv", "true_divide"),
                        ("floordiv", "floor_divide"), ("mod", "remainder"), ("pow", "power"),
                        ("matmul", "matmul"), ("and", "bitwise_and"), ("or", "bitwise_or"),
                        ("xor", "bitwise_xor"), ("lshift", "left_shift"), ("rshift", "right_shift")):
    setattr(StandinArray, f"__{_dunder}__", _binop(_ufunc))
    setattr(StandinArray, f"__r{_dunder}__", _binop(_ufunc, reflected=True))
    if _dunder != "matmul":
        setattr(StandinArray, f"__i{_dunder}__", _binop(_ufunc, inplace=True))
for _dunder, _ufunc in (("lt", "less"), ("le", "less_equal"), ("gt", "greater"), ("ge", "greater_equal"),
                        ("eq", "equal"), ("ne", "not_equal")):
    setattr(StandinArray, f"__{_dunder}__", _binop(_ufunc))
StandinArray.__neg__ = _unop(np.negative)
StandinArray.__pos__ = _unop(np.positive)
StandinArray.__abs__ = _unop(np.absolute)
StandinArray.__invert__ = _unop(np.invert)


class _Ufunc:
    """A NumPy ufunc over stand-in arrays (``reduce``, ``accumulate``, ``at``, ``outer`` included)."""

    def __init__(self, uf) -> None:
        self._uf = uf
        self.__name__ = uf.__name__

    def __call__(self, *args, **kwargs):
        return _call(self._uf, self.__name__, args, kwargs)

    def __getattr__(self, name: str):
        attr = getattr(self._uf, name)
        if not callable(attr):
            return attr

        def method(*args, **kwargs):
            return _call(attr, f"{self.__name__}.{name}", args, kwargs)

        return method


def _to_device(a, dtype=None, copy: bool = False, what: str = "asarray"):
    if a.__class__ is StandinArray:
        arr = a._a
        if dtype is not None and arr.dtype != np.dtype(dtype):
            return StandinArray(arr.astype(dtype))
        return StandinArray(arr.copy()) if copy else a
    TRANSFERS._record("to_device", what)
    return StandinArray(np.array(_unwrap(a, what, allow_host=True), dtype=dtype, copy=True))


class _Namespace(types.ModuleType):
    """A module that delegates to a NumPy module, taking and returning stand-in arrays."""

    def __init__(self, name: str, base) -> None:
        super().__init__(name)
        self._base = base

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self._base, name)
        if isinstance(attr, np.ufunc):
            out = _Ufunc(attr)
        elif isinstance(attr, types.ModuleType):
            out = _Namespace(f"{self.__name__}.{name}", attr)
        elif callable(attr) and not isinstance(attr, type):
            fname = f"{self.__name__}.{name}"

            def out(*args, _fn=attr, _fname=fname, **kwargs):
                return _call(_fn, _fname, args, kwargs)

            out.__name__ = name
        else:
            out = attr
        setattr(self, name, out)  # cached: later lookups skip __getattr__
        return out


class _Random:
    """``cupy.random``: a seeded generator drawing stand-in arrays (no host data involved)."""

    def __init__(self) -> None:
        self._rs = np.random.RandomState(0)

    def seed(self, seed=None) -> None:
        self._rs = np.random.RandomState(None if seed is None else int(seed) % (1 << 32))

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self._rs, name)

        def draw(*args, dtype=None, **kwargs):
            r = attr(*_unwrap(args, name), **kwargs)
            r = np.asarray(r)
            return StandinArray(r.astype(dtype) if dtype is not None else r)

        return draw


class PinnedMemoryPointer(bytearray):
    """The stand-in of ``cupy.cuda.alloc_pinned_memory(size)``: host bytes, recognised as pinned by its type name
    (``disttorch.cuda._pinned.is_pinned_array``)."""

    def __init__(self, size: int) -> None:
        super().__init__(int(size))


def _make_module() -> _Namespace:
    mod = _Namespace("standin_cupy", np)
    mod.ndarray = StandinArray

    def asarray(a, dtype=None, order=None, *, blocking=False):
        return _to_device(a, dtype, copy=False)

    def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
        out = _to_device(obj, dtype, copy=bool(copy), what="array")
        if ndmin and out.ndim < ndmin:
            out = StandinArray(out._a.reshape((1,) * (ndmin - out.ndim) + out.shape))
        return out

    def ascontiguousarray(a, dtype=None):
        out = _to_device(a, dtype, what="ascontiguousarray")
        return StandinArray(np.ascontiguousarray(out._a))

    def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
        if a.__class__ is StandinArray:
            return StandinArray.get(a)  # the stand-in of cupy.asnumpy: the counted copy itself
        return np.asarray(a, order=order)

    def get_array_module(*args):
        return mod if any(a.__class__ is StandinArray for a in args) else np

    mod.asarray, mod.array, mod.ascontiguousarray = asarray, array, ascontiguousarray
    mod.asnumpy, mod.get_array_module = asnumpy, get_array_module
    mod.diagonal = lambda a, offset=0, axis1=0, axis2=1: StandinArray.diagonal(a, offset, axis1, axis2)
    mod.random = _Random()

    def kernel_launch(plan, device_id=None):  # what ops._fused.launcher runs here in place of CuPy's launch
        from ._kernel_emulator import launch

        launch(plan, device_id)

    mod._disttorch_kernel_launch = kernel_launch

    runtime = types.SimpleNamespace(
        getDeviceCount=lambda: _DEVICE_COUNT,
        getDevice=lambda: _STATE["device"],
        setDevice=lambda i: _STATE.__setitem__("device", int(i)),
        deviceSynchronize=lambda: None,
        getDeviceProperties=lambda i: {"name": b"disttorch stand-in device", "major": 0, "minor": 0,
                                       "totalGlobalMem": 0, "multiProcessorCount": 1})
    mod.cuda = types.SimpleNamespace(runtime=runtime, Device=_Device, alloc_pinned_memory=PinnedMemoryPointer,
                                     get_current_stream=lambda: None)
    return mod


standin = _make_module()


def _make_cupyx() -> types.ModuleType:
    """``cupyx``'s scatter functions (what ops/ imports from it where a ufunc's ``at`` is missing)."""
    mod = types.ModuleType("cupyx")

    def scatter(ufunc):
        def fn(a, slices, value):
            ufunc.at(_unwrap(a, "cupyx.scatter"), _index_key(slices), _unwrap(value, "cupyx.scatter"))

        return fn

    mod.scatter_add, mod.scatter_max, mod.scatter_min = scatter(np.add), scatter(np.maximum), scatter(np.minimum)
    return mod


standin_cupyx = _make_cupyx()

_saved: list = []


def enabled() -> bool:
    """Whether the stand-in is the array module of ``device('cuda')`` now."""
    return bool(_saved)


def enable() -> None:
    """Register the stand-in as ``cuda`` (``disttorch.cuda.is_available()`` becomes True) and reset the counters."""
    from .. import cuda

    if _saved:
        return
    _saved.append((cuda._probed, cuda._cupy_module, cuda._reason, list(cuda._QUEUED), sys.modules.get("cupyx")))
    sys.modules["cupyx"] = standin_cupyx  # code that does `import cupyx` on the device path gets the stand-in
    cuda._probed, cuda._cupy_module, cuda._reason = True, standin, None
    cuda._QUEUED[:] = []
    cuda._checks._PENDING.clear()
    _STATE["device"] = 0
    TRANSFERS.reset()


def disable() -> None:
    """Undo :func:`enable`: ``cuda`` is probed as it was before."""
    from .. import cuda

    if not _saved:
        return
    cuda._probed, cuda._cupy_module, cuda._reason, queued, cupyx = _saved.pop()
    cuda._QUEUED[:] = queued
    cuda._checks._PENDING.clear()  # checks of stand-in arrays must not reach a later real device
    if cupyx is None:
        sys.modules.pop("cupyx", None)
    else:
        sys.modules["cupyx"] = cupyx


@contextmanager
def count_transfers():
    """Count the transfers made inside the block: yields :data:`TRANSFERS`, reset on entry."""
    TRANSFERS.reset()
    yield TRANSFERS
