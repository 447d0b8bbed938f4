"""Profiled events as PyTorch's profiler presents them: ``FunctionEvent``, ``FunctionEventAvg`` and ``EventList``
with ``table()`` and ``key_averages()``. Times are microseconds, as in PyTorch."""
from __future__ import annotations

import collections

__all__ = ["FunctionEvent", "FunctionEventAvg", "EventList"]

_DEVICE_ZERO = ("cuda_time_total", "self_cuda_time_total", "cuda_time", "device_time_total",
                "self_device_time_total", "device_time", "cuda_memory_usage", "self_cuda_memory_usage",
                "device_memory_usage", "self_device_memory_usage", "flops")


class FunctionEvent:
    """One profiled range: ``name``, ``time_range`` (start/end in us), ``cpu_time_total``, ``self_cpu_time_total``,
    ``input_shapes``, ``cpu_memory_usage``, ``stack``, ``thread`` and ``cpu_children``."""

    def __init__(self, id: int, name: str, thread: int, start_us: float, end_us: float, cat: str = "cpu_op",
                 input_shapes=None, cpu_memory_usage: int = 0, stack=None, args=None) -> None:
        self.id, self.name, self.thread = id, name, thread
        self.start_us, self.end_us = start_us, end_us
        self.cat = cat
        self.input_shapes = input_shapes if input_shapes is not None else []
        self.cpu_memory_usage = cpu_memory_usage
        self.stack = stack or []
        self.args = args or {}
        self.cpu_children: list = []
        self.cpu_parent = None
        self.count = 1

    key = property(lambda self: self.name)
    cpu_time_total = property(lambda self: self.end_us - self.start_us)
    cpu_time = cpu_time_total

    @property
    def self_cpu_time_total(self) -> float:
        return self.cpu_time_total - sum(c.cpu_time_total for c in self.cpu_children)

    @property
    def self_cpu_memory_usage(self) -> int:
        return self.cpu_memory_usage - sum(c.cpu_memory_usage for c in self.cpu_children)

    def __getattr__(self, name):
        if name in _DEVICE_ZERO:  # a CPU-only profile: device columns read as zero, as in PyTorch
            return 0
        raise AttributeError(f"'FunctionEvent' object has no attribute '{name}'")

    def __repr__(self) -> str:
        return (f"<FunctionEvent id={self.id} name={self.name} cpu_time={self.cpu_time_total:.3f}us "
                f"self_cpu_time={self.self_cpu_time_total:.3f}us input_shapes={self.input_shapes}>")


class FunctionEventAvg:
    """Events of one key summed: ``count``, ``cpu_time_total``, ``self_cpu_time_total``, ``cpu_time`` (the mean),
    memory columns, and ``input_shapes`` when grouped by them."""

    def __init__(self, key: str, input_shapes=None, stack=None) -> None:
        self.key = key
        self.input_shapes = input_shapes
        self.stack = stack or []
        self.count = 0
        self.cpu_time_total = 0.0
        self.self_cpu_time_total = 0.0
        self.cpu_memory_usage = 0
        self.self_cpu_memory_usage = 0

    def add(self, e) -> "FunctionEventAvg":
        self.count += e.count
        self.cpu_time_total += e.cpu_time_total
        self.self_cpu_time_total += e.self_cpu_time_total
        self.cpu_memory_usage += e.cpu_memory_usage
        self.self_cpu_memory_usage += e.self_cpu_memory_usage
        return self

    @property
    def cpu_time(self) -> float:
        return self.cpu_time_total / self.count if self.count else 0.0

    def __getattr__(self, name):
        if name in _DEVICE_ZERO:
            return 0
        raise AttributeError(f"'FunctionEventAvg' object has no attribute '{name}'")

    def __repr__(self) -> str:
        return (f"<FunctionEventAvg key={self.key} self_cpu_time={self.self_cpu_time_total:.3f}us "
                f"cpu_time={self.cpu_time:.3f}us input_shapes={self.input_shapes}>")


