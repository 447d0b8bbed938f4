"""One rank of the DDP multi-process checks: ``python ddp_worker.py BACKEND OUT_DIR [SCENARIO ...]``.

Every scenario runs on every rank with rank-dependent data, compares against a single-process reference
computed locally from the same seeded data, and records what the test must compare *across* ranks
(parameter digests) in OUT_DIR/rank{R}.json.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import traceback

import numpy as np

import disttorch as torch
import disttorch.distributed as dist
import disttorch.nn.functional as F
from disttorch import nn
from disttorch.distributed.algorithms.ddp_comm_hooks import default_hooks
from disttorch.nn.parallel import DistributedDataParallel as DDP


def digest(module) -> str:
    h = hashlib.sha256()
    for p in module.parameters():
        h.update(np.ascontiguousarray(p.detach().numpy()).tobytes())
    return h.hexdigest()


def mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))


def global_batch(step: int, n: int):
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def max_diff(a, b) -> float:
    return max(float(np.abs(p.detach().numpy().astype(np.float64) - q.detach().numpy()).max())
               for p, q in zip(a.parameters(), b.parameters()))


def scenario_identical(rank, world, res):
    """Rank-dependent init is overwritten by rank 0's; after every step the parameters are bitwise equal;
    N ranks x batch b equal one process with batch N*b."""
    net = mlp(seed=rank)  # different on every rank before DDP
    model = DDP(net, bucket_cap_mb=0.001)  # several buckets
    ref = mlp(seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    b = 4
    res["digests"] = [digest(net)]
    for step in range(4):
        x, y = global_batch(step, b * world)
        opt.zero_grad()
        F.cross_entropy(model(x[rank * b:(rank + 1) * b]), y[rank * b:(rank + 1) * b]).backward()
        opt.step()
        ref_opt.zero_grad()
        F.cross_entropy(ref(x), y).backward()
        ref_opt.step()
        res["digests"].append(digest(net))
    res["max_diff"] = max_diff(net, ref)
    res["buckets"] = len(model._buckets)


def scenario_no_sync(rank, world, res):
    net = mlp(0)
    model = DDP(net, gradient_as_bucket_view=True)
    ref = mlp(0)
    b = 3
    for micro in range(3):
        x, y = global_batch(10 + micro, b * world)
        xs, ys = x[rank * b:(rank + 1) * b], y[rank * b:(rank + 1) * b]
        if micro < 2:
            with model.no_sync():
                F.cross_entropy(model(xs), ys).backward()
        else:
            F.cross_entropy(model(xs), ys).backward()
        F.cross_entropy(ref(x), y).backward()
    res["grad_diff"] = max(float(np.abs(p.grad.numpy() - q.grad.numpy()).max())
                           for p, q in zip(net.parameters(), ref.parameters()))
    res["grad_digest"] = hashlib.sha256(b"".join(p.grad.numpy().tobytes() for p in net.parameters())).hexdigest()


def scenario_fp16(rank, world, res):
    net = mlp(0)
    model = DDP(net)
    model.register_comm_hook(None, default_hooks.fp16_compress_hook)
    ref = mlp(0)
    b = 4
    x, y = global_batch(20, b * world)
    F.cross_entropy(model(x[rank * b:(rank + 1) * b]), y[rank * b:(rank + 1) * b]).backward()
    F.cross_entropy(ref(x), y).backward()
    res["grad_diff"] = max(float(np.abs(p.grad.numpy() - q.grad.numpy()).max())
                           for p, q in zip(net.parameters(), ref.parameters()))
    res["grad_dtype"] = str(net[0].weight.grad.dtype)
    res["grad_digest"] = hashlib.sha256(b"".join(p.grad.numpy().tobytes() for p in net.parameters())).hexdigest()
    # a hook written as in PyTorch's docs, on dist's own Work.get_future()
    net2 = mlp(0)
    model2 = DDP(net2)
    ws = dist.get_world_size()
    model2.register_comm_hook(None, lambda state, bucket: dist.all_reduce(
        bucket.buffer().div_(ws), async_op=True).get_future().then(lambda fut: fut.value()[0]))
    F.cross_entropy(model2(x[rank * b:(rank + 1) * b]), y[rank * b:(rank + 1) * b]).backward()
    res["get_future_hook_diff"] = max(float(np.abs(p.grad.numpy() - q.grad.numpy()).max())
                                      for p, q in zip(net2.parameters(), ref.parameters()))


def scenario_join(rank, world, res):
    """Rank r has 2 + r batches; the joined ranks shadow with zeros (gradients divided by the initial world
    size, as PyTorch). The reference replays the same steps from everyone's data."""
    net = mlp(0)
    model = DDP(net)
    ref = mlp(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    b = 2
    counts = [2 + r for r in range(world)]
    with model.join():
        for step in range(counts[rank]):
            x, y = global_batch(30 + step, b * world)
            opt.zero_grad()
            F.mse_loss(model(x[rank * b:(rank + 1) * b]), F.one_hot(y[rank * b:(rank + 1) * b], 3).float()).backward()
            opt.step()
    for step in range(max(counts)):
        x, y = global_batch(30 + step, b * world)
        ref_opt.zero_grad()
        active = [r for r in range(world) if counts[r] > step]
        for r in active:
            (F.mse_loss(ref(x[r * b:(r + 1) * b]), F.one_hot(y[r * b:(r + 1) * b], 3).float()) / world).backward()
        ref_opt.step()
    res["digest"] = digest(net)
    res["max_diff"] = max_diff(net, ref)


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(4, 2)
        self.b = nn.Linear(4, 2)

    def forward(self, x, use_b=False):
        return self.b(x) if use_b else self.a(x)


def scenario_unused(rank, world, res):
    model = DDP(TwoHeads())
    x = torch.randn(3, 4)
    model(x).sum().backward()
    try:
        model(x)
    except RuntimeError as e:
        res["error"] = str(e)
    # find_unused_parameters: rank 1 uses head b, the others head a; parameters stay identical
    net = TwoHeads()
    model = DDP(net, find_unused_parameters=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(2):
        opt.zero_grad()
        model(torch.full((3, 4), float(rank + step + 1)), use_b=(rank == 1)).sum().backward()
        opt.step()
    res["digest"] = digest(net)
    res["b_grad_none"] = net.b.weight.grad is None


def scenario_syncbn(rank, world, res):
    torch.manual_seed(5)
    x = torch.randn(3 * world, 4, 5, dtype=torch.float64)
    w = torch.randn(3 * world, 4, 5, dtype=torch.float64)
    sbn = nn.SyncBatchNorm(4).double()
    bn = nn.BatchNorm1d(4).double()
    with torch.no_grad():
        sbn.weight.uniform_(0.5, 1.5)
        sbn.bias.uniform_(-1, 1)
    bn.load_state_dict(sbn.state_dict())
    xs = x[rank * 3:(rank + 1) * 3].clone().requires_grad_()
    y = sbn(xs)
    (y * w[rank * 3:(rank + 1) * 3]).sum().backward()
    xx = x.clone().requires_grad_()
    yy = bn(xx)
    (yy * w).sum().backward()
    sl = slice(rank * 3, (rank + 1) * 3)
    res["out_diff"] = float(np.abs(y.detach().numpy() - yy.detach().numpy()[sl]).max())
    res["grad_diff"] = float(np.abs(xs.grad.numpy() - xx.grad.numpy()[sl]).max())
    res["stat_diff"] = max(float(np.abs(sbn.running_mean.numpy() - bn.running_mean.numpy()).max()),
                           float(np.abs(sbn.running_var.numpy() - bn.running_var.numpy()).max()))
    # converted model under DDP: the weight gradient averaged by DDP equals the full batch's
    net = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(nn.BatchNorm1d(4))).double()
    net.load_state_dict({"0." + k: v for k, v in sbn.state_dict().items()})
    model = DDP(net)
    model(x[sl]).pow(2).sum().backward()
    bn2 = nn.BatchNorm1d(4).double()
    bn2.load_state_dict(net[0].state_dict())
    (bn2(x).pow(2).sum() / world).backward()
    res["ddp_weight_grad_diff"] = float(np.abs(net[0].weight.grad.numpy() - bn2.weight.grad.numpy()).max())


SCENARIOS = {name[len("scenario_"):]: fn for name, fn in list(globals().items()) if name.startswith("scenario_")}


def main() -> None:
    backend, out_dir, *names = sys.argv[1:]
    dist.init_process_group(backend=backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    results = {}
    for name in names or list(SCENARIOS):
        res = results[name] = {}
        try:
            SCENARIOS[name](rank, world, res)
        except Exception:
            res["exception"] = traceback.format_exc()
            print(res["exception"], file=sys.stderr, flush=True)
            break  # the ranks may now disagree on the collective sequence: stop here
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(results, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
