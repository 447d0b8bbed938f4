"""The ``nccl`` backend: ``NCCLProcessGroup`` over CuPy's NCCL bindings (``cupy.cuda.nccl.NcclCommunicator``).

This module is imported only when a group of this backend is created (``import disttorch`` never imports
CuPy). It moves CuPy arrays, in place, with one NCCL communicator per group on the current CUDA device
(call ``disttorch.cuda.set_device(LOCAL_RANK)`` before ``init_process_group``, as with PyTorch).

Streams and handles
    Every group owns one CUDA stream. A collective first makes that stream wait for the work queued so far on
    the caller's current stream (so it reads finished inputs), runs NCCL on it, and records a CUDA event. The
    ``Work`` it returns is backed by that event: ``wait()`` makes the caller's current stream wait for it
    (the host does not block, as in PyTorch) and ``is_completed()`` queries it. The arrays stay referenced
    by the group until their event has fired, so CuPy's memory pool cannot hand them out again mid-flight.
    A hung NCCL call cannot be seen from ``wait()``: set ``NCCL_ASYNC_ERROR_HANDLING``/``NCCL_TIMEOUT`` or
    synchronise (``disttorch.cuda.synchronize()``) to find one.

Bootstrap
    Rank 0 draws the NCCL unique id (128 bytes). In a process started by mpiexec (mpi4py installed, Open MPI or
    PMI variables set, and MPI's rank and size equal the group's) it is broadcast over ``MPI.COMM_WORLD`` as a
    byte buffer; otherwise rank 0 ``set``s it in the rendezvous store and the other ranks ``get`` it. Either
    way the bytes are used as an id, never deserialised (no pickle), and their length is checked.

Dtypes and ops
    See ``_nccl_types.py``: typed reductions (SUM, PRODUCT, MIN, MAX; AVG as SUM, then divided by the
    torch.distributed layer), bool as uint8 or/and, complex as float pairs for SUM/AVG; data movement as bytes.
    Gather, scatter, all-to-all and send/recv are grouped NCCL send/recv calls (``groupStart``/``groupEnd``).
    Receiving from any source (``src=None``) is not supported, as in PyTorch's NCCL backend.
"""
from __future__ import annotations

import collections
import os
import types
from typing import Optional, Sequence

import numpy as np

from ..process_group import ProcessGroup, ReduceOp, Work, fingerprint_bytes, mismatch_error
from ._nccl_types import TORCH_NAMES, datatype, reduction, uid_from_bytes, uid_to_bytes, UID_BYTES

__all__ = ["NCCLProcessGroup", "usable"]

_MPI_ENV = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")

# Tests (which have no GPU) put (cupy-like module, nccl-like module, array -> device pointer) here.
_MODULES: Optional[tuple] = None


def _load() -> types.SimpleNamespace:
    """``cp``, ``nccl`` and ``ptr`` (array -> device address) of this process, or RuntimeError saying why not."""
    if _MODULES is not None:
        cp, nccl, ptr = _MODULES
        return types.SimpleNamespace(cp=cp, nccl=nccl, ptr=ptr)
    try:
        import cupy as cp
    except ImportError as e:
        raise RuntimeError(f"Distributed package doesn't have NCCL built in: the nccl backend needs CuPy, which is "
                           f"not installed ({e}); install the cupy-cuda11x/12x package matching your CUDA driver "
                           "on a machine with an NVIDIA GPU, or use backend='zmq' (alias 'gloo') for CPU "
                           "tensors") from None
    try:
        from cupy.cuda import nccl
    except ImportError as e:
        nccl, why = None, str(e)
    else:
        why = "cupy.cuda.nccl.available is False: CuPy did not find the NCCL library"
    if nccl is None or not getattr(nccl, "available", True):
        raise RuntimeError(f"Distributed package doesn't have NCCL built in: CuPy is installed but has no NCCL "
                           f"({why}); install NCCL for your CUDA version (the nvidia-nccl-cu11/cu12 package, or "
                           "the system libnccl2) or use backend='zmq' (alias 'gloo') for CPU tensors")
    try:
        count = int(cp.cuda.runtime.getDeviceCount())
    except Exception as e:  # noqa: BLE001 - CUDARuntimeError: no driver
        raise RuntimeError(f"nccl backend: CuPy and NCCL are installed but the CUDA driver could not be used "
                           f"({type(e).__name__}: {e}); check that `nvidia-smi` works") from None
    if count <= 0:
        raise RuntimeError("nccl backend: no CUDA device is visible (check `nvidia-smi` and CUDA_VISIBLE_DEVICES)")
    return types.SimpleNamespace(cp=cp, nccl=nccl, ptr=lambda a: a.data.ptr)


