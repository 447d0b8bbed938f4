"""The worker side: ``KVClient`` (keys to servers, pipelined requests) and the job membership (``init``...).

A worker joins with ``init()``: it reads the launcher's environment, registers with the scheduler and learns
the servers' addresses. Requests to the servers are pipelined: ``KVClient.send`` queues a request for the
communication thread (``io_thread``, which signs and sends it) and returns a handle at once; ``KVClient.wait``
collects the reply. A step sends the requests for every shard before waiting for any. The key-value calls
that wait at once (``push``, ``pull``, ``push_pull``) send and receive from the calling thread when nothing
else is in flight.
"""
from __future__ import annotations

import atexit
import os
import socket
import sys
import threading
import zlib
from time import perf_counter_ns
from typing import Optional

import numpy as np

from ...autograd.op import SPANS as _SPANS
from .. import _wire
from .endpoint import Peer
from .io_thread import Handle, IOThread

_DEFAULT_TIMEOUT = 600.0


class _Job:
    """This worker's membership: the scheduler connection, the servers' addresses, the heartbeat thread."""

    def __init__(self) -> None:
        import zmq

        env = os.environ
        role = env.get("DISTTORCH_PS_ROLE", "worker")
        if role != "worker":
            raise RuntimeError(f"ps.init: DISTTORCH_PS_ROLE is {role!r}; only workers call ps.init() (servers and "
                               f"the scheduler run python -m disttorch.distributed.ps.server / .scheduler)")
        try:
            self.scheduler_addr = env["DISTTORCH_PS_SCHEDULER"]
            self.rank, self.world_size = int(env["RANK"]), int(env["WORLD_SIZE"])
        except KeyError as e:
            raise RuntimeError(f"ps.init: {e.args[0]} is not set: start the job with `disttorch launch --mode ps`, "
                               f"or set DISTTORCH_PS_SCHEDULER, RANK and WORLD_SIZE") from None
        self.secret = _wire.job_secret(self.scheduler_addr.rpartition(":")[0])
        self.secure = env.get("DISTTORCH_PS_SECURE", "") == "curve"
        self.timeout = float(env.get("DISTTORCH_PS_TIMEOUT", _DEFAULT_TIMEOUT))
        self.ctx = zmq.Context()
        self.scheduler = Peer(self.ctx, self.scheduler_addr, self.secret, "ps scheduler", self.secure)
        self.scheduler.hello(self.timeout)
        header, _ = self.scheduler.call("register", {"role": "worker", "rank": self.rank,
                                                     "host": socket.gethostname()}, timeout=self.timeout)
        self.servers = list(header["servers"])
        self.rejoined = bool(header.get("rejoin"))  # a restarted worker: the job's keys exist already
        self._stop = threading.Event()
        self._hb: Optional[threading.Thread] = None
        hb = env.get("DISTTORCH_PS_HEARTBEAT_TIMEOUT")
        if hb:
            self._hb = threading.Thread(target=self._heartbeat, args=(float(hb) / 3,), daemon=True,
                                        name="disttorch-ps-heartbeat")
            self._hb.start()
        self.client: Optional[KVClient] = None

    def _heartbeat(self, every: float) -> None:
        # its own socket: ZeroMQ sockets are not thread-safe
        peer = Peer(self.ctx, self.scheduler_addr, self.secret, "ps scheduler", self.secure)
        try:
            peer.hello(self.timeout)
            while not self._stop.wait(every):
                peer.call("heartbeat", {"rank": self.rank}, timeout=self.timeout)
        except Exception:  # noqa: BLE001 - the scheduler went away: the job is ending
            pass
        finally:
            peer.close()

    def barrier(self, name: str) -> None:
        self.scheduler.call("barrier", {"rank": self.rank, "name": name}, timeout=self.timeout)

    def close(self) -> None:
        self._stop.set()
        if self._hb is not None:
            self._hb.join(self.timeout)
        try:
            if not _will_be_restarted():
                self.scheduler.call("done", {"rank": self.rank}, timeout=min(self.timeout, 30.0))
        finally:
            if self.client is not None:
                self.client.close()
            self.scheduler.close()
            self.ctx.term()


