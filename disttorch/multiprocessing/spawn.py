"""Start N processes running ``fn(i, *args)`` and propagate their failures, as ``torch.multiprocessing.spawn``.

Each child runs :func:`_wrap`: an exception in ``fn`` is caught, its traceback written as UTF-8 text to
a file only this job knows (a private ``0700`` directory per call), and the child exits with code 1.
:meth:`ProcessContext.join` waits for any child to end; on the first failure it terminates the others
(SIGTERM, then SIGKILL after the grace period) and raises :class:`ProcessRaisedException` quoting the
child's traceback, or :class:`ProcessExitedException` naming the exit code or the signal. Unlike
PyTorch, the traceback file is plain text, never unpickled.
"""
from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sys
import tempfile
import time
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Callable, Optional

ENV_VAR_PARALLEL_START = "TORCH_MP_PARALLEL_START"

log = logging.getLogger(__name__)

__all__ = ["ProcessContext", "ProcessException", "ProcessExitedException", "ProcessRaisedException", "spawn",
           "SpawnContext", "start_processes"]


class ProcessException(Exception):
    """Base of the errors :meth:`ProcessContext.join` raises; ``error_index`` and ``pid`` name the process."""

    __slots__ = ["error_index", "error_pid"]

    def __init__(self, msg: str, error_index: int, pid: int):
        super().__init__(msg)
        self.msg = msg
        self.error_index = error_index
        self.pid = pid

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.pid)


class ProcessRaisedException(ProcessException):
    """Exception raised when a process failed due to an exception raised by the code."""

    def __init__(self, msg: str, error_index: int, error_pid: int):
        super().__init__(msg, error_index, error_pid)


class ProcessExitedException(ProcessException):
    """Exception raised when a process failed due to signal or exited with a specific code."""

    __slots__ = ["exit_code"]

    def __init__(self, msg: str, error_index: int, error_pid: int, exit_code: int, signal_name: Optional[str] = None):
        super().__init__(msg, error_index, error_pid)
        self.exit_code = exit_code
        self.signal_name = signal_name

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.pid, self.exit_code, self.signal_name)


def _prctl_pr_set_pdeathsig(sig: int) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (no effect elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(sig))  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _wrap(fn: Callable, i: int, args: tuple, error_file: str) -> None:
    # Non-daemonic children must not outlive a parent that died before joining them.
    _prctl_pr_set_pdeathsig(signal.SIGINT)
    try:
        fn(i, *args)
    except KeyboardInterrupt:
        pass  # SIGINT: killed by the parent, nothing to report
    except Exception:
        import traceback

        # The parent reads this file only after this process has exited.
        with open(error_file, "w", encoding="utf-8") as fh:
            fh.write(traceback.format_exc())
        sys.exit(1)


