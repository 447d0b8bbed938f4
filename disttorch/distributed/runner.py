"""The collective runner: how every collective runs, and the argument checks they share.

Every tensor collective (``collectives.py``) and every point-to-point op goes through this module, which
owns what must be the same for all of them: the per-group sequence number and the fingerprint
``"seq=12 all_reduce(float32[4, 3], SUM)"`` that every rank verifies before the backend runs
(``DISTTORCH_CHECK_COLLECTIVES=0`` skips that), the group's timeout on every wait, the hand-off to the
watchdog (``_watchdog.py``: stall warnings, and the report of where each rank is that a timeout error
carries), and the copy-back of results into non-contiguous tensors with their version bump. A failure
that looks like a timeout becomes a RuntimeError naming the op, the rank, the ranks that have not arrived
and where each rank is; mismatch errors from ``verify`` pass unchanged.

Internal API (for ``collectives``, ``_objects``, ``distributed_c10d``, ``distributed.nn`` and DDP's reducer):
    ``run(g, name, detail, launch, finish, async_op, out=None)``: one collective, sync or async.
    ``run_p2p(g, what, launch, finish)``: one point-to-point op (no sequence number), always async.
    ``CollectiveWork``: the ``Work`` that async collectives return.
    ``collective_timeout(timeout)``, ``configure(debug_store, rank, world_size)``, ``shutdown()``:
    the timeout default and the watchdog's start and stop, for ``init_process_group``/``destroy``.
    Checks and helpers: ``check_tensor``, ``array_of``, ``backend_for``, ``tensor_list``, ``check_reduce_op``,
    ``same_dtype``,
    ``group_peer``, ``contiguous``, ``divide``, ``copy_back``, ``signature``, ``dtype_name``.
"""
from __future__ import annotations

import hashlib
import itertools
import os
import sys
import threading
import time
from time import perf_counter_ns

import numpy as np

from .. import _dtype as D
from .. import _internals as E
from ..autograd.op import SPANS as _SPANS
from .._tensor import Tensor
from . import _watchdog as WD
from .groups import ProcessGroup, seconds, world
from .process_group import ProcessGroup as BackendGroup
from .process_group import BLOCKING, ReduceOp, Work, fingerprint_bytes, mismatch_error

_ident = threading.get_ident
_monotonic = time.monotonic


# ------------------------------------------------------------------------------------------------------------
# lifetime: timeout default, fingerprint checks, watchdog
# ------------------------------------------------------------------------------------------------------------
def collective_timeout(timeout=None) -> float:
    """The collective timeout in seconds: ``timeout`` (a ``timedelta`` or seconds) when given, else
    ``DISTTORCH_COLLECTIVE_TIMEOUT``, else 300 s."""
    if timeout is not None:
        return seconds(timeout)
    return WD.env_seconds("DISTTORCH_COLLECTIVE_TIMEOUT", 300.0)


def configure(debug_store, rank: int, world_size: int) -> None:
    """Start running collectives for a freshly initialised world: read ``DISTTORCH_CHECK_COLLECTIVES`` and,
    with more than one rank, start the watchdog on ``debug_store`` (a store of its own, see ``_watchdog``)."""
    world.check = os.environ.get("DISTTORCH_CHECK_COLLECTIVES", "1") != "0"
    _DEBUG[0] = rank if os.environ.get("DISTTORCH_DEBUG", "0") not in ("", "0") else None
    if world_size > 1:
        world.watchdog = WD.Watchdog(world, debug_store, rank, world_size, WD.stall_seconds())


_DEBUG: list = [None]  # DISTTORCH_DEBUG=1: this process's global rank (each collective is logged), else None


def _log(g: ProcessGroup, fp: str) -> None:
    """DISTTORCH_DEBUG=1: one line per collective and rank on stderr, with the fingerprint every rank compares."""
    sys.stderr.write(f"[disttorch rank {_DEBUG[0]}] {fp} group={g.group_name} backend={g._backend}\n")
    sys.stderr.flush()


def shutdown() -> None:
    """Stop the watchdog (``destroy_process_group`` of the default group)."""
    if world.watchdog is not None:
        world.watchdog.stop()
        world.watchdog = None


