"""Tutorial 2: data-parallel training with DistributedDataParallel.

    disttorch launch --nproc-per-node 2 --backend zmq examples/tutorials/02_distributed_ddp.py [--quick]

``disttorch launch`` starts one process per rank and hands each its ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT``, as ``torchrun`` does; ``--backend zmq`` picks the ZeroMQ ring backend
(the default is MPI when mpi4py is installed). The script itself is a PyTorch DDP script:

1. ``dist.init_process_group()`` joins the job (the backend comes from the launcher).
2. ``DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=0)`` gives each rank a
   disjoint share of the dataset; ``sampler.set_epoch(epoch)`` reshuffles every epoch, the same way on every
   rank.
3. ``DistributedDataParallel(model)`` broadcasts rank 0's initial parameters and averages the gradients
   during ``backward()``, so every rank takes the same optimizer step and the replicas stay identical.
4. Metrics are per rank until combined: each rank sums its squared errors and sample count, and
   ``dist.all_reduce(t)`` (a SUM, in place) makes the global mean loss known on every rank. Only rank 0
   prints, so the log reads as one process's.
5. ``dist.destroy_process_group()`` leaves the job.

The task is a noisy linear regression ``y = X w + b`` with ``w = (2, -3, 0.5, 1)`` and ``b = 0.25``; the script
ends by checking that the ranks hold identical parameters (``all_reduce`` with ``ReduceOp.MAX`` and ``MIN`` of
the flattened parameters) and printing the learned weights.
"""
from __future__ import annotations

import argparse

import numpy as np

import disttorch as torch
import disttorch.distributed as dist
import disttorch.nn as nn
from disttorch.nn.parallel import DistributedDataParallel as DDP
from disttorch.utils.data import DataLoader, TensorDataset
from disttorch.utils.data.distributed import DistributedSampler

TRUE_W = [2.0, -3.0, 0.5, 1.0]
TRUE_B = 0.25


def make_dataset(n: int, seed: int = 0) -> tuple:
    """(X, y) as float32 NumPy arrays: X standard normal, y = X w + b + 0.01 noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, len(TRUE_W))).astype(np.float32)
    y = (x @ np.array(TRUE_W, np.float32) + TRUE_B + 0.01 * rng.standard_normal(n)).astype(np.float32)
    return x, y.reshape(n, 1)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a shortened run (the test suite's)")
    p.add_argument("--samples", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=16, help="per rank")
    args = p.parse_args(argv)
    epochs = 3 if args.quick else 10

    dist.init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    x, y = make_dataset(args.samples)
    dataset = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler)

    torch.manual_seed(rank)  # different initial weights per rank: DDP makes them rank 0's
    model = DDP(nn.Linear(len(TRUE_W), 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loss_fn = nn.MSELoss()
    if rank == 0:
        print(f"world size {world}, {len(sampler)} samples per rank, {len(loader)} steps per epoch", flush=True)

    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            loss_fn(model(xb), yb).backward()
            optimizer.step()
        # the epoch's metric over the whole dataset: per-rank sums, then one all_reduce (the sampler pads
        # a dataset that does not split evenly with repeated samples; 1024 over 2 ranks has none)
        model.eval()
        totals = torch.zeros(2, dtype=torch.float64)  # summed squared error, sample count
        with torch.no_grad():
            for xb, yb in DataLoader(dataset, batch_size=256, sampler=sampler):
                err = ((model(xb) - yb) ** 2).sum().item()
                totals += torch.tensor([err, len(yb)], dtype=torch.float64)
        dist.all_reduce(totals)
        if rank == 0:
            print(f"epoch {epoch + 1}  mean squared error {(totals[0] / totals[1]).item():.6f}  "
                  f"over {int(totals[1].item())} samples", flush=True)

    # replicas stay identical: the max and min over ranks of every parameter agree
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    hi, lo = flat.clone(), flat.clone()
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    if rank == 0:
        print(f"max parameter difference between ranks {(hi - lo).abs().max().item():.3g}")
        w = model.module.weight.detach().reshape(-1).tolist()
        print("learned weight " + " ".join(f"{v:.6f}" for v in w) + f"  bias {model.module.bias.item():.6f}",
              flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
