"""``disttorch launch --timeline FILE``: merge the ranks' trace files into one Chrome/Perfetto trace (one row per
rank) and summarise it step by step.

Each rank writes ``rank<R>.json`` at exit (disttorch/profiler/_timeline.py; times in wall-clock microseconds,
``pid`` = its rank). :func:`summary` tells, per step (a step ends at each ``optimizer.step()``), which rank was
slowest and where its time went: waiting for data, computing, or waiting in communication. A rank that arrives
last at a collective waits least there, so the straggler is the rank with the smallest share of waiting.
Pure JSON work: the launcher does not import the tensor engine.
"""
from __future__ import annotations

import glob
import json
import os

__all__ = ["merge", "merge_traces", "summary"]


def merge_traces(paths: list, out_path: str) -> dict:
    """Merge per-rank trace files (each written with its rank as ``pid`` and wall-clock times) into one trace
    with one row per rank, times starting at 0. Returns the merged document."""
    events, t0 = [], None
    for p in paths:
        try:
            with open(p) as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            raise RuntimeError(f"timeline: cannot read the rank trace {p}: {e}") from None
        evs = doc.get("traceEvents") if isinstance(doc, dict) else None
        if not isinstance(evs, list):
            raise RuntimeError(f"timeline: {p} has no traceEvents list")
        for e in evs:
            if isinstance(e, dict) and e.get("ph") == "X" and isinstance(e.get("ts"), (int, float)):
                t0 = e["ts"] if t0 is None else min(t0, e["ts"])
        events.extend(e for e in evs if isinstance(e, dict))
    for e in events:
        if e.get("ph") == "X" and t0 is not None and isinstance(e.get("ts"), (int, float)):
            e["ts"] = round(e["ts"] - t0, 3)
    doc = {"traceEvents": events, "displayTimeUnit": "ms"}
    tmp = f"{out_path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, out_path)
    return doc


def merge(directory: str, out_path: str) -> dict:
    """Merge the ranks' files of ``directory`` into ``out_path``; returns the merged trace."""
    paths = sorted(glob.glob(os.path.join(directory, "rank*.json")),
                   key=lambda p: int(os.path.basename(p)[4:-5]) if os.path.basename(p)[4:-5].isdigit() else -1)
    if not paths:
        raise RuntimeError(f"timeline: no rank wrote a trace into {directory} (did the script call "
                           "init_process_group?)")
    return merge_traces(paths, out_path)


def _steps(events: list) -> list:
    """(start, end) of each step of one rank: a step ends where an ``Optimizer.step`` range ends."""
    ends = sorted(e["ts"] + e["dur"] for e in events if e["name"].startswith("Optimizer.step#"))
    out, t = [], None
    for end in ends:
        start = t if t is not None else min(e["ts"] for e in events)
        out.append((start, end))
        t = end
    return out


def _overlap(events, lo, hi, cats) -> float:
    """Time in [lo, hi] covered by top-level ranges of the categories ``cats`` (us; nested ranges once)."""
    spans = sorted((max(lo, e["ts"]), min(hi, e["ts"] + e["dur"])) for e in events if e.get("cat") in cats
                   and e["ts"] < hi and e["ts"] + e["dur"] > lo)
    total, cur_s, cur_e = 0.0, None, None
    for s, e in spans:
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


def summary(doc: dict, max_steps: int = 20) -> str:
    """Per step: the slowest rank (the one the others waited for) and its data / compute / wait split."""
    by_rank: dict = {}
    for e in doc.get("traceEvents", []):  # malformed events (a hand-edited file) are skipped, not fatal
        if isinstance(e, dict) and e.get("ph") == "X" and isinstance(e.get("name"), str) and \
                isinstance(e.get("ts"), (int, float)) and isinstance(e.get("dur"), (int, float)):
            by_rank.setdefault(e.get("pid"), []).append(e)
    steps = {r: _steps(evs) for r, evs in by_rank.items()}
    n = min((len(s) for s in steps.values()), default=0)
    if n == 0:
        return "timeline: no optimizer steps recorded (a step ends at optimizer.step())"
    lines = [f"timeline: {len(by_rank)} ranks, {n} steps (slowest rank per step: the one the others waited for)",
             f"{'step':>5} {'ms':>9} {'slowest':>8} {'data %':>7} {'compute %':>10} {'wait %':>7}"]
    for i in range(min(n, max_steps)):
        rows = []
        for r, evs in by_rank.items():
            lo, hi = steps[r][i]
            dur = max(hi - lo, 1e-9)
            data = _overlap(evs, lo, hi, {"data"})
            wait = _overlap(evs, lo, hi, {"comm"})
            rows.append((wait / dur, r, dur, data / dur, 1 - (data + wait) / dur))
        wait_frac, rank, dur, data_frac, compute_frac = min(rows)  # waits least: arrived last
        lines.append(f"{i:>5} {dur / 1e3:>9.3f} {rank:>8} {100 * data_frac:>6.1f}% {100 * compute_frac:>9.1f}% "
                     f"{100 * wait_frac:>6.1f}%")
    if n > max_steps:
        lines.append(f"... {n - max_steps} more steps")
    return "\n".join(lines)
