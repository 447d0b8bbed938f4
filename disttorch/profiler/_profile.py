"""``disttorch.profiler.profile``: PyTorch's profiler API over the op entry point's observer hook."""
from __future__ import annotations

import enum
import os
import time
from typing import Callable, Iterable

from . import _recorder as R
from ._events import EventList, FunctionEvent

__all__ = ["ProfilerActivity", "ProfilerAction", "profile", "record_function", "schedule",
           "tensorboard_trace_handler", "supported_activities"]


class ProfilerActivity(enum.Enum):
    CPU = 0
    CUDA = 1
    XPU = 2
    MTIA = 3
    PrivateUse1 = 4


class ProfilerAction(enum.Enum):
    NONE = 0
    WARMUP = 1
    RECORD = 2
    RECORD_AND_SAVE = 3


def supported_activities() -> set:
    """CPU always; CUDA when a CUDA device is present (its events are host-side ranges of the device work)."""
    from .. import cuda

    return {ProfilerActivity.CPU, ProfilerActivity.CUDA} if cuda.is_available() else {ProfilerActivity.CPU}


def schedule(*, wait: int, warmup: int, active: int, repeat: int = 0, skip_first: int = 0,
             skip_first_wait: int = 0) -> Callable[[int], ProfilerAction]:
    """PyTorch's schedule: skip ``skip_first`` steps, then cycles of ``wait`` idle, ``warmup`` and ``active``
    recorded steps (the last one saves), ``repeat`` times (0: until the profile ends).

    Example:
        >>> s = schedule(wait=1, warmup=1, active=2)
        >>> s(0).name, s(1).name, s(3).name
        ('NONE', 'WARMUP', 'RECORD_AND_SAVE')
    """
    if wait < 0 or warmup < 0 or active <= 0 or repeat < 0 or skip_first < 0:
        raise AssertionError("Invalid profiler schedule arguments")

    def schedule_fn(step: int) -> ProfilerAction:
        if step < skip_first:
            return ProfilerAction.NONE
        step -= skip_first
        if skip_first_wait:  # the first cycle starts without its wait
            step += wait
        num_steps = wait + warmup + active
        if repeat > 0 and step / num_steps >= repeat:
            return ProfilerAction.NONE
        mod = step % num_steps
        if mod < wait:
            return ProfilerAction.NONE
        if mod < wait + warmup:
            return ProfilerAction.WARMUP
        return ProfilerAction.RECORD if mod < num_steps - 1 else ProfilerAction.RECORD_AND_SAVE

    return schedule_fn


def _always_record(step: int) -> ProfilerAction:
    return ProfilerAction.RECORD


