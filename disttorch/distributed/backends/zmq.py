"""The ``zmq`` backend: collectives over ZeroMQ sockets, bootstrapped through the rendezvous store.

All-reduce is the bandwidth-optimal ring (reduce-scatter, then all-gather, over ``size`` chunks), each chunk
split into sub-chunks of ``DISTTORCH_ZMQ_CHUNK_BYTES`` (default 2 MiB) so that a sub-chunk goes out to the
next rank as soon as it is reduced while the next one is still arriving. Below 64 KiB every rank sends its
whole buffer to every other rank and reduces locally in rank order (one latency instead of ``2(size-1)``).
Either way every rank ends with bitwise identical results.

Operations of all groups of a process run in submission order on one communication thread (see
``_zmq_transport``); each call returns at once with a ``Work`` that this thread completes, so ``async_op``
overlaps with the caller's computation. ``verify`` costs nothing on the wire: the fingerprint travels in the
header of the collective's own messages and a receiver that sees a different one fails the operation on
every rank with both calls in the message.

Same host: when every rank of a group has the same host identity (exchanged through the store when the group
is created; ``_shm_transport.host_identity``), all-reduce, broadcast, all-gather, reduce-scatter and barrier run
through shared-memory segments set up once per group (``_shm_transport``); the other operations and groups
that span hosts use TCP. ``DISTTORCH_ZMQ_SHM=0`` forces TCP, ``DISTTORCH_HOST_ID`` overrides the identity. A
shared-memory call runs on the caller's thread when nothing is queued (no thread hop) and it is at most 64 KiB,
or the caller waits for it at once (``async_op=False``), or the process runs one thread; if a peer is late
(about a millisecond), the communication thread finishes it, so ``Work.wait(timeout)`` applies.

Every frame fits the transport's size limit: collectives send sub-chunks of at most ``_SUB`` bytes (or whole
buffers below 64 KiB), and a point-to-point tensor travels as several messages that the receiver reassembles.
Authentication, replay protection and limits are the transport's (see ``_zmq_transport`` and ``_wire``).
"""
from __future__ import annotations

import hashlib
import threading
import time
from typing import Optional, Sequence

import numpy as np

from ... import _parallel
from ..process_group import REDUCE_UFUNCS, ProcessGroup, ReduceOp, Work, in_blocking_call
from ..store import default_interface, secret_of
from . import _shm_transport as shm
from ._zmq_transport import CHUNK, PENDING, SMALL, Op, Transport

__all__ = ["ZMQProcessGroup"]

_SMALL = SMALL
_SUB = CHUNK  # DISTTORCH_ZMQ_CHUNK_BYTES (2 MiB), capped by DISTTORCH_MAX_MESSAGE_BYTES (see _zmq_transport)
# tag phases
_RS, _AG, _DIRECT, _BCAST, _REDUCE, _GATHER, _A2A, _BARRIER = range(8)


def _tag(i: int, phase: int, step: int = 0, sub: int = 0) -> int:
    return (i << 40) | (phase << 36) | (step << 20) | sub


