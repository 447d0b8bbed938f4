"""The ``Work`` handles of the ``mpi`` backend (mpi.py) and the threads behind them: the watchdog that aborts
the job when an MPI call blocks a caller's thread past its timeout, and the thread that polls point-to-point
requests carrying ``then`` callbacks. See "How work is driven" and "Timeouts" in mpi.py.

Imported only by mpi.py, so only when the mpi backend is chosen (importing ``mpi4py.MPI`` initialises MPI).
"""
from __future__ import annotations

import atexit
import datetime
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Optional

from mpi4py import MPI

from ..process_group import Work

if TYPE_CHECKING:
    from .mpi import MPIProcessGroup

_QUEUED, _RUNNING, _DONE = 0, 1, 2


def _seconds(timeout) -> Optional[float]:
    if isinstance(timeout, datetime.timedelta):
        return timeout.total_seconds()
    return None if timeout is None else float(timeout)


def _env_flag(name: str, default: bool) -> bool:
    v = os.environ.get(name)
    return default if v is None else v.strip().lower() not in ("0", "false", "no", "off", "")


# --- watchdog for MPI calls blocking on a caller's thread ----------------------------------------------------
_INLINE: dict = {}  # id(work) -> (deadline, group, work, timeout); set/del are atomic under the GIL: no lock
_DEFERRED: set = set()  # groups that may hold collectives nobody has announced to their thread yet
_WATCHDOG: list = []
_WATCHDOG_LOCK = threading.Lock()
_TICK = 0.1


def _watchdog_loop() -> None:
    tick = threading.Event()
    while True:
        tick.wait(_TICK)
        now = time.monotonic()
        for group in list(_DEFERRED):  # safety net: submitted, never waited on, and the caller blocks elsewhere
            group._announce_older(now - _TICK)
        for deadline, group, work, timeout in list(_INLINE.values()):
            if now > deadline:
                sys.stderr.write(f"RuntimeError: {group._timeout_message(work, timeout)}\nAborting the MPI job "
                                 "(MPI_Abort): a blocked MPI call cannot be cancelled.\n")
                sys.stderr.flush()
                MPI.COMM_WORLD.Abort(1)


def _announce_deferred(but=None) -> None:
    """Hand every not-yet-announced collective of other groups to their threads: the caller has moved on
    without waiting for them, so they are asynchronous and must progress on their own."""
    for group in list(_DEFERRED):
        if group is not but:
            group._announce_all()


def _start_watchdog() -> None:
    with _WATCHDOG_LOCK:
        if not _WATCHDOG:
            t = threading.Thread(target=_watchdog_loop, name="disttorch-mpi-watchdog", daemon=True)
            t.start()
            _WATCHDOG.append(t)


_ABORT_AT_EXIT: list = []


def _abort_at_exit() -> None:
    if _ABORT_AT_EXIT:
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(_ABORT_AT_EXIT[0])


atexit.register(_abort_at_exit)  # registered after mpi4py's finaliser, so it runs before MPI_Finalize


class _Flag:
    """A one-shot event on one raw lock: what ``Work`` needs from threading.Event at a tenth of its creation
    cost (a Work is created per collective call; an Event builds a Condition in Python)."""

    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if not self._set:
            self._set = True
            self._lock.release()

    def wait(self, timeout: Optional[float] = None) -> bool:
        if self._set:
            return True
        if self._lock.acquire(timeout=-1 if timeout is None else min(max(timeout, 0.0), threading.TIMEOUT_MAX)):
            self._lock.release()  # let the next waiter through
            return True
        return self._set


