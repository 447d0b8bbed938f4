"""Collectives never hang silently: stall warnings, timeout errors that name the missing ranks.

Every collective the API runs is registered in ``ACTIVE`` (a dict insert and a pop: the fast path costs
nothing more). One daemon thread per process, the watchdog, looks at ``ACTIVE`` a few times per stall
period. When a collective has waited longer than ``DISTTORCH_STALL_WARNING`` seconds (default 60), the
watchdog asks every rank where it is, through the rendezvous store:

- it bumps the counter ``stall/request`` (one ``store.add``) and publishes its own state;
- every rank's watchdog polls that counter (one ``store.add(key, 0)`` per poll) and answers a new request
  by writing ``stall/<request>/<rank>``: the collectives it is in, how many collectives it has entered per
  group, and the Python stack of its main thread (``sys._current_frames``);
- the requester reads the answers and logs one warning naming the ranks that have not arrived (their
  per-group entry count is below the stalled collective's sequence number) and the stack of every rank.

A collective that outlives the timeout raises ``RuntimeError`` from the waiting thread with the same
report (``timeout_error``). When the backend blocks inside native code and cannot be interrupted, the
watchdog logs the report and ends the process after the timeout plus a grace period, as PyTorch's NCCL
watchdog does (``DISTTORCH_TIMEOUT_ABORT=0`` turns that off), so a job fails instead of hanging.

Internal API (for ``runner``, the only module that imports this one): ``enter``/``leave`` and ``ACTIVE``
(collectives in flight), ``Watchdog``, ``stall_seconds()``, ``env_seconds(name, default)``.
"""
from __future__ import annotations

import itertools
import logging
import os
import socket
import sys
import threading
import time
import traceback
from typing import Optional

import msgpack

log = logging.getLogger("disttorch.distributed")

# token -> [group handle, seq, fingerprint, start time, waiting thread id or None for async work]
ACTIVE: dict = {}
_tokens = itertools.count()

_REQUEST = "stall/request"


def enter(g, seq: int, fp: str, thread: Optional[int]) -> int:
    """Register a collective in flight; returns the token for ``leave``."""
    tok = next(_tokens)
    ACTIVE[tok] = (g, seq, fp, time.monotonic(), thread)
    return tok


def leave(tok: int) -> None:
    ACTIVE.pop(tok, None)


