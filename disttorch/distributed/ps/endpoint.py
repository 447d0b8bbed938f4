"""Signed, numbered request/reply over ROUTER/DEALER: the part the scheduler, the servers and the clients share.

A client (``Peer``, a DEALER) first sends ``hello`` with a fresh nonce and learns the service's random session
nonce from ``welcome`` (which echoes the nonce). Every later request names that session and a counter newer than
the last one the service accepted from the client's id (``_wire.ReplayGuard``), so a recorded request replays
nothing, not even against a later service on the same port. Replies carry the request's counter and are signed;
a client accepts only replies addressed to its id (``to``) for requests it has outstanding (``r``).

A ``Service`` (a ROUTER) drops what fails a check (counted per reason in ``drops``; no reply: the sender may not
hold the secret) and answers an authenticated request it cannot serve with an ``err`` reply.
"""
from __future__ import annotations

import collections
import os
import time
from typing import Optional

from .. import _wire
from . import protocol as P

_RCVHWM = 10000  # requests queued per peer: a worker pipelines one per key
_REBIND_SECONDS = 5.0  # how long a fixed port is retried while a dead predecessor's socket goes away


# zmq.SNDMORE, NOBLOCK, EVENTS, POLLIN as plain ints: pyzmq's enum conversions cost per frame
_SNDMORE, _NOBLOCK, _EVENTS, _POLLIN = 2, 1, 15, 1
_COPY_BELOW = 64 << 10  # frames below this are copied into ZeroMQ (cheaper than a zero-copy Frame)


class Lease:
    """Tells when the buffers of one sent message are no longer read by ZeroMQ (large frames are sent without
    copies and read by ZeroMQ's I/O thread after ``send`` returns): until ``done()``, they must not change."""

    __slots__ = ("sent", "trackers")

    def __init__(self) -> None:
        self.sent = False  # the message may wait for its signature on a hashing thread first
        self.trackers: list = []

    def done(self) -> bool:
        if not self.sent:
            return False
        for t in self.trackers:
            if not t.done:
                return False
        return True


def send_frames(sock, frames: list, lease: Optional[Lease] = None) -> None:
    """``sock.send_multipart(frames)``: large frames without copies, small ones copied (pyzmq's per-frame
    overhead is most of the cost of a small message). With ``lease``, the large frames are tracked in it."""
    last = len(frames) - 1
    for i, f in enumerate(frames):
        if lease is not None and len(f) >= _COPY_BELOW:
            lease.trackers.append(sock.send(f, _SNDMORE if i < last else 0, copy=False, track=True))
        else:
            sock.send(f, _SNDMORE if i < last else 0, copy=len(f) < _COPY_BELOW)
    if lease is not None:
        lease.sent = True


def recv_frames(sock, flags: int = 0) -> list:
    """``sock.recv_multipart(flags, copy=False)`` with less per-frame overhead (no socket option reads)."""
    f = sock.recv(flags, copy=False)
    parts = [f]
    while f.more:  # the rest of a multipart message has arrived with its first frame
        f = sock.recv(0, copy=False)
        parts.append(f)
    return parts


def drain(sock, take, again) -> None:
    """Pass every message waiting on ``sock`` to ``take`` (``again``: ``zmq.Again``)."""
    try:
        frames = recv_frames(sock, _NOBLOCK)
    except again:
        return
    while True:
        take(frames)
        if not sock.get(_EVENTS) & _POLLIN:
            return
        frames = recv_frames(sock, _NOBLOCK)


HASH_THRESHOLD = 256 << 10  # tensor bytes from which a Service hashes a message on its hashing threads
HASH_THREADS_VAR = "DISTTORCH_PS_HASH_THREADS"


def hash_threads_default() -> int:
    """``DISTTORCH_PS_HASH_THREADS`` if set (0: hash on the loop thread), else ``min(4, cores)``."""
    raw = os.environ.get(HASH_THREADS_VAR, "").strip()
    if not raw:
        return min(4, os.cpu_count() or 1)
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{HASH_THREADS_VAR}={raw!r}: expected a number of threads (0 to hash on the loop "
                         f"thread)") from None
    if not 0 <= value <= 256:
        raise ValueError(f"{HASH_THREADS_VAR}={value}: expected 0 to 256 threads")
    return value


