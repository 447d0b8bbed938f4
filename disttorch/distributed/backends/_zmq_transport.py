"""The ZeroMQ transport under the zmq backend: one PULL socket per process, PUSH sockets to peers, and the
communication thread that runs every group's operations in order.

Wire format: three frames ``[header, mac, payload]``. The header is ``struct <QqIQQ`` (group id, sequence
number, sender's global rank, tag, payload bytes) followed by the operation's fingerprint text. The MAC is
HMAC-SHA256 under the job secret over the header (which names the group, sequence and tag, so each header is
valid once); set ``DISTTORCH_ZMQ_MAC_PAYLOAD=1`` to cover the payload bytes as well (SHA-256 runs at ~1.6 GB/s,
slower than the loopback ring, so it is off by default). Frames with a bad MAC are dropped with a warning.

Receives match on ``(group, seq, src, tag)``; messages that arrive before their operation is running wait in
a dictionary. Point-to-point messages (``seq == -1``) queue per ``(group, tag)`` in arrival order.
"""
from __future__ import annotations

import collections
import hmac
import logging
import os
import queue
import struct
import threading
import time

import numpy as np
import zmq

log = logging.getLogger("disttorch.distributed")

_HDR = struct.Struct("<QqIQQ")
ABORT_TAG = (1 << 64) - 1
PENDING = object()  # returned by an operation body whose Work completes later (a posted receive)
_COPY_BELOW = 64 * 1024  # smaller payloads are copied into the message (zero-copy costs more than it saves)


class Op:
    """One running operation: its group, sequence number, fingerprint and the tracked zero-copy sends."""

    __slots__ = ("gid", "seq", "fp", "name", "ranks", "rank", "deadline", "trackers")

    def __init__(self, gid: int, seq: int, fp: bytes, name: str, ranks: list, rank: int) -> None:
        self.gid, self.seq, self.fp, self.name, self.ranks, self.rank = gid, seq, fp, name, ranks, rank
        self.deadline = 0.0
        self.trackers: list = []


