"""Multi-process scenarios run as a whole job in a fresh interpreter by test_jobs.py.

``python mp_job.py SCENARIO[,SCENARIO...]`` prints one ``RESULT <json>`` line per scenario. The 'spawn' and 'forkserver'
start methods re-import this file in each child, which is why the scenarios live in a script (and
why the entry point is guarded by ``__name__ == "__main__"``).
"""
from __future__ import annotations

import gc
import json
import os
import signal
import sys

import disttorch as torch
import disttorch.multiprocessing as mp

N = 50  # locked updates per process


def _train_locked(i, t, model, lock, results, done, n):
    # Each step adds exactly 1.0 to t and, through SGD with lr=1 and grad -1, to every parameter.
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    for p in model.parameters():
        p.grad = torch.full_like(p, -1.0)
    for _ in range(n):
        with lock:
            t.add_(1.0)
            opt.step()
    mine = torch.full((2,), float(i))  # a new tensor sent back through the queue (moved to shared memory)
    results.put((i, os.getpid(), t.is_shared(), all(p.is_shared() for p in model.parameters()), mine))
    done.wait(120)  # the file_descriptor strategy needs the sender alive until the parent has received


def scenario_hogwild(method: str) -> dict:
    ctx = mp.get_context(method)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    model.share_memory()
    init = [p.detach().clone() for p in model.parameters()]
    t = torch.zeros(4).share_memory_()
    lock, results, done = ctx.Lock(), ctx.Queue(), ctx.Event()
    pc = mp.start_processes(_train_locked, args=(t, model, lock, results, done, N), nprocs=2, join=False,
                            start_method=method)
    try:
        got = sorted([results.get(timeout=120) for _ in range(2)], key=lambda r: r[0])
        done.set()
        while not pc.join(timeout=120):
            pass
    finally:
        for p in pc.processes:
            if p.is_alive():
                p.kill()
    deltas = [float((p.detach() - i0).abs().max().item()) for p, i0 in zip(model.parameters(), init)]
    min_deltas = [float((p.detach() - i0).abs().min().item()) for p, i0 in zip(model.parameters(), init)]
    return {"t": t.tolist(), "max_delta": max(deltas), "min_delta": min(min_deltas),
            "children": [[r[0], r[1] != os.getpid(), r[2], r[3], r[4].tolist(), r[4].is_shared()] for r in got],
            "exitcodes": [p.exitcode for p in pc.processes]}


def _raise(i):
    if i == 1:
        raise KeyError("missing key in rank 1")


def scenario_spawn_error() -> dict:
    try:
        mp.spawn(_raise, nprocs=2)
    except mp.ProcessRaisedException as e:
        return {"type": type(e).__name__, "msg": str(e), "index": e.error_index}
    return {"type": None}


def _hold(inbox, outbox, release):
    t = inbox.get(timeout=60)
    from disttorch.multiprocessing import _segments

    outbox.put(_segments.segment_of(t._data).name)
    release.wait(120)


def scenario_fs_kill() -> dict:
    """file_system strategy: one receiver is SIGKILLed while it holds the segment, one exits normally."""
    mp.set_sharing_strategy("file_system")
    assert mp.get_sharing_strategy() == "file_system"
    from disttorch.multiprocessing import _segments

    ctx = mp.get_context("fork")
    t = torch.arange(1000.).share_memory_()
    name = _segments.segment_of(t._data).name
    # One Event each: a process killed while waiting on an Event would leave set() waiting for it forever.
    inbox, outbox, release = ctx.Queue(), ctx.Queue(), [ctx.Event(), ctx.Event()]
    procs = [ctx.Process(target=_hold, args=(inbox, outbox, release[i])) for i in range(2)]
    try:
        for p in procs:
            p.start()
            inbox.put(t)
        seen = [outbox.get(timeout=60) for _ in procs]
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].join(timeout=60)
        release[1].set()
        procs[1].join(timeout=60)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    exists_while_running = os.path.exists(f"/dev/shm/{name}")
    # A segment whose holders all exit normally is unlinked at once, without waiting for the job to end.
    u = torch.ones(10).share_memory_()
    uname = _segments.segment_of(u._data).name
    q2, out2, release2 = ctx.Queue(), ctx.Queue(), ctx.Event()
    p2 = ctx.Process(target=_hold, args=(q2, out2, release2))
    p2.start()
    try:
        q2.put(u)
        seen_u = out2.get(timeout=60)
        release2.set()
        p2.join(timeout=60)
    finally:
        if p2.is_alive():
            p2.kill()
    u_exists_after_child = os.path.exists(f"/dev/shm/{uname}")
    del u
    gc.collect()
    return {"name": name, "seen": seen, "exitcodes": [p.exitcode for p in procs],
            "exists_while_running": exists_while_running, "uname": uname, "seen_u": seen_u,
            "u_exists_after_child": u_exists_after_child, "u_exitcode": p2.exitcode,
            "u_exists_after_del": os.path.exists(f"/dev/shm/{uname}")}


SCENARIOS = {"spawn": lambda: scenario_hogwild("spawn"), "forkserver": lambda: scenario_hogwild("forkserver"),
             "fork": lambda: scenario_hogwild("fork"), "spawn_error": scenario_spawn_error, "fs_kill": scenario_fs_kill}

if __name__ == "__main__":
    # Several scenarios in one job save an interpreter start each: "spawn,forkserver,spawn_error".
    for which in sys.argv[1].split(","):
        if which not in SCENARIOS:
            raise SystemExit(f"unknown scenario {which!r}; expected one of {sorted(SCENARIOS)}")
        print("RESULT " + json.dumps({"scenario": which, **SCENARIOS[which]()}), flush=True)
