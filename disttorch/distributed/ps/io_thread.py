"""The worker's communication thread: it owns the sockets to the servers, signs and sends requests and matches
replies, so the training thread only queues work and waits on handles.

Signing (HMAC-SHA256 over every tensor byte) and ZeroMQ's copies run here while the training thread goes on
with backward; hashlib and NumPy release the GIL for large buffers, so the two really run side by side.
ZeroMQ sockets are not thread-safe: after ``start`` only this thread touches the peers' sockets.
"""
from __future__ import annotations

import collections
import os
import threading
from typing import Optional

from .endpoint import RemoteError


class Handle:
    """A request in flight; ``IOThread.wait`` returns its reply."""

    __slots__ = ("event", "result", "error", "what")

    def __init__(self, what: str) -> None:
        self.event = threading.Event()
        self.result = None
        self.error: Optional[BaseException] = None
        self.what = what

    def done(self) -> bool:
        return self.event.is_set()


class IOThread:
    """Sends queued requests to ``peers`` (``endpoint.Peer`` after ``hello``) and completes their handles."""

    def __init__(self, peers: list, hello_timeout: float = 60.0) -> None:
        import zmq

        self.hello_timeout = hello_timeout
        self._zmq, self.peers = zmq, peers
        self._queue: collections.deque = collections.deque()
        self._pending: dict = {}  # (peer index, counter) -> (Handle, (kind, fields, arrays)) until answered
        self._down: set = set()  # peers whose connection dropped (a server restarting)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stop = False
        self.thread = threading.Thread(target=self._run, name="disttorch-ps-io", daemon=True)
        self.thread.start()

    def submit(self, server: int, kind: str, fields: dict, arrays=()) -> Handle:
        """Queue one request for server ``server``; returns its handle at once."""
        handle = Handle(f"{kind} {fields.get('k', '')!r} on server {server}")
        self._queue.append((server, kind, fields, arrays, handle))
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:  # the pipe is full of wake-ups already: the thread will drain the queue
            pass
        return handle

    def wait(self, handle: Handle, timeout: float) -> tuple:
        """``(header, arrays)`` of the reply.

        Raises:
            TimeoutError: no reply within ``timeout`` seconds.
            RemoteError: the server answered with an error.
        """
        if not handle.event.wait(timeout):
            raise TimeoutError(f"parameter server: no reply to {handle.what} within {timeout:g} s "
                               f"(DISTTORCH_PS_TIMEOUT; is the server alive?)")
        if handle.error is not None:
            raise handle.error
        return handle.result

    def _run(self) -> None:
        zmq = self._zmq
        poller = zmq.Poller()
        poller.register(self._wake_r, zmq.POLLIN)
        monitors = []
        for p in self.peers:
            poller.register(p.sock, zmq.POLLIN)
            monitors.append(p.sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED))
            poller.register(monitors[-1], zmq.POLLIN)
        try:
            self._loop(poller, monitors)
        finally:
            for p, m in zip(self.peers, monitors):
                p.sock.disable_monitor()
                m.close(0)

    def _loop(self, poller, monitors) -> None:
        zmq = self._zmq
        while not self._stop:
            events = dict(poller.poll(1000))
            if self._wake_r in events:
                os.read(self._wake_r, 65536)
            while self._queue:
                server, kind, fields, arrays, handle = self._queue.popleft()
                self._send(server, handle, (kind, fields, arrays))
            for i, p in enumerate(self.peers):
                if monitors[i] in events:
                    self._on_monitor(i, monitors[i])
                if p.sock not in events:
                    continue
                while True:
                    try:
                        frames = p.sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    p._take(frames)
                self._complete(i)

    def _send(self, server: int, handle: Handle, request: tuple) -> None:
        try:
            n = self.peers[server].request(*request)
            self._pending[(server, n)] = (handle, request)
        except Exception as e:  # noqa: BLE001 - e.g. a message above the size limit: the caller's error
            handle.error = e
            handle.event.set()

    def _complete(self, i: int) -> None:
        p = self.peers[i]
        for r in list(p._replies):
            header, arrays = p._replies.pop(r)
            handle, _ = self._pending.pop((i, r), (None, None))
            if handle is None or handle.event.is_set():
                continue
            if header.get("t") == "err":
                handle.error = RemoteError(f"{p.what} at {p.endpoint}: {header.get('error')}")
            else:
                handle.result = (header, arrays)
            handle.event.set()

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
                resend = [(k, v) for k, v in self._pending.items() if k[0] == i and not v[0].event.is_set()]
                for key, (handle, request) in resend:
                    del self._pending[key]
                    self._send(i, handle, request)

    def close(self) -> None:
        self._stop = True
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass
        self.thread.join(10)
        os.close(self._wake_r)
        os.close(self._wake_w)