# ------------------------------------------------------------------------------------------------------------
# running a collective: fingerprint, verify, wait with the timeout
# ------------------------------------------------------------------------------------------------------------
def dtype_name(dt) -> str:
    """PyTorch's name of a NumPy dtype (``float32``), or NumPy's name for one disttorch has no dtype for."""
    try:
        return D.from_numpy_dtype(dt).name
    except TypeError:
        return str(dt)


_SIGNATURES: dict = {}  # (dtype, shape) -> signature: a training loop repeats a few shapes, each call pays ~0.5 us


def signature(a) -> str:
    """What a fingerprint says about an array: ``float32[4, 3]``."""
    key = (a.dtype, a.shape)
    sig = _SIGNATURES.get(key)
    if sig is None:
        if len(_SIGNATURES) >= 4096:
            _SIGNATURES.clear()
        sig = _SIGNATURES[key] = f"{dtype_name(a.dtype)}{list(a.shape)}"
    return sig


def _looks_like_timeout(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, TimeoutError) or "timed out" in text or "timeout" in text or "did not complete" in text


def _timeout_error(g: ProcessGroup, name: str, seq: int, fp: str, waited: float, cause=None) -> RuntimeError:
    wd = world.watchdog
    if wd is not None:
        try:
            missing, where = wd.report(g, seq)
        except Exception as e:  # the store is gone too
            missing, where = "unknown", f"  (could not ask the other ranks: {e})"
    else:
        missing, where = "unknown", "  (no store to ask the other ranks)"
    msg = (f"{name} timed out on rank {world.rank} after {waited:.1f} s (timeout {g._timeout:g} s; set timeout= in "
           f"init_process_group/new_group or DISTTORCH_COLLECTIVE_TIMEOUT): collective {fp} in group {g.group_name}; "
           f"ranks that have not arrived: {missing}. Where each rank is:\n{where}")
    if cause is not None:
        msg += f"\n(backend: {cause})"
    return RuntimeError(msg)


_scratch = threading.local()  # .pair: the 16-byte verify buffer of this thread
_DIGESTS: dict = {}  # "name(detail)" -> 62-bit blake2b digest (a training loop repeats a few calls)
_MASK62 = (1 << 62) - 1
_SEQ_MIX = 0x9E3779B97F4A7C15  # odd: seq * _SEQ_MIX mod 2**62 differs for every seq below 2**62


def _digest(call: str, seq: int) -> int:
    """A 62-bit digest of the fingerprint ``seq=<seq> <call>``: the cached digest of ``call`` plus ``seq`` times
    an odd constant, mod 2**62. Two ranks at different calls or sequence numbers get equal digests only by a
    ~2**-62 chance, as with hashing the whole text, without hashing ~40 bytes per collective."""
    h = _DIGESTS.get(call)
    if h is None:
        if len(_DIGESTS) >= 4096:
            _DIGESTS.clear()
        h = _DIGESTS[call] = int.from_bytes(hashlib.blake2b(call.encode(), digest_size=8).digest(), "little")
    return (h + seq * _SEQ_MIX) & _MASK62


def _verify(g: ProcessGroup, fp: str, call: str, seq: int) -> None:
    pg = g._pg
    if type(pg).verify is not BackendGroup.verify:
        pg.verify(fp)
        return
    # One 16-byte all-reduce(MAX) of [h, -h]: both entries come back unchanged on every rank exactly when all
    # ranks hashed the same fingerprint. Only a mismatch pays for gathering the calls to name them.
    h = _digest(call, seq)
    ahead = getattr(pg, "verify_digest", None)
    if ahead is not None:  # the backend runs that all-reduce inside the collective's own work (mpi)
        ahead(h, fp)
        return
    # The interface's default verify, with this group's timeout on each wait (a skipped collective then raises).
    size, timeout = pg.size, g._timeout
    pair = getattr(_scratch, "pair", None)  # per thread: verify runs synchronously on the calling thread
    if pair is None:
        pair = _scratch.pair = np.empty(2, np.int64)
    pair[0] = h
    pair[1] = -h
    pg.allreduce([pair], ReduceOp.MAX).wait(timeout)
    if pair[0] == h and pair[1] == -h:
        return
    texts = [np.empty(512, np.uint8) for _ in range(size)]
    pg.allgather(texts, fingerprint_bytes(fp)).wait(timeout)
    raise mismatch_error(texts, pg.rank, g._ranks)