class Service:
    """A bound ROUTER socket that authenticates requests and hands them to ``handle``.

    With ``hash_threads`` > 0, a message whose tensors reach ``hash_threshold`` bytes has its MAC checked (and a
    reply that large is signed) on a small pool of hashing threads when there is other work to overlap it with
    (another message waiting on the socket, or messages and replies queued behind hashes): hashlib releases the
    GIL, so several large messages hash side by side while the loop goes on receiving, handling and sending the
    others. With nothing else to do the loop hashes itself, which saves two thread hand-offs and wake-ups per
    round trip; ``always_offload`` (tests) sends every large hash to the pool. Messages from one peer (ROUTER
    identity) are still handled in the order they arrived, and replies to one peer leave in the order they were
    made; ``wake_fd`` becomes readable when a hash is done (``pump`` then moves things on).
    """

    def __init__(self, ctx, bind: str, secret: bytes, what: str, secure: bool = False, hash_threads: int = 0,
                 hash_threshold: int = HASH_THRESHOLD, always_offload: bool = False) -> None:
        import zmq

        self._zmq = zmq
        self.mac = P.make_mac(secret)
        self.session = _wire.nonce()
        self.guard = _wire.ReplayGuard()
        self.limit = _wire.max_message_bytes(P.DEFAULT_MAX_MESSAGE)
        self.drops = _wire.DropLog(what)
        self.counter = 0
        self.id = _wire.nonce()
        self.hash_threshold = int(hash_threshold)
        self.always_offload = bool(always_offload)
        self.offloaded = 0  # hashes done on the pool (MAC checks and signatures): for tests and profiles
        self._pool = None
        self.wake_fd: Optional[int] = None
        self._inbox: collections.deque = collections.deque()  # (ident, mac, header, tensors, future, frames)
        self._outbox: collections.deque = collections.deque()  # (ident, header, tensors, future, lease)
        self.sock = ctx.socket(zmq.ROUTER)
        _wire.harden(self.sock, self.limit, rcvhwm=_RCVHWM)
        if secure:
            _wire.curve_server(self.sock, secret, P.PURPOSE)
        host, _, port = bind.rpartition(":")
        host = _bindable(host or bind)
        try:
            if port in ("", "0"):
                self.port = self.sock.bind_to_random_port(f"tcp://{host}")
            else:
                self._bind_retry(f"tcp://{host}:{port}")
                self.port = int(port)
        except zmq.ZMQError as e:
            self.sock.close(0)
            raise RuntimeError(f"{what}: cannot bind {host}:{port or 'a random port'}: {e} (is the port taken? "
                               f"set DISTTORCH_INTERFACE to an address of this host)") from None
        self.address = f"{_advertised(host)}:{self.port}"
        self.drops.what = f"{what} {self.address}"
        if hash_threads > 0:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(hash_threads, thread_name_prefix="disttorch-ps-hash")
            self.wake_fd, self._wake_w = os.pipe()
            os.set_blocking(self.wake_fd, False)
            os.set_blocking(self._wake_w, False)

    def _bind_retry(self, endpoint: str) -> None:
        """Bind a fixed port; a predecessor that just died may hold it for a moment (EADDRINUSE is retried)."""
        import errno

        deadline = time.monotonic() + _REBIND_SECONDS
        while True:
            try:
                self.sock.bind(endpoint)
                return
            except self._zmq.ZMQError as e:
                if e.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                    raise
            time.sleep(0.05)

    def receive(self) -> None:
        """Handle every message waiting on the socket (large ones once their MAC is checked: see ``pump``)."""
        drain(self.sock, self._receive, self._zmq.Again)
        if self._inbox or self._outbox:
            self.pump()

    def _receive(self, frames: list) -> None:
        ident = frames[0].bytes
        try:
            sig, raw, tensors = P.split(frames[1:])
        except P.ProtocolError as e:
            self.drops.drop(e.reason, detail=str(e))
            return
        if self._pool is not None:
            future = None
            if _nbytes(tensors) >= self.hash_threshold and self._overlap():
                future = self._submit(self.mac.verify, sig, raw, *tensors)
            if future is not None or self._inbox:  # a small one behind others is checked when its turn comes
                self._inbox.append((ident, sig, raw, tensors, future, frames))  # frames: the buffers stay alive
                return
        self._accept(ident, sig, raw, tensors, None)

    def _overlap(self) -> bool:
        """Whether a large hash should go to the pool: other work is waiting that the loop can do meanwhile."""
        return self.always_offload or bool(self._inbox or self._outbox) or bool(self.sock.get(_EVENTS) & _POLLIN)

    def _submit(self, fn, *args):
        self.offloaded += 1
        future = self._pool.submit(fn, *args)
        future.add_done_callback(self._wake)
        return future

    def pump(self) -> None:
        """Handle the received messages whose MAC check is done, and send the replies whose signature is done,
        each in its peer's order. Call it when ``wake_fd`` is readable (``receive`` calls it too)."""
        if self.wake_fd is not None:
            try:
                os.read(self.wake_fd, 4096)
            except BlockingIOError:
                pass
        if self._inbox:
            blocked, keep, inbox = set(), collections.deque(), self._inbox
            self._inbox = keep
            while inbox:
                e = inbox.popleft()
                if e[0] in blocked or (e[4] is not None and not e[4].done()):
                    blocked.add(e[0])
                    keep.append(e)
                else:
                    self._accept(*e[:5])
        if self._outbox:
            blocked, keep, outbox = set(), collections.deque(), self._outbox
            self._outbox = keep
            while outbox:
                e = outbox.popleft()
                if e[0] in blocked or (e[3] is not None and not e[3].done()):
                    blocked.add(e[0])
                    keep.append(e)
                else:
                    ident, raw, bufs, future, lease = e
                    sig = future.result() if future is not None else self.mac.sign(raw, *bufs)
                    send_frames(self.sock, [ident, sig, raw, *bufs], lease)

    def _wake(self, _future) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):  # full: the loop wakes anyway; closed: the service is gone
            pass

    def _accept(self, ident: bytes, sig: bytes, raw, tensors: list, future) -> None:
        if not (future.result() if future is not None else self.mac.verify(sig, raw, *tensors)):
            self.drops.drop("bad_mac", detail="bad MAC")
            return
        try:
            header, arrays = P.parse(raw, tensors)
        except P.ProtocolError as e:
            self.drops.drop(e.reason, detail=str(e))
            return
        sender, kind = header["f"], header["t"]
        if kind == "hello":
            nonce = header.get("nonce")
            if P.is_id(nonce):
                self.send(ident, {"t": "welcome", "r": header["n"], "to": sender, "nonce": nonce,
                                  "session": self.session})
            else:
                self.drops.drop("malformed", sender=sender.hex(), detail="hello without a nonce")
            return
        if header.get("x") != self.session:
            self.drops.drop("foreign_session", sender=sender.hex())
            return
        if not self.guard.accept(sender, header["n"]):
            self.drops.drop("replay", sender=sender.hex())
            return
        try:
            self.handle(ident, header, arrays)
        except P.ProtocolError as e:
            self.drops.drop(e.reason, sender=sender.hex(), detail=str(e))
            self.error(ident, header, str(e))
        except Exception as e:  # noqa: BLE001 - an authenticated request it cannot serve: answer, keep serving
            self.drops.drop("malformed", sender=sender.hex(), detail=f"{type(e).__name__}: {e}")
            self.error(ident, header, f"{type(e).__name__}: {e}")

    def handle(self, ident: bytes, header: dict, arrays: list) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def send(self, ident: bytes, header: dict, arrays=(), lease: Optional[Lease] = None) -> None:
        """Sign and send one message (``header`` is completed in place: a fresh dict). With ``lease``, the arrays
        may be sent without copies: the caller leaves them unchanged until ``lease.done()``."""
        self.counter += 1
        header["n"], header["f"] = self.counter, self.id
        raw, bufs = P.pack(header, arrays)
        if self._pool is not None:
            future = None
            if bufs and _nbytes(bufs) >= self.hash_threshold and self._overlap():
                future = self._submit(self.mac.sign, raw, *bufs)
            if future is not None or self._outbox:  # sent by the next pump, in order
                self._outbox.append((ident, raw, bufs, future, lease))
                return
        send_frames(self.sock, [ident, self.mac.sign(raw, *bufs), raw, *bufs], lease)

    def reply(self, ident: bytes, request: dict, fields: Optional[dict] = None, arrays=(),
              lease: Optional[Lease] = None) -> None:
        header = dict(fields) if fields else {}
        header["t"], header["r"], header["to"] = "ok", request["n"], request["f"]
        self.send(ident, header, arrays, lease)

    def error(self, ident: bytes, request: dict, message: str) -> None:
        self.send(ident, {"t": "err", "r": request["n"], "to": request["f"], "error": message[:2000]})

    def close(self, linger_ms: int = 0) -> None:
        self.drops.flush()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            os.close(self.wake_fd)
            os.close(self._wake_w)
            self._pool = None
        self.sock.close(linger_ms)