def _will_be_restarted() -> bool:
    """Whether this worker is leaving by an unhandled exception that the launcher will answer with a restart.

    Such a worker must not tell the scheduler it is done: were it the last one running, the scheduler and the
    servers would exit and its restart would find nobody. A worker that ends normally, or fails with no
    restart left, says it is done so the job can end at once.
    """
    if getattr(sys, "last_value", None) is None:  # set by the interpreter for an unhandled exception
        return False
    try:
        count = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        limit = int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0"))
    except ValueError:
        return False
    return count < limit


_job: Optional[_Job] = None


def init() -> None:
    """Join the parameter-server job described by the launcher's environment (``disttorch launch --mode ps``)."""
    global _job
    if _job is None:
        _job = _Job()
        if os.environ.get("DISTTORCH_TIMELINE_DIR"):  # disttorch launch --timeline: this worker records its events
            from ...profiler import _timeline

            _timeline.start_from_env(_job.rank)
        # a script that ends (or fails) without ps.shutdown() still leaves the job, so servers need not wait
        # for a heartbeat timeout; the launcher sees the script's own exit code
        atexit.register(shutdown)


def _require() -> _Job:
    if _job is None:
        raise RuntimeError("disttorch.distributed.ps: call ps.init() first")
    return _job


def is_initialized() -> bool:
    """Whether ``init()`` has been called (and ``shutdown()`` not yet)."""
    return _job is not None


def get_rank() -> int:
    """This worker's rank among the workers."""
    return _require().rank


def get_world_size() -> int:
    """The number of workers."""
    return _require().world_size


def barrier(name: str = "user") -> None:
    """Wait until every live worker has reached the barrier called ``name``."""
    _require().barrier(name)


def shutdown() -> None:
    """Leave the job; servers and scheduler exit once every worker has left."""
    global _job
    if _job is not None:
        job, _job = _job, None
        job.close()


def _stable_hash(key) -> int:
    return zlib.crc32(repr(key).encode())


