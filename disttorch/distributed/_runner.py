"""How every collective runs: fingerprint, verify, launch, wait with the group's timeout; argument checks.

``_run`` is the one path all tensor collectives take (``_tensor_collectives.py``). A failure that looks
like a timeout becomes a RuntimeError naming the op, the rank, the ranks that have not arrived and where
each rank is (asked through the store by ``_watchdog``); mismatch errors from ``verify`` pass unchanged.
"""
from __future__ import annotations

import threading

import numpy as np

from .. import _tensor as T
from . import _watchdog as WD
from .distributed_c10d import _DT, _W, ProcessGroup, _secs
from .process_group import ProcessGroup as _BackendGroup
from .process_group import ReduceOp, Work

_ident = threading.get_ident


# ------------------------------------------------------------------------------------------------------------
# running a collective: fingerprint, verify, wait with the timeout
# ------------------------------------------------------------------------------------------------------------
def _sig(a) -> str:
    return f"{_DT.get(a.dtype, str(a.dtype))}{list(a.shape)}"


def _looks_like_timeout(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, TimeoutError) or "timed out" in text or "timeout" in text or "did not complete" in text


def _timeout_error(g: ProcessGroup, name: str, seq: int, fp: str, waited: float, cause=None) -> RuntimeError:
    wd = _W.watchdog
    if wd is not None:
        try:
            missing, where = wd.report(g, seq)
        except Exception as e:  # the store is gone too
            missing, where = "unknown", f"  (could not ask the other ranks: {e})"
    else:
        missing, where = "unknown", "  (no store to ask the other ranks)"
    msg = (f"{name} timed out on rank {_W.rank} after {waited:.1f} s (timeout {g._timeout:g} s; set timeout= in "
           f"init_process_group/new_group or DISTTORCH_COLLECTIVE_TIMEOUT): collective {fp} in group {g.group_name}; "
           f"ranks that have not arrived: {missing}. Where each rank is:\n{where}")
    if cause is not None:
        msg += f"\n(backend: {cause})"
    return RuntimeError(msg)


def _verify(g: ProcessGroup, fp: str) -> None:
    pg = g._pg
    if type(pg).verify is not _BackendGroup.verify:
        pg.verify(fp)
        return
    # The interface's default verify, with this group's timeout on each wait (a skipped collective then raises).
    import hashlib

    size, timeout = pg.size, g._timeout
    # One 16-byte all-reduce(MAX) of [h, -h]: both entries come back unchanged on every rank exactly when all
    # ranks hashed the same fingerprint. Only a mismatch pays for gathering the calls to name them.
    h = int.from_bytes(hashlib.blake2b(fp.encode(), digest_size=8).digest(), "little") >> 2
    pair = np.array([h, -h], dtype=np.int64)
    pg.allreduce([pair], ReduceOp.MAX).wait(timeout)
    if pair[0] == h and pair[1] == -h:
        return
    raw = np.zeros(512, np.uint8)
    enc = fp.encode()[:512]
    raw[:len(enc)] = np.frombuffer(enc, np.uint8)
    texts = [np.empty(512, np.uint8) for _ in range(size)]
    pg.allgather(texts, raw).wait(timeout)
    calls = [bytes(t).rstrip(b"\0").decode(errors="replace") for t in texts]
    other = next(r for r, c in enumerate(calls) if c != calls[0])
    lines = "\n".join(f"  rank {g._ranks[r]}: {c}" for r, c in enumerate(calls))
    raise RuntimeError(f"Mismatched collective calls (this is rank {g._ranks[pg.rank]}, calling {calls[pg.rank]}): "
                       f"rank {g._ranks[0]} called {calls[0]} but rank {g._ranks[other]} called {calls[other]}. "
                       f"All calls:\n{lines}")


def _fail(g, name, seq, fp, tok, e, t0):
    """Turn a backend failure into the error to raise (timeouts get the report of where every rank is)."""
    WD.leave(tok)
    if str(e).startswith("Mismatched collective"):
        return e
    if _looks_like_timeout(e):
        return _timeout_error(g, name, seq, fp, WD.time.monotonic() - t0, cause=e)
    return e


def _run(g: ProcessGroup, name: str, detail: str, launch, finish, async_op: bool, out=None):
    """Fingerprint, verify, launch ``launch() -> Work``; run ``finish()`` once it completes."""
    g._seq += 1
    seq = g._seq
    fp = f"seq={seq} {name}({detail})"
    g._last = fp
    tok = WD.enter(g, seq, fp, _ident())
    t0 = WD.time.monotonic()
    try:
        if _W.check:
            _verify(g, fp)
        work = launch()
    except Exception as e:
        err = _fail(g, name, seq, fp, tok, e, t0)
        if err is e:
            raise
        raise err from e
    if async_op:
        WD.ACTIVE[tok] = (g, seq, fp, t0, None)
        return _CollectiveWork(g, name, seq, fp, work, finish, tok, t0, out)
    try:
        work.wait(g._timeout)
    except Exception as e:
        if not work.is_completed():
            WD.leave(tok)
            raise _timeout_error(g, name, seq, fp, WD.time.monotonic() - t0) from None
        err = _fail(g, name, seq, fp, tok, e, t0)
        if err is e:
            raise
        raise err from e
    WD.leave(tok)
    if finish is not None:
        finish()
    return None