def _fail(g, name, seq, fp, tok, e, t0):
    """Turn a backend failure into the error to raise (timeouts get the report of where every rank is)."""
    WD.leave(tok)
    if str(e).startswith("Mismatched collective"):
        return e
    if _looks_like_timeout(e):
        return _timeout_error(g, name, seq, fp, _monotonic() - t0, cause=e)
    return e


def run(g: ProcessGroup, name: str, detail: str, launch, finish, async_op: bool, out=None, verify: bool = True):
    """Run one collective of group ``g``: fingerprint ``name(detail)``, verify it, ``launch() -> Work``, and
    run ``finish()`` (AVG division, copy-back, version bumps) once it completes.

    ``verify=False`` is for callers that checked once that every rank makes the same calls (DDP's bucket
    all-reduces): it skips the check where it costs a blocking round trip (the interface's default verify),
    and keeps it where the backend's own ``verify`` rides on the collective's messages.

    Returns None, or with ``async_op`` a ``CollectiveWork`` whose future gives ``out``.
    """
    g._seq += 1
    seq = g._seq
    call = f"{name}({detail})"
    fp = f"seq={seq} {call}"
    g._last = fp
    if _DEBUG[0] is not None:
        _log(g, fp)
    spans = _SPANS[0]  # a profiler records: the collective is a "comm" range (async: its launch, then its wait)
    if spans is not None:
        t_ns = perf_counter_ns()
    tok = WD.enter(g, seq, fp, _ident())
    t0 = _monotonic()
    try:
        if world.check and (verify or type(g._pg).verify is not BackendGroup.verify):
            _verify(g, fp, call, seq)
        if async_op:
            work = launch()
        else:  # waited for below at once: a backend may run it on this thread (blocking_call, spelled out)
            prev, BLOCKING.on = BLOCKING.on, True
            try:
                work = launch()
            finally:
                BLOCKING.on = prev
    except Exception as e:
        ahead = getattr(g._pg, "verify_digest", None)
        if ahead is not None:  # nothing was launched: the check must not ride on the next collective
            ahead(None, "")
        err = _fail(g, name, seq, fp, tok, e, t0)
        if err is e:
            raise
        raise err from e
    if async_op:
        WD.ACTIVE[tok] = (g, seq, fp, t0, None)
        if spans is not None:
            spans(f"c10d::{name}", "comm", t_ns, perf_counter_ns(), {"fingerprint": fp, "async": True})
        return CollectiveWork(g, name, seq, fp, work, finish, tok, t0, out)
    try:
        work.wait(g._timeout)
    except Exception as e:
        if not work.is_completed():
            WD.leave(tok)
            raise _timeout_error(g, name, seq, fp, _monotonic() - t0) from None
        err = _fail(g, name, seq, fp, tok, e, t0)
        if err is e:
            raise
        raise err from e
    WD.leave(tok)
    if finish is not None:
        finish()
    if spans is not None:
        spans(f"c10d::{name}", "comm", t_ns, perf_counter_ns(), {"fingerprint": fp})
    return None


_p2p_ids = itertools.count(1)


def run_p2p(g: ProcessGroup, what: str, launch, finish) -> "CollectiveWork":
    """Start one point-to-point op (``what``: ``"isend(float32[3] to rank 1, tag 0)"``) and return its Work.

    Point-to-point ops are not fingerprinted (ranks do not all take part), but the watchdog sees them and
    their ``wait()`` has the group's timeout.
    """
    tok_seq = -next(_p2p_ids)  # p2p ops have no group sequence number; a unique one keeps warnings apart
    tok = WD.enter(g, tok_seq, what, None)
    t0 = _monotonic()
    try:
        work = launch()
    except Exception:
        WD.leave(tok)
        raise
    return CollectiveWork(g, what.split("(")[0], tok_seq, what, work, finish, tok, t0)


