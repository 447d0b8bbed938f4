"""A worker ends when the launcher that started it is gone.

``disttorch launch`` sets DISTTORCH_PARENT_PID to the pid that should be the worker's parent: the launcher
for the workers it starts itself, the MPI process that starts a rank, the remote sshd for a worker started
through ssh. ``import disttorch`` calls :func:`start`, which does nothing unless this process's parent *is*
that pid, so the worker's own children (DataLoader workers, subprocesses that import disttorch) and any
process outside a launch never act on the variable. In the worker it:

- starts one daemon thread that blocks until the parent exits (a pidfd on Linux >= 5.3: no polling; else a
  check of ``os.getppid()`` once a second, a re-parented process sees another parent);
- for a worker that does not lead its process group, also sets the Linux parent-death signal (SIGTERM), so
  it ends even while some C call holds the GIL. A group leader does not: that signal would end it before it
  could end its group.

When the parent is gone, a worker that leads its process group starts a guardian (launcher/reaper.py, run
with ``python -I -S`` in a session of its own) that sends SIGTERM to the worker's group, and to the other
groups of the session the worker leads, waits up to DISTTORCH_PARENT_GRACE seconds (default 5) and sends
SIGKILL to what is left; the worker ends with the rest. A worker that does not lead its group ends itself
alone (SIGTERM, SIGKILL after the grace period): the rest of that group is not its to end. The launcher's
reaper does the same from outside, also for workers that never import disttorch.
"""
from __future__ import annotations

import os
import signal
import sys
import threading

# The same names as launcher/reaper.py (PARENT_PID_VAR, PARENT_GRACE_VAR); this module must not import it.
PARENT_PID_VAR = "DISTTORCH_PARENT_PID"
PARENT_GRACE_VAR = "DISTTORCH_PARENT_GRACE"
POLL_SECONDS = 1.0  # only where pidfds are not available
_PR_SET_PDEATHSIG = 1

_state: dict = {"parent": None, "thread": None, "fd": None}


def watched_parent() -> int | None:
    """The parent pid this process watches, None when the watch is off."""
    return _state["parent"]


def _expected_parent(environ) -> int | None:
    try:
        pid = int(environ.get(PARENT_PID_VAR, ""))
    except ValueError:
        return None
    return pid if pid > 1 else None


def _grace(environ) -> float:
    try:
        return max(0.0, float(environ.get(PARENT_GRACE_VAR, "5")))
    except ValueError:
        return 5.0


def start(environ=None) -> bool:
    """Watch the parent named by DISTTORCH_PARENT_PID if it is this process's parent; True when watching."""
    environ = os.environ if environ is None else environ
    parent = _expected_parent(environ)
    if parent is None or _state["thread"] is not None or os.getppid() != parent:
        return False
    grace = _grace(environ)
    if os.getpgrp() != os.getpid():
        _set_pdeathsig(signal.SIGTERM)
    fd = None
    try:
        fd = os.pidfd_open(parent)
    except (AttributeError, OSError):  # Python without it, Linux < 5.3, not Linux, or a seccomp filter
        pass
    _state.update(parent=parent, fd=fd)
    t = threading.Thread(target=_watch, args=(parent, fd, grace), name="disttorch-parent-watch", daemon=True)
    _state["thread"] = t
    t.start()
    return True


def _set_pdeathsig(sig: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _after_fork_in_child() -> None:
    # The watch thread does not survive fork (a DataLoader worker has its own parent check): drop its state.
    fd = _state["fd"]
    _state.update(parent=None, thread=None, fd=None)
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _watch(parent: int, fd: int | None, grace: float) -> None:
    # The check after opening the pidfd closes the race with a parent that died before it was opened.
    if fd is not None and os.getppid() == parent:
        import select

        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll():
            pass
    while os.getppid() == parent:
        threading.Event().wait(POLL_SECONDS)
    _parent_gone(parent, grace)


def _parent_gone(parent: int, grace: float) -> None:
    me = os.getpid()
    leader = os.getpgrp() == me
    try:
        print(f"disttorch: worker pid {me}: its parent (pid {parent}, the launcher or the process that "
              f"started it) is gone; ending {'its process group' if leader else 'it'}", file=sys.stderr,
              flush=True)
    except (OSError, ValueError):  # its output went to the launcher, which is gone
        pass
    if leader and _start_guardian(me, grace):
        # The guardian's SIGTERM (SIGKILL after the grace period) ends this process with the rest of its
        # group long before this wait is over; still here means the guardian failed: do it from here.
        threading.Event().wait(grace + 5.0)
    for i, s in enumerate((signal.SIGTERM, signal.SIGKILL)):
        try:
            if leader:
                os.killpg(me, s)
            else:
                os.kill(me, s)
        except OSError:
            return
        if i == 0:
            threading.Event().wait(grace)


def _start_guardian(me: int, grace: float) -> bool:
    """Start launcher/reaper.py to stop this process's group from outside it; False when it cannot start."""
    import importlib.util
    import subprocess

    try:
        spec = importlib.util.find_spec("disttorch.launcher.reaper")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin or not sys.executable:
        return False
    start = ""  # without /proc the guardian goes without its check that the pid still names this process
    try:
        with open(f"/proc/{me}/stat", "rb") as f:
            stat = f.read()
        start = stat[stat.rindex(b")") + 2:].split()[19].decode()
    except (OSError, ValueError, IndexError):
        pass
    try:
        subprocess.Popen([sys.executable, "-I", "-S", spec.origin, "--stop", f"{me}:{start}", "--grace", f"{grace:g}"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True)
    except OSError:
        return False
    return True