class _CollectiveWork(Work):
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
        t = self._g._timeout if timeout is None else _secs(timeout)
        deadline = WD.time.monotonic() + t
        if not self._done.is_set():
            try:
                self._inner.wait(t)  # the backend's wait also makes progress (MPI requests, inline calls)
            except Exception:
                if not self._inner.is_completed():
                    raise _timeout_error(self._g, self._name, self._seq, self._fp,
                                         WD.time.monotonic() - self._t0) from None
        if not self._done.wait(max(0.0, deadline - WD.time.monotonic()) + 1.0):
            raise _timeout_error(self._g, self._name, self._seq, self._fp, WD.time.monotonic() - self._t0)
        exc = self._exc
        if exc is not None:
            if _looks_like_timeout(exc) and not str(exc).startswith(self._name):
                raise _timeout_error(self._g, self._name, self._seq, self._fp, WD.time.monotonic() - self._t0,
                                     cause=exc) from exc
            raise exc
        return True

    def get_future(self):
        from ..futures import Future

        return Future._of_work(self)


# ------------------------------------------------------------------------------------------------------------
# argument checks
# ------------------------------------------------------------------------------------------------------------
def _check_tensor(t, param: str) -> None:
    if not isinstance(t, T.Tensor):
        raise TypeError(f"Invalid function argument. Expected parameter `{param}` of type torch.Tensor\n but got "
                        f"{type(t)} instead.")


def _array(t, param: str, g: ProcessGroup, op: str):
    _check_tensor(t, param)
    a = t._data
    if a.__class__ is not np.ndarray and g._backend != "nccl":
        raise RuntimeError(f"{op}: the {g._backend} backend works on CPU tensors, but `{param}` is on {t.device} "
                           "(use backend='nccl' for CUDA tensors)")
    return a


def _tensor_list(ts, param: str, g: ProcessGroup, op: str, like=None) -> list:
    if not isinstance(ts, (list, tuple)):
        raise TypeError(f"Invalid function argument. Expected parameter `{param}` of type List[torch.Tensor]\n but "
                        f"got {type(ts)} instead.")
    arrays = [_array(t, f"{param}[{i}]", g, op) for i, t in enumerate(ts)]
    if len(arrays) != g._pg.size:
        raise ValueError(f"{op}: `{param}` has {len(arrays)} tensors on rank {_W.rank} but the group has "
                         f"{g._pg.size} ranks")
    if like is not None:
        for i, a in enumerate(arrays):
            if a.dtype != like.dtype:
                raise RuntimeError(f"{op}: `{param}[{i}]` has dtype {_DT.get(a.dtype)} but the input has "
                                   f"{_DT.get(like.dtype)} (rank {_W.rank})")
            if a.shape != like.shape:
                raise RuntimeError(f"{op}: `{param}[{i}]` has shape {list(a.shape)} but the input has "
                                   f"{list(like.shape)} (rank {_W.rank})")
    return arrays


def _check_op(op, a, name: str) -> None:
    if not isinstance(op, ReduceOp):
        raise TypeError(f"{name}: op must be a dist.ReduceOp, got {op!r}")
    kind = a.dtype.kind
    if op is ReduceOp.AVG and kind in "iub":
        raise RuntimeError(f"{name}: ReduceOp.AVG is not supported for integer or bool tensors (got "
                           f"{_DT.get(a.dtype)}); use ReduceOp.SUM and divide")
    if op in (ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR) and kind not in "iub":
        raise RuntimeError(f"{name}: ReduceOp.{op.name} needs an integer or bool tensor, got {_DT.get(a.dtype)}")
    if op in (ReduceOp.MIN, ReduceOp.MAX) and kind == "c":
        raise RuntimeError(f"{name}: ReduceOp.{op.name} is not supported for complex tensors ({_DT.get(a.dtype)})")
    if op is ReduceOp.PREMUL_SUM:
        raise RuntimeError(f"{name}: ReduceOp.PREMUL_SUM is not supported by disttorch's backends")


def _same(a, b, what: str, op: str) -> None:
    if a.dtype != b.dtype:
        raise RuntimeError(f"{op}: {what} dtypes differ: {_DT.get(a.dtype)} vs {_DT.get(b.dtype)} (rank {_W.rank})")


def _contig(a):
    return a if a.flags.c_contiguous else np.ascontiguousarray(a) if a.__class__ is np.ndarray \
        else a.__class__(a, copy=True, order="C")


def _divide(buf, n: int) -> None:
    if buf.dtype.itemsize == 2 and buf.dtype.kind != "i" and buf.dtype.kind != "u":  # float16/bfloat16
        buf[...] = (buf.astype(np.float32) / n).astype(buf.dtype)
    else:
        buf /= n


def _peer(g: ProcessGroup, rank, group_rank, op: str, what: str, default=None) -> int:
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


def _bump(*tensors) -> None:
    for t in tensors:
        t._vc[0] += 1


def _copyback(pairs) -> None:
    for a, buf in pairs:
        if buf is not a:
            a[...] = buf
