"""A small parameter-server worker for the Ray ps-mode test: ``ps_ray_script.py OUT_DIR``.

Each worker trains a float64 MLP on its half of every global batch with ``ps.DistributedOptimizer`` in sync mode
and writes its final parameters to OUT_DIR/rank{R}.json. The model seed depends on the rank: rank 0's initial
values seed the servers, so the result is the full-batch training of ``mlp(SEED)`` (the test's reference).
"""
import json
import os
import sys

import disttorch as torch
from disttorch import nn

SEED, STEPS, HALF, LR, MOMENTUM = 10, 5, 4, 0.1, 0.9


def mlp(seed: int):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)).double()


def batch(step: int):
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(2 * HALF, 4, generator=g, dtype=torch.float64)
    return x, torch.sin(x[:, :2])


def main(out_dir: str) -> None:
    import disttorch.distributed.ps as ps

    ps.init()
    rank, world = ps.get_rank(), ps.get_world_size()
    model = mlp(SEED + rank)  # differs per rank on purpose: only rank 0's values may reach the servers
    opt = ps.DistributedOptimizer(model.parameters(), "sgd", lr=LR, momentum=MOMENTUM, mode="sync",
                                  min_slice_bytes=64)
    for step in range(STEPS):
        x, y = batch(step)
        x, y = x[rank * HALF:(rank + 1) * HALF], y[rank * HALF:(rank + 1) * HALF]
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
    opt.synchronize()
    out = {"rank": rank, "world": world, "role": os.environ.get("DISTTORCH_PS_ROLE"),
           "servers": sorted({sh.server for sh in opt.shards}),
           "final": [p.detach().numpy().reshape(-1).tolist() for p in model.parameters()]}
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(out, f)
    print(f"ps worker {rank} of {world} done")
    ps.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
