"""The worker's communication thread: it drives the sockets to the servers, signs and sends requests and matches
replies, so the training thread only queues work and waits on handles.

Signing (HMAC-SHA256 over every tensor byte) and ZeroMQ's copies run here while the training thread goes on
with backward; hashlib and NumPy release the GIL for large buffers, so the two really run side by side.
ZeroMQ sockets are not thread-safe: one lock decides which thread touches the peers' sockets. A request that
is waited for at once (``call``: the key-value API's push, pull, push_pull) is driven by the calling thread
itself when nothing else is in flight, which saves two thread hand-offs on every small round trip.
"""
from __future__ import annotations

import collections
import os
import threading
import time
from typing import Optional

from .endpoint import RemoteError, drain


class Handle:
    """A request in flight; ``IOThread.wait`` returns its reply."""

    __slots__ = ("_lock", "_done", "result", "error", "_what")

    def __init__(self, what: tuple) -> None:
        self._lock = threading.Lock()  # held until the reply is in: cheaper than an Event, made per request
        self._lock.acquire()
        self._done = False
        self.result = None
        self.error: Optional[BaseException] = None
        self._what = what  # (kind, key, server), formatted only for an error

    @property
    def what(self) -> str:
        kind, key, server = self._what
        return f"{kind} {key!r} on server {server}"

    def done(self) -> bool:
        return self._done

    def _set(self) -> None:
        if not self._done:
            self._done = True
            self._lock.release()

    def _wait(self, timeout: float) -> bool:
        if self._done:
            return True
        if not self._lock.acquire(timeout=max(0.0, timeout)):
            return self._done
        self._lock.release()  # let any other waiter through
        return True


