"""The scheduler of a parameter-server job: registration, membership, barriers, heartbeats, the end of the job.

Run as ``python -m disttorch.distributed.ps.scheduler`` by the launcher. It binds ``DISTTORCH_PS_SCHEDULER``
(host:port) and answers:

- ``register {role: "server", id, addr}``: a server announces where it serves; answered at once;
- ``register {role: "worker", rank, host}``: answered with the servers' addresses (by server id) once all
  ``DISTTORCH_PS_NUM_SERVERS`` have registered;
- ``barrier {name}``: answered when every live worker has entered the barrier of that name;
- ``heartbeat {rank}``: a worker is alive; one silent for ``DISTTORCH_PS_HEARTBEAT_TIMEOUT`` seconds (default
  off) is declared dead (logged with its rank and host) and no longer counted in barriers;
- ``done {rank}``: the worker has called ``ps.shutdown()``;
- ``watch {known}``: a server's standing request, answered with the dead ranks and the membership version once
  the version is above ``known`` (a worker declared dead, or a dead worker back): sync and ssp keys wait for the
  live workers only;
- ``wait_exit``: a server's standing request, answered when every worker is done or dead; then the scheduler
  exits 0 too.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Optional

from .endpoint import Service

log = logging.getLogger("disttorch.distributed.ps")


class Scheduler(Service):
    """Membership and barriers of one job (one thread: ``serve``)."""

    def __init__(self, ctx, bind: str, secret: bytes, num_servers: int, num_workers: int,
                 heartbeat_timeout: Optional[float] = None, secure: bool = False) -> None:
        super().__init__(ctx, bind, secret, "ps scheduler", secure)
        self.num_servers, self.num_workers = int(num_servers), int(num_workers)
        self.heartbeat_timeout = heartbeat_timeout
        self.servers: dict = {}  # id -> address
        self.workers: dict = {}  # rank -> host
        self.seen: dict = {}  # rank -> last heartbeat (monotonic)
        self.dead: set = set()
        self.members_version = 0  # bumped whenever the dead set changes
        self.done: set = set()
        self._waiting_servers: list = []  # workers' register requests waiting for all servers
        self._barriers: dict = {}  # name -> {rank: (ident, header)}
        self._exits: dict = {}  # server id -> its standing wait_exit request
        self._watchers: list = []  # servers' standing requests for membership changes

    def handle(self, ident: bytes, h: dict, arrays: list) -> None:
        kind = h["t"]
        rank = h.get("rank")
        if kind == "register" and h.get("role") == "server":
            sid, addr = h.get("id"), h.get("addr")
            if type(sid) is not int or not 0 <= sid < self.num_servers or not isinstance(addr, str):
                raise ValueError(f"register: server id must be in [0, {self.num_servers}) and addr a string")
            self.servers[sid] = addr
            self.reply(ident, h)
        elif kind == "wait_exit":
            sid = h.get("id")
            if type(sid) is not int or not 0 <= sid < self.num_servers:
                raise ValueError(f"wait_exit: server id must be in [0, {self.num_servers})")
            self._exits[sid] = (ident, h)  # a restarted server replaces its predecessor's request
        elif kind == "watch":
            known = h.get("known")
            if type(known) is not int:
                raise ValueError("watch: known must be an int")
            self._watchers.append((ident, h, known))
        elif kind == "stats":
            self.reply(ident, h, {"drops": self.drops.stats()["by_reason"], "dead": sorted(self.dead)})
        else:
            if type(rank) is not int or not 0 <= rank < self.num_workers:
                raise ValueError(f"{kind}: rank must be an int in [0, {self.num_workers})")
            self.seen[rank] = time.monotonic()
            if kind == "register" and h.get("role") == "worker":
                rejoin = rank in self.workers
                self.workers[rank] = str(h.get("host", "?"))[:256]
                self.done.discard(rank)
                if rank in self.dead:
                    self.dead.discard(rank)
                    self.members_version += 1
                    log.warning("ps scheduler: worker rank %d rejoined from host %s", rank, self.workers[rank])
                self._waiting_servers.append((ident, h, rejoin))
            elif kind == "heartbeat":
                self.reply(ident, h)
            elif kind == "barrier":
                name = h.get("name")
                if not isinstance(name, str) or len(name) > 256:
                    raise ValueError("barrier: name must be a short string")
                self._barriers.setdefault(name, {})[rank] = (ident, h)
            elif kind == "done":
                self.done.add(rank)
                self.reply(ident, h)
            else:
                raise ValueError(f"unknown request type {kind[:40]!r}")
        self._progress()

    def _live(self) -> set:
        return set(range(self.num_workers)) - self.dead - self.done

    def _progress(self) -> None:
        if self._watchers and any(known < self.members_version for _, _, known in self._watchers):
            dead = sorted(self.dead)
            keep = []
            for ident, h, known in self._watchers:
                if known < self.members_version:
                    self.reply(ident, h, {"dead": dead, "version": self.members_version})
                else:
                    keep.append((ident, h, known))
            self._watchers = keep
        if len(self.servers) == self.num_servers and self._waiting_servers:
            addrs = [self.servers[i] for i in range(self.num_servers)]
            for ident, h, rejoin in self._waiting_servers:
                self.reply(ident, h, {"servers": addrs, "rejoin": rejoin})
            self._waiting_servers = []
        live = self._live()
        for name in list(self._barriers):
            parked = self._barriers[name]
            if live <= set(parked):
                for ident, h in parked.values():
                    self.reply(ident, h)
                del self._barriers[name]

    def _check_heartbeats(self) -> None:
        if not self.heartbeat_timeout:
            return
        now = time.monotonic()
        for rank, last in list(self.seen.items()):
            if rank not in self.dead and rank not in self.done and now - last > self.heartbeat_timeout:
                self.dead.add(rank)
                self.members_version += 1
                log.warning("ps scheduler: worker rank %d on host %s sent no heartbeat for %.1f s: declared dead; "
                            "the job continues with %d worker(s)", rank, self.workers.get(rank, "?"),
                            now - last, len(self._live()))
        self._progress()

    def finished(self) -> bool:
        return len(self.done | self.dead) >= self.num_workers

    def serve(self, stop=None) -> None:
        """Serve until every worker is done or dead (then release the servers), or ``stop()`` is true."""
        zmq = self._zmq
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while stop is None or not stop():
            if dict(poller.poll(100)).get(self.sock):
                self.receive()
            self._check_heartbeats()
            self.drops.tick()
            if self.finished() and len(self._exits) >= self.num_servers:
                for ident, h in self._exits.values():
                    self.reply(ident, h)
                return


def main() -> int:
    """Entry point of ``python -m disttorch.distributed.ps.scheduler``."""
    import zmq

    from .. import _wire

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    env = os.environ
    addr = env["DISTTORCH_PS_SCHEDULER"]
    secret = _wire.job_secret(addr.rpartition(":")[0])
    hb = env.get("DISTTORCH_PS_HEARTBEAT_TIMEOUT")
    ctx = zmq.Context()
    sched = Scheduler(ctx, addr, secret, int(env["DISTTORCH_PS_NUM_SERVERS"]), int(env["DISTTORCH_PS_NUM_WORKERS"]),
                      float(hb) if hb else None, env.get("DISTTORCH_PS_SECURE", "") == "curve")
    try:
        sched.serve()
    finally:
        sched.close(linger_ms=2000)  # the last replies (done, exit) are still queued: let them leave
        ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
