"""The ``mpi`` backend: ``MPIProcessGroup`` over mpi4py (any MPI library: the Open MPI / MPICH wheel or a system MPI).

This module and its two helpers are the only ones that import mpi4py (importing ``mpi4py.MPI`` initialises MPI,
so ``import disttorch`` must not; see DESIGN rule 5): _mpi_types.py (datatypes, reduce ops and byte views per
dtype) and _mpi_work.py (the Work handles, the watchdog and the point-to-point polling thread). It moves raw
NumPy arrays with mpi4py's buffer-based uppercase calls.

How work is driven
    Each group owns one communication thread that runs blocking MPI calls, in submission order, from a queue
    and completes the ``Work`` handles: asynchronous collectives (DDP buckets) then overlap with the caller's
    computation. Non-blocking MPI collectives were measured slower (Iallreduce polled with Test reached only
    0.55-0.72x of blocking Allreduce here), while the thread hop costs ~20-50 us per call, which matters
    for small synchronous calls (benchmarks/mpi_allreduce.py). So ``Work.wait()`` has a fast path: when the
    waited collective has not been started yet, is at the head of the group's queue and the thread is idle,
    the caller claims it and runs the blocking MPI call itself. To keep that path free of thread wake-ups
    (~10-20 us each), a submitted collective is not announced to the thread at once; it is announced as soon
    as anything shows it is asynchronous: ``then()``/``is_completed()`` on its Work (the torch.distributed
    layer calls ``then`` for every ``async_op=True`` call), a ``wait()`` that cannot claim it, a later
    collective on any group, a send/recv, or, as a safety net for a caller blocked outside this backend, the
    watchdog thread after 0.1-0.2 s.

    Per-call cost: a synchronous all-reduce on a contiguous array hands the caller's own array to
    ``Allreduce(IN_PLACE)`` (no copy), looks its MPI datatype and op up in a per-(dtype, op) cache, and takes
    the group's lock three times with bare acquire/release; its ``_MPIWork`` creates no event and no
    callback list unless another thread waits on it or registers a callback before it completes
    (benchmarks/mpi_allreduce.py measures the remaining overhead against raw mpi4py). A call made inside
    ``blocking_call`` (``async_op=False``) on an idle group runs at once on the caller's thread without entering
    the queue. The API's fingerprint check (``verify_digest``) is a 16-byte ``Allreduce(MAX)`` run by the
    collective's own work just before its data call, not a collective of its own: one claim of the group and
    one Work per call.

    Ordering argument: MPI requires every rank to call the collectives of one communicator in the same order
    and, in practice, one at a time. Claiming (by the thread or by a waiting caller) happens under the group's
    lock, only for the head of the queue and only while nobody else is executing; so collectives still run
    strictly in submission order, one at a time, whichever thread executes them. Point-to-point calls are
    issued at once from the caller's thread as Isend/Irecv (MPI matches them in issue order per source and tag,
    and never against collectives), so an isend/irecv pair in either order cannot deadlock.

Timeouts
    ``Work.wait(timeout)`` (default: the group's collective timeout) raises RuntimeError naming the op, the
    rank, and that the other ranks did not join. A blocked MPI call cannot be cancelled, so after that the
    group is broken: later calls raise at once, and at interpreter exit the MPI job is aborted
    (``MPI_Abort``), since MPI_Finalize would hang on the stuck call. Call ``group.abort(code)`` to end the
    job right away. A call that runs on the waiting caller's thread (the fast path above, and waits on
    send/recv) cannot raise while blocked: a watchdog thread prints the same error and aborts the job, as
    PyTorch's NCCL watchdog does. Pass ``options={"inline_sync": False}`` (or set DISTTORCH_MPI_INLINE=0) to
    send every collective through the thread and always get the RuntimeError instead.

Same host
    When every rank of the world group runs on one host (equal ``_shm_transport.host_identity``), all-reduces of
    at least ``SHM_MIN_BYTES`` (256 KiB) of float or integer data go through the zmq backend's shared-memory
    segments (``_shm_transport``: each rank reduces one block in place and the others copy it out) instead of
    MPI: on the 2-core build machine a 1 MiB all-reduce took 74-121 us that way against 472-712 us through Open
    MPI (three runs of benchmarks/mpi_allreduce.py --quick), and the DDP benchmark's MLP gradients (2.7 MB) 0.47
    ms against 1.51 ms. With one compute thread per rank the call runs at once on the caller's thread (no spare
    core to overlap on, as the zmq backend does). The call is still queued and run in order with
    the MPI collectives (the same thread and fast path), and mismatched calls still fail (the segments carry a
    fingerprint). Smaller calls, other dtypes, subgroups and multi-host worlds use MPI. ``DISTTORCH_MPI_SHM=0``
    turns it off.

Dtypes
    Data movement (broadcast, gathers, scatter, all-to-all, send/recv) copies raw bytes, so every dtype works.
    Reductions use MPI's typed built-in ops. bool is reduced as uint8 0/1 (SUM/AVG/MAX/BOR -> MAX = or,
    PRODUCT/MIN/BAND -> MIN = and, BXOR -> BXOR). float16 uses MPI's native short float when the library
    reduces it (Open MPI does); bfloat16 (ml_dtypes), and float16 elsewhere, use a user-defined MPI.Op that
    applies the NumPy ufunc to the 2-byte values, so the wire stays 2 bytes per element (what the fp16/bf16
    gradient compression hooks are for) and each partial sum is rounded to the dtype, as Gloo does. A float32
    round trip was rejected: it doubles the bytes sent. BAND/BOR/BXOR need integer or bool arrays.
"""
from __future__ import annotations

