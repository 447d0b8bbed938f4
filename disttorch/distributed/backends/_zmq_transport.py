"""The ZeroMQ transport under the zmq backend: one PULL socket per process, PUSH sockets to peers, and the
communication thread that runs every group's operations in order.

Who may connect: the PULL socket completes a connection only with PLAIN credentials derived from the job secret
(``_wire.ZapGate``; refusals count as ``bad_credentials``), so a peer without the secret gets no frame queued.
The gate costs nothing per message; its password travels in the clear, so off loopback an on-path sniffer could
pass it (and then meets the MACs below, and ``MAXMSGSIZE`` per frame).

Wire format (the messaging rules of ``_wire``): three frames ``[header, mac, payload]``. The header is
``struct <B16sQQqIQQQQ`` (flags, the receiver's incarnation nonce, the sender's counter for this receiver,
group id, sequence number, sender's global rank, tag, payload bytes, total bytes of the message, offset of this
payload in it) followed by the operation's fingerprint text.

- Authentication: the MAC frame is HMAC-SHA256 (transport sub-key of the job secret) over the header; with the
  payload-MAC flag it is followed by a second MAC over header and payload. The payload MAC is on by default
  whenever the receiver is not bound to loopback (multi-host): each header is valid once (below), but a sniffing
  attacker could still race a forged payload under a copied header. Loopback is exempt because only root can
  sniff it, and root can read the processes' memory anyway; the header MAC stays. SHA-256 runs at ~1.6 GB/s
  on one core, below loopback bandwidth (forced on over loopback, a 64 MiB all-reduce of 2 ranks took ~3-4x as
  long), and hashlib releases the GIL while it hashes, so the training thread runs on meanwhile.
  ``DISTTORCH_ZMQ_MAC_PAYLOAD=1``/``0`` forces it on/off; each receiver publishes what it requires and its
  senders follow.
- Replay protection: each Transport draws a random incarnation nonce and publishes it with its address in the
  store; senders read it when they connect and count their messages per receiver. A receiver drops frames that
  name another incarnation or whose counter is not newer than the last it accepted from that sender (one
  sender's frames arrive in order over its PUSH/PULL connection).
- Size limits: ``zmq.MAXMSGSIZE`` on the PULL socket is ``DISTTORCH_MAX_MESSAGE_BYTES`` (default: a little above
  the largest frame the backend sends, ``DISTTORCH_ZMQ_CHUNK_BYTES`` = 2 MiB); collectives send sub-chunks of at
  most ``CHUNK`` bytes and a point-to-point tensor goes as several messages of at most ``CHUNK`` bytes, which
  the receiver reassembles. The PULL queue stays unbounded (RCVHWM 0): the communication thread waits for its
  own zero-copy sends without reading, so a bounded queue could deadlock two ranks sending to each other; the
  thread drains the socket whenever it is idle, so bad frames are dropped as they come.

Dropped frames are counted per reason and sender (``Transport.stats()``) with rate-limited warnings.

Receives match on ``(group, seq, src, tag)``; messages that arrive before their operation is running wait in
a dictionary. Point-to-point messages (``seq == -1``) queue per ``(group, tag)`` in arrival order.
"""
from __future__ import annotations

import collections
import logging
import os
import queue
import struct
import threading
import time

import numpy as np
import zmq

from .. import _wire
from . import _shm_transport as shm

log = logging.getLogger("disttorch.distributed")
_HDR = struct.Struct("<B16sQQqIQQQQ")
_F_PAYLOAD_MAC = 1
_MAX_FP = 1024  # fingerprint bytes after the header (the backend sends at most 480)
ABORT_TAG = (1 << 64) - 1
PENDING = object()  # returned by an operation body whose Work completes later (a posted receive)
_COPY_BELOW = 64 * 1024  # smaller payloads are copied into the message (zero-copy costs more than it saves)
SMALL = 64 * 1024  # below this the backend sends a buffer whole (one latency)
_SLACK = 4096  # sub-chunk boundaries round to elements; abort texts are short
_ABORT_MAX = 2048


