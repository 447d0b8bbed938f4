"""``TCPStore``'s server thread and client sockets: the store's wire protocol over the messaging layer ``_wire``.

The server's socket is a CURVE server whose secret key is the store's CURVE sub-key of the job secret
(``DISTTORCH_JOB_SECRET``; see ``_wire.job_secret`` for where it comes from when unset; ``_wire.subkey`` for the
derivations): a peer without the secret cannot complete the handshake, so it can neither send the server a frame
nor read the traffic. Inside, every frame is ``[mac, payload]``, the payload a msgpack list and the MAC
``_wire.Mac`` under the store's MAC sub-key:

- hello ``["hello", client_id, client_nonce]`` -> ``["welcome", client_id, client_nonce, session]``: a client
  starts by learning the server's random session nonce (its own fresh nonce binds the answer to this hello);
- request ``["req", session, client_id, counter, op, args]`` -> reply ``["rep", client_id, counter, ok, value]``:
  the server applies a request only if it names the server's own session and a counter newer than the last one
  of that client id, so a recorded request replays nothing, not even against a later store on the same port;
  a client accepts only the reply to its current request, so a recorded reply is ignored.

The server drops anything else (bad MAC, malformed, replayed, foreign session), counts it per reason
(``Server.stats()``) and warns at most once per reason every 10 s. Frames above ``DISTTORCH_MAX_MESSAGE_BYTES``
(default 64 MiB) are dropped by ZeroMQ before they are buffered; a client refuses to send a larger request.
The checks inside CURVE are not redundant: they hold against a process that has the secret but replays, and
they are what the fuzz tests exercise.
"""
from __future__ import annotations

import errno
import os
import threading
import time
from typing import Optional

from . import _wire
from .store import DistNetworkError, DistStoreError, _Table

_RCVHWM = 64  # requests queued per connected peer (a client has one outstanding request per socket)
_REBIND_SECONDS = 2.0  # how long a fixed port is retried while a just-closed store releases it
_REPLY_SLACK = 64 << 10  # msgpack framing around a value in a reply


def _valid_id(x) -> bool:
    return isinstance(x, bytes) and len(x) == _wire.NONCE_SIZE


class Server:
    """The master's ROUTER socket and the daemon thread that serves it."""

    def __init__(self, ctx, address: str, port: int, secret: bytes) -> None:
        import msgpack
        import zmq

        self._zmq, self._msgpack = zmq, msgpack
        self._mac = _wire.Mac(_wire.subkey(secret, "store"))
        self._session = _wire.nonce()
        self._guard = _wire.ReplayGuard()  # client id -> last counter applied
        self.limit = _wire.max_message_bytes(_wire.STORE_MAX_MESSAGE)
        self.drops = _wire.DropLog(f"TCPStore server {address}")
        self._sock = ctx.socket(zmq.ROUTER)
        _wire.harden(self._sock, self.limit, rcvhwm=_RCVHWM)
        _wire.curve_server(self._sock, secret, "store")
        self._sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
        try:
            if port == 0:
                self.port = self._sock.bind_to_random_port(f"tcp://{address}")
            else:
                self._bind(address, port)
                self.port = port
        except zmq.ZMQError as e:
            self._sock.close(0)
            raise DistNetworkError(f"TCPStore: cannot bind the master's socket to {address}:{port}: {e} "
                                   f"(is another job using the port? set MASTER_PORT or DISTTORCH_INTERFACE)") from None
        self.drops.what = f"TCPStore server {address}:{self.port}"
        self._stop_r, self._stop_w = os.pipe()
        self._table = _Table()
        self._thread = threading.Thread(target=self._serve, name="disttorch-store-server", daemon=True)
        self._thread.start()

    def stats(self) -> dict:
        """Dropped frames per reason and per client id (see ``_wire.DropLog.stats``)."""
        return self.drops.stats()

    def _bind(self, address: str, port: int) -> None:
        """Bind a given port. A store closed a moment ago in this process (a restart on the same port) releases
        its listening socket asynchronously in ZeroMQ's I/O thread, so EADDRINUSE is retried for a short while."""
        zmq = self._zmq
        deadline = time.monotonic() + _REBIND_SECONDS
        while True:
            try:
                self._sock.bind(f"tcp://{address}:{port}")
                return
            except zmq.ZMQError as e:
                if e.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                    raise
            time.sleep(0.02)

    def close(self) -> None:
        if self._thread.is_alive():
            os.write(self._stop_w, b"x")
            self._thread.join(5)
        os.close(self._stop_r)
        os.close(self._stop_w)
        self.drops.flush()

    def _serve(self) -> None:
        zmq, sock, table = self._zmq, self._sock, self._table
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._stop_r, zmq.POLLIN)
        next_deadline = None
        try:
            while True:
                due = self.drops.due()
                wake = min((t for t in (next_deadline, due) if t is not None), default=None)
                wait_ms = None if wake is None else max(0, int((wake - time.monotonic()) * 1000) + 1)
                events = dict(poller.poll(wait_ms))
                if self._stop_r in events:
                    return
                if sock in events:
                    while True:
                        try:
                            frames = sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._handle(frames)
                next_deadline = table.expire(time.monotonic())
                if due is not None:
                    self.drops.tick()
        finally:
            sock.close(0)

    def _send(self, ident: bytes, message: list) -> None:
        payload = self._msgpack.packb(message, use_bin_type=True)
        self._sock.send_multipart([ident, self._mac.sign(payload), payload])

    def _reply(self, ident: bytes, cid: bytes, counter: int, ok: bool, value) -> None:
        payload = self._msgpack.packb(["rep", cid, counter, ok, value], use_bin_type=True)
        if len(payload) > self.limit:
            payload = self._msgpack.packb(["rep", cid, counter, False, (
                f"the reply is {len(payload)} bytes, above the store's message limit of {self.limit} bytes "
                f"({_wire.MAX_MESSAGE_VAR}; raise it on every process)")], use_bin_type=True)
        self._sock.send_multipart([ident, self._mac.sign(payload), payload])

    def _handle(self, frames: list) -> None:
        if len(frames) != 3:
            self.drops.drop("malformed", detail=f"{len(frames) - 1} frames instead of 2")
            return
        ident, mac, payload = frames
        if not self._mac.verify(mac, payload):
            self.drops.drop("bad_mac")
            return
        try:
            msg = self._msgpack.unpackb(payload, raw=False)
            kind = msg[0]
        except Exception:  # noqa: BLE001 - signed but not msgpack: a bug or another version
            self.drops.drop("malformed", detail="signed, but not a store message")
            return
        if kind == "hello" and len(msg) == 3 and _valid_id(msg[1]) and _valid_id(msg[2]):
            self._send(ident, ["welcome", msg[1], msg[2], self._session])
            return
        if kind != "req" or len(msg) != 6 or not _valid_id(msg[2]) or not isinstance(msg[3], int) \
                or not isinstance(msg[4], str) or not isinstance(msg[5], list):
            self.drops.drop("malformed", detail="signed, but not a store message")
            return
        _, session, cid, counter, op, args = msg
        if session != self._session:
            self.drops.drop("foreign_session", sender=cid.hex())
            return
        if not self._guard.accept(cid, counter):
            self.drops.drop("replay", sender=cid.hex())
            return
        try:
            if op in ("get", "wait", "wait_ge"):
                keys, timeout = args
                min_value = None
                if op == "wait_ge":
                    keys, min_value = [keys[0]], int(keys[1])
                if self._table.ready(keys, min_value):
                    self._reply(ident, cid, counter, True,
                                [self._table.data[k] for k in keys] if op == "get" else None)
                else:
                    def reply(ok, values, ident=ident, cid=cid, counter=counter, op=op):
                        self._reply(ident, cid, counter, ok, values if op == "get" else None)
                    self._table.park(keys, min_value, reply, time.monotonic() + float(timeout))
            else:
                self._reply(ident, cid, counter, True, self._table.apply(op, args))
        except Exception as e:  # a bad request from an authenticated client: answer, keep serving
            self._reply(ident, cid, counter, False, f"{type(e).__name__}: {e}")


