"""A stand-in for ``cupy.cuda.nccl`` and the bits of ``cupy.cuda`` the nccl backend uses (tests only: no GPU here).

The fake communicator works as NCCL does on raw device addresses: it reads ``count`` elements of the NCCL
datatype it was told at the address it was given (the stand-in device's arrays are NumPy buffers, whose
address the injected ``ptr`` returns), exchanges them with the other ranks through a real store (a HashStore
shared by threads, or a TCPStore between processes), reduces them with NumPy and writes the result at the
receive address. So a wrong pointer, count, datatype, op or root in the backend gives a wrong result.

    install(store)   makes the nccl backend use the fakes over ``store`` (returns an undo function)
    CALLS            (method, rank, count, datatype, extra) of every communicator call, for packing checks
"""
import ctypes
import itertools
import os
import types

import ml_dtypes
import numpy as np

from disttorch.testing import _standin_cuda as S

# NCCL's enum values (nccl.h), which CuPy's constants carry too
NCCL_INT8, NCCL_UINT8, NCCL_INT32, NCCL_UINT32, NCCL_INT64, NCCL_UINT64 = 0, 1, 2, 3, 4, 5
NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64, NCCL_BFLOAT16 = 6, 7, 8, 9
NCCL_SUM, NCCL_PROD, NCCL_MAX, NCCL_MIN, NCCL_AVG = 0, 1, 2, 3, 4
DTYPES = {0: np.int8, 1: np.uint8, 2: np.int32, 3: np.uint32, 4: np.int64, 5: np.uint64, 6: np.float16,
          7: np.float32, 8: np.float64, 9: ml_dtypes.bfloat16}
UFUNCS = {NCCL_SUM: np.add, NCCL_PROD: np.multiply, NCCL_MAX: np.maximum, NCCL_MIN: np.minimum}

CALLS: list = []
STATE = {"store": None, "group_depth": 0, "uids": []}
_stream_ids = itertools.count(1000)


def _view(ptr: int, count: int, dt: int) -> np.ndarray:
    dtype = np.dtype(DTYPES[dt])
    raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(ptr)
    return np.frombuffer(raw, dtype=dtype, count=count)


def get_unique_id():
    return tuple(b - 256 if b > 127 else b for b in os.urandom(128))


def groupStart():  # noqa: N802 - CuPy's name
    STATE["group_depth"] += 1


def groupEnd():  # noqa: N802
    assert STATE["group_depth"] > 0, "groupEnd without groupStart"
    STATE["group_depth"] -= 1