import array
import collections
import hashlib
import logging
import os
import sys
import threading
from time import monotonic as _monotonic
from typing import Optional, Sequence

import numpy as np

# Open MPI spins a core while a call waits, unless told the node is oversubscribed, which disttorch launch does
# not tell it. The backend's communication thread shares a core with the training loop: yielding while idle
# keeps a waiting all-reduce from stealing the compute core (measured: 8-14 ms of extra CPU per MLP DDP step fell
# to ~3 ms), and a 4-element all-reduce stays at 1.8 us. Set before MPI starts (importing mpi4py.MPI starts it).
os.environ.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")
# A process that no MPI launcher started is an MPI singleton (a world of one). Open MPI 5 then creates its
# shared-memory transport's 16 MiB backing file in /dev/shm and leaves it there at exit (plain mpi4py does the
# same). One process has no peer to reach through it: the loopback transport alone starts no such file. Only for
# MPI's start-up here, so that an mpiexec this program starts later keeps every transport.
_SINGLETON_BTL = "OMPI_MCA_btl" not in os.environ and not any(
    v in os.environ for v in ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"))
if _SINGLETON_BTL:
    os.environ["OMPI_MCA_btl"] = "self"
try:
    from mpi4py import MPI
finally:
    if _SINGLETON_BTL:
        del os.environ["OMPI_MCA_btl"]

from ... import _parallel  # noqa: E402
from ..process_group import REDUCE_UFUNCS, ProcessGroup, ReduceOp, Work, fingerprint_bytes, in_blocking_call, \
    mismatch_error  # noqa: E402
from . import _shm_transport as shm  # noqa: E402
from ._mpi_types import _ALLREDUCE_DESC, _REDUCTIONS, _back_to_back, _bytes, _displs, _pack, _reduction, _unpack  # noqa: E402
from ._mpi_work import _ABORT_AT_EXIT, _DEFERRED, _RUNNING, _announce_deferred, _env_flag, _MPIWork, _RequestWork, \
    _seconds, _start_watchdog  # noqa: E402

__all__ = ["MPIProcessGroup"]

log = logging.getLogger("disttorch.distributed")
# All-reduces of at least this many bytes take the same-host shared-memory path (below it MPI's latency wins:
# a 16 KiB all-reduce took 2.7x MPI's time through the segments).
SHM_MIN_BYTES = 256 * 1024


def _shm_setup(comm, global_ranks: list, timeout: float):
    """The shared-memory state for large all-reduces when every rank of ``comm`` shares this host, else None.
    Collective over ``comm``; everything exchanged is fixed-size numbers (no pickled objects)."""
    rank, size = comm.Get_rank(), comm.Get_size()
    if size < 2:
        return None
    on = os.environ.get("DISTTORCH_MPI_SHM", "1") != "0" and shm.enabled()
    ident = shm.host_identity() if on else f"off {rank}"  # an "off" rank differs from every other rank
    mine = np.frombuffer(hashlib.sha256(ident.encode()).digest(), np.uint8).copy()
    ids = np.empty((size, 32), np.uint8)
    comm.Allgather(mine, ids)
    if not (ids == ids[0]).all():
        return None
    token = np.frombuffer(os.urandom(8), np.uint8).copy() if rank == 0 else np.empty(8, np.uint8)
    comm.Bcast(token, root=0)
    group = shm.ShmGroup(f"disttorch-mpi-{token.tobytes().hex()}-0", rank, global_ranks, shm.slot_bytes(), timeout)
    what = f"mpi backend group {global_ranks}"
    why = group.create_own(what)
    status = np.array([1 if why else 0, group.seg_bytes, -group.seg_bytes], np.int64)
    comm.Allreduce(MPI.IN_PLACE, status, op=MPI.MAX)
    if status[0] or status[1] != -status[2]:
        group.unlink_all()
        log.warning("%s: rank %d all-reduces through MPI only (shared memory: %s)", what, global_ranks[rank],
                    why or "segment sizes differ: set the same DISTTORCH_ZMQ_SHM_BYTES everywhere")
        return None
    group.attach(what, _monotonic() + timeout)
    return group


class MPIProcessGroup(ProcessGroup):
    """A ProcessGroup over an MPI communicator (a duplicate of COMM_WORLD, or of a split of it for subgroups)."""

    name = "mpi"

    def __init__(self, comm, global_ranks: Sequence[int], timeout: float = 300.0, inline_sync: bool = True) -> None:
        super().__init__(comm.Get_rank(), comm.Get_size(), global_ranks)
        self._comm = comm
        self.timeout = float(timeout)
        self._grank = self.global_ranks[self.rank]
        self._to_group = {g: r for r, g in enumerate(self.global_ranks)}
        self._threaded = MPI.Query_thread() >= MPI.THREAD_MULTIPLE
        self._inline_ok = inline_sync or not self._threaded
        self._mutex = threading.Lock()  # taken directly on hot paths: Condition.__enter__ is Python code
        self._cv = threading.Condition(self._mutex)
        self._pending: collections.deque = collections.deque()
        self._seq = 0  # of the last submitted collective
        self._announced = 0  # the thread may start collectives up to this sequence number
        self._busy = False
        self._running: Optional[_MPIWork] = None
        self._broken: Optional[str] = None
        self._closed = False
        self._shm = None  # same-host shared memory for large all-reduces (world group only; see create)
        self._check_next = None  # (digest, fingerprint) for the next submitted collective (verify_digest)
        # its buffer, used by the running collective only (one at a time); array.array: reading and writing its
        # items costs a third of a NumPy array's
        self._pair = array.array("q", [0, 0])
        self._thread = None
        if self._threaded:
            self._thread = threading.Thread(target=self._loop, name=f"disttorch-mpi-comm-{id(self):x}", daemon=True)
            self._thread.start()
        _start_watchdog()

    @classmethod
    def create(cls, store, rank: int, world_size: int, timeout: float, options: dict) -> "MPIProcessGroup":
        """The world group over MPI.COMM_WORLD (``options["comm"]`` may name another communicator). ``store``
        is not needed (MPI wires itself up) and may be None. RANK/WORLD_SIZE in the environment and the
        ``rank``/``world_size`` arguments, when set, must agree with the MPI world.

        Options: ``inline_sync`` (default True, env DISTTORCH_MPI_INLINE) enables the caller-thread fast path.
        """
        options = dict(options or {})
        world = options.get("comm") or MPI.COMM_WORLD
        mrank, msize = world.Get_rank(), world.Get_size()
        for what, given, actual in (("RANK (environment)", os.environ.get("RANK"), mrank),
                                    ("WORLD_SIZE (environment)", os.environ.get("WORLD_SIZE"), msize),
                                    ("rank argument", rank, mrank), ("world_size argument", world_size, msize)):
            if given is None or given == "" or (isinstance(given, int) and given < 0):
                continue
            if int(given) != actual:
                raise ValueError(f"mpi backend: {what} is {given}, but the MPI world says rank {mrank} of "
                                 f"world size {msize}; the MPI launcher decides ranks: unset RANK/WORLD_SIZE or "
                                 f"start the job with a matching `mpiexec -n {msize}`")
        inline = options.get("inline_sync", _env_flag("DISTTORCH_MPI_INLINE", True))
        timeout = _seconds(timeout)
        group = cls(world.Dup(), list(range(msize)), 300.0 if timeout is None else timeout, bool(inline))
        group._shm = _shm_setup(group._comm, group.global_ranks, group.timeout)
        return group

    # --- execution ---------------------------------------------------------------------------------------
    # A submitted collective is first "unannounced": the thread is not woken (waking it costs ~10-20 us, as
    # much as a small all-reduce), so that a synchronous caller, which waits at once, can run it itself. It
    # is announced to the thread as soon as anything shows it is asynchronous: then()/is_completed() on it, a
    # wait() that cannot claim it, a later submit on any group, a send/recv, or the watchdog's tick.
    def _loop(self) -> None:
        cv, pending = self._cv, self._pending
        while True:
            with cv:
                while not (pending and not self._busy and pending[0]._seq <= self._announced) and not self._closed:
                    cv.wait()
                if self._closed and not pending:
                    return
                work = pending.popleft()
                self._busy, self._running, work._state = True, work, _RUNNING
            work._run()  # completes the work and frees the group (busy = False) under the lock

    def _announce(self, seq: int) -> None:
        with self._cv:
            if seq > self._announced:
                self._announced = seq
                self._cv.notify()
            if self._announced >= self._seq:
                _DEFERRED.discard(self)

    def _announce_all(self) -> None:
        _DEFERRED.discard(self)
        self._announce(self._seq)

    def _announce_older(self, before: float) -> None:
        with self._cv:
            stale = [w._seq for w in self._pending if w._t_submit < before]
        if stale:
            self._announce(max(stale))
        if not self._pending:
            _DEFERRED.discard(self)

    def _claim(self, work: _MPIWork) -> bool:
        # acquire/release rather than `with`: a third of the cost, and nothing in between can raise
        mutex, pending = self._mutex, self._pending
        mutex.acquire()
        if self._busy or not pending or pending[0] is not work:
            mutex.release()
            return False
        pending.popleft()
        self._busy, self._running, work._state = True, work, _RUNNING
        if not pending:
            _DEFERRED.discard(self)
        mutex.release()
        return True

    def _submit(self, description: str, fn, *args) -> Work:
        if self._broken is not None or self._closed:
            self._check_usable(f"run {description}")
        work = _MPIWork(self, description, fn, args)
        if self._check_next is not None:
            work._check, self._check_next = self._check_next, None
        if self._thread is None:  # no THREAD_MULTIPLE: every call runs at once on the caller's thread
            work._state = _RUNNING
            work._run()
            return work
        if _DEFERRED and (len(_DEFERRED) > 1 or self not in _DEFERRED):
            _announce_deferred(but=self)
        mutex = self._mutex
        if self._inline_ok and not self._pending and in_blocking_call():
            # The caller waits for it at once and the group is idle: run it now, never queued (what wait()'s
            # fast path would do, without the queue's bookkeeping: ~0.7 us of a ~10 us small all-reduce).
            mutex.acquire()  # not `with`: see _claim
            if not self._busy and not self._pending:
                self._busy, self._running, work._state = True, work, _RUNNING
                mutex.release()
                work._run_inline(self.timeout)
                return work
            mutex.release()
        work._t_submit = _monotonic()
        mutex.acquire()  # not `with`: see _claim
        try:
            if self._pending:  # the caller moved on without waiting for these: they are asynchronous
                self._announced = self._seq
                self._cv.notify()
            self._seq += 1
            work._seq = self._seq
            self._pending.append(work)
            if not self._inline_ok:  # nobody may claim it: wake the thread now
                self._announced = self._seq
                self._cv.notify()
                return work
        finally:
            mutex.release()
        _DEFERRED.add(self)
        return work

    def verify_digest(self, digest: Optional[int], fingerprint: str) -> None:
        """Check the fingerprint as part of the next collective submitted on this group: that collective's work
        first all-reduces (MAX) ``[digest, -digest]`` (``digest``: the fingerprint's 62-bit digest), in the same
        claim of the group. A synchronous call then pays one ~1 us MPI call for the check, instead of a second
        queued collective of its own. On a mismatch every rank's collective fails, before its data moves, with
        the error naming every rank's call. ``None`` drops a pending check (the collective was never launched).
        """
        self._check_next = None if digest is None else (digest, fingerprint)

    def _verify_now(self, check: tuple) -> None:
        """Run a ``verify_digest`` check (on the thread running the collective that carries it)."""
        digest, fingerprint = check
        pair = self._pair
        pair[0] = digest
        pair[1] = -digest
        self._comm.Allreduce(MPI.IN_PLACE, pair, op=MPI.MAX)
        if pair[0] == digest and pair[1] == -digest:
            return
        texts = np.empty((self.size, 512), np.uint8)
        self._comm.Allgather(fingerprint_bytes(fingerprint), texts)
        raise mismatch_error(texts, self.rank, self.global_ranks)

    def _timeout_message(self, work: Work, timeout: float) -> str:
        running = self._running
        where = "" if running is None or running is work else f" (blocked in the earlier {running.description})"
        return (f"MPI {work.description} on rank {self._grank} (group rank {self.rank} of {self.size}) did not "
                f"complete within {timeout:g} s{where}: the other ranks did not join it")

    def _timed_out(self, work: Work, timeout: float) -> None:
        message = self._timeout_message(work, timeout)
        self._broken = message
        if not _ABORT_AT_EXIT:
            _ABORT_AT_EXIT.append(1)
        raise RuntimeError(f"{message}. A blocked MPI call cannot be cancelled: abort the MPI job "
                           "(group.abort(code)); it is aborted at exit.")

    def _check_rank(self, r: Optional[int], what: str, opname: str) -> None:
        if r is not None and not 0 <= r < self.size:
            raise ValueError(f"{opname}: {what} rank {r} is out of range for a group of size {self.size}")

    # --- collectives -------------------------------------------------------------------------------------
    def allreduce(self, arrays: list, op: ReduceOp) -> Work:
        comm = self._comm
        if self._shm is not None:  # a single array (the hot small call) costs one attribute read and a compare
            nbytes = arrays[0].nbytes if len(arrays) == 1 else sum(a.nbytes for a in arrays)
            work = self._allreduce_shm(arrays, op) if nbytes >= SHM_MIN_BYTES else None
            if work is not None:
                return work
        if len(arrays) == 1:  # the common case, kept short: a small all-reduce costs only a few us in MPI
            a = arrays[0]
            dtype = a.dtype
            r = _REDUCTIONS.get((dtype, op))
            vdt, dt, mop = _reduction(dtype, op, "all_reduce") if r is None else r
            # in place on the caller's array when it is contiguous and needs no reinterpretation: no copy
            buf = [a if vdt is dtype and a.flags.c_contiguous else _bytes(a).view(vdt), dt]
            return self._submit(_ALLREDUCE_DESC[id(op)], comm.Allreduce, MPI.IN_PLACE, buf, mop)
        jobs = []
        for a in arrays:
            vdt, dt, mop = _reduction(a.dtype, op, "all_reduce")
            jobs.append(([_bytes(a).view(vdt), dt], mop))

        def run():
            for buf, mop in jobs:
                comm.Allreduce(MPI.IN_PLACE, buf, op=mop)
        return self._submit(_ALLREDUCE_DESC[id(op)], run)

    def _allreduce_shm(self, arrays: list, op: ReduceOp) -> Optional[Work]:
        """The all-reduce through the same-host segments, queued like an MPI call; None when it does not apply
        (an op or dtype that MPI reduces differently, or non-contiguous arrays)."""
        ufunc = REDUCE_UFUNCS.get(op)
        if ufunc is None or any(a.dtype.kind not in "fiu" or not a.flags.c_contiguous for a in arrays):
            return None
        flats = [a.reshape(-1) for a in arrays]
        fp = f"all_reduce({', '.join(f'{a.dtype}[{a.size}]' for a in flats)}, {op.name})".encode()
        fph, group, desc, timeout = shm.fp_hash(fp), self._shm, _ALLREDUCE_DESC[id(op)], self.timeout

        def run():
            group.run(group.allreduce(desc, [_monotonic() + timeout], fp, fph, flats, ufunc), inline=False)
        work = self._submit(desc, run)
        if _parallel.threads() == 1 and not in_blocking_call():
            # one compute thread per rank (ranks sharing a node's cores): no spare core for the communication
            # thread to overlap on, and its waiting would steal the compute core; run it now, as the zmq backend
            work.wait()
        return work

    def broadcast(self, arrays: list, src: int) -> Work:
        self._check_rank(src, "source", "broadcast")
        comm, bufs = self._comm, [[_bytes(a), MPI.BYTE] for a in arrays]

        def run():
            for buf in bufs:
                comm.Bcast(buf, root=src)
        return self._submit(f"broadcast(src={src})", run)

    def reduce(self, array: np.ndarray, dst: int, op: ReduceOp) -> Work:
        self._check_rank(dst, "destination", "reduce")
        vdt, dt, mop = _reduction(array.dtype, op, "reduce")
        buf, comm = [_bytes(array).view(vdt), dt], self._comm
        root = self.rank == dst

        def run():
            if root:
                comm.Reduce(MPI.IN_PLACE, buf, op=mop, root=dst)
            else:
                comm.Reduce(buf, None, op=mop, root=dst)
        return self._submit(f"reduce({op.name}, dst={dst})", run)

    def allgather(self, outputs: list, array: np.ndarray) -> Work:
        if len(outputs) != self.size:
            raise ValueError(f"all_gather: expected {self.size} output arrays (one per rank), got {len(outputs)}")
        counts = [o.nbytes for o in outputs]
        if counts[self.rank] != array.nbytes:
            raise ValueError(f"all_gather: output {self.rank} has {counts[self.rank]} bytes but the input has "
                             f"{array.nbytes}")
        send, comm = [_bytes(array), MPI.BYTE], self._comm
        recv = _back_to_back(outputs)
        stage = recv is None
        if stage:
            recv = np.empty(sum(counts), np.uint8)
        even = all(c == counts[0] for c in counts)

        def run():
            if even:
                comm.Allgather(send, [recv, MPI.BYTE])
            else:
                comm.Allgatherv(send, [recv, (counts, _displs(counts)), MPI.BYTE])
            if stage:
                _unpack(recv, outputs, counts)
        return self._submit("all_gather", run)

    def reduce_scatter(self, output: np.ndarray, inputs: list, op: ReduceOp) -> Work:
        if len(inputs) != self.size:
            raise ValueError(f"reduce_scatter: expected {self.size} input arrays (one per rank), got {len(inputs)}")
        if inputs[self.rank].size != output.size:
            raise ValueError(f"reduce_scatter: input {self.rank} has {inputs[self.rank].size} elements but the "
                             f"output has {output.size}")
        vdt, dt, mop = _reduction(output.dtype, op, "reduce_scatter")
        counts = [a.size for a in inputs]
        send = _back_to_back(inputs)
        send = _pack(inputs) if send is None else send
        send, recv, comm = [send.view(vdt), dt], [_bytes(output).view(vdt), dt], self._comm
        even = all(c == counts[0] for c in counts)

        def run():
            if even:
                comm.Reduce_scatter_block(send, recv, op=mop)
            else:
                comm.Reduce_scatter(send, recv, recvcounts=counts, op=mop)
        return self._submit(f"reduce_scatter({op.name})", run)

    def gather(self, outputs: Optional[list], array: np.ndarray, dst: int) -> Work:
        self._check_rank(dst, "destination", "gather")
        send, comm = [_bytes(array), MPI.BYTE], self._comm
        recv = counts = None
        stage = False
        if self.rank == dst:
            if outputs is None or len(outputs) != self.size:
                raise ValueError(f"gather: the destination rank needs {self.size} output arrays")
            counts = [o.nbytes for o in outputs]
            recv = _back_to_back(outputs)
            stage = recv is None
            if stage:
                recv = np.empty(sum(counts), np.uint8)

        def run():
            # Gatherv always: only the root knows the sizes, and all ranks must pick the same MPI call
            comm.Gatherv(send, None if recv is None else [recv, (counts, _displs(counts)), MPI.BYTE], root=dst)
            if stage:
                _unpack(recv, outputs, counts)
        return self._submit(f"gather(dst={dst})", run)

    def scatter(self, output: np.ndarray, inputs: Optional[list], src: int) -> Work:
        self._check_rank(src, "source", "scatter")
        recv, comm, send = [_bytes(output), MPI.BYTE], self._comm, None
        if self.rank == src:
            if inputs is None or len(inputs) != self.size:
                raise ValueError(f"scatter: the source rank needs {self.size} input arrays")
            counts = [a.nbytes for a in inputs]
            buf = _back_to_back(inputs)
            send = [_pack(inputs) if buf is None else buf, (counts, _displs(counts)), MPI.BYTE]

        def run():
            comm.Scatterv(send, recv, root=src)
        return self._submit(f"scatter(src={src})", run)

    def alltoall(self, outputs: list, inputs: list) -> Work:
        if len(outputs) != self.size or len(inputs) != self.size:
            raise ValueError(f"all_to_all: expected {self.size} input and output arrays, got {len(inputs)} and "
                             f"{len(outputs)}")
        scounts, rcounts = [a.nbytes for a in inputs], [o.nbytes for o in outputs]
        send = _back_to_back(inputs)
        send = _pack(inputs) if send is None else send
        recv = _back_to_back(outputs)
        stage = recv is None
        if stage:
            recv = np.empty(sum(rcounts), np.uint8)
        comm = self._comm

        def run():
            # Alltoallv always: each rank knows only its own counts, and all must pick the same MPI call
            comm.Alltoallv([send, (scounts, _displs(scounts)), MPI.BYTE], [recv, (rcounts, _displs(rcounts)), MPI.BYTE])
            if stage:
                _unpack(recv, outputs, rcounts)
        return self._submit("all_to_all", run)

    def barrier(self) -> Work:
        return self._submit("barrier", self._comm.Barrier)

    # --- point to point ----------------------------------------------------------------------------------
    def send(self, array: np.ndarray, dst: int, tag: int = 0) -> Work:
        self._check_rank(dst, "destination", "send")
        self._check_usable("send")
        buf = _bytes(array)
        if _DEFERRED:
            _announce_deferred()
        req = self._comm.Isend([buf, MPI.BYTE], dest=dst, tag=tag)
        return _RequestWork(self, f"send(dst={dst}, tag={tag})", req, buf, recv=False)

    def recv(self, array: np.ndarray, src: Optional[int], tag: int = 0) -> Work:
        self._check_rank(src, "source", "recv")
        self._check_usable("recv")
        buf = _bytes(array)
        if _DEFERRED:
            _announce_deferred()
        req = self._comm.Irecv([buf, MPI.BYTE], source=MPI.ANY_SOURCE if src is None else src, tag=tag)
        return _RequestWork(self, f"recv(src={src}, tag={tag})", req, buf, recv=True)

    def _check_usable(self, opname: str) -> None:
        if self._broken is not None:
            raise RuntimeError(f"mpi backend, rank {self._grank}: cannot {opname}: the group is broken since "
                               f"{self._broken}; abort the MPI job (group.abort())")
        if self._closed:
            raise RuntimeError(f"mpi backend, rank {self._grank}: cannot {opname}: the group was shut down")

    # --- groups and lifetime -----------------------------------------------------------------------------
    def new_subgroup(self, ranks: Sequence[int]) -> Optional["MPIProcessGroup"]:
        """A group of the given group ranks, numbered in the order given (collective over this whole group:
        every rank calls it, via ``MPI_Comm_split``); None on ranks not in it."""
        ranks = [int(r) for r in ranks]
        if len(set(ranks)) != len(ranks) or any(not 0 <= r < self.size for r in ranks):
            raise ValueError(f"new_group: ranks {ranks} must be distinct group ranks in [0, {self.size})")
        key = ranks.index(self.rank) if self.rank in ranks else 0
        color = 0 if self.rank in ranks else MPI.UNDEFINED
        comm = self._comm
        work = self._submit(f"new_group({ranks})", lambda: comm.Split(color, key))
        work.wait()
        sub = work.result()
        if sub == MPI.COMM_NULL:
            return None
        return MPIProcessGroup(sub, [self.global_ranks[r] for r in ranks], self.timeout, self._inline_ok)

    def shutdown(self) -> None:
        """Stop the communication thread and free the communicator (MPI_Finalize is left to mpi4py at exit).
        A broken group (a timed-out call still blocked in MPI) only marks itself closed."""
        if self._closed:
            return
        _DEFERRED.discard(self)
        with self._cv:
            self._closed = True
            self._announced = self._seq
            self._cv.notify_all()
        if self._broken is not None:
            return
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self._shm is not None:
            self._shm.close()
        try:
            self._comm.Free()
        except MPI.Exception:
            pass

    def abort(self, code: int = 1) -> None:
        """Terminate every process of the MPI job (MPI_Abort): the only way out of a blocked MPI call."""
        sys.stdout.flush()
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(code)
