"""The event buffer behind ``disttorch.profiler``: what ops, ranges and spans record while a profile is active.

Ops report through the entry point's observer hook (``autograd.op.add_observer``); backward nodes, collectives,
DDP buckets and parameter-server calls report through :func:`span`, which costs one global check when nothing
is being profiled. Times are ``time.perf_counter_ns``; ``WALL_OFFSET_NS`` turns them into wall-clock time so
that the ranks of a job can be merged into one timeline.
"""
from __future__ import annotations

import os
import threading
import time
import traceback

from ..autograd import op as _op

WALL_OFFSET_NS = time.time_ns() - time.perf_counter_ns()

# the recordings that receive events (a tuple: a user's profile and/or the job timeline), or None when none;
# read without a lock on every span (a list for speed)
ACTIVE: list = [None]
_USER: list = [None]  # the user's profile (at most one at a time, as in PyTorch)
_HANDLE: list = [None]  # the op observer, installed while anything records


class Event:
    """One recorded range: an op (``cat`` "cpu_op"), a user range, a backward node or a communication span."""

    __slots__ = ("name", "cat", "start_ns", "end_ns", "tid", "shapes", "mem", "stack", "args")

    def __init__(self, name, cat, start_ns, end_ns, tid, shapes=None, mem=0, stack=None, args=None):
        self.name, self.cat, self.start_ns, self.end_ns, self.tid = name, cat, start_ns, end_ns, tid
        self.shapes, self.mem, self.stack, self.args = shapes, mem, stack, args


class _Recording:
    """Options and events of one recording cycle."""

    def __init__(self, record_shapes: bool, profile_memory: bool, with_stack: bool, background: bool = False,
                 max_events: int | None = None) -> None:
        self.record_shapes = record_shapes
        self.profile_memory = profile_memory
        self.with_stack = with_stack
        self.background = background  # the job timeline: records alongside a user's profile
        self.max_events = max_events
        self.dropped = 0
        self.events: list = []  # list.append is atomic: threads append without a lock
        self.start_ns = time.perf_counter_ns()
        self.pid = os.getpid()

    def add(self, ev: "Event") -> None:
        if self.max_events is not None and len(self.events) >= self.max_events:
            self.dropped += 1
            return
        self.events.append(ev)

    def stack(self):
        if not self.with_stack:
            return None
        frames = traceback.extract_stack()[:-3]  # drop the recorder's own frames
        return [f"{f.filename}({f.lineno}): {f.name}" for f in frames if "/disttorch/" not in f.filename][-8:]


def _shape_of(x):
    shape = getattr(x, "shape", None)
    return list(shape) if shape is not None and hasattr(x, "_data") else []


def _root(arr):
    while getattr(arr, "base", None) is not None and hasattr(arr.base, "shape"):
        arr = arr.base
    return arr


def _allocated(inputs, outputs) -> int:
    """Bytes of the outputs whose memory is new: not a view of an input (the array owning an output's memory is
    none of the inputs' owners)."""
    owners = {id(_root(x._data)) for x in inputs if hasattr(x, "_data")}
    total = 0
    for o in outputs:
        arr = getattr(o, "_data", None)
        if arr is not None and id(_root(arr)) not in owners:
            total += int(getattr(arr, "nbytes", 0))
    return total


def _on_op(name, inputs, attrs, outputs, start_ns, end_ns) -> None:
    recs = ACTIVE[0]
    if recs is None:
        return
    tid = threading.get_ident()
    for rec in recs:
        rec.add(Event(
            "aten::" + name, "cpu_op", start_ns, end_ns, tid,
            [_shape_of(x) for x in inputs] if rec.record_shapes else None,
            _allocated(inputs, outputs) if rec.profile_memory else 0, rec.stack()))


def _publish(recs: tuple) -> None:
    if recs:
        if _HANDLE[0] is None:
            _HANDLE[0] = _op.add_observer(_on_op)
        ACTIVE[0] = recs
        _op.SPANS[0] = _span_sink
    else:
        ACTIVE[0] = None
        _op.SPANS[0] = None
        if _HANDLE[0] is not None:
            _HANDLE[0].remove()
            _HANDLE[0] = None


def start(rec: _Recording) -> None:
    """Start delivering events to ``rec`` (one user profile at a time; background recordings add to it)."""
    if not rec.background:
        if _USER[0] is not None:
            raise RuntimeError("Profiler is already enabled on this thread: stop the other profile first")
        _USER[0] = rec
    _publish((ACTIVE[0] or ()) + (rec,))


def stop(rec: _Recording) -> None:
    if _USER[0] is rec:
        _USER[0] = None
    _publish(tuple(r for r in (ACTIVE[0] or ()) if r is not rec))


def _span_sink(name: str, cat: str, start_ns: int, end_ns: int, args) -> None:
    recs = ACTIVE[0]
    if recs is not None:
        ev = Event(name, cat, start_ns, end_ns, threading.get_ident(), args=args)
        for rec in recs:
            rec.add(ev)


class span:
    """Record ``name`` as a range of category ``cat`` while a profile is active (a no-op otherwise).

    Example:
        >>> with span("all_reduce", "comm", bytes=4096):
        ...     pass
    """

    __slots__ = ("name", "cat", "args", "t0")

    def __init__(self, name: str, cat: str = "user_annotation", **args) -> None:
        self.name, self.cat, self.args = name, cat, args or None
        self.t0 = None

    def __enter__(self):
        if ACTIVE[0] is not None:
            self.t0 = time.perf_counter_ns()
        return self

    def __exit__(self, *exc) -> bool:
        if self.t0 is not None:
            _span_sink(self.name, self.cat, self.t0, time.perf_counter_ns(), self.args)
        return False