def env_seconds(name: str, default: float) -> float:
    """The number of seconds in environment variable ``name`` (``default`` when unset or empty)."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None


def stall_seconds() -> float:
    return env_seconds("DISTTORCH_STALL_WARNING", 60.0)


def _stack_of_main(limit: int = 14) -> str:
    frame = sys._current_frames().get(threading.main_thread().ident)
    if frame is None:
        return "    (main thread has exited)\n"
    # The watchdog's own frames (when the main thread itself is reporting a timeout) say nothing useful.
    frames = [f for f in traceback.extract_stack(frame) if f.filename != __file__]
    lines = traceback.format_list(frames[-limit:])
    return "".join("    " + ln.replace("\n", "\n    ").rstrip(" ") for ln in lines)


class Watchdog:
    """The per-process stall detector and responder. ``store`` is the debug store (a PrefixStore)."""

    def __init__(self, world, store, rank: int, world_size: int, stall: float) -> None:
        self.world, self.store, self.rank, self.world_size = world, store, rank, world_size
        self.stall = stall
        self.poll = min(max(stall / 4.0, 0.05), 2.0)
        self.reply_wait = 4 * self.poll + 2.0
        self.abort = os.environ.get("DISTTORCH_TIMEOUT_ABORT", "1") != "0"
        self.served = 0  # last request id answered
        self.requests: list = []  # (requester rank, group name, seq) of every request answered
        self._nofrom: dict = {}  # request id -> polls so far without its "from" key
        self.answered_cv = threading.Condition()
        self.warned: set = set()
        self.store_lock = threading.Lock()
        self.host = socket.gethostname()
        self._stop = threading.Event()
        self._failures = 0
        self.thread = threading.Thread(target=self._run, name="disttorch-watchdog", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout=5.0)

    # ---- the loop --------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self._check_active()
                self._serve()
                self._failures = 0
            except Exception as e:  # the store went away (the master exited): keep quiet, retry slowly
                self._failures += 1
                if self._failures == 3:
                    log.debug("disttorch watchdog: store unreachable (%s)", e, exc_info=True)
                if self._stop.wait(min(self.poll * self._failures, 5.0)):
                    return

    def _check_active(self) -> None:
        now = time.monotonic()
        for g, seq, fp, t0, thread in list(ACTIVE.values()):
            waited = now - t0
            key = (g.group_name, seq)
            if waited > self.stall and key not in self.warned:
                self.warned.add(key)
                if len(self.warned) > 1000:
                    self.warned = {key}
                missing, where = self.report(g, seq)
                log.warning(f"disttorch.distributed: collective {fp} in group {g.group_name} has been waiting "
                            f"{time.monotonic() - t0:.1f} s on rank {self.world.rank}; ranks that have not arrived: "
                            f"{missing}. Where each rank is:\n{where}")
            if thread is not None and self.abort and waited > g._timeout + max(5.0, 0.1 * g._timeout):
                missing, where = self.report(g, seq)
                log.error(f"disttorch.distributed: collective {fp} in group {g.group_name} on rank {self.world.rank} "
                          f"did not complete within the timeout ({g._timeout:g} s) and the backend cannot be "
                          f"interrupted; ranks that have not arrived: {missing}. Ending this process so that the job "
                          f"fails instead of hanging (DISTTORCH_TIMEOUT_ABORT=0 disables this). Where each rank "
                          f"is:\n{where}")
                for h in logging.getLogger().handlers + log.handlers:
                    h.flush()
                sys.stderr.flush()
                os._exit(70)

    # ---- answering -------------------------------------------------------------------------------------
    def state(self) -> bytes:
        now = time.monotonic()
        current = [[g.group_name, seq, fp, round(now - t0, 2), thread is None] for g, seq, fp, t0, thread
                   in list(ACTIVE.values())]
        groups = self.world.groups
        entered = {name: [g._seq, g._last] for name, g in list(groups.items())}
        return msgpack.packb({"host": self.host, "pid": os.getpid(), "current": current, "entered": entered,
                              "stack": _stack_of_main()}, use_bin_type=True)

    def _serve(self) -> None:
        with self.store_lock:
            latest = self.store.add(_REQUEST, 0)
            if latest <= self.served and not self._nofrom:
                return
            if latest > self.served:
                me = self.state()
                for req in range(max(self.served + 1, latest - 7), latest + 1):
                    self.store.set(f"stall/{req}/{self.rank}", me)
                    self._nofrom[req] = 0
                self.served = latest
            seen = []
            for req, tries in list(self._nofrom.items()):  # who asked (written just after the counter moved)
                key = f"stall/{req}/from"
                if self.store.check([key]):
                    who, gname, seq = self.store.get(key).decode().split(" ")
                    seen.append((int(who), gname, int(seq)))
                    del self._nofrom[req]
                elif tries > 20:
                    del self._nofrom[req]
                else:
                    self._nofrom[req] = tries + 1
        with self.answered_cv:
            self.requests.extend(seen)
            self.answered_cv.notify_all()

    def wait_requests(self, predicate, timeout: float) -> bool:
        """Block until ``predicate(requests)`` holds for the stall requests answered so far (for tests)."""
        with self.answered_cv:
            return self.answered_cv.wait_for(lambda: predicate(self.requests), timeout)

    # ---- asking ----------------------------------------------------------------------------------------
    def report(self, g, seq: int) -> tuple:
        """(ranks of ``g`` that have not entered collective ``seq``, text saying where every rank is)."""
        with self.store_lock:
            req = self.store.add(_REQUEST, 1)
            self.store.set(f"stall/{req}/from", f"{self.rank} {g.group_name} {seq}")
            self.store.set(f"stall/{req}/{self.rank}", self.state())
        answers: dict = {}
        deadline = time.monotonic() + self.reply_wait
        while True:
            for r in range(self.world_size):
                if r in answers:
                    continue
                key = f"stall/{req}/{r}"
                with self.store_lock:
                    if self.store.check([key]):
                        answers[r] = msgpack.unpackb(self.store.get(key), raw=False, strict_map_key=False)
            if len(answers) == self.world_size or time.monotonic() > deadline:
                break
            self._serve()  # other ranks may be asking at the same time
            time.sleep(min(0.05, self.poll))
        return describe(g, seq, answers, self.world_size, self.reply_wait)


def describe(g, seq: int, answers: dict, world_size: int, reply_wait: float) -> tuple:
    members = g._ranks
    missing, lines = [], []
    for r in range(world_size):
        a = answers.get(r)
        member = r in g._rank_of
        if a is None:
            if member:
                missing.append(r)
            lines.append(f"  rank {r}: no answer within {reply_wait:.1f} s (hung in native code, or exited)")
            continue
        entered, last = a["entered"].get(g.group_name, [0, ""])
        if member and entered < seq:
            missing.append(r)
        head = f"  rank {r} (host {a['host']}, pid {a['pid']}): "
        cur = [c for c in a["current"] if not c[4]] or a["current"]
        if cur:
            gname, s, fp, waited, is_async = cur[0]
            head += f"{'has async work' if is_async else 'waiting'} in {fp} (group {gname}) for {waited:.1f} s"
        else:
            head += "not in a collective"
        if member:
            head += f"; entered {entered} collective(s) of group {g.group_name}"
            if last:
                head += f", the last one {last}"
        elif len(members) < world_size:
            head += f" (not in group {g.group_name})"
        lines.append(head + "\n" + a["stack"].rstrip())
    return missing, "\n".join(lines)
