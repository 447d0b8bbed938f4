"""Collectives on arrays that live on the other side of a backend: device arrays on the CPU backends (mpi, zmq),
host arrays on a pure nccl group.

A CPU backend moves host memory; a CUDA tensor given to it is staged: one device-to-host copy into a host buffer
(pinned when CuPy offers it, reused per shape and dtype), the backend runs on that buffer, and one host-to-device
copy writes the result back into the tensor. Each buffer is copied only the way it travels: an input (a sent
tensor, ``all_gather``'s input) goes down only, an output (``all_gather``'s outputs, a received tensor) comes back
only, an in-place tensor (``all_reduce``) does both. Where the mpi backend runs on an MPI library that reports CUDA
awareness, CuPy buffers go to it directly instead (``DISTTORCH_MPI_CUDA_AWARE=0`` turns that off, ``=1`` forces it).

A pure ``backend="nccl"`` group moves device memory only; the small CPU tensors that DDP's construction checks and
the object collectives exchange (inside ``host_tensors_on_device``) are staged the other way: copied to the current
device, reduced there, copied back. A user's own CPU tensor on such a group stays PyTorch's error.

Internal API (for ``collectives`` and DDP's reducer): ``group_for(g, a)`` gives the ProcessGroup that runs a
collective of group ``g`` on array ``a``: ``g._pg`` itself when the backend takes ``a`` as it is, else a
``StagedGroup`` around it. Callers check ``a.__class__ is np.ndarray`` first, so CPU tensors on CPU backends never
reach this module.
"""
from __future__ import annotations

import os
import threading
from typing import Optional

import numpy as np

from ..cuda._pinned import empty_pinned
from .process_group import ProcessGroup, ReduceOp, Work

__all__ = ["group_for", "host_tensors_on_device", "StagedGroup", "HostPool", "POOL", "mpi_cuda_aware"]


# ------------------------------------------------------------------------------------------------------------
# host buffers
# ------------------------------------------------------------------------------------------------------------
class HostPool:
    """Free host buffers by (shape, dtype), so that a training loop's staging allocates once per shape.

    A buffer is taken for one collective and given back when that collective has completed, so async
    collectives of one shape in flight together (DDP's buckets) never share one.
    """

    def __init__(self, keep: int = 4) -> None:
        self._free: dict = {}
        self._lock = threading.Lock()
        self._keep = keep  # free buffers kept per key; more are left to the garbage collector
        self.allocated = 0  # buffers made so far (tests check the reuse)

    def take(self, shape: tuple, dtype) -> np.ndarray:
        key = (shape, dtype)
        with self._lock:
            free = self._free.get(key)
            if free:
                return free.pop()
            self.allocated += 1
        return empty_pinned(shape, dtype)  # pinned: the copies run at full PCIe speed

    def give(self, buf: np.ndarray) -> None:
        key = (buf.shape, buf.dtype)
        with self._lock:
            free = self._free.setdefault(key, [])
            if len(free) < self._keep:
                free.append(buf)

    def clear(self) -> None:
        with self._lock:
            self._free.clear()


POOL = HostPool()


def _download(a, buf: np.ndarray) -> None:
    """Copy device array ``a`` into host buffer ``buf`` (one device-to-host transfer)."""
    got = a.get(out=buf)
    if got is not buf:  # a device module whose get() ignores out= (the stand-in)
        buf[...] = got


def _upload(a, buf: np.ndarray) -> None:
    """Copy host buffer ``buf`` into device array ``a`` (one host-to-device transfer) on ``a``'s device: this may
    run on a backend's thread, whose current device is not the caller's."""
    with a.device:
        if hasattr(a, "set") and a.flags.c_contiguous:
            a.set(buf)
        else:
            a[...] = buf


# ------------------------------------------------------------------------------------------------------------
# the two directions
# ------------------------------------------------------------------------------------------------------------
class _Down:
    """Device arrays on a host backend: buffers from the pool."""

    @staticmethod
    def foreign(a) -> bool:
        return a.__class__ is not np.ndarray

    @staticmethod
    def move(a) -> np.ndarray:
        buf = POOL.take(a.shape, a.dtype)
        _download(a, buf)
        return buf

    @staticmethod
    def fresh(a) -> np.ndarray:
        return POOL.take(a.shape, a.dtype)

    @staticmethod
    def back(a, buf) -> None:
        _upload(a, buf)

    @staticmethod
    def release(buf) -> None:
        POOL.give(buf)


