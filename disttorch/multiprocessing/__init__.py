"""``torch.multiprocessing``: Python's ``multiprocessing`` plus tensors that cross processes in shared memory.

Everything of :mod:`multiprocessing` is here (``Process``, ``Queue``, ``SimpleQueue``, ``Pipe``, ``Pool``,
``Manager``, ``Event``, ``Lock``, ``Value``, ``Array``, ``set_start_method``, ``get_context``...). Importing
this module registers reductions with multiprocessing's ``ForkingPickler``: a CPU tensor sent through a
queue, a pipe, a pool or the arguments of a ``spawn``/``forkserver`` process moves to shared memory in
place (as :meth:`Tensor.share_memory_`) and the receiver maps the same memory, so in-place updates in
one process (Hogwild-style ``optimizer.step()``) are seen by all. With ``fork`` a tensor passed as a
Process argument is inherited: it is shared only if it was shared before the fork, as in PyTorch.

Two sharing strategies, as PyTorch on Linux: ``"file_descriptor"`` (default; anonymous memory passed as
file descriptors, freed by the kernel when the last process holding it ends, however it ends) and
``"file_system"`` (named files in ``/dev/shm``, reference-counted; what a killed process held is removed
when the job's last process has exited). :func:`spawn` and :func:`start_processes` start ``nprocs``
processes running ``fn(i, *args)`` and raise :class:`ProcessRaisedException` (with the child's traceback)
or :class:`ProcessExitedException` (exit code or signal) when one fails.

Example:
    >>> import disttorch.multiprocessing as mp
    >>> model.share_memory()  # doctest: +SKIP
    >>> procs = [mp.Process(target=train, args=(rank, model)) for rank in range(4)]  # doctest: +SKIP
"""
from __future__ import annotations

import multiprocessing
import sys
from multiprocessing import *  # noqa: F401,F403

from .reductions import init_reductions
from .spawn import (  # noqa: F401
    ENV_VAR_PARALLEL_START, ProcessContext, ProcessException, ProcessExitedException, ProcessRaisedException, spawn,
    SpawnContext, start_processes,
)

__all__ = ["set_sharing_strategy", "get_sharing_strategy", "get_all_sharing_strategies", "spawn", "start_processes",
           "ProcessContext", "SpawnContext", "ProcessException", "ProcessRaisedException", "ProcessExitedException"]
__all__ += multiprocessing.__all__  # type: ignore[attr-defined]

if sys.platform == "darwin" or sys.platform == "win32":
    _sharing_strategy = "file_system"
    _all_sharing_strategies = {"file_system"}
else:
    _sharing_strategy = "file_descriptor"
    _all_sharing_strategies = {"file_descriptor", "file_system"}


def set_sharing_strategy(new_strategy: str) -> None:
    """Set the strategy for sharing CPU tensors (this process only).

    Set it before starting processes: with ``"file_system"`` the job's processes then share one cleanup
    helper (multiprocessing's resource tracker).

    Args:
        new_strategy: one of :func:`get_all_sharing_strategies` (``"file_descriptor"``, ``"file_system"``).

    Raises:
        AssertionError: for another name (PyTorch asserts too).
    """
    global _sharing_strategy
    if new_strategy not in _all_sharing_strategies:
        raise AssertionError(f"invalid sharing strategy {new_strategy!r}, expected one of "
                             f"{{{', '.join(repr(s) for s in sorted(_all_sharing_strategies))}}}")
    if new_strategy == "file_system":
        # Start the resource tracker now, so that processes started from here on share it: it removes the
        # segments of processes that were killed once the whole job has exited.
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
    _sharing_strategy = new_strategy


def get_sharing_strategy() -> str:
    """Return the current strategy for sharing CPU tensors."""
    return _sharing_strategy


def get_all_sharing_strategies() -> set:
    """Return the set of sharing strategies supported on this system."""
    return _all_sharing_strategies


init_reductions()