class Transport:
    """Sockets, receive buffers and the communication thread of one process (shared by all its groups)."""

    def __init__(self, store, global_rank: int, world_size: int, timeout: float, interface: str, secret: bytes) -> None:
        self.store, self.global_rank, self.world_size, self.timeout = store, global_rank, world_size, timeout
        self.secret = secret
        self.mac_payload = os.environ.get("DISTTORCH_ZMQ_MAC_PAYLOAD", "0") not in ("", "0")
        self.stall = float(os.environ.get("DISTTORCH_STALL_WARNING", "60"))
        self.ctx = zmq.Context(io_threads=1)
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.setsockopt(zmq.RCVHWM, 0)  # the io thread always drains TCP, so tracked sends always finish
        self.pull.setsockopt(zmq.LINGER, 0)
        try:
            port = self.pull.bind_to_random_port(f"tcp://{interface}")
        except zmq.ZMQError as e:
            self.pull.close(0)
            self.ctx.term()
            raise RuntimeError(f"zmq backend: rank {global_rank} cannot bind a socket on interface {interface!r}: {e} "
                               f"(set DISTTORCH_INTERFACE to an address of this host)") from None
        self.address = f"tcp://{interface}:{port}"
        store.set(f"zmq/addr/{global_rank}", self.address)
        self.pushes: dict = {}
        self.coll: dict = {}    # (gid, seq, src, tag) -> payload frame
        self.p2p: dict = {}     # (gid, tag) -> deque of (src, payload frame)
        self.early: dict = {}   # (gid, seq) -> {src: fingerprint} for operations not yet running
        self.aborts: dict = {}  # gid -> error text from a rank that saw mismatched calls
        self.cur = None
        self.posted: list = []  # receives waiting for their message, matched in posting order
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name=f"disttorch-zmq-rank{global_rank}", daemon=True)
        self.thread.start()

    # --- the communication thread --------------------------------------------------------------------------
    def submit(self, work, op: Op, body) -> None:
        self.queue.put((work, op, body))

    def _loop(self) -> None:
        # reductions return IEEE results silently (inf on overflow), as PyTorch does; errstate is per thread
        with np.errstate(all="ignore"):
            self._serve()

    def _serve(self) -> None:
        while True:
            if self.posted:
                # Receives are pending: keep draining the socket between operations so that an irecv posted
                # before the matching isend (on both ranks) completes instead of blocking this thread.
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    if self.pull.poll(1):
                        self._drain()
                    self._expire_posted()
                    continue
            else:
                item = self.queue.get()
            if item is None:
                return
            work, op, body = item
            try:
                result = self._run(op, body)
            except BaseException as e:  # noqa: BLE001 - the error belongs to the caller's Work
                work._finish(e)
            else:
                if result is not PENDING:
                    work._finish(None, result)

    def _run(self, op: Op, body):
        if op.gid in self.aborts:
            raise RuntimeError(self.aborts[op.gid])
        op.deadline = time.monotonic() + self.timeout
        self.cur = op
        try:
            for src, fp in self.early.pop((op.gid, op.seq), {}).items():
                self._check_fp(op, src, fp)
            result = body(op)
            self._wait_trackers(op, op.trackers)
            return result
        finally:
            self.cur = None
            op.trackers = []

    def close(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join(max(5.0, self.timeout))
        for s in self.pushes.values():
            s.close(linger=5000)  # let the last queued messages reach their peers
        self.pull.close(0)
        self.ctx.term()

    # --- sending --------------------------------------------------------------------------------------------
    def _push(self, dst: int):
        sock = self.pushes.get(dst)
        if sock is None:
            key = f"zmq/addr/{dst}"
            try:
                self.store.wait([key], self.timeout)
                addr = self.store.get(key)
            except RuntimeError:
                raise RuntimeError(f"zmq backend: rank {self.global_rank} timed out after {self.timeout:g} s waiting "
                                   f"for rank {dst} to join (its address never appeared in the store)") from None
            sock = self.ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(addr.decode())
            self.pushes[dst] = sock
        return sock

    def connect(self, dst: int) -> None:
        """Connect to ``dst`` now (waits until it has published its address)."""
        self._push(dst)

    def _header(self, gid: int, seq: int, tag: int, nbytes: int, fp: bytes) -> bytes:
        return _HDR.pack(gid, seq, self.global_rank, tag, nbytes) + fp

    def _mac(self, hdr: bytes, payload) -> bytes:
        if self.mac_payload:
            h = hmac.new(self.secret, hdr, "sha256")
            h.update(payload)
            return h.digest()
        return hmac.digest(self.secret, hdr, "sha256")

    def send(self, op: Op, dst: int, tag: int, arr: np.ndarray) -> None:
        """Send the contiguous array ``arr`` to group rank ``dst`` (zero-copy above 64 KiB, tracked by ``op``)."""
        buf = arr.reshape(-1).view(np.uint8)
        hdr = self._header(op.gid, op.seq, tag, buf.nbytes, op.fp)
        sock = self._push(op.ranks[dst])
        sock.send(hdr, zmq.SNDMORE)
        sock.send(self._mac(hdr, buf), zmq.SNDMORE)
        if buf.nbytes >= _COPY_BELOW:
            op.trackers.append(sock.send(memoryview(buf), copy=False, track=True))
        else:
            sock.send(buf.tobytes())

    def send_p2p(self, gid: int, dst_global: int, tag: int, arr: np.ndarray) -> None:
        buf = arr.reshape(-1).view(np.uint8)
        hdr = self._header(gid, -1, tag, buf.nbytes, b"")
        sock = self._push(dst_global)
        sock.send(hdr, zmq.SNDMORE)
        sock.send(self._mac(hdr, buf), zmq.SNDMORE)
        tracker = sock.send(memoryview(buf), copy=False, track=True)
        deadline = time.monotonic() + self.timeout
        while not tracker.done:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"send: rank {self.global_rank} could not deliver {buf.nbytes} bytes to rank "
                                   f"{dst_global} within {self.timeout:g} s")
            tracker.wait(min(left, 1.0))

    def abort(self, op: Op, text: str) -> None:
        """Tell every other rank of the group that this operation failed (they raise ``text``)."""
        payload = text.encode()
        for r, g in enumerate(op.ranks):
            if r != op.rank:
                hdr = self._header(op.gid, op.seq, ABORT_TAG, len(payload), op.fp)
                sock = self._push(g)
                sock.send_multipart([hdr, self._mac(hdr, payload), payload])

    def _wait_trackers(self, op: Op, trackers: list) -> None:
        for t in trackers:
            while not t.done:
                left = op.deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"{op.name}: rank {self.global_rank} could not hand its data to the network "
                                       f"within {self.timeout:g} s")
                t.wait(min(left, 1.0))
        trackers.clear()

    def wait_sent(self, op: Op) -> None:
        """Wait until the data of ``op``'s zero-copy sends so far has left the arrays (before overwriting them)."""
        self._wait_trackers(op, op.trackers)

    # --- receiving ------------------------------------------------------------------------------------------
    def recv(self, op: Op, src: int, tag: int, dtype, count: int) -> np.ndarray:
        """The payload of group rank ``src``'s message ``tag`` of ``op``, as a read-only array of ``count``."""
        g = op.ranks[src]
        key = (op.gid, op.seq, g, tag)
        frame = self.coll.pop(key, None)
        if frame is None:
            frame = self._wait_for(op, lambda: self.coll.pop(key, None), g)
        arr = np.frombuffer(frame.buffer, dtype=dtype)
        if arr.size != count:
            raise RuntimeError(f"{op.name}: rank {g} sent {arr.size} elements but rank {self.global_rank} expects "
                               f"{count} (tensor sizes differ between ranks)")
        return arr

    def post_recv(self, gid: int, src_global, tag: int, out: np.ndarray, work, ranks: list, timeout: float) -> None:
        """Register a receive into ``out``; ``work`` completes (result: sender's group rank) when it matches."""
        self.posted.append((gid, src_global, tag, out, work, ranks, time.monotonic() + timeout))
        self._match_posted()

    def _take_p2p(self, gid: int, src_global, tag: int):
        q = self.p2p.get((gid, tag))
        if not q:
            return None
        if src_global is None:
            return q.popleft()
        for i, item in enumerate(q):
            if item[0] == src_global:
                del q[i]
                return item
        return None

    def _match_posted(self) -> None:
        if not self.posted:
            return
        still = []
        for entry in self.posted:
            gid, src_global, tag, out, work, ranks, _deadline = entry
            item = self._take_p2p(gid, src_global, tag)
            if item is None:
                still.append(entry)
                continue
            sender, frame = item
            data = np.frombuffer(frame.buffer, dtype=out.dtype)
            if data.size != out.size:
                work._finish(RuntimeError(f"recv: rank {sender} sent {data.size} elements but rank "
                                          f"{self.global_rank} expects {out.size}"))
                continue
            out[...] = data
            work._finish(None, ranks.index(sender) if sender in ranks else sender)
        self.posted = still

    def _expire_posted(self) -> None:
        now = time.monotonic()
        still = []
        for entry in self.posted:
            if entry[6] <= now:
                src = "any rank" if entry[1] is None else f"rank {entry[1]}"
                entry[4]._finish(RuntimeError(f"{entry[4].description}: rank {self.global_rank} timed out after "
                                              f"{self.timeout:g} s waiting for {src} (DISTTORCH_COLLECTIVE_TIMEOUT)"))
            else:
                still.append(entry)
        self.posted = still

    def _wait_for(self, op: Op, take, peer):
        start = time.monotonic()
        warned = False
        while True:
            now = time.monotonic()
            left = op.deadline - now
            if left <= 0:
                raise RuntimeError(f"{op.name}: rank {self.global_rank} timed out after {self.timeout:g} s waiting "
                                   f"for rank {peer} (DISTTORCH_COLLECTIVE_TIMEOUT)")
            if not warned and now - start >= self.stall:
                warned = True
                log.warning("%s: rank %d has waited %.0f s for rank %s", op.name, self.global_rank, now - start, peer)
            wait_s = min(left, self.stall - (now - start)) if not warned else left
            if self.pull.poll(max(1, int(wait_s * 1000))):
                self._drain()
                item = take()
                if item is not None:
                    return item

    def _drain(self) -> None:
        while True:
            try:
                frames = self.pull.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                self._match_posted()
                return
            self._dispatch(frames)

    def _dispatch(self, frames: list) -> None:
        if len(frames) != 3:
            log.warning("zmq backend: rank %d dropped a message with %d frames (not from this job?)",
                        self.global_rank, len(frames))
            return
        hdr, payload = frames[0].bytes, frames[2]
        if len(hdr) < _HDR.size or not hmac.compare_digest(frames[1].bytes, self._mac(hdr, payload.buffer)):
            log.warning("zmq backend: rank %d dropped a message with a bad MAC (check DISTTORCH_JOB_SECRET)",
                        self.global_rank)
            return
        gid, seq, src, tag, nbytes = _HDR.unpack_from(hdr)
        if len(payload) != nbytes:
            log.warning("zmq backend: rank %d dropped a truncated message from rank %d", self.global_rank, src)
            return
        fp = hdr[_HDR.size:]
        if tag == ABORT_TAG:
            text = payload.bytes.decode(errors="replace")
            self.aborts[gid] = text
            cur = self.cur
            if cur is not None and cur.gid == gid:
                raise RuntimeError(text)
            return
        if seq < 0:
            self.p2p.setdefault((gid, tag), collections.deque()).append((src, payload))
            return
        self.coll[(gid, seq, src, tag)] = payload
        cur = self.cur
        if cur is not None and cur.gid == gid and cur.seq == seq:
            if fp != cur.fp:
                self._check_fp(cur, src, fp)
        else:
            self.early.setdefault((gid, seq), {}).setdefault(src, fp)

    def _check_fp(self, op: Op, src: int, fp: bytes) -> None:
        if fp == op.fp:
            return
        theirs = fp.decode(errors="replace")
        text = (f"Mismatched collective calls in one process group: rank {self.global_rank} called "
                f"{op.fp.decode(errors='replace')} but rank {src} called {theirs}")
        self.abort(op, text)
        raise RuntimeError(text)