def usable() -> bool:
    """Whether CUDA tensors can use this backend here (CuPy with NCCL and a visible GPU); never raises."""
    try:
        _load()
    except Exception:  # noqa: BLE001 - any failure means "not here"
        return False
    return True


def _started_by_mpi() -> bool:
    import importlib.util

    return any(v in os.environ for v in _MPI_ENV) and importlib.util.find_spec("mpi4py") is not None


class _NCCLWork(Work):
    """A collective queued on a group's stream: ``wait()`` orders the caller's current stream after it;
    ``is_completed()`` asks its CUDA event."""

    def __init__(self, cp, event, description: str) -> None:
        super().__init__(description)
        self._cp, self._event = cp, event

    def is_completed(self) -> bool:
        if not self._done.is_set() and self._event.done:
            self._finish(result=self._result)
        return self._done.is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Make the current stream wait for the collective (the host does not block, as in PyTorch)."""
        if not self._done.is_set():
            self._cp.cuda.get_current_stream().wait_event(self._event)
            self._finish(result=self._result)
        return True

    def synchronize(self) -> None:
        """Block the host until the collective has finished on the device."""
        self._event.synchronize()
        self.is_completed()


class NCCLProcessGroup(ProcessGroup):
    """A ProcessGroup over one NCCL communicator on this process's current CUDA device."""

    name = "nccl"

    def __init__(self, mods, comm, rank: int, size: int, global_ranks: Sequence[int], store=None,
                 timeout: float = 300.0) -> None:
        super().__init__(rank, size, global_ranks)
        self._m, self._comm, self._store, self.timeout = mods, comm, store, float(timeout)
        self._device = int(mods.cp.cuda.runtime.getDevice())
        self._stream = mods.cp.cuda.Stream(non_blocking=True)
        self._inflight: collections.deque = collections.deque()  # (event, arrays) kept alive until the event fires
        self._subgroups = 0  # new_subgroup calls so far (the store key of the next one)
        self._closed = False

    # --- bootstrap ---------------------------------------------------------------------------------------
    @classmethod
    def create(cls, store, rank: int, world_size: int, timeout: float, options: dict) -> "NCCLProcessGroup":
        """The world group: the unique id goes over MPI when mpiexec started this process (and MPI's rank and
        size match), else through ``store``."""
        mods = _load()
        use_mpi = bool(options.get("use_mpi", _started_by_mpi()))
        if use_mpi:
            from mpi4py import MPI

            comm = MPI.COMM_WORLD
            use_mpi = comm.Get_rank() == rank and comm.Get_size() == world_size
        uid = _bcast_uid_mpi(mods, rank) if use_mpi else _exchange_uid_store(mods, store, "nccl/uid", rank)
        return cls._connect(mods, uid, rank, world_size, list(range(world_size)), store, timeout)

    @classmethod
    def _connect(cls, mods, uid: tuple, rank: int, size: int, global_ranks, store, timeout) -> "NCCLProcessGroup":
        try:
            comm = mods.nccl.NcclCommunicator(size, uid, rank)
        except Exception as e:  # NcclError: name the rank and the device
            dev = mods.cp.cuda.runtime.getDevice()
            raise RuntimeError(f"nccl backend: rank {global_ranks[rank]} could not join the NCCL communicator of "
                               f"{size} ranks on cuda:{dev} ({type(e).__name__}: {e}); each rank needs its own "
                               "GPU (call disttorch.cuda.set_device(LOCAL_RANK) before init_process_group)") from e
        return cls(mods, comm, rank, size, global_ranks, store, timeout)

    # --- checks and launching ------------------------------------------------------------------------------
    def _device_array(self, a, what: str, opname: str):
        cp = self._m.cp
        op = TORCH_NAMES.get(opname, opname)
        if not isinstance(a, cp.ndarray):
            where = "cpu" if isinstance(a, np.ndarray) else type(a).__name__
            raise RuntimeError(f"{op} on the nccl backend needs CUDA tensors, but {what} is on {where} "
                               f"({np.dtype(a.dtype).name}{list(a.shape)}, rank {self.global_ranks[self.rank]}); "
                               "move it with .cuda(), or init with backend='cpu:gloo,cuda:nccl' (or None) so that "
                               "CPU tensors go to a CPU backend")
        dev = getattr(a.device, "id", self._device)
        if dev != self._device:
            raise RuntimeError(f"{op} on the nccl backend: {what} is on cuda:{dev} but this rank's communicator "
                               f"(rank {self.global_ranks[self.rank]}) is on cuda:{self._device}; keep the tensors on "
                               "the device that was current at init_process_group")
        return a

    def _check_peer(self, r: int, what: str, opname: str) -> None:
        if not 0 <= r < self.size:
            raise ValueError(f"{TORCH_NAMES.get(opname, opname)} on the nccl backend: {what} {r} is out of range "
                             f"for a group of {self.size} ranks")

    def _launch(self, opname: str, keep: list, body) -> Work:
        """Run ``body(stream_ptr)`` on the group stream after the current stream's work; return the Work."""
        if self._closed:
            raise RuntimeError(f"{TORCH_NAMES.get(opname, opname)} on the nccl backend: the group is shut down")
        cp = self._m.cp
        while self._inflight and self._inflight[0][0].done:
            self._inflight.popleft()
        ready = cp.cuda.Event(disable_timing=True)
        ready.record(cp.cuda.get_current_stream())
        self._stream.wait_event(ready)
        with self._stream:
            body(self._stream.ptr)
        done = cp.cuda.Event(disable_timing=True)
        done.record(self._stream)
        self._inflight.append((done, keep))
        return _NCCLWork(cp, done, f"nccl {TORCH_NAMES.get(opname, opname)} on rank {self.global_ranks[self.rank]}")

    def _bytes_of(self, a) -> tuple:
        """(pointer, count, datatype) for moving ``a`` as raw bytes."""
        return self._m.ptr(a), a.size * a.dtype.itemsize, self._m.nccl.NCCL_UINT8

    # --- collectives -------------------------------------------------------------------------------------
    def allreduce(self, arrays: list, op: ReduceOp) -> Work:
        arrays = [self._device_array(a, f"tensor {i}", "allreduce") for i, a in enumerate(arrays)]
        nccl, ptr = self._m.nccl, self._m.ptr
        plan = [(a, *datatype(nccl, a.dtype, "all_reduce"), reduction(nccl, op, a.dtype, "all_reduce")) for a in arrays]

        def body(s):
            nccl.groupStart()
            try:
                for a, dt, per, red in plan:
                    self._comm.allReduce(ptr(a), ptr(a), a.size * per, dt, red, s)
            finally:
                nccl.groupEnd()
        return self._launch("allreduce", arrays, body)

    def broadcast(self, arrays: list, src: int) -> Work:
        arrays = [self._device_array(a, f"tensor {i}", "broadcast") for i, a in enumerate(arrays)]
        self._check_peer(src, "src", "broadcast")
        nccl = self._m.nccl

        def body(s):
            nccl.groupStart()
            try:
                for a in arrays:
                    p, n, dt = self._bytes_of(a)
                    self._comm.broadcast(p, p, n, dt, src, s)
            finally:
                nccl.groupEnd()
        return self._launch("broadcast", arrays, body)

    def reduce(self, array, dst: int, op: ReduceOp) -> Work:
        a = self._device_array(array, "tensor", "reduce")
        self._check_peer(dst, "dst", "reduce")
        nccl, ptr = self._m.nccl, self._m.ptr
        dt, per = datatype(nccl, a.dtype, "reduce")
        red = reduction(nccl, op, a.dtype, "reduce")
        return self._launch("reduce", [a], lambda s: self._comm.reduce(ptr(a), ptr(a), a.size * per, dt, red, dst, s))

    def allgather(self, outputs: list, array) -> Work:
        a = self._device_array(array, "input", "allgather")
        outputs = [self._device_array(o, f"output {r}", "allgather") for r, o in enumerate(outputs)]
        cp, ptr = self._m.cp, self._m.ptr
        # allGather fills one contiguous buffer; copying out of it on the group stream keeps the outputs free
        # to be any arrays (all_gather_into_tensor's are already views of one)
        flat = cp.empty((len(outputs),) + tuple(a.shape), dtype=a.dtype)

        def body(s):
            p, n, dt = self._bytes_of(a)
            self._comm.allGather(p, ptr(flat), n, dt, s)
            for r, o in enumerate(outputs):
                o[...] = flat[r]
        return self._launch("allgather", [a, flat, *outputs], body)

    def reduce_scatter(self, output, inputs: list, op: ReduceOp) -> Work:
        out = self._device_array(output, "output", "reduce_scatter")
        inputs = [self._device_array(x, f"input {r}", "reduce_scatter") for r, x in enumerate(inputs)]
        cp, nccl, ptr = self._m.cp, self._m.nccl, self._m.ptr
        dt, per = datatype(nccl, out.dtype, "reduce_scatter")
        red = reduction(nccl, op, out.dtype, "reduce_scatter")
        holder = []

        def body(s):
            stacked = cp.stack(inputs)  # on the group stream, after the inputs are ready
            holder.append(stacked)
            self._comm.reduceScatter(ptr(stacked), ptr(out), out.size * per, dt, red, s)
        return self._launch("reduce_scatter", [out, *inputs, holder], body)

    def _p2p(self, opname: str, sends: list, recvs: list, copies: list, keep: list) -> Work:
        """One NCCL group of sends ``(array, peer)`` and receives ``(array, peer)``, plus local ``(dst, src)``
        copies on the group stream."""
        nccl = self._m.nccl

        def body(s):
            for dst, src in copies:
                dst[...] = src
            nccl.groupStart()
            try:
                for a, peer in sends:
                    p, n, dt = self._bytes_of(a)
                    self._comm.send(p, n, dt, peer, s)
                for a, peer in recvs:
                    p, n, dt = self._bytes_of(a)
                    self._comm.recv(p, n, dt, peer, s)
            finally:
                nccl.groupEnd()
        return self._launch(opname, keep, body)

    def gather(self, outputs: Optional[list], array, dst: int) -> Work:
        a = self._device_array(array, "input", "gather")
        self._check_peer(dst, "dst", "gather")
        if self.rank != dst:
            return self._p2p("gather", [(a, dst)], [], [], [a])
        outputs = [self._device_array(o, f"output {r}", "gather") for r, o in enumerate(outputs)]
        recvs = [(o, r) for r, o in enumerate(outputs) if r != self.rank]
        return self._p2p("gather", [], recvs, [(outputs[self.rank], a)], [a, *outputs])

    def scatter(self, output, inputs: Optional[list], src: int) -> Work:
        out = self._device_array(output, "output", "scatter")
        self._check_peer(src, "src", "scatter")
        if self.rank != src:
            return self._p2p("scatter", [], [(out, src)], [], [out])
        inputs = [self._device_array(x, f"input {r}", "scatter") for r, x in enumerate(inputs)]
        sends = [(x, r) for r, x in enumerate(inputs) if r != self.rank]
        return self._p2p("scatter", sends, [], [(out, inputs[self.rank])], [out, *inputs])

    def alltoall(self, outputs: list, inputs: list) -> Work:
        outputs = [self._device_array(o, f"output {r}", "alltoall") for r, o in enumerate(outputs)]
        inputs = [self._device_array(x, f"input {r}", "alltoall") for r, x in enumerate(inputs)]
        me = self.rank
        sends = [(x, r) for r, x in enumerate(inputs) if r != me]
        recvs = [(o, r) for r, o in enumerate(outputs) if r != me]
        return self._p2p("alltoall", sends, recvs, [(outputs[me], inputs[me])], [*outputs, *inputs])

    def barrier(self) -> Work:
        """An all-reduce of one byte on the device, then a host wait for it (as PyTorch's NCCL barrier)."""
        cp = self._m.cp
        one = cp.zeros(1, dtype=np.uint8)
        work = self.allreduce([one], ReduceOp.MAX)
        work.synchronize()
        return work

    def send(self, array, dst: int, tag: int = 0) -> Work:
        a = self._device_array(array, "tensor", "send")
        self._check_peer(dst, "dst", "send")
        return self._p2p("send", [(a, dst)], [], [], [a])

    def recv(self, array, src: Optional[int], tag: int = 0) -> Work:
        a = self._device_array(array, "tensor", "recv")
        if src is None:
            raise RuntimeError("recv on the nccl backend: receiving from any source (src=None) is not supported by "
                               "NCCL; name the sender")
        self._check_peer(src, "src", "recv")
        work = self._p2p("recv", [], [(a, src)], [], [a])
        work._result = src
        return work

    def verify(self, fingerprint: str) -> None:
        """The interface's fingerprint check, with the digests staged through the device (NCCL moves no host
        memory)."""
        import hashlib

        cp = self._m.cp
        h = int.from_bytes(hashlib.blake2b(fingerprint.encode(), digest_size=8).digest(), "little") >> 2
        pair = cp.asarray(np.array([h, -h], dtype=np.int64))
        work = self.allreduce([pair], ReduceOp.MAX)
        work.synchronize()
        got = cp.asnumpy(pair)
        if got[0] == h and got[1] == -h:
            return
        mine = cp.asarray(fingerprint_bytes(fingerprint))
        texts = [cp.empty(512, np.uint8) for _ in range(self.size)]
        self.allgather(texts, mine).synchronize()
        raise mismatch_error([cp.asnumpy(t) for t in texts], self.rank, self.global_ranks)

    # --- groups and lifetime -----------------------------------------------------------------------------
    def new_subgroup(self, ranks: Sequence[int]) -> Optional["NCCLProcessGroup"]:
        """A group of the given group ranks (every rank of this group calls it; members exchange a fresh
        unique id through the store); None on ranks not in it."""
        ranks = [int(r) for r in ranks]
        if len(set(ranks)) != len(ranks) or any(not 0 <= r < self.size for r in ranks):
            raise ValueError(f"new_group: ranks {ranks} must be distinct group ranks in [0, {self.size})")
        self._subgroups += 1
        if self.rank not in ranks:
            return None
        if self._store is None:
            raise RuntimeError("new_group on the nccl backend needs the rendezvous store, and this group has none")
        return subgroup(self._m, self._store, f"nccl/sub{self._subgroups}", ranks.index(self.rank), len(ranks),
                        [self.global_ranks[r] for r in ranks], self.timeout)

    def shutdown(self) -> None:
        """Wait for the queued collectives and destroy the communicator."""
        if self._closed:
            return
        self._closed = True
        try:
            self._stream.synchronize()
        finally:
            self._inflight.clear()
            self._comm.destroy()