def _subs(n: int, itemsize: int) -> list:
    """Boundaries of the sub-chunks of an ``n``-element block (the same on sender and receiver)."""
    if n == 0:
        return []
    k = max(1, -(-n * itemsize // _SUB))
    return [(i * n // k, (i + 1) * n // k) for i in range(k)]


def _blocks(n: int, parts: int) -> list:
    return [(c * n // parts, (c + 1) * n // parts) for c in range(parts)]


_DT_NAMES: dict = {}


def _desc(a: np.ndarray) -> str:
    """``float32[1000]`` (dtype names cached: str(dtype) costs microseconds)."""
    name = _DT_NAMES.get(a.dtype)
    if name is None:
        name = _DT_NAMES[a.dtype] = str(a.dtype)
    return f"{name}[{a.size}]"


def _flat(a: np.ndarray) -> np.ndarray:
    if not a.flags.c_contiguous:
        raise ValueError("zmq backend: arrays must be C-contiguous")
    return a.reshape(-1)


def _ufunc(op: ReduceOp):
    try:
        return REDUCE_UFUNCS[op]
    except KeyError:
        raise ValueError(f"zmq backend: unsupported reduce op {op}") from None


class _Done(Work):
    """The Work of a call that completed on the caller's thread (no Event or Lock to create)."""

    def __init__(self, description: str) -> None:  # noqa: D107 - deliberately skips Work.__init__
        self.description, self._exc, self._result, self._callbacks = description, None, None, []

    def then(self, callback) -> None:
        callback(self)

    def is_completed(self) -> bool:
        return True

    def is_success(self) -> bool:
        return True

    def wait(self, timeout=None) -> bool:
        return True


class ZMQProcessGroup(ProcessGroup):
    """A process group whose collectives run over ZeroMQ (see the module docstring)."""

    name = "zmq"

    def __init__(self, transport: Transport, rank: int, size: int, global_ranks: Sequence[int], gid: int) -> None:
        super().__init__(rank, size, global_ranks)
        self._t = transport
        self._gid = gid
        self._seq = 0
        self._nsub = 0
        self._next_fp: Optional[bytes] = None
        self._lock = threading.Lock()
        self._owner = False
        self.timeout = transport.timeout
        self._shm = None  # the same-host shared-memory state (create / new_subgroup); None: TCP for everything

    @classmethod
    def create(cls, store, rank: int, world_size: int, timeout: float, options: dict) -> "ZMQProcessGroup":
        options = options or {}
        interface = options.get("interface") or default_interface()
        t = Transport(store, rank, world_size, float(timeout), interface, secret_of(store))
        pg = cls(t, rank, world_size, range(world_size), 0)
        pg._owner = True
        if world_size > 1:
            try:
                t.connect((rank + 1) % world_size)  # a rendezvous with the ring neighbour
                pg._shm = t.shm_group(0, pg.global_ranks, rank)
            except BaseException:
                t.close()
                raise
        return pg

    # --- plumbing -------------------------------------------------------------------------------------------
    def verify(self, fingerprint: str) -> None:
        """Remember the fingerprint; it rides in the headers of the next collective (checked by receivers)."""
        self._next_fp = fingerprint.encode()[:480]

    def _submit(self, name: str, detail: str, body) -> Work:
        with self._lock:
            seq = self._seq
            self._seq += 1
            fp, self._next_fp = self._next_fp, None
        if fp is None:
            fp = f"{name}({detail})".encode()
        desc = fp.decode(errors="replace")
        op = Op(self._gid, seq, fp, desc, self.global_ranks, self.rank)
        work = Work(desc)
        self._t.submit(work, op, body)
        return work

    def _submit_shm(self, name: str, detail, nbytes: int, method, *args) -> Work:
        """Run ``method`` of the group's shared-memory state on the caller's thread when nothing is queued and
        the call is small, or the caller waits for it at once (``process_group.blocking_call``), or this process
        runs one thread (ranks sharing a node's cores: no spare core for the communication thread to overlap
        on); else, or from its first wait for a late peer on, in order on the communication thread. The thread
        hop costs two wake-ups, about half of a 1 MiB all-reduce's time on 2 ranks (measured 240 against 120
        us). ``detail()`` describes the call when the caller gave no fingerprint (``verify``)."""
        with self._lock:
            self._seq += 1
            fp, self._next_fp = self._next_fp, None
        if fp is None:  # no fingerprint from the caller (verify): describe the call ourselves
            fp = f"{name}({detail()})".encode()
        desc = fp.decode(errors="replace")
        fph = shm.fp_hash(fp)
        group = self._shm
        deadline = [time.monotonic() + self.timeout]  # restarted when the thread starts it (queued behind others)
        gen = method(desc, deadline, fp, fph, *args)

        def body(o):
            deadline[0] = o.deadline
            return group.run(gen, inline=False)

        if nbytes <= shm.SMALL or in_blocking_call() or _parallel.threads() == 1:
            handed = []

            def attempt():
                if not group.run(gen, inline=True):  # a peer is late: the thread finishes it, in order
                    handed.append(Work(desc))
                    self._t.submit(handed[0], Op(self._gid, -2, fp, desc, self.global_ranks, self.rank),
                                   lambda o: group.run(gen, inline=False))

            try:
                ran = self._t.try_inline(attempt)
            except BaseException as e:  # noqa: BLE001 - the error belongs to the caller's Work
                work = Work(desc)
                work._finish(e)
                return work
            if ran:
                return handed[0] if handed else _Done(desc)
        work = Work(desc)
        self._t.submit(work, Op(self._gid, -2, fp, desc, self.global_ranks, self.rank), body)
        return work

    def _send(self, op: Op, dst: int, tag: int, arr: np.ndarray) -> None:
        self._t.send(op, dst, tag, arr)

    def _recv(self, op: Op, src: int, tag: int, like: np.ndarray) -> np.ndarray:
        return self._t.recv(op, src, tag, like.dtype, like.size)

    def _send_array(self, op: Op, dst: int, i: int, phase: int, arr: np.ndarray) -> None:
        for k, (a, b) in enumerate(_subs(arr.size, arr.itemsize)):
            self._send(op, dst, _tag(i, phase, 0, k), arr[a:b])

    def _recv_array(self, op: Op, src: int, i: int, phase: int, out: np.ndarray) -> None:
        for k, (a, b) in enumerate(_subs(out.size, out.itemsize)):
            out[a:b] = self._recv(op, src, _tag(i, phase, 0, k), out[a:b])

    # --- all-reduce -----------------------------------------------------------------------------------------
    def allreduce(self, arrays: list, op: ReduceOp) -> Work:
        ufunc = _ufunc(op)
        flats = [_flat(a) for a in arrays]
        if self.size == 1:  # the sum of one rank's data is the data: no thread hop (a 1-rank DDP job, per bucket)
            with self._lock:
                self._seq += 1
                self._next_fp = None
            return _Done("all_reduce")
        if self._shm is not None:
            return self._submit_shm("all_reduce", lambda: f"{', '.join(_desc(a) for a in flats)}, {op.name}",
                                    sum(a.nbytes for a in flats), self._shm.allreduce, flats, ufunc)
        detail = ", ".join(f"{a.dtype}[{a.size}]" for a in flats)
        return self._submit("all_reduce", f"{detail}, {op.name}", lambda o: self._allreduce(o, flats, ufunc))

    def _allreduce(self, op: Op, flats: list, ufunc) -> None:
        if self.size == 1:
            return
        for i, x in enumerate(flats):
            if x.nbytes == 0:
                continue
            if x.nbytes < _SMALL:
                self._allreduce_direct(op, i, x, ufunc)
            else:
                self._allreduce_ring(op, i, x, ufunc)

    def _allreduce_direct(self, op: Op, i: int, x: np.ndarray, ufunc) -> None:
        tag = _tag(i, _DIRECT)
        for r in range(self.size):
            if r != self.rank:
                self._send(op, r, tag, x)
        parts = [x if r == self.rank else self._recv(op, r, tag, x) for r in range(self.size)]
        self._t.wait_sent(op)  # x is overwritten below
        acc = ufunc(parts[0], parts[1])
        for p in parts[2:]:
            ufunc(acc, p, out=acc)
        x[...] = acc

    def _ring_reduce_scatter(self, op: Op, i: int, srcs: list, accs: list, ufunc, shift: int, last=None) -> list:
        """Ring reduce-scatter of blocks ``srcs`` (one per rank) into ``accs``; rank r ends holding the fully
        reduced block ``(r + 1 - shift) % size``. Returns the trackers of each step's sends. ``last(k, sub)`` is
        called as each sub-chunk of the final block is reduced."""
        n, r = self.size, self.rank
        right, left = (r + 1) % n, (r - 1) % n
        subs = [_subs(s.size, s.itemsize) for s in srcs]
        step_trackers = []
        first = (r - shift) % n
        for k, (a, b) in enumerate(subs[first]):
            self._send(op, right, _tag(i, _RS, 0, k), srcs[first][a:b])
        for s in range(n - 1):
            step_trackers.append(op.trackers)
            op.trackers = []
            c = (r - shift - s - 1) % n
            src, acc = srcs[c], accs[c]
            for k, (a, b) in enumerate(subs[c]):
                part = self._recv(op, left, _tag(i, _RS, s, k), src[a:b])
                ufunc(part, src[a:b], out=acc[a:b])
                if s < n - 2:
                    self._send(op, right, _tag(i, _RS, s + 1, k), acc[a:b])
                elif last is not None:
                    last(k, acc[a:b])
        return step_trackers

    def _allreduce_ring(self, op: Op, i: int, x: np.ndarray, ufunc) -> None:
        n, r = self.size, self.rank
        right, left = (r + 1) % n, (r - 1) % n
        blocks = [x[a:b] for a, b in _blocks(x.size, n)]

        def start_allgather(k, sub):
            self._send(op, right, _tag(i, _AG, 0, k), sub)

        step_trackers = self._ring_reduce_scatter(op, i, blocks, blocks, ufunc, 0, start_allgather)
        for s in range(n - 1):
            self._t._wait_trackers(op, step_trackers[s])  # block (r - s) was sent at step s; now overwritten
            blk = blocks[(r - s) % n]
            for k, (a, b) in enumerate(_subs(blk.size, blk.itemsize)):
                blk[a:b] = self._recv(op, left, _tag(i, _AG, s, k), blk[a:b])
                if s < n - 2:
                    self._send(op, right, _tag(i, _AG, s + 1, k), blk[a:b])

    # --- reduce-scatter, all-gather ---------------------------------------------------------------------------
    def reduce_scatter(self, output: np.ndarray, inputs: list, op: ReduceOp) -> Work:
        ufunc = _ufunc(op)
        out, ins = _flat(output), [_flat(a) for a in inputs]
        if len(ins) != self.size:
            raise ValueError(f"reduce_scatter: expected {self.size} inputs, got {len(ins)}")
        if self._shm is not None:
            if any(a.size != out.size or a.dtype != out.dtype for a in ins):
                raise ValueError(f"reduce_scatter: every input must be {out.dtype}[{out.size}] like the output, got "
                                 f"{[f'{a.dtype}[{a.size}]' for a in ins]}")
            return self._submit_shm("reduce_scatter", lambda: f"{_desc(out)}, {op.name}", out.nbytes * self.size,
                                    self._shm.reduce_scatter, out, ins, ufunc)
        return self._submit("reduce_scatter", f"{out.dtype}[{out.size}], {op.name}",
                            lambda o: self._reduce_scatter(o, out, ins, ufunc))

    def _reduce_scatter(self, op: Op, out: np.ndarray, ins: list, ufunc) -> None:
        n, r = self.size, self.rank
        if n == 1:
            out[...] = ins[0]
            return
        # intermediate partial sums go to fresh arrays (the inputs stay untouched); the last lands in ``out``
        accs = [out if c == r else np.empty_like(ins[c]) for c in range(n)]
        for trackers in self._ring_reduce_scatter(op, 0, ins, accs, ufunc, 1):
            op.trackers.extend(trackers)

    def allgather(self, outputs: list, array: np.ndarray) -> Work:
        outs, x = [_flat(a) for a in outputs], _flat(array)
        if len(outs) != self.size:
            raise ValueError(f"all_gather: expected {self.size} outputs, got {len(outs)}")
        if self._shm is not None:
            if any(o.nbytes != x.nbytes for o in outs):
                raise ValueError(f"all_gather: every output must hold {x.nbytes} bytes like the input "
                                 f"{x.dtype}[{x.size}], got {[o.nbytes for o in outs]}")
            return self._submit_shm("all_gather", lambda: _desc(x), x.nbytes * self.size,
                                    self._shm.allgather, outs, x)
        return self._submit("all_gather", f"{x.dtype}[{x.size}]", lambda o: self._allgather(o, outs, x))

    def _allgather(self, op: Op, outs: list, x: np.ndarray) -> None:
        n, r = self.size, self.rank
        right, left = (r + 1) % n, (r - 1) % n
        outs[r][...] = x
        for k, (a, b) in enumerate(_subs(x.size, x.itemsize)):
            self._send(op, right, _tag(0, _AG, 0, k), x[a:b])
        for s in range(n - 1):
            blk = outs[(r - s - 1) % n]
            for k, (a, b) in enumerate(_subs(blk.size, blk.itemsize)):
                blk[a:b] = self._recv(op, left, _tag(0, _AG, s, k), blk[a:b])
                if s < n - 2:
                    self._send(op, right, _tag(0, _AG, s + 1, k), blk[a:b])

    # --- rooted collectives --------------------------------------------------------------------------------
    def broadcast(self, arrays: list, src: int) -> Work:
        flats = [_flat(a) for a in arrays]
        if self._shm is not None:
            return self._submit_shm("broadcast", lambda: f"{', '.join(_desc(a) for a in flats)}, src={src}",
                                    sum(a.nbytes for a in flats), self._shm.broadcast, flats, src)
        detail = ", ".join(f"{a.dtype}[{a.size}]" for a in flats)
        return self._submit("broadcast", f"{detail}, src={src}", lambda o: self._broadcast(o, flats, src))

    def _broadcast(self, op: Op, flats: list, root: int) -> None:
        n, r = self.size, self.rank
        for i, x in enumerate(flats):
            if n == 1 or x.nbytes == 0:
                continue
            if x.nbytes < _SMALL:  # straight from the root
                if r == root:
                    for d in range(n):
                        if d != root:
                            self._send(op, d, _tag(i, _BCAST), x)
                else:
                    x[...] = self._recv(op, root, _tag(i, _BCAST), x)
                continue
            # pipelined chain root -> root+1 -> ...: each sub-chunk is forwarded as soon as it arrives
            pos = (r - root) % n
            nxt, prev = (r + 1) % n, (r - 1) % n
            for k, (a, b) in enumerate(_subs(x.size, x.itemsize)):
                if pos > 0:
                    x[a:b] = self._recv(op, prev, _tag(i, _BCAST, 0, k), x[a:b])
                if pos < n - 1:
                    self._send(op, nxt, _tag(i, _BCAST, 0, k), x[a:b])

    def reduce(self, array: np.ndarray, dst: int, op: ReduceOp) -> Work:
        ufunc = _ufunc(op)
        x = _flat(array)
        return self._submit("reduce", f"{x.dtype}[{x.size}], dst={dst}, {op.name}",
                            lambda o: self._reduce(o, x, dst, ufunc))

    def _reduce(self, op: Op, x: np.ndarray, root: int, ufunc) -> None:
        """Pipelined chain root+1 -> root+2 -> ... -> root; only the root's array changes."""
        n, r = self.size, self.rank
        if n == 1 or x.nbytes == 0:
            return
        pos = (r - root - 1) % n
        nxt, prev = (r + 1) % n, (r - 1) % n
        for k, (a, b) in enumerate(_subs(x.size, x.itemsize)):
            if pos == 0:
                self._send(op, nxt, _tag(0, _REDUCE, 0, k), x[a:b])
                continue
            part = self._recv(op, prev, _tag(0, _REDUCE, 0, k), x[a:b])
            if pos == n - 1:
                ufunc(part, x[a:b], out=x[a:b])
            else:
                self._send(op, nxt, _tag(0, _REDUCE, 0, k), ufunc(part, x[a:b]))

    def gather(self, outputs: Optional[list], array: np.ndarray, dst: int) -> Work:
        x = _flat(array)
        outs = [_flat(a) for a in outputs] if self.rank == dst else None
        return self._submit("gather", f"{x.dtype}[{x.size}], dst={dst}", lambda o: self._gather(o, outs, x, dst))

    def _gather(self, op: Op, outs, x: np.ndarray, root: int) -> None:
        if self.rank != root:
            self._send_array(op, root, 0, _GATHER, x)
            return
        for r in range(self.size):
            if r == root:
                outs[r][...] = x
            else:
                self._recv_array(op, r, 0, _GATHER, outs[r])

    def scatter(self, output: np.ndarray, inputs: Optional[list], src: int) -> Work:
        out = _flat(output)
        ins = [_flat(a) for a in inputs] if self.rank == src else None
        return self._submit("scatter", f"{out.dtype}[{out.size}], src={src}", lambda o: self._scatter(o, out, ins, src))

    def _scatter(self, op: Op, out: np.ndarray, ins, root: int) -> None:
        if self.rank != root:
            self._recv_array(op, root, 0, _GATHER, out)
            return
        for r in range(self.size):
            if r != root:
                self._send_array(op, r, 0, _GATHER, ins[r])
        out[...] = ins[root]

    def alltoall(self, outputs: list, inputs: list) -> Work:
        outs, ins = [_flat(a) for a in outputs], [_flat(a) for a in inputs]
        detail = f"{ins[0].dtype if ins else '?'}"  # split sizes may differ between ranks
        return self._submit("all_to_all", detail, lambda o: self._alltoall(o, outs, ins))

    def _alltoall(self, op: Op, outs: list, ins: list) -> None:
        n, r = self.size, self.rank
        for s in range(1, n):
            d = (r + s) % n
            self._send_array(op, d, 0, _A2A, ins[d])
        outs[r][...] = ins[r]
        for s in range(1, n):
            src = (r - s) % n
            self._recv_array(op, src, 0, _A2A, outs[src])

    def barrier(self) -> Work:
        if self._shm is not None:
            return self._submit_shm("barrier", str, 0, self._shm.barrier)
        return self._submit("barrier", "", self._barrier)

    def _barrier(self, op: Op) -> None:
        """Dissemination barrier: ceil(log2(size)) rounds of one message each."""
        n, r = self.size, self.rank
        empty = np.empty(0, np.uint8)
        step, rnd = 1, 0
        while step < n:
            self._send(op, (r + step) % n, _tag(0, _BARRIER, rnd), empty)
            self._recv(op, (r - step) % n, _tag(0, _BARRIER, rnd), empty)
            step, rnd = step * 2, rnd + 1

    # --- point to point ------------------------------------------------------------------------------------
    def send(self, array: np.ndarray, dst: int, tag: int = 0) -> Work:
        x = np.ascontiguousarray(array)
        g = self.global_ranks[dst]
        work = Work(f"send(to rank {g}, tag={tag})")
        self._t.submit(work, Op(self._gid, -1, b"", work.description, self.global_ranks, self.rank),
                       lambda o: self._t.send_p2p(self._gid, g, tag, x))
        return work

    def recv(self, array: np.ndarray, src: Optional[int], tag: int = 0) -> Work:
        out = _flat(array)
        g = None if src is None else self.global_ranks[src]
        work = Work(f"recv(from rank {'any' if g is None else g}, tag={tag})")

        def body(o):
            self._t.post_recv(self._gid, g, tag, out, work, self.global_ranks, self.timeout)
            return PENDING

        self._t.submit(work, Op(self._gid, -1, b"", work.description, self.global_ranks, self.rank), body)
        return work

    # --- groups and lifetime ---------------------------------------------------------------------------------
    def new_subgroup(self, ranks: Sequence[int]) -> Optional["ZMQProcessGroup"]:
        ranks = [int(r) for r in ranks]
        if len(set(ranks)) != len(ranks) or any(not 0 <= r < self.size for r in ranks):
            raise ValueError(f"new_group: ranks {ranks} must be distinct ranks of a group of size {self.size}")
        with self._lock:
            self._nsub += 1
            n = self._nsub
        gid = int.from_bytes(hashlib.blake2b(f"{self._gid}/{n}/{ranks}".encode(), digest_size=8).digest(), "little")
        if self.rank not in ranks:
            return None
        sub = ZMQProcessGroup(self._t, ranks.index(self.rank), len(ranks), [self.global_ranks[r] for r in ranks], gid)
        sub._shm = self._t.shm_group(gid, sub.global_ranks, sub.rank)  # waits for the other members
        return sub

    def shutdown(self) -> None:
        """Stop the communication thread and close the sockets (the world group owns them); a subgroup
        unmaps its shared memory after the operations already queued."""
        group, self._shm = self._shm, None
        if group is not None and not self._owner:
            group.unlink()
            if self._t.thread.is_alive():
                self._t.submit(Work("close"), Op(self._gid, -2, b"", "close", self.global_ranks, self.rank),
                               lambda o: group.close())
            else:
                group.close()
        if self._owner:
            self._owner = False
            self._t.close()