class KVClient:
    """Push, pull and push_pull of keyed tensors on the servers, as ``ps.KVClient()``.

    Args:
        servers: ``host:port`` of each server (default: the job's, after ``ps.init()``).
        secret: the job secret (default: the job's).
        rank: this worker's rank (default: the job's); sync/ssp keys count one push per rank and clock.
        secure: CURVE encryption (default: ``DISTTORCH_PS_SECURE == "curve"``).
        timeout: seconds to wait for any one reply.

    Example:
        >>> kv = ps.KVClient()
        >>> kv.init("w", disttorch.zeros(3), rule="add")
        >>> kv.push("w", disttorch.ones(3)); kv.pull("w")
    """

    def __init__(self, servers=None, secret: Optional[bytes] = None, rank: Optional[int] = None,
                 secure: Optional[bool] = None, timeout: Optional[float] = None) -> None:
        import zmq

        job = _job
        if servers is None or secret is None or rank is None:
            if job is None:
                raise RuntimeError("KVClient: call ps.init() first, or pass servers, secret and rank")
        self.servers = list(servers if servers is not None else job.servers)
        self.rank = int(rank if rank is not None else job.rank)
        secret = secret if secret is not None else job.secret
        if secure is None:
            secure = os.environ.get("DISTTORCH_PS_SECURE", "") == "curve"
        self.timeout = float(timeout if timeout is not None else (job.timeout if job else _DEFAULT_TIMEOUT))
        self._own_ctx = job is None
        self.ctx = zmq.Context() if self._own_ctx else job.ctx
        self.peers = [Peer(self.ctx, a, secret, f"ps server {i}", secure) for i, a in enumerate(self.servers)]
        self.io: Optional[IOThread] = None
        try:
            for p in self.peers:
                p.hello(self.timeout)
        except BaseException:
            self.close()
            raise
        self.io = IOThread(self.peers)  # from here on only the thread holding its lock touches the sockets
        self.placement: dict = {}  # key -> server index, where the caller chose one
        self._hashed: dict = {}  # key -> server index by hash (cached: a step asks for every key)

    def server_of(self, key) -> int:
        """The server that holds ``key``: as placed by ``init(..., server=)``, else a stable hash."""
        s = self.placement.get(key)
        if s is None:
            s = self._hashed.get(key)
            if s is None:
                s = self._hashed[key] = _stable_hash(key) % len(self.peers)
        return s

    # ---- pipelined requests ---------------------------------------------------------------------------------
    def send(self, kind: str, key, fields: Optional[dict] = None, arrays=()) -> Handle:
        """Queue one request about ``key`` for the communication thread; returns a handle for ``wait``. The
        arrays must not change until the reply has come."""
        return self.io.submit(self.server_of(key), kind, dict(fields or {}, k=key), arrays)

    def wait(self, handle: Handle) -> tuple:
        """``(header, arrays)`` of the reply to ``handle``."""
        return self.io.wait(handle, self.timeout)

    def _call(self, kind: str, key, fields: dict, arrays=()) -> tuple:
        """One request about ``key``, waited for at once (driven from this thread when nothing else is in
        flight)."""
        fields["k"] = key
        if _SPANS[0] is None:
            return self.io.call(self.server_of(key), kind, fields, arrays, self.timeout)
        t0 = perf_counter_ns()  # a profiler records: each call is a communication range ("ps::push" ...)
        try:
            return self.io.call(self.server_of(key), kind, fields, arrays, self.timeout)
        finally:
            _SPANS[0](f"ps::{kind}", "comm", t0, perf_counter_ns(), {"key": str(key)})

    # ---- the key-value API ----------------------------------------------------------------------------------
    def init(self, key, value, rule: str = "assign", mode: str = "async", staleness: int = 0,
             server: Optional[int] = None, **hparams) -> bool:
        """Create ``key`` on its server with ``value``, update rule ``rule`` (a ``disttorch.optim`` name such as
        ``"sgd"``, ``"assign"``, ``"add"`` or a registered one) and its keyword arguments. The first init of a key
        wins; returns False when the key existed already."""
        if server is not None:
            self.placement[key] = int(server)
        h, _ = self._call("init", key, {"rule": rule, "mode": mode, "s": int(staleness), "hp": hparams},
                          [_array(value)])
        return not h.get("exists", False)

    def push(self, key, value, clock: int = 0) -> None:
        """Push ``value`` (a gradient, for an optimizer rule) to ``key``; ``clock`` counts this worker's pushes
        in sync/ssp keys."""
        self._call("push", key, {"c": int(clock), "w": self.rank}, [_array(value)])

    def pull(self, key, min_version: int = 0):
        """The value of ``key`` once at least ``min_version`` updates are applied, as a Tensor."""
        _, arrays = self._call("pull", key, {"min": int(min_version)})
        return _tensor(arrays[0])

    def push_pull(self, key, value, clock: int = 0, min_version: int = 0):
        """``push`` then ``pull`` in one round trip."""
        _, arrays = self._call("pushpull", key, {"c": int(clock), "w": self.rank, "min": int(min_version)},
                               [_array(value)])
        return _tensor(arrays[0])

    def stats(self, server: int = 0) -> dict:
        """The server's dropped-frame counters per reason and its number of keys."""
        h, _ = self.io.call(server, "stats", {}, (), self.timeout)
        return {"drops": h.get("drops", {}), "keys": h.get("keys")}

    def close(self) -> None:
        if self.io is not None:
            self.io.close()
            self.io = None
        for p in self.peers:
            p.close()
        if self._own_ctx:
            self.ctx.term()


def _array(value) -> np.ndarray:
    data = getattr(value, "_data", value)
    if data.__class__ is not np.ndarray:
        data = data.get() if hasattr(data, "get") else np.asarray(data)  # CuPy -> host
    return data


_OWN_FROM = 64 << 10  # bytes from which a reply's tensor is kept in its frame instead of copied


def _tensor(arr: np.ndarray):
    """A Tensor of a reply's array. A large one keeps the received frame's memory (written by ZeroMQ, referenced
    by nothing else, writable): no copy; a small one is copied, so it does not pin a shared receive buffer."""
    import disttorch

    if arr.nbytes < _OWN_FROM or not (arr.flags.writeable and arr.flags.aligned):
        arr = np.array(arr)
    return disttorch.from_numpy(arr)