def _limits() -> tuple:
    """(frame limit of the PULL socket, largest payload the backend sends) from the environment."""
    chunk = int(os.environ.get("DISTTORCH_ZMQ_CHUNK_BYTES", str(2 << 20)))  # measured: 2 MiB beat 256 KiB-1 MiB
    if chunk <= 0:
        raise ValueError(f"DISTTORCH_ZMQ_CHUNK_BYTES={chunk}: expected a positive number of bytes")
    limit = _wire.max_message_bytes(max(chunk, SMALL) + _SLACK)
    return limit, min(chunk, limit - _SLACK)


LIMIT, CHUNK = _limits()


class Op:
    """One running operation: its group, sequence number, fingerprint and the tracked zero-copy sends."""

    __slots__ = ("gid", "seq", "fp", "name", "ranks", "rank", "deadline", "trackers")

    def __init__(self, gid: int, seq: int, fp: bytes, name: str, ranks: list, rank: int) -> None:
        self.gid, self.seq, self.fp, self.name, self.ranks, self.rank = gid, seq, fp, name, ranks, rank
        self.deadline = 0.0
        self.trackers: list = []


class _Peer:
    """A PUSH socket to one receiver, with what its frames must carry: its incarnation and our counter."""

    __slots__ = ("sock", "incarnation", "mac_payload", "counter")

    def __init__(self, sock, incarnation: bytes, mac_payload: bool) -> None:
        self.sock, self.incarnation, self.mac_payload, self.counter = sock, incarnation, mac_payload, 0


def _payload_mac_policy(interface: str) -> bool:
    forced = os.environ.get("DISTTORCH_ZMQ_MAC_PAYLOAD", "")
    if forced:
        return forced != "0"
    return not _wire.is_loopback(interface)