def subgroup(mods, store, key: str, rank: int, size: int, global_ranks: list, timeout: float) -> NCCLProcessGroup:
    """An NCCL group of ``size`` ranks whose members (only) meet under store key ``key``."""
    mods = mods if mods is not None else _load()
    uid = _exchange_uid_store(mods, store, key, rank)
    return NCCLProcessGroup._connect(mods, uid, rank, size, global_ranks, store, timeout)


def _exchange_uid_store(mods, store, key: str, rank: int) -> tuple:
    """Rank 0 draws the unique id and ``set``s its 128 bytes under ``key``; the others ``get`` them."""
    if store is None:
        raise RuntimeError("nccl backend: no rendezvous store to exchange the NCCL unique id through (start the job "
                           "with `disttorch launch` or mpiexec, or pass init_method/store)")
    if rank == 0:
        raw = uid_to_bytes(mods.nccl.get_unique_id())
        store.set(key, raw)
    else:
        raw = store.get(key)
    return uid_from_bytes(raw, "through the rendezvous store")


def _bcast_uid_mpi(mods, rank: int) -> tuple:
    """Rank 0's unique id, broadcast as a 128-byte buffer over MPI.COMM_WORLD (no pickle)."""
    from mpi4py import MPI

    buf = np.zeros(UID_BYTES, np.uint8)
    if rank == 0:
        buf[:] = np.frombuffer(uid_to_bytes(mods.nccl.get_unique_id()), np.uint8)
    MPI.COMM_WORLD.Bcast(buf, root=0)
    return uid_from_bytes(buf.tobytes(), "over MPI")