def tensorboard_trace_handler(dir_name: str, worker_name: str | None = None, use_gzip: bool = False):
    """An ``on_trace_ready`` that writes ``<worker>.<ms>.pt.trace.json`` into ``dir_name`` (TensorBoard's layout)."""
    def handler(prof: "profile") -> None:
        os.makedirs(dir_name, exist_ok=True)
        name = worker_name or f"{os.uname().nodename}_{os.getpid()}"
        path = os.path.join(dir_name, f"{name}.{int(time.time() * 1000)}.pt.trace.json")
        prof.export_chrome_trace(path)
        if use_gzip:
            import gzip
            import shutil

            with open(path, "rb") as src, gzip.open(path + ".gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.remove(path)
    return handler


def _to_function_events(rec: R._Recording) -> EventList:
    """The recording's raw events as FunctionEvents (us relative to the start), parents and children linked by
    time containment within each thread."""
    evs = sorted(rec.events, key=lambda e: (e.tid, e.start_ns, -e.end_ns))
    out = EventList()
    stacks: dict = {}
    for i, e in enumerate(evs):
        fe = FunctionEvent(i, e.name, e.tid, (e.start_ns - rec.start_ns) / 1e3, (e.end_ns - rec.start_ns) / 1e3,
                           e.cat, e.shapes, e.mem, e.stack, e.args)
        st = stacks.setdefault(e.tid, [])
        while st and st[-1].end_us < fe.end_us - 1e-9:  # not inside the top: pop until a container is found
            st.pop()
        if st and st[-1].start_us <= fe.start_us:
            fe.cpu_parent = st[-1]
            st[-1].cpu_children.append(fe)
        st.append(fe)
        out.append(fe)
    for fe in reversed(out):  # children come after their parents: a range's memory is its ops' memory
        if fe.cpu_children:
            fe.cpu_memory_usage += sum(c.cpu_memory_usage for c in fe.cpu_children)
    out.sort(key=lambda f: f.start_us)
    return out


class profile:
    """Profile the ops, user ranges (``record_function``), backward nodes and communication of a block.

    Args follow ``torch.profiler.profile``: ``activities`` (CPU; CUDA ranges are host-side), ``schedule``,
    ``on_trace_ready``, ``record_shapes``, ``profile_memory`` (bytes each op's new outputs allocate; frees are not
    tracked), ``with_stack``; the rest are accepted for compatibility.

    Example:
        >>> with profile(record_shapes=True) as prof:
        ...     y = disttorch.ones(3) + disttorch.ones(3)
        >>> print(prof.key_averages().table(sort_by="cpu_time_total"))  # doctest: +SKIP
    """

    def __init__(self, *, activities: Iterable[ProfilerActivity] | None = None, schedule: Callable | None = None,
                 on_trace_ready: Callable | None = None, record_shapes: bool = False, profile_memory: bool = False,
                 with_stack: bool = False, with_flops: bool = False, with_modules: bool = False,
                 experimental_config=None, execution_trace_observer=None, acc_events: bool = False,
                 use_cuda: bool | None = None, custom_trace_id_callback=None) -> None:
        acts = set(activities) if activities is not None else supported_activities()
        for a in acts:
            if not isinstance(a, ProfilerActivity):
                raise TypeError(f"profile: activities must be ProfilerActivity values, got {a!r}")
        self.activities = acts
        self.schedule = schedule or _always_record
        self.record_steps = schedule is not None  # "ProfilerStep#N" ranges, as PyTorch adds with a schedule
        self.on_trace_ready = on_trace_ready
        self.record_shapes, self.profile_memory, self.with_stack = record_shapes, profile_memory, with_stack
        self.acc_events = acc_events
        self.step_num = 0
        self.current_action = self.schedule(0)
        self._rec: R._Recording | None = None
        self._events: EventList | None = None
        self._all = EventList()
        self._step_rf = None

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> "profile":
        self.start()
        return self

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False

    def start(self) -> None:
        self._transition(ProfilerAction.NONE, self.current_action)
        self._enter_step()

    def stop(self) -> None:
        self._exit_step()
        self._transition(self.current_action, None)

    def step(self) -> None:
        """Mark the end of a training step: the schedule may start or stop recording (and save)."""
        self._exit_step()
        prev = self.current_action
        self.step_num += 1
        self.current_action = self.schedule(self.step_num)
        self._transition(prev, self.current_action)
        self._enter_step()

    def _enter_step(self) -> None:
        if self._rec is not None and self.record_steps:
            self._step_rf = R.span(f"ProfilerStep#{self.step_num}", "user_annotation").__enter__()

    def _exit_step(self) -> None:
        if self._step_rf is not None:
            self._step_rf.__exit__(None, None, None)
            self._step_rf = None

    def _transition(self, prev, new) -> None:
        recording = (ProfilerAction.WARMUP, ProfilerAction.RECORD, ProfilerAction.RECORD_AND_SAVE)
        if prev == ProfilerAction.RECORD_AND_SAVE or (new is None and prev in recording):
            self._finish()
        if new in (ProfilerAction.RECORD, ProfilerAction.RECORD_AND_SAVE) and self._rec is None:
            self._rec = R._Recording(self.record_shapes, self.profile_memory, self.with_stack)
            R.start(self._rec)

    def _finish(self) -> None:
        rec, self._rec = self._rec, None
        if rec is None:
            return
        R.stop(rec)
        self._events = _to_function_events(rec)
        self._wall_offset_us = (R.WALL_OFFSET_NS + rec.start_ns) / 1e3
        if self.acc_events:
            self._all.extend(self._events)
        if self.on_trace_ready is not None:
            self.on_trace_ready(self)

    # -- results --------------------------------------------------------------------------------
    def events(self) -> EventList:
        """The events of the last recorded cycle (of every cycle with ``acc_events=True``)."""
        if self._events is None:
            raise AssertionError("the profiler has no results yet: profile a block (or reach a saving step) first")
        return self._all if self.acc_events else self._events

    def key_averages(self, group_by_input_shape: bool = False, group_by_stack_n: int = 0,
                     group_by_overload_name: bool = False) -> EventList:
        return self.events().key_averages(group_by_input_shape, group_by_stack_n)

    def export_chrome_trace(self, path: str) -> None:
        """Write the events as a Chrome/Perfetto trace (open in chrome://tracing or ui.perfetto.dev)."""
        from ._chrome import write_trace

        write_trace(path, self.events(), wall_offset_us=self._wall_offset_us)


class record_function:
    """A named range in the profile (context manager or decorator), as ``torch.profiler.record_function``.

    Example:
        >>> with record_function("data"):
        ...     pass
    """

    def __init__(self, name: str, args: str | None = None) -> None:
        self.name, self.args = name, args
        self._span = None

    def __enter__(self) -> "record_function":
        self._span = R.span(self.name, "user_annotation", **({"args": self.args} if self.args else {}))
        self._span.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        if self._span is not None:
            self._span.__exit__(*exc)
            self._span = None
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapped(*a, **kw):
            with record_function(self.name, self.args):
                return fn(*a, **kw)
        return wrapped

