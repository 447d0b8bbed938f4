"""Train a small CNN on scikit-learn's 8x8 handwritten digits: the single-process main job.

Written against PyTorch's API: only the import line says disttorch. It shows a tqdm progress bar,
prints the train loss and test accuracy of every epoch, saves a checkpoint after each epoch
(atomically, so an interrupted run can ``--resume``), and writes a loss/accuracy plot to PNG.

    python examples/train_digits.py --epochs 20
    python examples/train_digits.py --resume          # continue from runs/digits/checkpoint.pt
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import disttorch as torch
import disttorch.nn.functional as F
from disttorch import nn
from disttorch.utils.data import DataLoader, TensorDataset


class DigitsCNN(nn.Module):
    """Two 3x3 conv layers (1 -> 16 -> 32 channels), a 2x2 max-pool and a two-layer classifier."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Dropout(0.2),
                                        nn.Linear(64, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def load_digits_tensors(seed: int = 0, test_fraction: float = 0.2):
    """(train TensorDataset, test TensorDataset): images scaled to [0, 1] as (N, 1, 8, 8) float32."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return (TensorDataset(torch.from_numpy(x[train]), torch.from_numpy(y[train])),
            TensorDataset(torch.from_numpy(x[test]), torch.from_numpy(y[test])))


def train_epoch(model, loader, optimizer, progress=None) -> float:
    """One pass over ``loader``; returns the mean training loss."""
    model.train()
    total, count = 0.0, 0
    for x, y in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(y)
        count += len(y)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.3f}")
    return total / max(count, 1)


@torch.no_grad()
def evaluate(model, loader) -> float:
    """Accuracy of ``model`` on ``loader``."""
    model.eval()
    correct, count = 0, 0
    for x, y in loader:
        correct += (model(x).argmax(1) == y).sum().item()
        count += len(y)
    return correct / max(count, 1)


def save_plot(history: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = range(1, len(history["loss"]) + 1)
    fig, ax1 = plt.subplots(figsize=(6, 4))
    ax1.plot(epochs, history["loss"], "o-", color="tab:blue", label="train loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train loss", color="tab:blue")
    ax2 = ax1.twinx()
    ax2.plot(epochs, history["acc"], "s-", color="tab:orange", label="test accuracy")
    ax2.set_ylabel("test accuracy", color="tab:orange")
    fig.suptitle("digits CNN")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default=os.path.join("runs", "digits"))
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/checkpoint.pt")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")
    return p.parse_args(argv)


def main(argv=None) -> float:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    ckpt_path = os.path.join(args.out_dir, "checkpoint.pt")
    plot_path = os.path.join(args.out_dir, "curves.png")
    train_set, test_set = load_digits_tensors(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, generator=g,
                              num_workers=args.num_workers)
    test_loader = DataLoader(test_set, batch_size=256)
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    history, start = {"loss": [], "acc": []}, 0
    if args.resume and os.path.exists(ckpt_path):
        ckpt = torch.load(ckpt_path)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        history, start = ckpt["history"], ckpt["epoch"]
        g.set_state(ckpt["generator"])
        print(f"resumed from {ckpt_path} after epoch {start}")
    try:
        from tqdm import tqdm
    except ImportError:  # the progress bar is optional
        tqdm = None
    t0 = time.perf_counter()
    for epoch in range(start, args.epochs):
        bar = None if tqdm is None or args.no_progress else tqdm(total=len(train_loader), desc=f"epoch {epoch + 1}",
                                                                  leave=False)
        loss = train_epoch(model, train_loader, optimizer, bar)
        if bar is not None:
            bar.close()
        scheduler.step()
        acc = evaluate(model, test_loader)
        history["loss"].append(loss)
        history["acc"].append(acc)
        print(f"epoch {epoch + 1:2d}/{args.epochs}  train loss {loss:.4f}  test accuracy {acc:.4f}", flush=True)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "history": history,
                    "generator": g.get_state()}, ckpt_path)
    final = history["acc"][-1] if history["acc"] else evaluate(model, test_loader)
    save_plot(history, plot_path)
    print(f"final test accuracy {final:.4f} in {time.perf_counter() - t0:.1f} s")
    print(f"checkpoint: {ckpt_path}\nplot: {plot_path}")
    return final


if __name__ == "__main__":
    main()
