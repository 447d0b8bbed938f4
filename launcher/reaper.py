"""Stop a job's processes when the launcher itself dies, even by SIGKILL.

The launcher starts each local worker (and the ssh clients, and mpiexec) in its own session and stops them
by signalling process groups. That cannot happen when the launcher is killed outright, so it also starts
this small reaper, in a session of its own, holding the read end of a pipe from the launcher:

- The launcher tells the reaper, one JSON line each, every process it starts (``{"add": pid, "start": t,
  "term": "session"|"group"}``), the remote workers' stop commands (``{"remote": key, "argv": [...]}``),
  and what it has stopped itself (``{"drop": pid}``, ``{"unremote": key}``). ``{"done": true}`` before
  the pipe closes means the launcher ended cleanly: the reaper exits and does nothing.
- End of file without "done" means the launcher is gone (killed, crashed, hung up). The reaper then does
  what the launcher's own teardown does: SIGTERM to each registered process group (and to the other
  groups of the session it leads, unless it is an mpiexec, which forwards SIGTERM to its ranks itself),
  the remote stop commands through ssh, up to ``--grace`` seconds of waiting, then SIGKILL to every group
  of every registered session. Then it says what it did on stderr and exits.

Which processes are "ours": a registered pid leads its session and group (``start_new_session``), and a
process id cannot be reused while a group or session with that id has members. The reaper also checks the
leader's start time (``/proc/PID/stat``): a live process with that pid but another start time is a new,
unrelated one, and its group is left alone. Besides the leader's own group, the reaper signals the other
groups of the session it leads, and the groups that its live descendants lead in its session (an mpi rank's
child that made a group of its own). Processes that start a session of their own (``setsid``,
``start_new_session=True``) leave the job's session and are left alone, as with torchrun.

The same code, run as ``reaper.py --stop PID:START --grace G``, is the guardian a worker starts when it
finds its launcher gone (disttorch/_parent_watch.py): it stops that worker's group from outside it.

This file runs as a script with ``python -I -S``: standard library only, no disttorch imports. The
launcher imports it for :class:`Reaper` and the process-group helpers. Process groups and sessions are
read from /proc on Linux; elsewhere only the registered groups themselves are signalled.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Iterable

_PROC = "/proc"
# The worker side of the contract (disttorch/_parent_watch.py spells the same names): the pid that should be
# the worker's parent, and the seconds between SIGTERM and SIGKILL when it ends its group.
PARENT_PID_VAR = "DISTTORCH_PARENT_PID"
PARENT_GRACE_VAR = "DISTTORCH_PARENT_GRACE"
REMOTE_WAIT = 15.0  # seconds an ssh stop command may take beyond the grace period


@dataclass(frozen=True)
class Leader:
    """A process the launcher started in its own session: its group (and session) are the job's.

    Attributes:
        pid: its pid, which is also its process group id and session id.
        start: its start time in clock ticks since boot (/proc/PID/stat field 22), None when unknown.
        term_session: whether SIGTERM goes to every group of its session (False for mpiexec: it forwards
            SIGTERM to the ranks, which lead groups of their own in its session, and reports their exit).
    """

    pid: int
    start: int | None = None
    term_session: bool = True


def _stat(pid: int | str) -> tuple[str, int, int, int, int] | None:
    """(state, ppid, pgid, sid, start time) of a process from /proc, None when it does not exist."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()  # the command name may hold spaces and parentheses
    return fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19])


