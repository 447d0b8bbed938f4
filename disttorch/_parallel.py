"""The intra-op thread pool: chunked NumPy work on several cores (``set_num_threads`` sizes it).

NumPy releases the GIL inside its ufunc, copy and matmul loops, so a kernel split into contiguous pieces
(leading-axis slices, flat ranges) runs its pieces on several cores from plain Python threads. A kernel
asks ``if a.size >= MIN_SIZE`` (or ``MIN_STREAM`` for memory-bound kernels: one integer compare; both are
``sys.maxsize`` with one thread or with ``DISTTORCH_PARALLEL=0``) and then calls :func:`run_ranges` or
:func:`run_tasks`; below it the single-threaded NumPy code runs unchanged, and stays the reference every
split path is tested against (bitwise).

- The pool is persistent: ``threads() - 1`` daemon workers plus the calling thread, started on first use
  (never at import) and made anew in a forked child (DataLoader workers) on its first parallel call.
- One parallel region at a time: a region entered while another runs (a second user thread, or a task
  that itself calls a split kernel) runs its pieces serially in the caller; the result is the same.
- Pieces that call BLAS (``blas=True``) run with BLAS at one thread for the region: two Python threads
  that each drive a multi-threaded OpenBLAS spin against each other (measured 40-60x slower on 2 cores).
- Thread count: ``set_num_threads(n)``, else ``OMP_NUM_THREADS`` (what ``disttorch launch`` sets to 1
  when ranks share a node), else the CPUs this process may run on.
"""
from __future__ import annotations

import itertools
import os
import sys
import threading
from contextvars import copy_context
from queue import SimpleQueue

import numpy as np

__all__ = ["MIN_SIZE", "MIN_STREAM", "PIECES_PER_THREAD", "threads", "set_threads", "split", "run_ranges",
           "run_tasks", "map_into", "ufunc", "ufunc2"]

# Elements below which a split costs more than it saves, measured on the 2-core build machine (a VM shared
# with other jobs, load 1-3; on/off alternated in one process, medians):
# - a piece that makes many small NumPy calls pays a GIL hand-off (an OS wake-up, 15-20 us here) per call
#   when two threads run, and one core already saturates this machine's memory bandwidth (np.maximum over
#   1 Mi float32: 387 us on one thread, 423 us on two, plain threads or the pool alike);
# - at 256 Ki and 1 Mi elements every split kernel was slower (Adam 1.3-1.7x, 2x2 max pool 1.2-1.6x,
#   layer_norm 2x, exp 1.06-1.5x); at 4 Mi, max pool ran 0.45x, exp 0.66x, layer_norm 0.93x of one thread.
# So ``MIN_SIZE`` (kernels computing per element or making several passes: optimizer updates, norms,
# pooling, unary math) is 4 Mi elements (16 MB of float32) and ``MIN_STREAM`` (single-pass memory-bound
# kernels: relu, row sums, im2col copies) 16 Mi. One compare per kernel either way. A machine with more
# memory channels and faster wake-ups gains earlier: ``DISTTORCH_PARALLEL_MIN_SIZE`` sets ``MIN_SIZE``
# (``MIN_STREAM`` is 4x it); ``benchmarks/train_step_threads.py`` measures the pool on and off.
# Re-measured on a quiet machine: a region costs ~80 us of hand-offs (np.maximum over 256 Ki float32: 40 us alone,
# 113 us split), 1 Mi breaks even (209 / 199 us), 4 Mi gains 2x (1920 / 976 us). Workers that poll with
# sleep(0) for 200 us before sleeping were slower still (4 Mi: 1997 us): the polling thread contends for the GIL.
_BASE_MIN_SIZE = 1 << 22
_STREAM_FACTOR = 4
ENABLED = os.environ.get("DISTTORCH_PARALLEL", "1") != "0"
MIN_SIZE = sys.maxsize
MIN_STREAM = sys.maxsize
# Pieces per thread in a split: a few, so that a thread the OS schedules late costs at most a piece.
PIECES_PER_THREAD = 2

_STATE = {"n": 1, "pool": None, "pid": None, "blas": None}
_LOCK = threading.Lock()


def _env_threads() -> int:
    """The default thread count: ``OMP_NUM_THREADS`` if it is a positive integer, else the usable CPUs."""
    val = os.environ.get("OMP_NUM_THREADS", "").strip().split(",")[0]
    if val.isdigit() and int(val) > 0:
        return int(val)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _base_min_size() -> int:
    val = os.environ.get("DISTTORCH_PARALLEL_MIN_SIZE", "")
    return int(val) if val.isdigit() and int(val) > 0 else _BASE_MIN_SIZE


def threads() -> int:
    """Threads a split kernel uses (the caller included)."""
    return _STATE["n"]


