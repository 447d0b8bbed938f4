"""Train the digits CNN with the parameter server: S servers hold the parameters, W workers push gradients.

    disttorch launch --mode ps --num-servers 2 --nproc-per-node 2 examples/ps_digits.py --mode sync

The same data, model and evaluation as examples/ddp_digits.py. Each worker trains on its DistributedSampler
share of the training set; `ps.DistributedOptimizer` runs SGD with momentum on the servers. `--mode sync`
averages one gradient per worker per step (as DDP), `--mode ssp` lets a worker run at most `--staleness`
steps ahead of the slowest and `--mode async` applies each gradient as it arrives. After every epoch each
worker waits for its own pushes to be applied and pulls the latest parameters (`opt.synchronize()`); rank 0
then prints its mean training loss and the accuracy on the whole test set. In ssp and async the other
worker may still be training, so rank 0 evaluates the parameters of that moment.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import disttorch as torch  # noqa: E402
import disttorch.distributed.ps as ps  # noqa: E402
from disttorch.utils.data import DataLoader  # noqa: E402
from disttorch.utils.data.distributed import DistributedSampler  # noqa: E402
from train_digits import DigitsCNN, evaluate, load_digits_tensors, train_epoch  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("sync", "ssp", "async"), default="sync")
    p.add_argument("--staleness", type=int, default=2, help="steps a worker may run ahead (ssp only)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32, help="per worker")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-accuracy", type=float, default=None, help="exit 1 when the final accuracy is lower")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")
    return p.parse_args(argv)


def main(argv=None) -> float:
    args = parse_args(argv)
    ps.init()
    rank, world = ps.get_rank(), ps.get_world_size()
    torch.manual_seed(args.seed)  # same initial model everywhere; rank 0's values seed the servers
    train_set, test_set = load_digits_tensors(args.seed)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler)
    test_loader = DataLoader(test_set, batch_size=256)
    model = DigitsCNN()
    staleness = args.staleness if args.mode == "ssp" else 0
    optimizer = ps.DistributedOptimizer(model.parameters(), "sgd", lr=args.lr, momentum=args.momentum,
                                        mode=args.mode, staleness=staleness)
    tqdm = None
    if rank == 0 and not args.no_progress:
        try:
            from tqdm import tqdm
        except ImportError:  # the progress bar is optional
            pass
    acc = float("nan")
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        torch.manual_seed(args.seed + 1000 * (epoch + 1) + rank)  # dropout masks: per worker, reproducible
        bar = tqdm(total=len(train_loader), desc=f"epoch {epoch + 1}", leave=False) if tqdm else None
        train_loss = train_epoch(model, train_loader, optimizer, bar)
        if bar is not None:
            bar.close()
        optimizer.synchronize()
        if rank == 0:
            acc = evaluate(model, test_loader)
            print(f"epoch {epoch + 1:2d}/{args.epochs}  train loss {train_loss:.4f}  "
                  f"test accuracy {acc:.4f}", flush=True)
    if rank == 0:
        print(f"final test accuracy {acc:.4f} in {args.mode} mode with {os.environ.get('DISTTORCH_PS_NUM_SERVERS')}"
              f" servers and {world} workers in {time.perf_counter() - t0:.1f} s", flush=True)
    ps.shutdown()
    if rank == 0 and args.min_accuracy is not None and not acc >= args.min_accuracy:
        print(f"ps_digits: final test accuracy {acc:.4f} is below {args.min_accuracy}", file=sys.stderr)
        sys.exit(1)
    return acc


if __name__ == "__main__":
    main()
