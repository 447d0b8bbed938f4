"""A parameter server: holds shards (keys), aggregates pushed gradients and runs their update rules.

Run as ``python -m disttorch.distributed.ps.server`` by the launcher (environment: see ``disttorch.distributed.ps``).
It binds a random port on ``DISTTORCH_INTERFACE``, registers with the scheduler and serves until the scheduler
says every worker has finished, then exits 0. With ``DISTTORCH_PS_SNAPSHOT_DIR`` it snapshots its keys there
(``snapshot.py``) every ``DISTTORCH_PS_SNAPSHOT_STEPS`` updates (0: off) or ``DISTTORCH_PS_SNAPSHOT_SECONDS``
(default 30) with an update, and at exit; a server that starts beside its snapshot restores it.
``DISTTORCH_PS_RULES`` names modules (comma-separated) to import first: they register custom update rules.

Requests (fields in the header, tensors as frames; see docs/ps-protocol.md):

- ``init {k, rule, hp, mode, s}`` + value: create key ``k`` (first init wins; later ones are answered ``exists``);
- ``push {k, c, w}`` + grad: worker ``w``'s gradient for clock ``c``; ``pull {k, min}``: the value once ``min``
  clocks are applied; ``pushpull`` both;
- ``hp {k, hp}``: change hyperparameters; ``state {k}`` / ``load {k, names}`` + arrays: optimizer state.

Modes per key: ``sync`` and ``ssp`` collect one gradient per worker for each clock and apply the clocks in order
(the mean for floating-point keys, the sum otherwise); a pull waits for ``min`` applied clocks (the worker asks
for ``c + 1`` in sync and ``c + 1 - s`` in ssp, which bounds staleness to ``s``); ``async`` applies each push
as it arrives. Workers the scheduler declares dead (no heartbeat) are no longer waited for: their clocks apply
the mean of the gradients that arrived. Everything a request carries is checked against the key before any state changes.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from typing import Optional

import numpy as np

from . import protocol as P
from . import snapshot
from .endpoint import HASH_THRESHOLD, Lease, Peer, Service, hash_threads_default
from .rules import Rule, check_hparams

log = logging.getLogger("disttorch.distributed.ps")
MODES = ("sync", "ssp", "async")
_MAX_AHEAD = 1024  # clocks a key buffers ahead of the applied one
_LEND_FROM = 64 << 10  # bytes from which replies send the live value and assign takes pushed arrays, uncopied


class _Key:
    __slots__ = ("value", "rule", "mode", "staleness", "version", "pending", "waiting", "published", "lent")

    def __init__(self, value: np.ndarray, rule: Rule, mode: str, staleness: int) -> None:
        self.value, self.rule, self.mode, self.staleness = value, rule, mode, staleness
        self.version = 0
        self.pending: dict = {}  # clock -> [sum, set of worker ranks]
        self.waiting: list = []  # (ident, request header, min version)
        # (version, a copy of value): what pulls send. ZeroMQ sends without copying, after send_multipart
        # returns; the live value may change before then (async), the copy of one version never does
        self.published: Optional[tuple] = None
        # Leases of replies that send the live value itself (rules without optimizer state: the value is only
        # rule.param); a write first checks them and, if one is still read by ZeroMQ, moves the key to a copy
        self.lent: list = []

    def snapshot_value(self) -> np.ndarray:
        if self.published is None or self.published[0] != self.version:
            self.published = (self.version, self.value.copy())
        return self.published[1]

    def reply_value(self) -> tuple:
        """``(array, lease or None)`` for a pull's reply: the live value under a lease where that is safe."""
        if self.rule.param is not self.value or self.rule.has_optimizer or self.value.nbytes < _LEND_FROM:
            return self.snapshot_value(), None
        if len(self.lent) >= 8:
            self.lent = [x for x in self.lent if not x.done()]
        lease = Lease()
        self.lent.append(lease)
        return self.value, lease

    def update(self, grad: np.ndarray) -> None:
        """Apply the rule to ``grad``. A large array that this server alone holds (a received frame: ZeroMQ wrote
        it, nothing else refers to it) becomes the value of an ``assign`` key instead of being copied into it."""
        if self.rule.replaces and grad.nbytes >= _LEND_FROM and grad.flags.writeable and grad.flags.aligned \
                and grad.flags.c_contiguous and self.rule.param is self.value:
            self.value = self.rule.param = grad
            self.lent = []  # the old value is left as it is to the sends that still read it
            return
        self.before_write()
        self.rule.apply(grad)

    def before_write(self) -> None:
        """Call before the value changes in place: a value still being sent is left as it is (copy on write)."""
        if not self.lent:
            return
        if not all(x.done() for x in self.lent):
            self.value = self.value.copy()
            self.rule.param = self.value
        self.lent = []