class Transport:
    """Sockets, receive buffers and the communication thread of one process (shared by all its groups)."""

    def __init__(self, store, global_rank: int, world_size: int, timeout: float, interface: str, secret: bytes) -> None:
        self.store, self.global_rank, self.world_size, self.timeout = store, global_rank, world_size, timeout
        self.mac = _wire.Mac(_wire.subkey(secret, "transport"))
        self.mac_payload = _payload_mac_policy(interface)  # what this receiver requires of its senders
        self.incarnation = _wire.nonce()
        self.guard = _wire.ReplayGuard()  # sender's global rank -> last accepted counter
        self.drops = _wire.DropLog(f"zmq backend rank {global_rank}")
        self.limit, self.chunk = LIMIT, CHUNK
        self.stall = float(os.environ.get("DISTTORCH_STALL_WARNING", "60"))
        self.ctx = zmq.Context(io_threads=1)
        self._secret = secret
        self.gate = _wire.ZapGate(self.ctx, secret, "transport", self.drops)
        self.pull = self.ctx.socket(zmq.PULL)
        _wire.harden(self.pull, self.limit, rcvhwm=0)  # unbounded queue: see the module docstring
        _wire.plain_server(self.pull)
        try:
            port = self.pull.bind_to_random_port(f"tcp://{interface}")
        except zmq.ZMQError as e:
            self.pull.close(0)
            self.ctx.term()
            self.gate.thread.join(5)
            raise RuntimeError(f"zmq backend: rank {global_rank} cannot bind a socket on interface {interface!r}: {e} "
                               f"(set DISTTORCH_INTERFACE to an address of this host)") from None
        self.address = f"tcp://{interface}:{port}"
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        store.set(f"zmq/addr/{global_rank}", f"{self.address} {self.incarnation.hex()} {int(self.mac_payload)}")
        # host identity for the same-host shared-memory path (see _shm_transport); "" = this rank uses TCP only
        store.set(f"zmq/host/{global_rank}", shm.host_identity() if shm.enabled() else "")
        if global_rank == 0:
            store.set("zmq/shm/token", _wire.nonce().hex()[:16])
        self.hosts: dict = {}      # global rank -> host identity, read when a group needs it
        self.shm_groups: list = []
        self._mutex = threading.Lock()  # guards _inflight: operations queued or running on the thread
        self._inflight = 0
        self._exec = threading.Lock()   # held by whoever runs an operation (the thread, or a caller inline)
        self.pushes: dict = {}   # global rank -> _Peer
        self.coll: dict = {}     # (gid, seq, src, tag) -> payload frame
        self.p2p: dict = {}      # (gid, tag) -> deque of (src, [payload frames])
        self.partial: dict = {}  # (gid, tag, src) -> [total, received, [frames]]: p2p message being reassembled
        self.early: dict = {}    # (gid, seq) -> {src: fingerprint} for operations not yet running
        self.aborts: dict = {}   # gid -> error text from a rank that saw mismatched calls
        self.cur = None
        self.posted: list = []  # receives waiting for their message, matched in posting order
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name=f"disttorch-zmq-rank{global_rank}", daemon=True)
        self.thread.start()

    def stats(self) -> dict:
        """Dropped frames (see ``_wire.DropLog.stats``) and how many messages wait in the receive buffers."""
        out = self.drops.stats()
        out["buffered"] = {"coll": len(self.coll), "p2p": sum(len(q) for q in list(self.p2p.values())),
                           "partial": len(self.partial), "early": len(self.early)}
        return out

    # --- the communication thread --------------------------------------------------------------------------
    def submit(self, work, op: Op, body) -> None:
        with self._mutex:
            self._inflight += 1
        self.queue.put((work, op, body))
        self._wake()

    def try_inline(self, fn) -> bool:
        """Run ``fn()`` on the caller's thread when no operation is queued or running (so submission order is
        kept); False when it could not. ``fn``'s exceptions propagate."""
        with self._mutex:
            if self._inflight or not self._exec.acquire(blocking=False):
                return False
        try:
            fn()
        finally:
            self._exec.release()
        return True

    def shm_group(self, gid: int, global_ranks: list, rank: int):
        """The shared-memory state for a group whose ranks all share this host (None: the group uses TCP)."""
        global_ranks = list(global_ranks)
        if len(global_ranks) < 2 or not shm.enabled():
            return None
        missing = [g for g in global_ranks if g not in self.hosts]
        if missing:
            keys = [f"zmq/host/{g}" for g in missing] + ["zmq/shm/token"]
            try:
                self.store.wait(keys, self.timeout)
            except RuntimeError:
                raise RuntimeError(f"zmq backend: rank {self.global_rank} timed out after {self.timeout:g} s waiting "
                                   f"for the host identities of ranks {missing} in the store") from None
            values = [v.decode(errors="replace") for v in self.store.multi_get(keys)]
            self.hosts.update(zip(missing, values))
            self.hosts["token"] = values[-1]
        ids = {self.hosts[g] for g in global_ranks}
        if len(ids) != 1 or "" in ids:
            return None
        token = "".join(ch for ch in self.hosts["token"] if ch in "0123456789abcdef")[:16]
        group = shm.ShmGroup(f"disttorch-{token}-{gid:016x}", rank, global_ranks, shm.slot_bytes(), self.timeout)
        what = f"zmq backend group {global_ranks}"
        # every member says whether it could create its segment, and its size; any failure or difference -> the
        # whole group uses TCP (decided alike on every member from the same answers)
        why = group.create_own(what)
        mine = f"ok {group.seg_bytes}"
        self.store.set(f"zmq/shm/{gid:016x}/{self.global_rank}", why or mine)
        keys = [f"zmq/shm/{gid:016x}/{g}" for g in global_ranks]
        try:
            self.store.wait(keys, self.timeout)
            answers = [a.decode(errors="replace") for a in self.store.multi_get(keys)]
        except BaseException:
            group.unlink_all()
            raise
        bad = [(g, a) for g, a in zip(global_ranks, answers) if a != mine]
        if bad:
            group.unlink()
            g, a = bad[0]
            a = (f"has segments of {a[3:]} bytes, this rank {group.seg_bytes} (set the same DISTTORCH_ZMQ_SHM_BYTES "
                 f"everywhere)") if a.startswith("ok ") else a[:300]
            log.warning("%s: rank %d uses TCP instead of shared memory: rank %d %s", what, self.global_rank, g, a)
            return None
        group.attach(what, time.monotonic() + self.timeout)
        self.shm_groups.append(group)
        return group

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:  # the pipe is full: the thread has wake-ups pending anyway
            pass

    def _loop(self) -> None:
        # reductions return IEEE results silently (inf on overflow), as PyTorch does; errstate is per thread
        with np.errstate(all="ignore"):
            self._serve()

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self.pull, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                # Idle: drain the socket while waiting for work, so that frames from outside the job are dropped
                # as they come (not queued until the next operation) and an irecv posted before the matching
                # isend completes without blocking this thread.
                wake = min([e[6] for e in self.posted] + [t for t in (self.drops.due(),) if t is not None],
                           default=None)
                wait_ms = None if wake is None else max(1, int((wake - time.monotonic()) * 1000) + 1)
                events = dict(poller.poll(wait_ms))
                if self._wake_r in events:
                    os.read(self._wake_r, 4096)
                if self.pull in events:
                    self._drain()
                if self.posted:
                    self._expire_posted()
                self.drops.tick()
                continue
            if item is None:
                return
            work, op, body = item
            try:
                with self._exec:
                    result = self._run(op, body)
            except BaseException as e:  # noqa: BLE001 - the error belongs to the caller's Work
                work._finish(e)
            else:
                if result is not PENDING:
                    work._finish(None, result)
            finally:
                with self._mutex:
                    self._inflight -= 1

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
            self._wake()
            self.thread.join(max(5.0, self.timeout))
        for g in self.shm_groups:
            g.close()
        for p in self.pushes.values():
            p.sock.close(linger=5000)  # let the last queued messages reach their peers
        self.pull.close(0)
        self.ctx.term()  # also ends the ZAP gate's thread
        self.gate.thread.join(5)
        os.close(self._wake_r)
        os.close(self._wake_w)
        self.drops.flush()

    # --- sending --------------------------------------------------------------------------------------------
    def _push(self, dst: int) -> _Peer:
        peer = self.pushes.get(dst)
        if peer is None:
            key = f"zmq/addr/{dst}"
            try:
                self.store.wait([key], self.timeout)
                value = self.store.get(key)
            except RuntimeError:
                raise RuntimeError(f"zmq backend: rank {self.global_rank} timed out after {self.timeout:g} s waiting "
                                   f"for rank {dst} to join (its address never appeared in the store)") from None
            try:
                addr, incarnation, flag = value.decode().split()
                incarnation = bytes.fromhex(incarnation)
                if len(incarnation) != _wire.NONCE_SIZE or flag not in ("0", "1"):
                    raise ValueError
            except ValueError:
                raise RuntimeError(f"zmq backend: rank {self.global_rank} read a malformed address for rank {dst} "
                                   f"from the store key {key!r}: {value[:100]!r}") from None
            sock = self.ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.setsockopt(zmq.LINGER, 0)
            _wire.plain_client(sock, self._secret, "transport")
            sock.connect(addr)
            peer = self.pushes[dst] = _Peer(sock, incarnation, flag == "1")
        return peer

    def connect(self, dst: int) -> None:
        """Connect to ``dst`` now (waits until it has published its address)."""
        self._push(dst)

    def _frames(self, peer: _Peer, gid: int, seq: int, tag: int, payload, fp: bytes, total: int = -1,
                offset: int = 0) -> tuple:
        """(header, mac) of the next frame to ``peer``; its counter advances."""
        n = memoryview(payload).nbytes
        if n > self.limit:
            raise RuntimeError(f"zmq backend: rank {self.global_rank} tried to send a {n}-byte frame, above the "
                               f"{self.limit}-byte limit (a bug: every path sends sub-chunks of at most "
                               f"{self.chunk} bytes)")
        peer.counter += 1
        flags = _F_PAYLOAD_MAC if peer.mac_payload else 0
        hdr = _HDR.pack(flags, peer.incarnation, peer.counter, gid, seq, self.global_rank, tag, n,
                        n if total < 0 else total, offset) + fp
        mac = self.mac.sign(hdr)
        if peer.mac_payload:
            mac += self.mac.sign(hdr, payload)
        return hdr, mac

    def send(self, op: Op, dst: int, tag: int, arr: np.ndarray) -> None:
        """Send the contiguous array ``arr`` to group rank ``dst`` (zero-copy above 64 KiB, tracked by ``op``)."""
        buf = arr.reshape(-1).view(np.uint8)
        peer = self._push(op.ranks[dst])
        hdr, mac = self._frames(peer, op.gid, op.seq, tag, buf, op.fp)
        sock = peer.sock
        sock.send(hdr, zmq.SNDMORE)
        sock.send(mac, zmq.SNDMORE)
        if buf.nbytes >= _COPY_BELOW:
            op.trackers.append(sock.send(memoryview(buf), copy=False, track=True))
        else:
            sock.send(buf.tobytes())

    def send_p2p(self, gid: int, dst_global: int, tag: int, arr: np.ndarray) -> None:
        """Send ``arr`` as one point-to-point message: pieces of at most ``chunk`` bytes, reassembled by the
        receiver; returns when every piece has left the array."""
        buf = arr.reshape(-1).view(np.uint8)
        peer = self._push(dst_global)
        trackers = []
        for offset in range(0, max(buf.nbytes, 1), self.chunk):
            piece = buf[offset:offset + self.chunk]
            hdr, mac = self._frames(peer, gid, -1, tag, piece, b"", total=buf.nbytes, offset=offset)
            peer.sock.send(hdr, zmq.SNDMORE)
            peer.sock.send(mac, zmq.SNDMORE)
            trackers.append(peer.sock.send(memoryview(piece), copy=False, track=True))
        deadline = time.monotonic() + self.timeout
        for tracker in trackers:
            while not tracker.done:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"send: rank {self.global_rank} could not deliver {buf.nbytes} bytes to rank "
                                       f"{dst_global} within {self.timeout:g} s")
                tracker.wait(min(left, 1.0))

    def abort(self, op: Op, text: str) -> None:
        """Tell every other rank of the group that this operation failed (they raise ``text``)."""
        payload = text.encode()[:_ABORT_MAX]
        for r, g in enumerate(op.ranks):
            if r != op.rank:
                peer = self._push(g)
                hdr, mac = self._frames(peer, op.gid, op.seq, ABORT_TAG, payload, op.fp)
                peer.sock.send_multipart([hdr, mac, payload])

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
            sender, frames = item
            nbytes = sum(len(f) for f in frames)
            if nbytes != out.nbytes:
                work._finish(RuntimeError(f"recv: rank {sender} sent {nbytes // out.itemsize} elements "
                                          f"({nbytes} bytes) but rank {self.global_rank} expects {out.size}"))
                continue
            if len(frames) == 1:
                out[...] = np.frombuffer(frames[0].buffer, dtype=out.dtype).reshape(out.shape)
            else:
                dst = out.reshape(-1).view(np.uint8)
                pos = 0
                for f in frames:
                    dst[pos:pos + len(f)] = np.frombuffer(f.buffer, np.uint8)
                    pos += len(f)
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
                log.warning("%s: rank %d has waited %.0f s for rank %s", op.name, self.global_rank,
                                  now - start, peer)
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

    def _authentic(self, frames: list):
        """The header fields of an authentic, fresh frame of this incarnation; None (counted) for anything else.
        Cheap checks first: the payload is hashed only for a frame whose header is authentic and fresh."""
        if len(frames) != 3:
            self.drops.drop("malformed", detail=f"{len(frames)} frames instead of 3")
            return None
        hdr, mac, payload = frames[0].bytes, frames[1].bytes, frames[2]
        if not _HDR.size <= len(hdr) <= _HDR.size + _MAX_FP or len(mac) not in (_wire.MAC_SIZE, 2 * _wire.MAC_SIZE):
            self.drops.drop("malformed", detail=f"header of {len(hdr)} bytes, MAC of {len(mac)} bytes")
            return None
        if not self.mac.verify(mac[:_wire.MAC_SIZE], hdr):
            self.drops.drop("bad_mac")
            return None
        fields = _HDR.unpack_from(hdr)
        flags, incarnation, counter, src, nbytes = fields[0], fields[1], fields[2], fields[5], fields[7]
        if src >= self.world_size:
            self.drops.drop("malformed", detail=f"sender rank {src} in a world of {self.world_size}")
            return None
        if incarnation != self.incarnation:
            self.drops.drop("foreign_session", sender=src)
            return None
        if not self.guard.fresh(src, counter):
            self.drops.drop("replay", sender=src)
            return None
        if len(payload) != nbytes:
            self.drops.drop("truncated", sender=src, detail=f"{len(payload)} bytes, header says {nbytes}")
            return None
        if flags & _F_PAYLOAD_MAC:
            if len(mac) != 2 * _wire.MAC_SIZE or not self.mac.verify(mac[_wire.MAC_SIZE:], hdr, payload.buffer):
                self.drops.drop("bad_mac", sender=src, detail="payload")
                return None
        elif self.mac_payload:
            self.drops.drop("bad_mac", sender=src, detail="payload not authenticated, and this rank requires it")
            return None
        self.guard.accept(src, counter)
        return fields

    def _dispatch(self, frames: list) -> None:
        fields = self._authentic(frames)
        if fields is None:
            return
        _, _, _, gid, seq, src, tag, nbytes, total, offset = fields
        payload = frames[2]
        fp = frames[0].bytes[_HDR.size:]
        if tag == ABORT_TAG:
            text = payload.bytes.decode(errors="replace")
            self.aborts[gid] = text
            cur = self.cur
            if cur is not None and cur.gid == gid:
                raise RuntimeError(text)
            return
        if seq < 0:
            self._add_piece(gid, tag, src, payload, nbytes, total, offset)
            return
        self.coll[(gid, seq, src, tag)] = payload
        cur = self.cur
        if cur is not None and cur.gid == gid and cur.seq == seq:
            if fp != cur.fp:
                self._check_fp(cur, src, fp)
        else:
            self.early.setdefault((gid, seq), {}).setdefault(src, fp)

    def _add_piece(self, gid: int, tag: int, src: int, payload, nbytes: int, total: int, offset: int) -> None:
        key = (gid, tag, src)
        entry = self.partial.pop(key, None) or [total, 0, []]
        if offset != entry[1] or total != entry[0] or offset + nbytes > total:
            # an authentic sender does not do this; drop the message rather than deliver a corrupt one
            self.drops.drop("malformed", sender=src, detail=f"p2p piece at {offset} of {total} bytes, "
                                                            f"expected {entry[1]} of {entry[0]}")
            return
        entry[1] += nbytes
        entry[2].append(payload)
        if entry[1] < total:
            self.partial[key] = entry
        else:
            self.p2p.setdefault((gid, tag), collections.deque()).append((src, entry[2]))

    def _check_fp(self, op: Op, src: int, fp: bytes) -> None:
        if fp == op.fp:
            return
        theirs = fp.decode(errors="replace")
        text = (f"Mismatched collective calls in one process group: rank {self.global_rank} called "
                f"{op.fp.decode(errors='replace')} but rank {src} called {theirs}")
        self.abort(op, text)
        raise RuntimeError(text)
