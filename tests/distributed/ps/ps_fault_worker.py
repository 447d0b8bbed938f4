"""A worker of the dead-worker test: ``python ps_fault_worker.py --out DIR --mode sync|async``.

Both ranks train with ``ps.DistributedOptimizer``; rank 1 kills itself (SIGKILL, no shutdown) after step
``DIE_AFTER`` (unless ``--restarted``: then it rejoins the job and trains the steps that are left). Rank 0 goes
on alone once the scheduler has declared rank 1 dead, and in sync mode checks against
a reference: the whole batch for the steps both workers pushed, then its own half only.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import time
import traceback

import disttorch as torch
import disttorch.distributed.ps as ps
from ps_worker import HALF, batch, mlp, params

STEPS, DIE_AFTER = 5, 2


def run(model, opt, rank, mode_ref=False, die=True, alone=None, pause_after=None, out=None) -> None:
    """Train to step STEPS; the reference (``mode_ref``) uses rank 0's half alone in the steps ``alone``."""
    for step in range(getattr(opt, "clock", 0), STEPS):
        x, y = batch(step)
        if not mode_ref or step in alone:
            x, y = x[rank * HALF:(rank + 1) * HALF], y[rank * HALF:(rank + 1) * HALF]
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        if rank == 1 and step + 1 == DIE_AFTER and not mode_ref and die:
            os.kill(os.getpid(), signal.SIGKILL)
        if rank == 0 and not mode_ref and step + 1 == pause_after:
            _wait_for(os.path.join(out, "go"))


def _wait_for(path: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {seconds} s")
        time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", default="sync")
    ap.add_argument("--restarted", action="store_true", help="a restarted worker: rejoin, do not die")
    ap.add_argument("--pause-after", type=int, default=None, help="rank 0 waits for OUT/go after this step")
    args = ap.parse_args()
    ps.init()
    rank = ps.get_rank()
    result = {"rank": rank}
    try:
        model = mlp(seed=100 + rank)
        opt = ps.DistributedOptimizer(model.parameters(), "sgd", mode=args.mode, lr=0.1, momentum=0.9)
        result["start_clock"] = opt.clock
        if args.restarted:
            open(os.path.join(args.out, "joined"), "w").close()
        run(model, opt, rank, die=not args.restarted, pause_after=args.pause_after, out=args.out)
        opt.synchronize()
        result["final"] = params(model)
        if args.mode == "sync":
            ref = mlp(seed=100)
            # rank 1 is away from step DIE_AFTER on (to the end, or until rank 0's pause when it rejoins)
            alone = range(DIE_AFTER, args.pause_after or STEPS)
            run(ref, torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9), 0, mode_ref=True, alone=alone)
            result["ref_final"] = params(ref)
        result["clock"] = opt.clock
    except Exception:  # noqa: BLE001 - the test prints this
        result["error"] = traceback.format_exc()
    finally:
        ps.shutdown()
    with open(f"{args.out}/rank{rank}.json", "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
