"""A worker of the server-restart test: ``python ps_restart_worker.py --out DIR``.

Sync training over 2 servers. After step ``PAUSE`` rank 0 writes DIR/reached and waits (polling, with a
deadline) for DIR/killed, which the test writes once it has SIGKILLed server 0; rank 0 then goes on while
server 0 is down or restarting. Both ranks must end with the single-process result: no acknowledged update
lost, none applied twice.
"""
from __future__ import annotations

import argparse
import json
import os
import time
import traceback

import disttorch as torch
import disttorch.distributed.ps as ps
from ps_worker import HALF, batch, mlp, params

STEPS, PAUSE = 8, 3


def run(model, opt, rank, local=True, out=None) -> None:
    for step in range(STEPS):
        x, y = batch(step)
        if local:
            x, y = x[rank * HALF:(rank + 1) * HALF], y[rank * HALF:(rank + 1) * HALF]
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        if out is not None and rank == 0 and step + 1 == PAUSE:
            open(os.path.join(out, "reached"), "w").close()
            deadline = time.monotonic() + 60
            while not os.path.exists(os.path.join(out, "killed")):
                if time.monotonic() > deadline:
                    raise TimeoutError("the test never killed server 0")
                time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    ps.init()
    rank = ps.get_rank()
    result = {"rank": rank}
    try:
        model = mlp(seed=100 + rank)
        opt = ps.DistributedOptimizer(model.parameters(), "adam", mode="sync", lr=0.01, min_slice_bytes=256)
        run(model, opt, rank, out=args.out)
        opt.synchronize()
        result["final"] = params(model)
        ref = mlp(seed=100)
        run(ref, torch.optim.Adam(ref.parameters(), lr=0.01), 0, local=False)
        result["ref_final"] = params(ref)
    except Exception:  # noqa: BLE001 - the test prints this
        result["error"] = traceback.format_exc()
    finally:
        ps.shutdown()
    with open(f"{args.out}/rank{rank}.json", "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