class IOThread:
    """Sends queued requests to ``peers`` (``endpoint.Peer`` after ``hello``) and completes their handles.

    Whichever thread holds ``_lock`` drives the sockets (ZeroMQ allows a socket to move between threads behind
    a full memory barrier, which the lock provides). The communication thread takes it while requests are
    queued or unanswered; ``call`` (one request, waited for at once) takes it when it is free and drives the
    sockets itself, which saves two thread hand-offs per round trip when nothing else is in flight.
    """

    def __init__(self, peers: list, hello_timeout: float = 60.0) -> None:
        import zmq

        self.hello_timeout = hello_timeout
        self._zmq, self.peers = zmq, peers
        self._queue: collections.deque = collections.deque()
        self._pending: dict = {}  # (peer index, counter) -> (Handle, (kind, fields, arrays)) until answered
        self._down: set = set()  # peers whose connection dropped (a server restarting)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._lock = threading.Lock()  # held by the thread that drives the sockets
        self._work = threading.Event()  # something for the communication thread to do
        self._stop = False
        self._poller = zmq.Poller()
        self._poller.register(self._wake_r, zmq.POLLIN)
        self._monitors = []
        for p in peers:
            self._poller.register(p.sock, zmq.POLLIN)
            self._monitors.append(p.sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED))
            self._poller.register(self._monitors[-1], zmq.POLLIN)
        self.thread = threading.Thread(target=self._run, name="disttorch-ps-io", daemon=True)
        self.thread.start()

    def submit(self, server: int, kind: str, fields: dict, arrays=()) -> Handle:
        """Queue one request for server ``server``; returns its handle at once."""
        handle = Handle((kind, fields.get("k", ""), server))
        self._queue.append((server, kind, fields, arrays, handle))
        self._kick()
        return handle

    def call(self, server: int, kind: str, fields: dict, arrays=(), timeout: float = 600.0) -> tuple:
        """``submit`` then ``wait``; when no other thread drives the sockets, this one does (no hand-off)."""
        handle = Handle((kind, fields.get("k", ""), server))
        self._queue.append((server, kind, fields, arrays, handle))
        if not self._lock.acquire(blocking=False):
            self._kick()
            return self.wait(handle, timeout)
        deadline = time.monotonic() + timeout
        try:
            while not handle.done() and not self._stop:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._pump(min(left, 1.0))
        finally:
            self._lock.release()
            if self._queue or self._pending:
                self._work.set()  # what is still in flight (others' requests) goes on in the thread
        return self.wait(handle, max(0.0, deadline - time.monotonic()))

    def _kick(self) -> None:
        self._work.set()
        if self._lock.locked():  # a thread may sit in poll: interrupt it (an idle thread waits on _work)
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:  # the pipe is full of wake-ups already: the thread will drain the queue
                pass

    def wait(self, handle: Handle, timeout: float) -> tuple:
        """``(header, arrays)`` of the reply.

        Raises:
            TimeoutError: no reply within ``timeout`` seconds.
            RemoteError: the server answered with an error.
        """
        if not handle._wait(timeout):
            raise TimeoutError(f"parameter server: no reply to {handle.what} within {timeout:g} s "
                               f"(DISTTORCH_PS_TIMEOUT; is the server alive?)")
        if handle.error is not None:
            raise handle.error
        return handle.result

    def _run(self) -> None:
        while not self._stop:
            self._work.wait(1.0)
            self._work.clear()
            with self._lock:
                while (self._queue or self._pending) and not self._stop:
                    self._pump(1.0)

    def _pump(self, timeout: float) -> None:
        """One turn: send what is queued, wait up to ``timeout`` s for traffic, take replies, complete handles."""
        while self._queue:
            server, kind, fields, arrays, handle = self._queue.popleft()
            self._send(server, handle, (kind, fields, arrays))
        events = dict(self._poller.poll(int(timeout * 1000)))
        if not events:
            return
        if self._wake_r in events:
            os.read(self._wake_r, 65536)
        for i, p in enumerate(self.peers):
            if self._monitors[i] in events:
                self._on_monitor(i, self._monitors[i])
            if p.sock not in events:
                continue
            drain(p.sock, p._take, self._zmq.Again)
            self._complete(i)

    def _send(self, server: int, handle: Handle, request: tuple) -> None:
        try:
            n = self.peers[server].request(*request)
            self._pending[(server, n)] = (handle, request)
        except Exception as e:  # noqa: BLE001 - e.g. a message above the size limit: the caller's error
            handle.error = e
            handle._set()

    def _complete(self, i: int) -> None:
        p = self.peers[i]
        while p._replies:
            r, (header, arrays) = p._replies.popitem()
            handle, _ = self._pending.pop((i, r), (None, None))
            if handle is None or handle.done():
                continue
            if header.get("t") == "err":
                handle.error = RemoteError(f"{p.what} at {p.endpoint}: {header.get('error')}")
            else:
                handle.result = (header, arrays)
            handle._set()

    def _on_monitor(self, i: int, monitor) -> None:
        """A server went away and came back (restarted from its snapshot on the same port): learn its new
        session and resend every request it has not answered. Sync/ssp pushes are idempotent per clock."""
        from zmq.utils.monitor import recv_monitor_message

        zmq = self._zmq
        while True:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)["event"]
            except zmq.Again:
                return
            if event == zmq.EVENT_DISCONNECTED:
                self._down.add(i)
            elif event == zmq.EVENT_CONNECTED and i in self._down:
                self._down.discard(i)
                p = self.peers[i]
                try:
                    p.hello(self.hello_timeout)
                except Exception:  # noqa: BLE001 - not back yet: the next connection event tries again
                    self._down.add(i)
                    continue
                self._complete(i)  # replies that came in while waiting for the welcome
                resend = [(k, v) for k, v in self._pending.items() if k[0] == i and not v[0].done()]
                for key, (handle, request) in resend:
                    del self._pending[key]
                    self._send(i, handle, request)

    def close(self) -> None:
        self._stop = True
        self._work.set()
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass
        self.thread.join(10)
        with self._lock:
            for p, m in zip(self.peers, self._monitors):
                try:
                    p.sock.disable_monitor()
                except self._zmq.ZMQError:
                    pass
                m.close(0)
        os.close(self._wake_r)
        os.close(self._wake_w)
