"""Chrome / Perfetto trace files of one process's events (launcher/timeline.py merges the ranks' files)."""
from __future__ import annotations

import json
import os

__all__ = ["trace_events", "write_trace"]


def trace_events(events, pid: int | str, wall_offset_us: float = 0.0, tid_names: dict | None = None) -> list:
    """Complete ("X") events for ``events`` (FunctionEvents, us times), on process row ``pid``."""
    tids: dict = {}
    out = []
    for e in events:
        tid = tids.setdefault(e.thread, len(tids))
        args = dict(e.args) if e.args else {}
        if e.input_shapes:
            args["Input Dims"] = e.input_shapes
        if e.cpu_memory_usage:
            args["Allocated Bytes"] = e.cpu_memory_usage
        if e.stack:
            args["Call stack"] = ";".join(e.stack)
        out.append({"name": e.name, "cat": e.cat, "ph": "X", "ts": round(e.start_us + wall_offset_us, 3),
                    "dur": round(e.cpu_time_total, 3), "pid": pid, "tid": tid, "args": args})
    for thread, tid in tids.items():
        name = (tid_names or {}).get(thread) or ("main thread" if tid == 0 else f"thread {tid}")
        out.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}})
    return out


def write_trace(path: str, events, pid: int | None = None, process_name: str | None = None,
                wall_offset_us: float = 0.0, extra: dict | None = None) -> None:
    """Write ``events`` as a Chrome trace JSON file (atomically: a reader never sees half a file)."""
    pid = os.getpid() if pid is None else pid
    ev = trace_events(events, pid, wall_offset_us)
    if process_name:
        ev.append({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": process_name}})
    doc = {"traceEvents": ev, "displayTimeUnit": "ms"}
    if extra:
        doc.update(extra)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)