class ParameterServer(Service):
    """The shards of one server and the request handlers (one thread: ``serve`` or ``poll_once``)."""

    def __init__(self, ctx, bind: str, secret: bytes, num_workers: int, secure: bool = False,
                 server_id: int = 0, snapshot_dir: Optional[str] = None, snapshot_seconds: float = 30.0,
                 snapshot_steps: int = 0, hash_threads: Optional[int] = None,
                 hash_threshold: int = HASH_THRESHOLD, always_offload: bool = False) -> None:
        super().__init__(ctx, bind, secret, f"ps server {server_id}", secure,
                         hash_threads_default() if hash_threads is None else int(hash_threads), hash_threshold,
                         always_offload)
        self.num_workers = int(num_workers)
        self.keys: dict = {}
        self.dead: set = set()
        self.members_version = 0  # the scheduler's membership version this server knows
        self.updates = 0  # changes of state (updates applied, keys created or loaded, hyperparameters): for snapshots
        self.snapshot_path = snapshot.path_for(snapshot_dir, server_id) if snapshot_dir else None
        self.snapshot_seconds, self.snapshot_steps = float(snapshot_seconds), int(snapshot_steps)
        self._snap_updates, self._snap_time = 0, time.monotonic()
        if self.snapshot_path and os.path.exists(self.snapshot_path):
            try:
                self.restore()
            except BaseException:
                self.sock.close(0)
                raise

    # ---- snapshots ------------------------------------------------------------------------------------------
    def snapshot(self) -> None:
        """Write every key's value, rule, hyperparameters, optimizer state and version (atomically)."""
        records = []
        for key, e in self.keys.items():
            st = e.rule.state_arrays()
            records.append(({"k": key, "rule": e.rule.name, "hp0": e.rule.init_hparams, "hp": e.rule.changes,
                             "mode": e.mode, "s": e.staleness, "ver": e.version, "names": list(st)},
                            [e.value, *st.values()]))
        snapshot.write(self.snapshot_path, self.mac, records)
        self._snap_updates, self._snap_time = self.updates, time.monotonic()

    def maybe_snapshot(self) -> None:
        """Snapshot when ``snapshot_steps`` updates were applied since the last one, or ``snapshot_seconds``
        passed with at least one update."""
        if not self.snapshot_path or self.updates == self._snap_updates:
            return
        if (self.snapshot_steps and self.updates - self._snap_updates >= self.snapshot_steps) or \
                time.monotonic() - self._snap_time >= self.snapshot_seconds:
            self.snapshot()

    def restore(self) -> None:
        """Load the keys of ``snapshot_path`` (pending sync/ssp gradients are not in it: those clocks were not
        applied, so no worker got an acknowledgement that depends on them)."""
        for h, arrays in snapshot.read(self.snapshot_path, self.mac):
            names = h.get("names")
            if not isinstance(names, list) or len(names) != len(arrays) - 1 or type(h.get("ver")) is not int:
                raise ValueError(f"parameter-server snapshot {self.snapshot_path}: a malformed record")
            value = np.array(arrays[0])
            rule = Rule(h["rule"], value, check_hparams(h.get("hp0", {})))
            rule.set_hparams(check_hparams(h.get("hp", {})))
            rule.load_state_arrays(dict(zip(names, arrays[1:])))
            entry = _Key(value, rule, h["mode"], h["s"])
            entry.version = h["ver"]
            self.keys[h["k"]] = entry
        log.info("%s: restored %d key(s) from %s", self.drops.what, len(self.keys), self.snapshot_path)

    # ---- handlers -------------------------------------------------------------------------------------------
    def handle(self, ident: bytes, h: dict, arrays: list) -> None:
        kind = h["t"]
        if kind == "stats":
            self.reply(ident, h, {"drops": self.drops.stats()["by_reason"], "keys": len(self.keys)})
            return
        key = h.get("k")
        if not isinstance(key, (int, str)) or isinstance(key, bool) or (isinstance(key, str) and len(key) > 256):
            raise P.ProtocolError("malformed", f"{kind}: key must be an int or a short string")
        if kind == "init":
            self._init(ident, h, key, arrays)
            return
        entry = self.keys.get(key)
        if entry is None:
            raise ValueError(f"{kind}: key {key!r} was never initialised on this server")
        if kind in ("pull", "pushpull") and type(h.get("min", 0)) is not int:
            raise ValueError(f"{kind}: min must be an int")
        if kind in ("push", "pushpull"):
            self._push(entry, h, arrays, key)
            self.maybe_snapshot()  # before any answer: with snapshot_steps=1 nothing acknowledged is lost
        if kind in ("pull", "pushpull"):
            entry.waiting.append((ident, h, h.get("min", 0)))
        if kind == "push":
            self.reply(ident, h, {"ver": entry.version})
        if kind in ("push", "pull", "pushpull"):
            self._answer(entry)  # a push can release pulls parked on this key
        elif kind == "hp":
            entry.rule.set_hparams(check_hparams(h.get("hp")))
            self.updates += 1
            self.maybe_snapshot()
            self.reply(ident, h)
        elif kind == "state":
            st = entry.rule.state_arrays()
            self.reply(ident, h, {"names": list(st), "ver": entry.version},
                       [entry.value.copy(), *(np.array(a) for a in st.values())])  # copies: see _Key.published
        elif kind == "load":
            names = h.get("names")
            if not isinstance(names, list) or len(names) != len(arrays) - 1 or not all(
                    isinstance(x, str) for x in names):
                raise ValueError("load: names must list one name per state tensor after the value")
            self._check(entry, arrays[0], key, kind)
            entry.rule.load_state_arrays(dict(zip(names, arrays[1:])))
            entry.before_write()
            entry.value[...] = arrays[0]
            entry.published = None  # the same version, new values
            self.updates += 1
            self.maybe_snapshot()
            self.reply(ident, h)
        else:
            raise ValueError(f"unknown request type {kind[:40]!r}")

    def _init(self, ident: bytes, h: dict, key, arrays: list) -> None:
        if len(arrays) != 1:
            raise ValueError("init: expected one tensor")
        if key in self.keys:
            self.reply(ident, h, {"exists": True})
            return
        mode, s, rule = h.get("mode", "async"), h.get("s", 0), h.get("rule", "assign")
        if mode not in MODES or type(s) is not int or not 0 <= s <= _MAX_AHEAD or not isinstance(rule, str):
            raise ValueError(f"init: mode must be one of {MODES}, s an int in [0, {_MAX_AHEAD}], rule a string")
        value = np.array(arrays[0])  # a private, writable copy
        self.keys[key] = _Key(value, Rule(rule, value, check_hparams(h.get("hp", {}))), mode, s)
        self.updates += 1
        self.maybe_snapshot()
        self.reply(ident, h, {"exists": False})

    def _check(self, entry: _Key, arr: np.ndarray, key, kind: str) -> None:
        if arr.dtype != entry.value.dtype or arr.shape != entry.value.shape:
            raise ValueError(f"{kind} key {key!r}: got {P.dtype_name(arr.dtype)} {list(arr.shape)}, the key holds "
                             f"{P.dtype_name(entry.value.dtype)} {list(entry.value.shape)}")

    def _push(self, entry: _Key, h: dict, arrays: list, key) -> None:
        if len(arrays) != 1:
            raise ValueError(f"{h['t']}: expected one gradient tensor")
        grad = arrays[0]
        self._check(entry, grad, key, h["t"])
        if entry.mode == "async":
            entry.update(grad)
            entry.version += 1
            self.updates += 1
            return
        c, w = h.get("c"), h.get("w")
        if type(c) is not int or type(w) is not int or not 0 <= w < self.num_workers:
            raise ValueError(f"{h['t']}: clock c and worker rank w (< {self.num_workers}) must be ints")
        if c < entry.version:
            return  # applied already: a request resent after a reconnection (pushes are idempotent per clock)
        if c >= entry.version + _MAX_AHEAD:
            raise ValueError(f"{h['t']} key {key!r}: clock {c} is outside [{entry.version}, "
                             f"{entry.version + _MAX_AHEAD}): more than {_MAX_AHEAD} steps ahead")
        if w in self.dead:  # a worker that pushes is alive: a restarted one, before the scheduler's word
            self.dead.discard(w)
            log.warning("%s: worker rank %d is back", self.drops.what, w)
        slot = entry.pending.get(c)
        if slot is None:
            slot = entry.pending[c] = [np.array(grad), {w}]
        elif w in slot[1]:
            return  # the same clock again from the same worker: a resend, counted once
        else:
            slot[0] += grad
            slot[1].add(w)
        self._apply_ready(entry)

    def _apply_ready(self, entry: _Key) -> None:
        """Apply the clocks, in order, for which every live worker has pushed (the mean of what arrived)."""
        live = self.num_workers - len(self.dead)
        while True:
            slot = entry.pending.get(entry.version)
            if slot is None or len(slot[1] - self.dead) < live:
                break
            del entry.pending[entry.version]
            total = slot[0]
            if total.dtype.kind in "fc" or str(total.dtype) == "bfloat16":
                total /= len(slot[1])
            entry.update(total)
            entry.version += 1
            self.updates += 1

    def set_dead(self, ranks) -> None:
        """The workers the scheduler holds dead now: sync/ssp clocks wait for the others only."""
        dead = {int(r) for r in ranks}
        new, back = dead - self.dead, self.dead - dead
        self.dead = dead
        if back:
            log.warning("%s: worker rank(s) %s rejoined", self.drops.what, sorted(back))
        if not new:
            return
        log.warning("%s: worker rank(s) %s declared dead by the scheduler; sync/ssp steps continue with %d "
                    "worker(s)", self.drops.what, sorted(new), self.num_workers - len(self.dead))
        for entry in self.keys.values():
            if entry.mode != "async":
                self._apply_ready(entry)
                self._answer(entry)

    def _answer(self, entry: _Key) -> None:
        waiting, version = entry.waiting, entry.version
        if not waiting:
            return
        if len(waiting) == 1:  # the common case: the pull just parked
            if waiting[0][2] > version:
                return
            ready, entry.waiting = waiting, []
        else:
            ready = [w for w in waiting if w[2] <= version]
            if not ready:
                return
            entry.waiting = [w for w in waiting if w[2] > version]
        for ident, h, _ in ready:
            value, lease = entry.reply_value()
            self.reply(ident, h, {"ver": entry.version}, [value], lease)

    # ---- loop -----------------------------------------------------------------------------------------------
    def serve(self, stop=None, scheduler: Optional[Peer] = None, exit_request: Optional[int] = None) -> None:
        """Serve until ``stop()`` is true or the scheduler answers ``exit_request``."""
        zmq = self._zmq
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        if self.wake_fd is not None:
            poller.register(self.wake_fd, zmq.POLLIN)
        watch = None
        if scheduler is not None:
            poller.register(scheduler.sock, zmq.POLLIN)
            watch = scheduler.request("watch", {"known": self.members_version})
        try:
            self._loop(poller, stop, scheduler, exit_request, watch)
        finally:
            if self.snapshot_path and self.updates != self._snap_updates:
                self.snapshot()

    def _loop(self, poller, stop, scheduler, exit_request, watch) -> None:
        while stop is None or not stop():
            events = dict(poller.poll(100))
            self.maybe_snapshot()
            if self.sock in events:
                self.receive()
            if scheduler is not None and scheduler.sock in events:
                scheduler._take(scheduler.sock.recv_multipart(copy=False))
                if exit_request in scheduler._replies:
                    return
                if watch in scheduler._replies:
                    header, _ = scheduler._replies.pop(watch)
                    if header.get("t") == "ok" and isinstance(header.get("dead"), list) \
                            and type(header.get("version")) is int:
                        self.members_version = header["version"]
                        self.set_dead(r for r in header["dead"] if type(r) is int)
                    watch = scheduler.request("watch", {"known": self.members_version})
            if self._outbox or (self.wake_fd is not None and self.wake_fd in events):
                self.pump()  # hashing threads finished a MAC or a signature; replies queued behind them
            self.drops.tick()


