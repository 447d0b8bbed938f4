"""The job timeline, worker side: every rank records its ops and communication while the job runs.

:func:`start_from_env` (called by ``init_process_group``) starts a background recording when ``disttorch launch
--timeline`` set ``DISTTORCH_TIMELINE_DIR``; at exit the rank writes ``rank<R>.json`` there, times in wall-clock
microseconds, ``pid`` = its rank. The launcher merges the files (launcher/timeline.py).
"""
from __future__ import annotations

import atexit
import os
import socket

from . import _recorder as R

__all__ = ["start_from_env", "dump", "ENV_DIR"]

ENV_DIR = "DISTTORCH_TIMELINE_DIR"
_MAX_EVENTS = 2_000_000  # ~400 MB of events at most; the rest of a long run is dropped (and counted)
_state: dict = {}


def start_from_env(rank: int) -> bool:
    """Start this rank's background recording when the launcher asked for a timeline (once per process)."""
    out = os.environ.get(ENV_DIR)
    if not out or _state.get("rec") is not None:
        return False
    cap = int(os.environ.get("DISTTORCH_TIMELINE_MAX_EVENTS", _MAX_EVENTS))
    rec = R._Recording(record_shapes=False, profile_memory=False, with_stack=False, background=True, max_events=cap)
    _state.update(rec=rec, rank=int(rank), dir=out)
    R.start(rec)
    atexit.register(dump)
    return True


def dump() -> str | None:
    """Write this rank's events to the timeline directory (called at exit); returns the path."""
    rec = _state.get("rec")
    if rec is None:
        return None
    R.stop(rec)
    _state["rec"] = None
    from ._chrome import write_trace
    from ._profile import _to_function_events

    rank = _state["rank"]
    events = _to_function_events(rec)
    path = os.path.join(_state["dir"], f"rank{rank}.json")
    os.makedirs(_state["dir"], exist_ok=True)
    write_trace(path, events, pid=rank, process_name=f"rank {rank} ({socket.gethostname()}, pid {os.getpid()})",
                wall_offset_us=(R.WALL_OFFSET_NS + rec.start_ns) / 1e3,
                extra={"otherData": {"rank": rank, "dropped_events": rec.dropped}})
    return path