def _nbytes(bufs) -> int:
    n = 0
    for b in bufs:
        n += memoryview(b).nbytes
    return n


def _bindable(host: str) -> str:
    """An address ZeroMQ can bind: IP literals and ``*`` as they are, a host name resolved to its IP."""
    import ipaddress
    import socket

    h = host.strip("[]")
    if h in ("*", "localhost"):
        return "127.0.0.1" if h == "localhost" else h
    try:
        ipaddress.ip_address(h)
        return h
    except ValueError:
        return socket.gethostbyname(h)


def _advertised(host: str) -> str:
    """The address others connect to for a socket bound to ``host`` (a wildcard: this host's address)."""
    import socket

    if host in ("*", "0.0.0.0", "::"):
        return socket.gethostbyname(socket.gethostname())
    return host


class RemoteError(RuntimeError):
    """A service answered a request with an error."""


class Peer:
    """A DEALER to one service: signed, numbered requests; replies matched to requests by counter."""

    def __init__(self, ctx, endpoint: str, secret: bytes, what: str, secure: bool = False) -> None:
        import zmq

        self._zmq = zmq
        self.what, self.endpoint = what, endpoint
        self.mac = P.make_mac(secret)
        self.id = _wire.nonce()
        self.counter = 0
        self.session: Optional[bytes] = None
        self.drops = _wire.DropLog(f"{what} client")
        self.limit = _wire.max_message_bytes(P.DEFAULT_MAX_MESSAGE)
        self.sock = ctx.socket(zmq.DEALER)
        _wire.harden(self.sock, self.limit)
        if secure:
            _wire.curve_client(self.sock, secret, P.PURPOSE)
        self.sock.connect(f"tcp://{endpoint}")
        self._replies: dict = {}
        self._outstanding: set = set()

    def hello(self, timeout: float) -> None:
        nonce = _wire.nonce()
        n = self._send({"t": "hello", "nonce": nonce})
        header, _ = self.wait(n, timeout, raw=True)
        if header.get("t") != "welcome" or header.get("nonce") != nonce or not P.is_id(header.get("session")):
            raise RemoteError(f"{self.what} at {self.endpoint}: bad welcome")
        self.session = header["session"]

    def _send(self, header: dict, arrays=()) -> int:
        self.counter += 1
        header["n"], header["f"], header["x"] = self.counter, self.id, self.session
        raw, bufs = P.pack(header, arrays)
        if len(raw) > self.limit or (bufs and max(len(b) for b in bufs) > self.limit):
            size = len(raw) + sum(len(b) for b in bufs)
            raise ValueError(f"{self.what}: a {header.get('t')} message of {size} bytes has a frame above the "
                             f"message limit of {self.limit} bytes ({_wire.MAX_MESSAGE_VAR}; raise it on every "
                             f"process)")
        send_frames(self.sock, [self.mac.sign(raw, *bufs), raw, *bufs])
        self._outstanding.add(self.counter)
        return self.counter

    def request(self, kind: str, fields: Optional[dict] = None, arrays=()) -> int:
        """Send a request; returns its counter, to pass to ``wait``."""
        return self._send(dict(fields or {}, t=kind), arrays)

    def wait(self, n: int, timeout: float, raw: bool = False) -> tuple:
        """``(header, arrays)`` of the reply to request ``n``.

        Raises:
            TimeoutError: no reply within ``timeout`` seconds.
            RemoteError: the service answered with an error.
        """
        deadline = time.monotonic() + timeout
        while n not in self._replies:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000) + 1):
                if time.monotonic() < deadline:
                    continue
                raise TimeoutError(f"{self.what} at {self.endpoint}: no reply within {timeout:g} s")
            self._take(recv_frames(self.sock))
        header, arrays = self._replies.pop(n)
        if not raw and header["t"] == "err":
            raise RemoteError(f"{self.what} at {self.endpoint}: {header.get('error')}")
        return header, arrays

    def _take(self, frames: list) -> None:
        try:
            header, arrays = P.decode(self.mac, frames)
        except P.ProtocolError as e:
            self.drops.drop(e.reason, detail=f"a reply: {e}")
            return
        r = header.get("r")
        if header.get("to") != self.id or type(r) is not int or r not in self._outstanding:
            self.drops.drop("replay", detail="a reply to no outstanding request")
            return
        self._outstanding.discard(r)
        self._replies[r] = (header, arrays)

    def call(self, kind: str, fields: Optional[dict] = None, arrays=(), timeout: float = 60.0) -> tuple:
        """``request`` then ``wait``."""
        return self.wait(self.request(kind, fields, arrays), timeout)

    def close(self) -> None:
        self.drops.flush()
        self.sock.close(0)
