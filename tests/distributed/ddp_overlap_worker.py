"""One rank of the DDP reducer checks: ``python ddp_overlap_worker.py BACKEND OUT_DIR``.

Records in OUT_DIR/rank{R}.json, per scenario, what the test compares: how many backend all-reduces and
fingerprint checks one DDP backward issues (counted by wrapping the world group's backend methods), whether
the averaged gradients equal a locally computed full-batch reference, and the errors a mismatched model gives.
"""
from __future__ import annotations

import json
import os
import sys
import traceback

import numpy as np

import disttorch as torch
import disttorch.distributed as dist
import disttorch.nn.functional as F
from disttorch import nn
from disttorch.distributed.groups import world
from disttorch.nn.parallel import DistributedDataParallel as DDP


def mlp(hidden: int = 16) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, hidden), nn.Tanh(), nn.Linear(hidden, 16), nn.Tanh(), nn.Linear(16, 3))


def scenario_calls(rank, world_size, res):
    """One backward through DDP with 3 buckets: count the backend's all-reduces and verify() calls."""
    net, ref = mlp(), mlp()
    ddp = DDP(net, bucket_cap_mb=100 / 2 ** 20)  # 100-byte buckets: 3 for these 6 parameters
    os.environ["DISTTORCH_DDP_CHECK_BUCKETS"] = "1"  # read when a DDP is built: this one checks every bucket
    try:
        checked = DDP(mlp(), bucket_cap_mb=100 / 2 ** 20)
    finally:
        del os.environ["DISTTORCH_DDP_CHECK_BUCKETS"]
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(4 * world_size, 6, generator=g), torch.randint(0, 3, (4 * world_size,), generator=g)
    pg = world.default._pg
    # verify: the check as its own call (zmq: it tags the next message); verify_digest: the mpi backend's check,
    # run inside the next collective's own work
    names = ["allreduce", "verify"] + (["verify_digest"] if hasattr(pg, "verify_digest") else [])
    counts = dict.fromkeys(names, 0)

    def counting(name, fn):
        def call(*a, **k):
            if name != "verify_digest" or a[0] is not None:  # (None, "") only drops a pending check
                counts[name] += 1
            return fn(*a, **k)
        return call

    for name in names:
        setattr(pg, name, counting(name, getattr(pg, name)))
    try:
        F.cross_entropy(ddp(x[4 * rank:4 * rank + 4]), y[4 * rank:4 * rank + 4]).backward()
        res["ddp"] = dict(counts)
        counts.update(dict.fromkeys(names, 0))
        F.cross_entropy(checked(x[4 * rank:4 * rank + 4]), y[4 * rank:4 * rank + 4]).backward()
        res["ddp_checked"] = dict(counts)
        counts.update(dict.fromkeys(names, 0))
        dist.all_reduce(torch.ones(3))  # a plain collective, for contrast: it keeps its per-call check
        res["plain"] = dict(counts)
    finally:
        for name in names:
            delattr(pg, name)
    res["buckets"] = len(ddp._buckets)
    F.cross_entropy(ref(x), y).backward()  # the full global batch in one process: the averaged gradient
    res["max_grad_diff"] = max(float(np.abs(p.grad.numpy() - q.grad.numpy()).max())
                               for p, q in zip(net.parameters(), ref.parameters()))


def scenario_layout(rank, world_size, res):
    """Models that differ between ranks are refused at construction, on every rank."""
    for name, hidden in (("shape", 16 + rank), ("count", None)):
        net = mlp(hidden) if hidden is not None else (mlp() if rank == 0 else nn.Linear(6, 3))
        try:
            DDP(net)
            res[name] = "no error"
        except RuntimeError as e:
            res[name] = str(e)
    ddp = DDP(mlp())  # the group is still usable afterwards
    F.cross_entropy(ddp(torch.ones(2, 6) * rank), torch.tensor([0, 1])).backward()
    res["after"] = float(ddp.module[0].bias.grad.numpy().sum())


def main() -> None:
    backend, out = sys.argv[1], sys.argv[2]
    dist.init_process_group(backend)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    results = {}
    for name, fn in (("calls", scenario_calls), ("layout", scenario_layout)):
        res = results[name] = {}
        try:
            fn(rank, world_size, res)
        except Exception:  # noqa: BLE001 - recorded for the test to show
            res["exception"] = traceback.format_exc()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(results, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