class CollectiveWork(Work):
    """The Work an ``async_op=True`` collective returns: ``wait()`` applies the group's timeout and
    finishes the result (AVG division, copies back into non-contiguous tensors) before it reports done."""

    def __init__(self, g, name, seq, fp, inner: Work, finish, tok, t0, out=None) -> None:
        super().__init__(fp)
        self._out = out  # what get_future().value() gives: the output tensors, as in PyTorch
        self._g, self._name, self._seq, self._fp, self._tok, self._t0 = g, name, seq, fp, tok, t0
        self._finish_fn = finish
        self._inner = inner
        inner.then(self._complete)

    def _complete(self, inner: Work) -> None:
        exc = inner.exception()
        if exc is None and self._finish_fn is not None:
            try:
                self._finish_fn()
            except Exception as e:
                exc = e
        WD.leave(self._tok)
        self._finish(exc, self._out if self._out is not None else inner.result())

    def is_completed(self) -> bool:
        # Polling the backend's work drives it where nothing else does (e.g. MPI requests).
        return self._inner.is_completed() and self._done.is_set()

    def wait(self, timeout=None) -> bool:
        spans = _SPANS[0]
        if spans is None:
            return self._wait(timeout)
        t_ns = perf_counter_ns()  # a profiler records: the time spent waiting is a "comm" range
        try:
            return self._wait(timeout)
        finally:
            spans(f"c10d::wait({self._name})", "comm", t_ns, perf_counter_ns(), {"fingerprint": self._fp})

    def _wait(self, timeout=None) -> bool:
        t = self._g._timeout if timeout is None else seconds(timeout)
        deadline = _monotonic() + t
        if not self._done.is_set():
            try:
                self._inner.wait(t)  # the backend's wait also makes progress (MPI requests, inline calls)
            except Exception:
                if not self._inner.is_completed():
                    raise _timeout_error(self._g, self._name, self._seq, self._fp, _monotonic() - self._t0) from None
        if not self._done.wait(max(0.0, deadline - _monotonic()) + 1.0):
            raise _timeout_error(self._g, self._name, self._seq, self._fp, _monotonic() - self._t0)
        exc = self._exc
        if exc is not None:
            if _looks_like_timeout(exc) and not str(exc).startswith(self._name):
                raise _timeout_error(self._g, self._name, self._seq, self._fp, _monotonic() - self._t0,
                                     cause=exc) from exc
            raise exc
        return True

    def get_future(self):
        """A ``Future`` completed with the output tensors once the collective is done (as PyTorch's)."""
        from ..futures import Future

        return Future._of_work(self)


# ------------------------------------------------------------------------------------------------------------
# argument checks
# ------------------------------------------------------------------------------------------------------------
def check_tensor(t, param: str) -> None:
    """PyTorch's TypeError when ``t`` (argument ``param``) is not a Tensor."""
    if not isinstance(t, Tensor):
        raise TypeError(f"Invalid function argument. Expected parameter `{param}` of type torch.Tensor\n but got "
                        f"{type(t)} instead.")


def array_of(t, param: str, g: ProcessGroup, op: str):
    """The array behind tensor argument ``param`` of ``op`` (a device array on a CPU backend is staged through
    host memory by ``backend_for``)."""
    check_tensor(t, param)
    return E.array(t)


def backend_for(g: ProcessGroup, a) -> BackendGroup:
    """The backend group that runs ``g``'s collective on array ``a``: ``g._pg`` for host arrays on a CPU backend
    (one class check: the common path pays nothing more), else what ``_staging.group_for`` picks (device arrays
    staged through host memory, host arrays on a pure nccl group staged through the device)."""
    if a.__class__ is np.ndarray and "nccl" not in g._backend:
        return g._pg
    from ._staging import group_for

    return group_for(g, a)


def tensor_list(ts, param: str, g: ProcessGroup, op: str, like=None) -> list:
    """The arrays of a list argument with one tensor per rank (each like the array ``like`` when given)."""
    if not isinstance(ts, (list, tuple)):
        raise TypeError(f"Invalid function argument. Expected parameter `{param}` of type List[torch.Tensor]\n but "
                        f"got {type(ts)} instead.")
    arrays = [array_of(t, f"{param}[{i}]", g, op) for i, t in enumerate(ts)]
    if len(arrays) != g._pg.size:
        raise ValueError(f"{op}: `{param}` has {len(arrays)} tensors on rank {world.rank} but the group has "
                         f"{g._pg.size} ranks")
    if like is not None:
        for i, a in enumerate(arrays):
            if a.dtype != like.dtype:
                raise RuntimeError(f"{op}: `{param}[{i}]` has dtype {dtype_name(a.dtype)} but the input has "
                                   f"{dtype_name(like.dtype)} (rank {world.rank})")
            if a.shape != like.shape:
                raise RuntimeError(f"{op}: `{param}[{i}]` has shape {list(a.shape)} but the input has "
                                   f"{list(like.shape)} (rank {world.rank})")
    return arrays