class _MPIWork(Work):
    """A collective queued on a group: run by the group's thread, or by the caller of ``wait()`` (fast path).

    Cheaper than ``Work`` to create and complete, since one is made per collective call: completion is
    ``_state == _DONE`` (set under the group's mutex), and the blocking flag and the callback list are
    created only when another thread waits on the work or registers a callback before it is done; a
    synchronous caller that runs the work itself needs neither.
    """

    __slots__ = ("_group", "description", "_fn", "_args", "_state", "_exc", "_result", "_flag", "_callbacks",
                 "_seq", "_t_submit", "_check")

    def __init__(self, group: "MPIProcessGroup", description: str, fn, args: tuple) -> None:
        self._group, self.description, self._fn, self._args, self._state = group, description, fn, args, _QUEUED
        self._exc = self._result = self._flag = self._callbacks = None
        self._seq, self._t_submit = 0, 0.0
        self._check = None  # (digest, fingerprint) to verify right before the call (MPIProcessGroup.verify_digest)

    def _run(self) -> None:
        """Run the MPI call on this thread (the group is marked busy with it), then complete the work."""
        exc = result = None
        try:
            if self._check is not None:
                self._group._verify_now(self._check)
            result = self._fn(*self._args)
        except MPI.Exception as e:
            exc = RuntimeError(f"MPI {self.description} failed on rank {self._group._grank}: {e.Get_error_string()}")
        except BaseException as e:  # noqa: BLE001 - handed to the waiter
            exc = e
        self._fn = self._args = None
        self._exc, self._result = exc, result
        g = self._group
        mutex = g._mutex
        mutex.acquire()  # not `with` (3x dearer): done, and the group free for the next collective, in one step
        try:
            self._state = _DONE
            g._busy, g._running = False, None
            if g._pending:
                g._cv.notify_all()
            flag, callbacks, self._callbacks = self._flag, self._callbacks, None
        finally:
            mutex.release()
        if flag is not None:
            flag.set()
        if callbacks:
            for cb in callbacks:
                cb(self)

    def _run_inline(self, timeout: float) -> None:
        """``_run`` on the caller's thread (the work claimed), watched: a call blocked past ``timeout`` makes
        the watchdog report it and abort the job (a blocked MPI call cannot raise)."""
        key = id(self)
        _INLINE[key] = (time.monotonic() + timeout, self._group, self, timeout)
        try:
            self._run()
        finally:
            del _INLINE[key]

    def _finish(self, exc=None, result=None) -> None:  # Work's interface; _run completes collectives
        raise NotImplementedError("_MPIWork completes through _run")

    def then(self, callback) -> None:
        g = self._group
        if self._state == _QUEUED:  # someone will act on completion later: the work is asynchronous
            g._announce(self._seq)
        with g._mutex:
            if self._state != _DONE:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                return
        callback(self)

    def is_completed(self) -> bool:
        if self._state == _QUEUED:
            self._group._announce(self._seq)
        return self._state == _DONE

    def is_success(self) -> bool:
        return self._state == _DONE and self._exc is None

    def wait(self, timeout=None) -> bool:
        g = self._group
        if timeout is None:
            timeout = g.timeout
        elif timeout.__class__ is not float:
            timeout = _seconds(timeout)
        if self._state == _QUEUED and g._inline_ok and g._claim(self):  # the fast path: run it here
            self._run_inline(timeout)
        elif self._state != _DONE:
            if self._state == _QUEUED:
                g._announce(self._seq)
            with g._mutex:
                flag = None
                if self._state != _DONE:
                    flag = self._flag
                    if flag is None:
                        flag = self._flag = _Flag()
            if flag is not None and not flag.wait(timeout):
                g._timed_out(self, timeout)
        if self._exc is not None:
            raise self._exc
        return True


_P2P_PENDING: list = []  # _RequestWorks with completion callbacks, polled by one thread
_P2P_CV = threading.Condition()
_P2P_THREAD: list = []


def _p2p_loop() -> None:
    """Complete point-to-point requests that someone registered a ``then`` callback on (the torch.distributed
    layer does for every isend/irecv). Tests every pending request (not FIFO waits: requests may complete in
    any order), backing off from 20 us to 1 ms while nothing progresses."""
    delay = 0.0
    while True:
        with _P2P_CV:
            while not _P2P_PENDING:
                _P2P_CV.wait()
                delay = 0.0
            works = list(_P2P_PENDING)
        progressed = False
        for w in works:
            progressed |= w._poll()
        with _P2P_CV:
            _P2P_PENDING[:] = [w for w in _P2P_PENDING if not w._done.is_set()]
        if progressed:
            delay = 0.0
        else:
            delay = min(max(delay * 2, 2e-5), 1e-3)
            time.sleep(delay)


class _RequestWork(Work):
    """A point-to-point Isend/Irecv, completed by ``wait()`` (a blocking MPI Wait under the watchdog), by
    ``is_completed()`` (a Test), or by the polling thread once a ``then`` callback is registered."""

    def __init__(self, group: "MPIProcessGroup", description: str, request, buf, recv: bool) -> None:
        super().__init__(description)
        self._group, self._request, self._buf, self._recv = group, request, buf, recv
        self._status = MPI.Status() if recv else None
        self._req_lock = threading.Lock()

    def _complete(self) -> None:
        # the source comes in this communicator's numbering, i.e. the group rank
        result = self._status.Get_source() if self._recv else None
        self._buf = None
        self._finish(None, result)

    def _poll(self) -> bool:
        """Test once without blocking; True when the work is (now) complete."""
        if self._done.is_set():
            return True
        if not self._req_lock.acquire(blocking=False):  # a waiter is inside Wait on it
            return False
        try:
            if not self._done.is_set() and self._request.Test(self._status):
                self._complete()
        except MPI.Exception as e:
            self._finish(RuntimeError(f"MPI {self.description} failed on rank {self._group._grank}: "
                                      f"{e.Get_error_string()}"))
        finally:
            self._req_lock.release()
        return self._done.is_set()

    def is_completed(self) -> bool:
        return self._poll()

    def then(self, callback) -> None:
        if not self._poll():
            with _P2P_CV:
                if not _P2P_THREAD:
                    t = threading.Thread(target=_p2p_loop, name="disttorch-mpi-p2p", daemon=True)
                    t.start()
                    _P2P_THREAD.append(t)
                _P2P_PENDING.append(self)
                _P2P_CV.notify()
        super().then(callback)

    def wait(self, timeout=None) -> bool:
        g = self._group
        timeout = g.timeout if timeout is None else _seconds(timeout)
        if _DEFERRED:
            _announce_deferred()
        with self._req_lock:
            if not self._done.is_set():
                _INLINE[id(self)] = (time.monotonic() + timeout, g, self, timeout)
                try:
                    self._request.Wait(self._status)
                except MPI.Exception as e:
                    self._finish(RuntimeError(f"MPI {self.description} failed on rank {g._grank}: "
                                              f"{e.Get_error_string()}"))
                else:
                    self._complete()
                finally:
                    del _INLINE[id(self)]
        if self._exc is not None:
            raise self._exc
        return True