def _fmt_time(us: float) -> str:
    if us >= 1e6:
        return f"{us / 1e6:.3f}s"
    if us >= 1e3:
        return f"{us / 1e3:.3f}ms"
    return f"{us:.3f}us"


def _fmt_mem(n: int) -> str:
    for unit, size in (("Gb", 1 << 30), ("Mb", 1 << 20), ("Kb", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} b"


class EventList(list):
    """A list of events with PyTorch's summaries: ``table()``, ``key_averages()``, ``total_average()``."""

    def key_averages(self, group_by_input_shape: bool = False, group_by_stack_n: int = 0) -> "EventList":
        """Events of the same name (and input shapes / top stack frames when asked) averaged together."""
        groups: dict = collections.OrderedDict()
        for e in self:
            k = (e.key, str(e.input_shapes) if group_by_input_shape else None,
                 tuple(e.stack[:group_by_stack_n]) if group_by_stack_n else None)
            avg = groups.get(k)
            if avg is None:
                avg = groups[k] = FunctionEventAvg(e.key, e.input_shapes if group_by_input_shape else None,
                                                   e.stack[:group_by_stack_n] if group_by_stack_n else None)
            avg.add(e)
        return EventList(groups.values())

    def total_average(self) -> FunctionEventAvg:
        total = FunctionEventAvg("Total")
        for e in self:
            total.add(e)
        return total

    def table(self, sort_by: str | None = None, row_limit: int = 100, max_src_column_width: int = 75,
              max_name_column_width: int = 55, max_shapes_column_width: int = 80, header: str | None = None,
              top_level_events_only: bool = False) -> str:
        """The events as a text table (PyTorch's columns for a CPU profile), sorted by ``sort_by`` descending."""
        rows = list(self)
        if top_level_events_only:
            rows = [e for e in rows if getattr(e, "cpu_parent", None) is None]
        if sort_by is not None:
            rows.sort(key=lambda e: getattr(e, sort_by), reverse=True)
        if row_limit is not None and row_limit >= 0:
            rows = rows[:row_limit]
        self_total = sum(e.self_cpu_time_total for e in self) or 1.0
        has_mem = any(e.cpu_memory_usage for e in self)
        has_shapes = any(e.input_shapes for e in self)
        name_w = min(max_name_column_width, max([len(e.key) for e in rows] + [4]) + 4)
        cols = [("Name", name_w), ("Self CPU %", 12), ("Self CPU", 12), ("CPU total %", 12), ("CPU total", 12),
                ("CPU time avg", 12)]
        if has_mem:
            cols += [("CPU Mem", 12), ("Self CPU Mem", 12)]
        cols.append(("# of Calls", 12))
        if has_shapes:
            cols.append(("Input Shapes", max_shapes_column_width))
        line = "-" * (sum(w for _, w in cols) + 2 * (len(cols) - 1))
        fmt = lambda vals: "  ".join(  # noqa: E731
            (v[:w - 3] + "..." if len(v) > w else v).ljust(w) if i == 0 else v.rjust(w) if i < len(cols) - 1 or not
            has_shapes else v[:w].ljust(w) for i, ((_, w), v) in enumerate(zip(cols, vals))).rstrip()
        out = [line]
        if header:
            out = [header, line]
        out += [fmt([c for c, _ in cols]), line]
        for e in rows:
            vals = [e.key, f"{100 * e.self_cpu_time_total / self_total:.2f}%", _fmt_time(e.self_cpu_time_total),
                    f"{100 * e.cpu_time_total / self_total:.2f}%", _fmt_time(e.cpu_time_total), _fmt_time(e.cpu_time)]
            if has_mem:
                vals += [_fmt_mem(e.cpu_memory_usage), _fmt_mem(e.self_cpu_memory_usage)]
            vals.append(str(e.count))
            if has_shapes:
                vals.append(str(e.input_shapes if e.input_shapes is not None else ""))
            out.append(fmt(vals))
        out += [line, f"Self CPU time total: {_fmt_time(sum(e.self_cpu_time_total for e in self))}", ""]
        return "\n".join(out)

    def export_chrome_trace(self, path: str) -> None:
        from ._chrome import write_trace

        write_trace(path, self)
