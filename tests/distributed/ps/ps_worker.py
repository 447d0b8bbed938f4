"""One worker of the parameter-server job tests: ``python ps_worker.py --out DIR``.

Each scenario trains a small MLP in float64 with ``ps.DistributedOptimizer`` on this rank's half of a global
batch, and rank 0 also trains the same model (its own seed) on the whole batch with the plain
``disttorch.optim`` optimizer: the reference. Results (final parameters, state, reference) go to DIR/rank{R}.json.
The model seed depends on the rank: rank 0's initial values must seed the servers.
"""
from __future__ import annotations

import argparse
import json
import traceback

import numpy as np

import disttorch as torch
import disttorch.distributed.ps as ps
from disttorch import nn

STEPS = 6
HALF = 8


def mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).double()


def batch(step: int):
    g = torch.Generator().manual_seed(500 + step % 10)
    x = torch.randn(2 * HALF, 6, generator=g, dtype=torch.float64)
    return x, torch.sin(x[:, :3]) + 0.1 * x[:, 3:]


def params(model) -> list:
    return [p.detach().numpy().reshape(-1).tolist() for p in model.parameters()]


def eval_loss(model) -> float:
    g = torch.Generator().manual_seed(9)
    x = torch.randn(64, 6, generator=g, dtype=torch.float64)
    with torch.no_grad():
        return float(((model(x) - (torch.sin(x[:, :3]) + 0.1 * x[:, 3:])) ** 2).mean().item())


def train(model, opt, rank, world, sched=None, local=True, steps=STEPS) -> list:
    losses = []
    for step in range(steps):
        x, y = batch(step)
        if local:
            x, y = x[rank * HALF:(rank + 1) * HALF], y[rank * HALF:(rank + 1) * HALF]
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(float(loss.item()))
    return losses


def scenario(name, rule, mode, staleness, kwargs, rank, world, with_sched, steps=STEPS, overlap=True) -> dict:
    model = mlp(seed=100 + rank)
    opt = ps.DistributedOptimizer(model.parameters(), rule, mode=mode, staleness=staleness, min_slice_bytes=256,
                                  overlap=overlap, **kwargs)
    start, start_loss = params(model), eval_loss(model)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5) if with_sched else None
    losses = train(model, opt, rank, world, sched, steps=steps)
    opt.synchronize()
    out = {"start": start, "final": params(model), "losses": losses, "clock": opt.clock,
           "eval_start": start_loss, "eval_final": eval_loss(model),
           "servers": sorted({sh.server for sh in opt.shards}),
           "state": {str(k): {n: np.asarray(v.numpy()).reshape(-1).tolist() for n, v in st.items()}
                     for k, st in opt.state_dict()["state"].items()}}
    if rank == 0:
        ref = mlp(seed=100)
        ropt = getattr(torch.optim, {"sgd": "SGD", "adam": "Adam"}[rule])(ref.parameters(), **kwargs)
        rs = torch.optim.lr_scheduler.StepLR(ropt, step_size=2, gamma=0.5) if with_sched else None
        train(ref, ropt, rank, world, rs, local=False, steps=steps)
        out["ref_start"] = params(mlp(seed=100))
        out["ref_final"] = params(ref)
        out["ref_state"] = {str(k): {n: np.asarray(v.numpy()).reshape(-1).tolist() for n, v in st.items()}
                            for k, st in ropt.state_dict()["state"].items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    ps.init()
    rank, world = ps.get_rank(), ps.get_world_size()
    result = {"rank": rank, "world": world}
    try:
        result["sync"] = scenario("sync", "sgd", "sync", 0, {"lr": 0.1, "momentum": 0.9}, rank, world, True)
        result["ssp0"] = scenario("ssp0", "adam", "ssp", 0, {"lr": 0.01}, rank, world, False)
        result["sync_adam"] = scenario("sync_adam", "adam", "sync", 0, {"lr": 0.01}, rank, world, False,
                                       overlap=False)
        result["ssp2"] = scenario("ssp2", "sgd", "ssp", 2, {"lr": 0.05}, rank, world, False)
        result["async"] = scenario("async", "sgd", "async", 0, {"lr": 0.05, "momentum": 0.5}, rank, world, False,
                                   steps=40)
    except Exception:  # noqa: BLE001 - the test prints this
        result["error"] = traceback.format_exc()
    finally:
        ps.shutdown()
    with open(f"{args.out}/rank{rank}.json", "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