def start_time(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot), None when it is gone or unknown."""
    st = _stat(pid)
    return st[4] if st else None


def _snapshot() -> list[tuple[int, int, int, int]] | None:
    """(pid, ppid, pgid, sid) of every live process (zombies excluded), None where /proc is not available."""
    try:
        names = os.listdir(_PROC)
    except OSError:
        return None
    out = []
    for name in names:
        if name.isdigit():
            st = _stat(name)
            if st is not None and st[0] not in ("Z", "X"):
                out.append((int(name), st[1], st[2], st[3]))
    return out


def _reused(leader: Leader) -> bool:
    """True when ``leader.pid`` now names another process (so the leader's group and session are empty)."""
    if leader.start is None:
        return False
    now = start_time(leader.pid)
    return now is not None and now != leader.start


def target_groups(leaders: Iterable[Leader], *, whole_session: bool | None = None) -> set[int]:
    """The process groups to signal for ``leaders``: each leader's own group and, with ``whole_session``
    (None: each leader's ``term_session``), the groups of the session it leads and the groups its live
    descendants lead in its session (an mpi rank's child that made a group of its own in mpiexec's session).
    A descendant that started a session of its own is left alone, as a daemon should be."""
    leaders = [ld for ld in leaders if not _reused(ld)]
    groups = {ld.pid for ld in leaders}
    wide = {ld.pid for ld in leaders if (ld.term_session if whole_session is None else whole_session)}
    snap = _snapshot() if wide else None
    if snap:
        own = os.getpgrp()
        groups |= {pgid for _, _, pgid, sid in snap if sid in wide and pgid != own}
        children: dict[int, list[int]] = {}
        session_of = {}
        for pid, ppid, _, sid in snap:
            children.setdefault(ppid, []).append(pid)
            session_of[pid] = sid
        for leader in wide & set(session_of):
            tree, todo = set(), [leader]
            while todo:
                pid = todo.pop()
                if pid not in tree:
                    tree.add(pid)
                    todo += children.get(pid, ())
            # only groups led by a process of the tree: a group led by an outsider is not the job's to end
            groups |= {pgid for pid, _, pgid, sid in snap
                       if pid in tree and pgid in tree and sid == session_of[leader] and pgid != own}
    return groups


def signal_groups(groups: Iterable[int], sig: int) -> None:
    """Send ``sig`` to each process group; groups that are gone (or not ours to signal) are skipped."""
    for g in groups:
        if g > 1:
            try:
                os.killpg(g, sig)
            except (ProcessLookupError, PermissionError):
                pass


def any_alive(leaders: Iterable[Leader], groups: Iterable[int] = ()) -> bool:
    """Whether a live (not zombie) process remains in ``groups`` or in the groups or sessions of ``leaders``."""
    leaders = [ld for ld in leaders if not _reused(ld)]
    ids = {ld.pid for ld in leaders}
    groups = ids | set(groups)
    snap = _snapshot()
    if snap is not None:
        return any(pgid in groups or sid in ids for _, _, pgid, sid in snap)
    for g in groups:  # no /proc: a signal 0 that reaches a group means it has members (zombies count)
        try:
            os.killpg(g, 0)
            return True
        except (ProcessLookupError, PermissionError):
            pass
    return False


def stop(leaders: list[Leader], grace: float, remote: Iterable[list[str]] = ()) -> int:
    """SIGTERM, up to ``grace`` seconds, SIGKILL: the launcher's teardown, done from outside it.

    ``remote`` are commands (ssh ... 'stop the remote group') run alongside; they are waited for up to
    ``grace`` + REMOTE_WAIT seconds. Returns how many process groups got SIGTERM.
    """
    first = target_groups(leaders)
    # Every group found now is SIGKILLed at the end too: by then a dead worker's children are re-parented
    # and no longer found as its descendants.
    known = first | target_groups(leaders, whole_session=True)
    signal_groups(first, signal.SIGTERM)
    helpers = []
    for argv in remote:
        try:
            helpers.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, start_new_session=True))
        except OSError:
            pass
    deadline = time.monotonic() + grace
    while any_alive(leaders, known) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling other processes' exit: nothing to block on for processes we did not start
    signal_groups(known | target_groups(leaders, whole_session=True), signal.SIGKILL)
    end = deadline + REMOTE_WAIT
    for h in helpers:
        try:
            h.wait(max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            h.kill()
            h.wait()
    return len(first)


def serve(stream: IO[bytes], grace: float, launcher: int) -> int:
    """Read the launcher's messages until end of file; stop everything registered unless it said "done"."""
    leaders: dict[int, Leader] = {}
    remote: dict[str, list[str]] = {}
    for line in stream:
        try:
            msg = json.loads(line)
            if msg.get("done"):
                return 0
            if "add" in msg:
                pid, start = int(msg["add"]), msg.get("start")
                leaders[pid] = Leader(pid, int(start) if start is not None else None,
                                      msg.get("term", "session") == "session")
            elif "drop" in msg:
                leaders.pop(int(msg["drop"]), None)
            elif "remote" in msg:
                remote[str(msg["remote"])] = [str(w) for w in msg["argv"]]
            elif "unremote" in msg:
                remote.pop(str(msg["unremote"]), None)
        except (ValueError, TypeError, KeyError, AttributeError):
            continue  # a line cut short by the launcher's death; nothing else writes to this pipe
    if not leaders and not remote:
        return 0
    n = stop(list(leaders.values()), grace, remote.values())
    _say(f"the launcher (pid {launcher}) ended without stopping its workers: sent SIGTERM to {n} process "
         f"group(s) and {len(remote)} remote worker(s), SIGKILL to what was left after {grace:g} s")
    return 0


def _say(msg: str) -> None:
    try:
        print(f"disttorch launch (reaper): {msg}", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # nobody reads the launcher's stderr any more
        pass


class Reaper:
    """The launcher's side: starts the reaper process and tells it what to stop should the launcher die.

    Every method is a no-op once the reaper is gone (it could not start, or it died): the job then runs
    as before, without protection against the launcher's own death, and one warning says so.
    """

    def __init__(self, grace: float, python: str | None = None):
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.warned = False
        python = python or sys.executable
        try:
            # Its own session: a Ctrl-C or hangup that reaches the launcher's group does not reach it.
            # The pipe's write end stays in the launcher alone (close-on-exec; children close fds).
            self.proc = subprocess.Popen(
                [python, "-I", "-S", os.path.abspath(__file__), "--grace", f"{grace:g}",
                 "--launcher", str(os.getpid())],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        except OSError as e:
            self._warn(f"cannot start the reaper with {python}: {e.strerror or e}")

    def _warn(self, why: str) -> None:
        if not self.warned:
            self.warned = True
            print(f"disttorch launch: warning: {why}; if the launcher is killed, its workers will not be "
                  "stopped", file=sys.stderr, flush=True)

    def _send(self, msg: dict) -> None:
        with self.lock:
            if self.proc is None or self.proc.stdin is None or self.proc.stdin.closed:
                return
            try:
                self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
                self.proc.stdin.flush()
            except (OSError, ValueError):
                self._warn(f"the reaper (pid {self.proc.pid}) exited early (status {self.proc.poll()})")
                self.proc = None

    def add(self, leader: Leader) -> None:
        """Register a started process: its session and groups are stopped if the launcher dies."""
        self._send({"add": leader.pid, "start": leader.start, "term": "session" if leader.term_session else "group"})

    def drop(self, pid: int) -> None:
        """The launcher stopped this process's groups itself."""
        self._send({"drop": pid})

    def remote(self, key: str, argv: list[str]) -> None:
        """Register the command that stops a remote worker (run through ssh if the launcher dies)."""
        self._send({"remote": key, "argv": list(argv)})

    def unremote(self, key: str) -> None:
        self._send({"unremote": key})

    def close(self, clean: bool) -> None:
        """End the reaper: ``clean`` says the launcher stopped everything itself; otherwise the reaper
        stops what is still registered."""
        if clean:
            self._send({"done": True})
        with self.lock:
            proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
        except OSError:
            pass
        if clean:
            try:
                proc.wait(5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="reaper.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--grace", type=float, default=5.0, help="seconds between SIGTERM and SIGKILL")
    p.add_argument("--launcher", type=int, default=os.getppid(), help="the launcher's pid (for messages)")
    p.add_argument("--stop", metavar="PID:START", help="stop this leader's group now (a worker's guardian)")
    args = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if args.stop:
        pid, _, start = args.stop.partition(":")
        stop([Leader(int(pid), int(start) if start else None)], args.grace)
        return 0
    return serve(sys.stdin.buffer, args.grace, args.launcher)


if __name__ == "__main__":
    sys.exit(main())