_OPS_OK: set = set()  # (id(op), dtype) pairs already accepted (ReduceOp members live for the whole process)


def check_reduce_op(op, a, name: str) -> None:
    """Refuse a reduce op the array's dtype (or disttorch's backends) cannot do."""
    if not isinstance(op, ReduceOp):
        raise TypeError(f"{name}: op must be a dist.ReduceOp, got {op!r}")
    key = (id(op), a.dtype)
    if key in _OPS_OK:
        return
    kind = a.dtype.kind
    if op is ReduceOp.AVG and kind in "iub":
        raise RuntimeError(f"{name}: ReduceOp.AVG is not supported for integer or bool tensors (got "
                           f"{dtype_name(a.dtype)}); use ReduceOp.SUM and divide")
    if op in (ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR) and kind not in "iub":
        raise RuntimeError(f"{name}: ReduceOp.{op.name} needs an integer or bool tensor, got {dtype_name(a.dtype)}")
    if op in (ReduceOp.MIN, ReduceOp.MAX) and kind == "c":
        raise RuntimeError(f"{name}: ReduceOp.{op.name} is not supported for complex tensors ({dtype_name(a.dtype)})")
    if op is ReduceOp.PREMUL_SUM:
        raise RuntimeError(f"{name}: ReduceOp.PREMUL_SUM is not supported by disttorch's backends")
    _OPS_OK.add(key)


def same_dtype(a, b, what: str, op: str) -> None:
    """Refuse two arrays (``what``: "output and input") of different dtypes."""
    if a.dtype != b.dtype:
        raise RuntimeError(f"{op}: {what} dtypes differ: {dtype_name(a.dtype)} vs {dtype_name(b.dtype)} "
                           f"(rank {world.rank})")


def group_peer(g: ProcessGroup, rank, group_rank, op: str, what: str, default=None) -> int:
    """The group rank for a ``src=``/``dst=`` (global) or ``group_src=``/``group_dst=`` (group) argument."""
    if group_rank is not None:
        if rank is not None:
            raise ValueError(f"{op}: give either {what} or group_{what}, not both")
        if not 0 <= group_rank < g._pg.size:
            raise ValueError(f"{op}: group_{what}={group_rank} is out of range for a group of {g._pg.size} ranks")
        return int(group_rank)
    if rank is None:
        if default is None:
            raise ValueError(f"{op}: {what} (or group_{what}) must be specified")
        rank = default
    r = g._rank_of.get(rank)
    if r is None:
        raise ValueError(f"{op}: {what}={rank} is not part of group {g.group_name} (global ranks {g._ranks})")
    return r


# ------------------------------------------------------------------------------------------------------------
# buffers and results
# ------------------------------------------------------------------------------------------------------------
def contiguous(a):
    """``a`` itself when C-contiguous, else a C-contiguous copy (the backends need contiguous buffers)."""
    return a if a.flags.c_contiguous else np.ascontiguousarray(a) if a.__class__ is np.ndarray \
        else a.copy(order="C")


def divide(buf, n: int) -> None:
    """``buf /= n`` in place (ReduceOp.AVG), through float32 for the 2-byte float types."""
    if buf.dtype.itemsize == 2 and buf.dtype.kind != "i" and buf.dtype.kind != "u":  # float16/bfloat16
        buf[...] = (buf.astype(np.float32) / n).astype(buf.dtype)
    else:
        buf /= n


def copy_back(tensors, arrays, buffers) -> None:
    """Write each result buffer into its tensor's array (where the backend worked on a copy) and record the
    write in every tensor's version counter, as in-place ops do."""
    for a, buf in zip(arrays, buffers):
        if buf is not a:
            a[...] = buf
    E.bump_version(*tensors)