class _Up:
    """Host arrays on a device-only backend (pure nccl): device copies on the current device."""

    @staticmethod
    def foreign(a) -> bool:
        return a.__class__ is np.ndarray

    @staticmethod
    def move(a):
        from .. import cuda

        return cuda._cupy().asarray(a)

    @staticmethod
    def fresh(a):
        from .. import cuda

        return cuda._cupy().empty(a.shape, a.dtype)

    @staticmethod
    def back(a: np.ndarray, buf) -> None:
        _download(buf, a)

    @staticmethod
    def release(buf) -> None:
        pass


class _Plan:
    """The staged copies of one collective: (original, staged, copy back?) per foreign array."""

    __slots__ = ("way", "items")

    def __init__(self, way) -> None:
        self.way, self.items = way, []

    def inp(self, a):
        """An array the backend reads only."""
        if a is None or not self.way.foreign(a):
            return a
        buf = self.way.move(a)
        self.items.append((a, buf, False))
        return buf

    def out(self, a):
        """An array the backend writes only."""
        if a is None or not self.way.foreign(a):
            return a
        buf = self.way.fresh(a)
        self.items.append((a, buf, True))
        return buf

    def inout(self, a):
        if a is None or not self.way.foreign(a):
            return a
        buf = self.way.move(a)
        self.items.append((a, buf, True))
        return buf

    def done(self, ok: bool) -> None:
        """Copy the outputs back (when the collective succeeded) and give the buffers back."""
        try:
            if ok:
                for a, buf, back in self.items:
                    if back:
                        self.way.back(a, buf)
        finally:
            for _, buf, _ in self.items:
                self.way.release(buf)
            self.items = []


class _StagedWork(Work):
    """The backend's Work, completed only after the staged outputs are copied back. ``wait`` and
    ``is_completed`` drive the backend's Work (MPI requests progress only when polled)."""

    def __init__(self, inner: Work, plan: _Plan) -> None:
        super().__init__(inner.description)
        self._inner, self._plan = inner, plan
        inner.then(self._complete)

    def _complete(self, inner: Work) -> None:
        exc = inner.exception()
        try:
            self._plan.done(exc is None)
        except Exception as e:  # a failed copy back is this collective's failure
            exc = exc or e
        self._finish(exc, inner.result())

    def is_completed(self) -> bool:
        return self._inner.is_completed() and self._done.is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        if not self._done.is_set():
            self._inner.wait(timeout)
        return super().wait(timeout)


def _launch(way, body) -> Work:
    plan = _Plan(way)
    try:
        inner = body(plan)
    except BaseException:
        plan.done(False)
        raise
    return _StagedWork(inner, plan)