class Client:
    """One DEALER socket (per thread and process) to the store server: hello once, then signed, numbered
    requests, each answered by the reply that names its counter."""

    def __init__(self, ctx, endpoint: str, secret: bytes, drops: "_wire.DropLog") -> None:
        import msgpack
        import zmq

        self._zmq, self._msgpack, self._drops = zmq, msgpack, drops
        self._mac = _wire.Mac(_wire.subkey(secret, "store"))
        self._cid = _wire.nonce()
        self._counter = 0
        self._session: Optional[bytes] = None
        self.limit = _wire.max_message_bytes(_wire.STORE_MAX_MESSAGE)
        self.sock = ctx.socket(zmq.DEALER)
        _wire.harden(self.sock, self.limit + _REPLY_SLACK)
        _wire.curve_client(self.sock, secret, "store")
        self.sock.connect(endpoint)

    def _send(self, message: list, op: str) -> None:
        payload = self._msgpack.packb(message, use_bin_type=True)
        if len(payload) > self.limit:
            raise DistStoreError(f"TCPStore {op}: the request is {len(payload)} bytes, above the store's message "
                                 f"limit of {self.limit} bytes ({_wire.MAX_MESSAGE_VAR}; raise it on every process)")
        self.sock.send_multipart([self._mac.sign(payload), payload])

    def _await(self, deadline: float, what: str, accept):
        """The first authenticated message for which ``accept(msg)`` is not None (TimeoutError at deadline)."""
        zmq = self._zmq
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                if time.monotonic() < deadline:
                    continue
                raise TimeoutError(what)
            frames = self.sock.recv_multipart()
            if len(frames) != 2 or not self._mac.verify(frames[0], frames[1]):
                self._drops.drop("bad_mac", detail="a reply; check DISTTORCH_JOB_SECRET on the master")
                continue
            try:
                msg = self._msgpack.unpackb(frames[1], raw=False)
            except Exception:  # noqa: BLE001
                self._drops.drop("malformed", detail="a reply")
                continue
            got = accept(msg)
            if got is not None:
                return got
            # else: a late answer to a request that timed out, or a replayed reply: not ours

    def _hello(self, deadline: float, what: str) -> None:
        mine = _wire.nonce()
        self._send(["hello", self._cid, mine], "hello")
        self._session = self._await(deadline, what, lambda m: m[3] if (
            isinstance(m, list) and len(m) == 4 and m[0] == "welcome" and m[1] == self._cid and m[2] == mine
            and _valid_id(m[3])) else None)

    def request(self, op: str, args: list, wait_s: float, what: str):
        deadline = time.monotonic() + wait_s
        if self._session is None:
            self._hello(deadline, what)
        self._counter += 1
        counter = self._counter
        self._send(["req", self._session, self._cid, counter, op, args], op)
        ok, value = self._await(deadline, what, lambda m: (m[3], m[4]) if (
            isinstance(m, list) and len(m) == 5 and m[0] == "rep" and m[1] == self._cid and m[2] == counter)
            else None)
        if not ok:
            raise DistStoreError(f"TCPStore {op}: {value}")
        return value

    def close(self) -> None:
        self.sock.close(0)