def main() -> int:
    """Entry point of ``python -m disttorch.distributed.ps.server``."""
    import zmq

    from .. import _wire

    env = os.environ
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for module in filter(None, (m.strip() for m in env.get("DISTTORCH_PS_RULES", "").split(","))):
        importlib.import_module(module)  # the job's own code: it registers custom rules (register_update_rule)
    sid = int(env.get("DISTTORCH_PS_SERVER_ID", "0"))
    secret = _wire.job_secret(env["DISTTORCH_PS_SCHEDULER"].rpartition(":")[0])
    secure = env.get("DISTTORCH_PS_SECURE", "") == "curve"
    ctx = zmq.Context()
    snap_dir = env.get("DISTTORCH_PS_SNAPSHOT_DIR") or None
    port = 0
    if snap_dir:  # a restarted server takes its predecessor's port: workers' sockets reconnect by themselves
        port = snapshot.read_port(snap_dir, sid)
    server = ParameterServer(ctx, f"{env.get('DISTTORCH_INTERFACE', '127.0.0.1')}:{port}", secret,
                             int(env["DISTTORCH_PS_NUM_WORKERS"]), secure, sid,
                             snapshot_dir=snap_dir,
                             snapshot_seconds=float(env.get("DISTTORCH_PS_SNAPSHOT_SECONDS", "30")),
                             snapshot_steps=int(env.get("DISTTORCH_PS_SNAPSHOT_STEPS", "0")))
    if snap_dir:
        snapshot.write_port(snap_dir, sid, server.port)
    sched = Peer(ctx, env["DISTTORCH_PS_SCHEDULER"], secret, "ps scheduler", secure)
    timeout = float(env.get("DISTTORCH_PS_CONNECT_TIMEOUT", "120"))
    try:
        sched.hello(timeout)
        sched.call("register", {"role": "server", "id": sid, "addr": server.address}, timeout=timeout)
        exit_request = sched.request("wait_exit", {"id": sid})
        server.serve(scheduler=sched, exit_request=exit_request)
    finally:
        server.close()
        sched.close()
        ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