def set_threads(n: int) -> None:
    """Use ``n`` threads (the caller included) for split kernels; 1 turns splitting off."""
    global MIN_SIZE, MIN_STREAM
    n = int(n)
    if n < 1:
        raise RuntimeError(f"set_num_threads expects a positive integer (got {n})")
    if n != _STATE["n"]:
        _stop_pool()
        _STATE["n"] = n
    MIN_SIZE = _base_min_size() if (ENABLED and n > 1) else sys.maxsize
    MIN_STREAM = MIN_SIZE * _STREAM_FACTOR if MIN_SIZE != sys.maxsize else sys.maxsize


def split(total: int, parts: int, align: int = 1) -> list:
    """``[start, stop)`` ranges covering ``range(total)`` in at most ``parts`` near-equal contiguous pieces,
    each boundary a multiple of ``align`` (so pieces can follow cache lines or rows)."""
    parts = max(1, min(parts, total // max(align, 1) or 1))
    units = -(-total // align)
    bounds = [min(total, (units * i // parts) * align) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def run_ranges(total: int, body, align: int = 1, blas: bool = False) -> list:
    """``body(start, stop)`` over :func:`split` pieces of ``range(total)`` (``PIECES_PER_THREAD`` per thread,
    handed to whichever thread is free); the results in order."""
    ranges = split(total, _STATE["n"] * PIECES_PER_THREAD, align)
    return run_tasks([(lambda a=a, b=b: body(a, b)) for a, b in ranges], blas=blas)


def run_tasks(tasks: list, blas: bool = False) -> list:
    """Run the zero-argument callables ``tasks`` on the pool and the calling thread; their results in order.

    Returns only when every task has finished (a task's exception is raised after that, so no array a task
    writes is still being written when the caller sees the error).
    """
    if len(tasks) < 2 or _STATE["n"] < 2 or not ENABLED or not _LOCK.acquire(blocking=False):
        return [t() for t in tasks]
    try:
        pool = _pool()
        restore = _blas_serial() if blas else None
        try:
            return pool.run(tasks)
        finally:
            if restore:
                blas_restore(restore)
    finally:
        _LOCK.release()


# Flat pieces start at multiples of this many elements, so every SIMD loop sees the same vector/tail split of
# each element as on one thread (the only tail is the array's own, at the end of the last piece).
_ALIGN = 64


def map_into(fn, out, *arrays) -> None:
    """``fn(*pieces, out=out_piece)`` over flat pieces of C-contiguous ``out`` and same-size C-contiguous
    ``arrays`` (NumPy scalars and 0-d arrays are passed whole): an element-wise kernel on every thread."""
    of = out.reshape(-1)
    flat = [a.reshape(-1) if getattr(a, "ndim", 0) else a for a in arrays]

    def piece(i: int, j: int) -> None:
        fn(*[a[i:j] if getattr(a, "ndim", 0) else a for a in flat], out=of[i:j])
    run_ranges(of.size, piece, align=_ALIGN)


def ufunc(f, a):
    """``f(a)`` for a NumPy unary ufunc and a C-contiguous array, split over the pool (bitwise as ``f(a)``)."""
    if not a.flags.c_contiguous:
        return f(a)
    out = np.empty(a.shape, dtype=f.resolve_dtypes((a.dtype, None))[-1])
    map_into(f, out, a)
    return out


def ufunc2(f, a, b):
    """``f(a, b)`` for a NumPy binary ufunc split over the pool (bitwise as ``f(a, b)``), or ``None`` when the
    operands are not two same-shape C-contiguous arrays or an array and a 0-d operand (the caller then runs
    ``f(a, b)`` itself)."""
    nd = np.ndarray
    if a.__class__ is not nd or not a.flags.c_contiguous or f.__class__ is not np.ufunc:
        return None
    if b.__class__ is nd and b.ndim:
        if b.shape != a.shape or not b.flags.c_contiguous:
            return None
    elif not isinstance(b, (nd, np.generic)):
        return None
    out = np.empty(a.shape, dtype=f.resolve_dtypes((a.dtype, b.dtype, None))[-1])
    map_into(f, out, a, b)
    return out


class _Job:
    """One region's pieces, taken in order by whichever thread is free (the caller included).

    Dynamic hand-out bounds what a late worker costs: one the OS wakes late finds the pieces already done by
    the caller, which then waits only for pieces in flight. (On a machine whose cores are busy with other
    processes a split still costs more than it saves, as any intra-op pool does: measured up to 1.8x on a
    Transformer step at load 5-8 on 2 cores; ``set_num_threads(1)`` is the remedy there.)
    """

    __slots__ = ("tasks", "next", "results", "errors", "left", "lock", "done")

    def __init__(self, tasks: list) -> None:
        self.tasks = tasks
        self.next = itertools.count().__next__  # atomic under the GIL
        self.results = [None] * len(tasks)
        self.errors = []
        self.left = len(tasks)
        self.lock = threading.Lock()
        self.done = threading.Event()

    def work(self) -> None:
        n = len(self.tasks)
        while True:
            i = self.next()
            if i >= n:
                return
            try:
                self.results[i] = self.tasks[i]()
            except BaseException as exc:  # re-raised by the caller once every piece has finished
                self.errors.append(exc)
            with self.lock:
                self.left -= 1
                if not self.left:
                    self.done.set()


class _Pool:
    """``size`` daemon threads, each waiting on its own queue for jobs to help with."""

    def __init__(self, size: int) -> None:
        self.queues = [SimpleQueue() for _ in range(size)]
        self.threads = [threading.Thread(target=self._work, args=(q,), name=f"disttorch-intraop-{i}", daemon=True)
                        for i, q in enumerate(self.queues)]
        for t in self.threads:
            t.start()

    @staticmethod
    def _work(q) -> None:
        while True:
            item = q.get()
            if item is None:
                return
            ctx, job = item
            ctx.run(job.work)

    def run(self, tasks: list) -> list:
        job = _Job(tasks)
        # Helpers run in a copy of the caller's context: NumPy's error state (np.errstate) lives there.
        for q in self.queues[:len(tasks) - 1]:
            q.put((copy_context(), job))
        job.work()
        job.done.wait()
        if job.errors:
            raise job.errors[0]
        return job.results

    def stop(self) -> None:
        for q in self.queues:
            q.put(None)


def _pool() -> _Pool:
    pool = _STATE["pool"]
    if pool is None or _STATE["pid"] != os.getpid():
        pool = _STATE["pool"] = _Pool(_STATE["n"] - 1)
        _STATE["pid"] = os.getpid()
    return pool


def _stop_pool() -> None:
    pool = _STATE["pool"]
    _STATE["pool"] = None
    if pool is not None and _STATE["pid"] == os.getpid():
        with _LOCK:  # not while a region is running
            pool.stop()


def _blas_serial() -> list:
    """Set every multi-threaded BLAS to one thread; returns ``(controller, previous)`` pairs to restore."""
    key = len(sys.modules)  # an import since the last look may have loaded another BLAS (scipy's, torch's)
    cached = _STATE["blas"]
    if cached is None or cached[0] != key:
        try:
            from threadpoolctl import ThreadpoolController

            ctls = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
        except Exception:  # pragma: no cover - threadpoolctl is a dependency; without it, leave BLAS alone
            ctls = []
        cached = _STATE["blas"] = (len(sys.modules), ctls)
    ctls = cached[1]
    restore = []
    for ctl in ctls:
        prev = ctl.get_num_threads()
        if prev and prev > 1:
            ctl.set_num_threads(1)
            restore.append((ctl, prev))
    return restore


# Multiply-adds from which a product may use BLAS's own threads (with several threads). OpenBLAS's workers spin
# for ~0.1 s of CPU after every multi-threaded call (measured here: 0.105 s of CPU in a 0.2 s sleep after one
# GEMM; lowering the thread count does not stop them), and a spinning worker takes the core a pool thread or a
# compiled kernel's piece needs: a 2-thread CNN step (small products between pool regions) ran 10.8-12.6 ms
# with BLAS threads against 8.7-9.2 ms with BLAS at one thread. Below this size a product gains little from a
# second core, so it runs on one; above it the product's own time dominates (the MLP's 33-51 M products).
GEMM_THREADED_MIN = 1 << 22
# OpenBLAS runs a product on one thread anyway below this many multiply-adds (matrix-vector products: elements).
_BLAS_THREADS_FROM = 9216


def matmul(xp, a, b, out=None):
    """``xp.matmul(a, b)`` (into ``out`` if given), with BLAS held to one thread for a product of fewer than
    :data:`GEMM_THREADED_MIN` multiply-adds per matrix when the pool runs several threads (see there)."""
    if _STATE["n"] > 1 and ENABLED and xp is np:
        m = a.shape[-2] if a.ndim > 1 else 1
        n = b.shape[-1] if b.ndim > 1 else 1
        macs = m * n * a.shape[-1]
        if _BLAS_THREADS_FROM <= macs < GEMM_THREADED_MIN:
            restore = _blas_serial()
            try:
                return np.matmul(a, b) if out is None else np.matmul(a, b, out=out)
            finally:
                blas_restore(restore)
    return xp.matmul(a, b) if out is None else xp.matmul(a, b, out=out)


def blas_serial() -> list:
    """Set every multi-threaded BLAS to one thread; pass the result to :func:`blas_restore` afterwards."""
    return _blas_serial()


def blas_restore(restore: list) -> None:
    """Undo :func:`blas_serial`."""
    for ctl, prev in restore:
        ctl.set_num_threads(prev)


def _after_fork_in_child() -> None:
    global _LOCK
    _LOCK = threading.Lock()  # a region running in the parent at fork time left its lock held
    _STATE["pool"] = None  # the parent's workers do not exist here; the first region starts new ones


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

set_threads(_env_threads())
