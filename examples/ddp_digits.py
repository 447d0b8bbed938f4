"""Train the digits CNN on several processes with DistributedDataParallel: the main job (`make demo`).

    disttorch launch --nproc-per-node 2 examples/ddp_digits.py --epochs 20

Each rank trains on its DistributedSampler share of the training set; DDP averages the gradients, so the
ranks hold identical models (equivalent to one process with a batch of nproc * batch-size). Rank 0 shows
the progress bar and prints the loss and the test accuracy of every epoch; the test set is split across
the ranks without duplicates (DistributedEvalSampler) and the correct counts are summed with all_reduce.
A checkpoint is written after every epoch (rank 0 writes, atomically); after a restart by
`disttorch launch --max-restarts K`, or with --resume, training continues from it and reaches the same
result as an undisturbed run (every epoch reseeds the random streams).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import disttorch as torch  # noqa: E402
import disttorch.distributed as dist  # noqa: E402
import disttorch.nn.functional as F  # noqa: E402
from disttorch.distributed import elastic  # noqa: E402
from disttorch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402
from disttorch.utils.data import DataLoader  # noqa: E402
from disttorch.utils.data.distributed import DistributedEvalSampler, DistributedSampler  # noqa: E402
from train_digits import DigitsCNN, evaluate, load_digits_tensors, save_plot  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32, help="per rank")
    p.add_argument("--lr", type=float, default=2e-3, help="for one rank; scaled by the number of ranks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default=None, help="mpi or zmq (default: chosen by init_process_group)")
    p.add_argument("--out-dir", default=os.path.join("runs", "ddp_digits"))
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/checkpoint.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")
    return p.parse_args(argv)


def main(argv=None) -> float:
    args = parse_args(argv)
    dist.init_process_group(backend=args.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    ckpt = elastic.Checkpointer(os.path.join(args.out_dir, "checkpoint.pt"))
    plot_path = os.path.join(args.out_dir, "curves.png")
    torch.manual_seed(args.seed)
    train_set, test_set = load_digits_tensors(args.seed)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler)
    test_loader = DataLoader(test_set, batch_size=256, sampler=DistributedEvalSampler(test_set, world, rank))
    model = DDP(DigitsCNN())
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr * world)  # linear scaling with the global batch
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    history, start = {"loss": [], "acc": []}, 0
    if args.resume or elastic.restart_count() > 0:
        state = ckpt.load()
        if state is not None:
            model.module.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            history, start = state["history"], state["epoch"]
            if rank == 0:
                print(f"resumed from {ckpt.path} after epoch {start} (restart {elastic.restart_count()})",
                      flush=True)
    tqdm = None
    if rank == 0 and not args.no_progress:
        try:
            from tqdm import tqdm
        except ImportError:  # the progress bar is optional
            pass
    t0 = time.perf_counter()
    for epoch in range(start, args.epochs):
        sampler.set_epoch(epoch)
        torch.manual_seed(args.seed + 1000 * (epoch + 1) + rank)  # dropout masks: per rank, reproducible
        bar = tqdm(total=len(train_loader), desc=f"epoch {epoch + 1}", leave=False) if tqdm else None
        model.train()
        total = torch.zeros(2, dtype=torch.float64)  # summed loss, sample count
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            total += torch.tensor([loss.item() * len(y), len(y)], dtype=torch.float64)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
        if bar is not None:
            bar.close()
        scheduler.step()
        n_test = len(test_loader.sampler)
        counts = torch.tensor([round(evaluate(model.module, test_loader) * n_test), n_test], dtype=torch.float64)
        dist.all_reduce(total)
        dist.all_reduce(counts)
        loss, acc = (total[0] / total[1]).item(), (counts[0] / counts[1]).item()
        history["loss"].append(loss)
        history["acc"].append(acc)
        if rank == 0:
            print(f"epoch {epoch + 1:2d}/{args.epochs}  train loss {loss:.4f}  test accuracy {acc:.4f}", flush=True)
        ckpt.save({"model": model.module.state_dict(), "optimizer": optimizer.state_dict(),
                   "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "history": history})
    final = history["acc"][-1] if history["acc"] else float("nan")
    if rank == 0:
        save_plot(history, plot_path)
        print(f"final test accuracy {final:.4f} on {world} ranks in {time.perf_counter() - t0:.1f} s")
        print(f"checkpoint: {ckpt.path}\nplot: {plot_path}", flush=True)
    dist.destroy_process_group()
    return final


if __name__ == "__main__":
    main()