class StagedGroup(ProcessGroup):
    """``inner``'s collectives on copies of the arrays that live on the other side of it (``way``: _Down for a
    host backend given device arrays, _Up for a device backend given host arrays)."""

    name = "staged"

    def __init__(self, inner: ProcessGroup, way) -> None:
        super().__init__(inner.rank, inner.size, inner.global_ranks)
        self._inner, self._way = inner, way

    def allreduce(self, arrays: list, op: ReduceOp) -> Work:
        return _launch(self._way, lambda p: self._inner.allreduce([p.inout(a) for a in arrays], op))

    def broadcast(self, arrays: list, src: int) -> Work:
        root = self.rank == src
        return _launch(self._way, lambda p: self._inner.broadcast(
            [p.inp(a) if root else p.out(a) for a in arrays], src))

    def reduce(self, array, dst: int, op: ReduceOp) -> Work:
        return _launch(self._way, lambda p: self._inner.reduce(
            p.inout(array) if self.rank == dst else p.inp(array), dst, op))

    def allgather(self, outputs: list, array) -> Work:
        return _launch(self._way, lambda p: self._inner.allgather([p.out(o) for o in outputs], p.inp(array)))

    def reduce_scatter(self, output, inputs: list, op: ReduceOp) -> Work:
        return _launch(self._way, lambda p: self._inner.reduce_scatter(p.out(output), [p.inp(x) for x in inputs], op))

    def gather(self, outputs: Optional[list], array, dst: int) -> Work:
        return _launch(self._way, lambda p: self._inner.gather(
            None if outputs is None else [p.out(o) for o in outputs], p.inp(array), dst))

    def scatter(self, output, inputs: Optional[list], src: int) -> Work:
        return _launch(self._way, lambda p: self._inner.scatter(
            p.out(output), None if inputs is None else [p.inp(x) for x in inputs], src))

    def alltoall(self, outputs: list, inputs: list) -> Work:
        return _launch(self._way, lambda p: self._inner.alltoall([p.out(o) for o in outputs],
                                                                  [p.inp(x) for x in inputs]))

    def barrier(self) -> Work:
        return self._inner.barrier()

    def send(self, array, dst: int, tag: int = 0) -> Work:
        return _launch(self._way, lambda p: self._inner.send(p.inp(array), dst, tag))

    def recv(self, array, src: Optional[int], tag: int = 0) -> Work:
        return _launch(self._way, lambda p: self._inner.recv(p.out(array), src, tag))


# ------------------------------------------------------------------------------------------------------------
# choosing
# ------------------------------------------------------------------------------------------------------------
_CUDA_AWARE: list = []  # [bool] once probed


def mpi_cuda_aware() -> bool:
    """Whether the MPI library takes device buffers (``DISTTORCH_MPI_CUDA_AWARE`` = 0/1 overrides the probe).

    The probe is ``MPI.Query_cuda_support()`` (MPI 4.1 / Open MPI's extension, through mpi4py >= 4); an MPI that
    cannot say is taken as not CUDA-aware, and a failing probe too.
    """
    env = os.environ.get("DISTTORCH_MPI_CUDA_AWARE", "")
    if env in ("0", "1"):
        return env == "1"
    if not _CUDA_AWARE:
        aware = False
        try:
            from mpi4py import MPI  # the mpi backend is running, so MPI is initialised already

            query = getattr(MPI, "Query_cuda_support", None)
            aware = bool(query()) if query is not None else False
        except Exception:
            aware = False
        _CUDA_AWARE.append(aware)
    return _CUDA_AWARE[0]


def _real_cupy(a) -> bool:
    return hasattr(a, "__cuda_array_interface__")


_HOST_ON_DEVICE = threading.local()  # .depth > 0: this thread's host arrays may be staged through a pure nccl group


class host_tensors_on_device:
    """Inside this context (a decorator too), CPU tensors of collectives on a pure ``backend="nccl"`` group are
    staged through the current CUDA device, as PyTorch moves the small tensors of its object collectives and of
    DDP's construction checks there. A user's own CPU tensor on such a group stays an error, as in PyTorch."""

    def __enter__(self):
        _HOST_ON_DEVICE.depth = getattr(_HOST_ON_DEVICE, "depth", 0) + 1
        return self

    def __exit__(self, *exc) -> bool:
        _HOST_ON_DEVICE.depth -= 1
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with host_tensors_on_device():
                return fn(*args, **kwargs)
        return wrapper


def group_for(g, a) -> ProcessGroup:
    """The ProcessGroup to run group ``g``'s collective on array ``a`` (not a host array on a host backend)."""
    pg = g._pg
    backend = g._backend
    if "nccl" in backend:
        if "," in backend or a.__class__ is not np.ndarray:  # the mixed group picks the backend by device
            return pg
        if not getattr(_HOST_ON_DEVICE, "depth", 0):
            return pg  # the nccl backend refuses the CPU tensor with PyTorch's error
        staged = g.__dict__.get("_staged_up")
        if staged is None or staged._inner is not pg:
            staged = g._staged_up = StagedGroup(pg, _Up)
        return staged
    if backend == "mpi" and _real_cupy(a) and mpi_cuda_aware():
        return pg
    staged = g.__dict__.get("_staged_down")
    if staged is None or staged._inner is not pg:
        staged = g._staged_down = StagedGroup(pg, _Down)
    return staged