class NcclCommunicator:
    """The fake: every collective is an exchange through the store under this id's prefix."""

    def __init__(self, ndev: int, uid: tuple, rank: int) -> None:
        assert isinstance(uid, tuple) and len(uid) == 128 and all(-128 <= v <= 127 for v in uid), uid
        self.n, self.r, self.seq = ndev, rank, 0
        self.prefix = "fake-nccl/" + bytes(v & 0xFF for v in uid[:8]).hex()
        self.p2p = {}
        self.destroyed = False
        STATE["uids"].append(uid)

    def _log(self, name, count, dt, *extra):
        CALLS.append((name, self.r, count, dt, extra))

    def _exchange(self, data: np.ndarray) -> list:
        self.seq += 1
        store = STATE["store"]
        store.set(f"{self.prefix}/{self.seq}/{self.r}", data.tobytes())
        return [np.frombuffer(store.get(f"{self.prefix}/{self.seq}/{r}"), dtype=data.dtype) for r in range(self.n)]

    def allReduce(self, send, recv, count, dt, op, stream):  # noqa: N802
        self._log("allReduce", count, dt, op, stream)
        parts = self._exchange(_view(send, count, dt).copy())
        _view(recv, count, dt)[:] = UFUNCS[op].reduce(np.stack(parts), axis=0)

    def broadcast(self, send, recv, count, dt, root, stream):
        self._log("broadcast", count, dt, root, stream)
        parts = self._exchange(_view(send, count, dt).copy())
        _view(recv, count, dt)[:] = parts[root]

    def reduce(self, send, recv, count, dt, op, root, stream):
        self._log("reduce", count, dt, op, root, stream)
        parts = self._exchange(_view(send, count, dt).copy())
        if self.r == root:
            _view(recv, count, dt)[:] = UFUNCS[op].reduce(np.stack(parts), axis=0)

    def allGather(self, send, recv, count, dt, stream):  # noqa: N802
        self._log("allGather", count, dt, stream)
        parts = self._exchange(_view(send, count, dt).copy())
        _view(recv, count * self.n, dt)[:] = np.concatenate(parts)

    def reduceScatter(self, send, recv, count, dt, op, stream):  # noqa: N802
        self._log("reduceScatter", count, dt, op, stream)
        parts = self._exchange(_view(send, count * self.n, dt).copy())
        total = UFUNCS[op].reduce(np.stack(parts), axis=0)
        _view(recv, count, dt)[:] = total[self.r * count:(self.r + 1) * count]

    def _pair(self, src, dst):
        n = self.p2p.get((src, dst), 0)
        self.p2p[(src, dst)] = n + 1
        return f"{self.prefix}/p2p/{src}->{dst}/{n}"

    def send(self, buf, count, dt, peer, stream):
        assert STATE["group_depth"] > 0, "the backend must group its send/recv calls"
        self._log("send", count, dt, peer, stream)
        STATE["store"].set(self._pair(self.r, peer), _view(buf, count, dt).tobytes())

    def recv(self, buf, count, dt, peer, stream):
        assert STATE["group_depth"] > 0, "the backend must group its send/recv calls"
        self._log("recv", count, dt, peer, stream)
        _view(buf, count, dt)[:] = np.frombuffer(STATE["store"].get(self._pair(peer, self.r)), DTYPES[dt])

    def destroy(self):
        self.destroyed = True


class Event:
    """Work on the stand-in device is done when queued; set ``held`` to pretend it is still running."""

    def __init__(self, disable_timing=False, block=False):
        self.stream, self.held = None, False

    def record(self, stream=None):
        self.stream = stream

    @property
    def done(self):
        return not self.held

    def synchronize(self):
        self.held = False


class Stream:
    def __init__(self, non_blocking=False, ptr=None):
        self.ptr = next(_stream_ids) if ptr is None else ptr
        self.waited = []

    def wait_event(self, event):
        self.waited.append(event)

    def synchronize(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


CURRENT = Stream(ptr=0)


def make_modules():
    """(cupy-like module, nccl-like module, ptr) for ``nccl._MODULES``."""
    sc = S.standin
    cuda = types.SimpleNamespace(Stream=Stream, Event=Event, get_current_stream=lambda: CURRENT,
                                 runtime=sc.cuda.runtime, Device=sc.cuda.Device)
    cp = types.SimpleNamespace(ndarray=S.StandinArray, asarray=sc.asarray, asnumpy=sc.asnumpy, empty=sc.empty,
                               zeros=sc.zeros, stack=sc.stack, cuda=cuda)
    nccl = types.ModuleType("fake_nccl")
    for k, v in list(globals().items()):
        if k.startswith("NCCL_") or k in ("get_unique_id", "groupStart", "groupEnd", "NcclCommunicator"):
            setattr(nccl, k, v)

    def ptr(a):
        assert a.__class__ is S.StandinArray and a._a.flags.c_contiguous, "nccl gets contiguous device buffers"
        return a._a.ctypes.data
    return cp, nccl, ptr


def install(store):
    """Enable the stand-in device and point the nccl backend at the fakes over ``store``; returns the undo."""
    from disttorch.distributed.backends import nccl as N

    S.enable()
    STATE["store"], STATE["group_depth"] = store, 0
    CALLS.clear()
    saved = N._MODULES
    N._MODULES = make_modules()

    def undo():
        N._MODULES = saved
        STATE["store"] = None
        S.disable()
    return undo