class ProcessContext:
    """The processes :func:`start_processes` started, and :meth:`join` to wait for them.

    Args:
        processes: the ``multiprocessing`` Process objects, in index order.
        error_files: per process, the path its traceback is written to if ``fn`` raises.
    """

    def __init__(self, processes: list, error_files: list) -> None:
        self.error_files = error_files
        self.processes = processes
        self.sentinels = {process.sentinel: index for index, process in enumerate(processes)}

    def pids(self) -> list:
        """The process ids, in index order."""
        return [int(process.pid) for process in self.processes]

    def _join_procs_with_timeout(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        for process in self.processes:
            process.join(max(0.0, end - time.monotonic()))

    def join(self, timeout: Optional[float] = None, grace_period: Optional[float] = None) -> bool:
        """Wait for the processes; on the first failure end the others and raise its cause.

        Args:
            timeout: wait at most this long (seconds) for a process to end; ``None`` waits until one does.
            grace_period: after a failure, wait this long for the others to end by themselves before
                SIGTERM, then as long again before SIGKILL (30 s before SIGKILL when ``None``).

        Returns:
            True when every process has ended successfully, False while some still run.

        Raises:
            ProcessRaisedException: ``fn`` raised in a process; the message quotes its traceback.
            ProcessExitedException: a process exited with a non-zero code or was killed by a signal.
        """
        if len(self.sentinels) == 0:
            return True
        ready = multiprocessing.connection.wait(self.sentinels.keys(), timeout=timeout)
        error_index = None
        for sentinel in ready:
            index = self.sentinels.pop(sentinel)
            process = self.processes[index]
            process.join()
            if process.exitcode != 0:
                error_index = index
                break
        if error_index is None:
            if len(self.sentinels) == 0:
                self._remove_error_dir()
            return len(self.sentinels) == 0

        if grace_period is not None:
            self._join_procs_with_timeout(grace_period)
        for process in self.processes:
            if process.is_alive():
                log.warning("Terminating process %s via signal SIGTERM", process.pid)
                process.terminate()
        # A process stuck in native code may never run Python's SIGTERM handling: SIGKILL after a wait.
        self._join_procs_with_timeout(30 if grace_period is None else grace_period)
        for process in self.processes:
            if process.is_alive():
                log.warning("Unable to shutdown process %s via SIGTERM , forcefully exiting via SIGKILL", process.pid)
                process.kill()
            process.join()

        failed_process = self.processes[error_index]
        error_file = self.error_files[error_index]
        try:
            with open(error_file, encoding="utf-8", errors="replace") as fh:
                original_trace = fh.read()
            os.unlink(error_file)
        except OSError:
            original_trace = None
        if original_trace is None:  # the file exists only if fn raised
            exitcode = failed_process.exitcode
            if exitcode < 0:
                try:
                    name = signal.Signals(-exitcode).name
                except ValueError:
                    name = f"<Unknown signal {-exitcode}>"
                raise ProcessExitedException(f"process {error_index:d} terminated with signal {name}",
                                             error_index=error_index, error_pid=failed_process.pid,
                                             exit_code=exitcode, signal_name=name)
            raise ProcessExitedException(f"process {error_index:d} terminated with exit code {exitcode:d}",
                                         error_index=error_index, error_pid=failed_process.pid, exit_code=exitcode)
        msg = f"\n\n-- Process {error_index:d} terminated with the following error:\n"
        msg += original_trace
        raise ProcessRaisedException(msg, error_index, failed_process.pid)

    def _own_error_dir(self, path: str) -> None:
        # Removed once every process has been joined, else when this context is collected or at exit.
        self._error_dir = weakref.finalize(self, shutil.rmtree, path, True)

    def _remove_error_dir(self) -> None:
        cleanup = getattr(self, "_error_dir", None)
        if cleanup is not None:
            cleanup()


class SpawnContext(ProcessContext):
    """The former name of :class:`ProcessContext` (warns)."""

    def __init__(self, processes: list, error_files: list) -> None:
        warnings.warn("SpawnContext is renamed to ProcessContext since 1.4 release.", stacklevel=2)
        super().__init__(processes, error_files)


def start_processes(fn: Callable[..., Any], args: tuple = (), nprocs: int = 1, join: bool = True, daemon: bool = False,
                    start_method: str = "spawn") -> Optional[ProcessContext]:
    """Start ``nprocs`` processes running ``fn(i, *args)`` with any start method (see :func:`spawn`).

    With ``start_method="forkserver"`` and ``TORCH_MP_PARALLEL_START=1`` in the environment the
    processes are started from a thread pool, as PyTorch does.

    Returns:
        None when ``join`` (after every process ended successfully), else the :class:`ProcessContext`.
    """
    start_parallel = start_method == "forkserver" and os.environ.get(ENV_VAR_PARALLEL_START, "0") == "1"
    mp = multiprocessing.get_context(start_method)
    error_dir = tempfile.mkdtemp(prefix="disttorch-errorfiles-")  # 0700: only this user can write tracebacks
    error_files: list = [None] * nprocs
    processes: list = [None] * nprocs

    def start_process(i: int):
        error_file = os.path.join(error_dir, f"process{i}.txt")
        process = mp.Process(target=_wrap, args=(fn, i, args, error_file), daemon=daemon)
        process.start()
        return i, process, error_file

    try:
        if not start_parallel:
            for i in range(nprocs):
                idx, process, error_file = start_process(i)
                error_files[idx], processes[idx] = error_file, process
        else:
            with ThreadPoolExecutor(max_workers=nprocs) as executor:
                for fut in as_completed([executor.submit(start_process, i) for i in range(nprocs)]):
                    idx, process, error_file = fut.result()
                    error_files[idx], processes[idx] = error_file, process
    except BaseException:
        for p in processes:
            if p is not None and p.is_alive():
                p.kill()
                p.join()
        shutil.rmtree(error_dir, ignore_errors=True)
        raise
    context = ProcessContext(processes, error_files)
    context._own_error_dir(error_dir)
    if not join:
        return context
    while not context.join():
        pass
    return None


def spawn(fn: Callable[..., Any], args: tuple = (), nprocs: int = 1, join: bool = True, daemon: bool = False,
          start_method: str = "spawn") -> Optional[ProcessContext]:
    """Spawn ``nprocs`` processes that run ``fn(i, *args)``, ``i`` being the process index.

    If one of the processes exits with a non-zero exit status, the remaining processes are killed and an
    exception is raised with the cause of termination; an exception raised in a child is forwarded with
    its traceback in the message.

    Args:
        fn: the entry point, defined at the top level of a module so that it can be pickled.
        args: arguments passed to ``fn`` after the process index.
        nprocs: number of processes.
        join: wait for all processes (raising on the first failure).
        daemon: the processes' daemon flag.
        start_method: deprecated; always ``"spawn"`` (use :func:`start_processes` for another one).

    Returns:
        None if ``join`` is True, else a :class:`ProcessContext`.

    Example:
        >>> def work(rank, world_size):
        ...     print(rank, world_size)
        >>> spawn(work, args=(2,), nprocs=2)  # doctest: +SKIP
    """
    if start_method != "spawn":
        msg = (f"This method only supports start_method=spawn (got: {start_method}).\n"
               "To use a different start_method use:\n\t\t torch.multiprocessing.start_processes(...)")
        warnings.warn(msg, FutureWarning, stacklevel=2)
    return start_processes(fn, args, nprocs, join, daemon, start_method="spawn")
