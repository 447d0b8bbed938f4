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

import time
from typing import Optional

from .. import _wire
from . import protocol as P

_RCVHWM = 10000  # requests queued per peer: a worker pipelines one per key
_REBIND_SECONDS = 5.0  # how long a fixed port is retried while a dead predecessor's socket goes away


class Service:
    """A bound ROUTER socket that authenticates requests and hands them to ``handle``."""

    def __init__(self, ctx, bind: str, secret: bytes, what: str, secure: bool = False) -> None:
        import zmq

        self._zmq = zmq
        self.mac = P.make_mac(secret)
        self.session = _wire.nonce()
        self.guard = _wire.ReplayGuard()
        self.limit = _wire.max_message_bytes(P.DEFAULT_MAX_MESSAGE)
        self.drops = _wire.DropLog(what)
        self.counter = 0
        self.id = _wire.nonce()
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
        """Handle every message waiting on the socket."""
        zmq = self._zmq
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._receive(frames)

    def _receive(self, frames: list) -> None:
        ident = frames[0].bytes
        try:
            header, arrays = P.decode(self.mac, frames[1:])
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

    def send(self, ident: bytes, header: dict, arrays=()) -> None:
        self.counter += 1
        frames = P.encode(self.mac, dict(header, n=self.counter, f=self.id), arrays)
        self.sock.send_multipart([ident, *frames], copy=False)

    def reply(self, ident: bytes, request: dict, fields: Optional[dict] = None, arrays=()) -> None:
        self.send(ident, dict(fields or {}, t="ok", r=request["n"], to=request["f"]), arrays)

    def error(self, ident: bytes, request: dict, message: str) -> None:
        self.send(ident, {"t": "err", "r": request["n"], "to": request["f"], "error": message[:2000]})

    def close(self, linger_ms: int = 0) -> None:
        self.drops.flush()
        self.sock.close(linger_ms)


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
        frames = P.encode(self.mac, dict(header, n=self.counter, f=self.id, x=self.session), arrays)
        size = sum(memoryview(f).nbytes for f in frames)
        if max(memoryview(f).nbytes for f in frames) > self.limit:
            raise ValueError(f"{self.what}: a {header.get('t')} message of {size} bytes has a frame above the "
                             f"message limit of {self.limit} bytes ({_wire.MAX_MESSAGE_VAR}; raise it on every "
                             f"process)")
        self.sock.send_multipart(frames, copy=False)
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
            self._take(self.sock.recv_multipart(copy=False))
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
