"""Train a small MLP on three interleaved spirals, in one process, with disttorch's tensors and autograd.

The data set is synthetic and deterministic (``disttorch.manual_seed``): three spiral arms in the
plane, one class each, with noise on the angle; a fifth of the points are held out. The model is a
2-64-64-3 MLP whose parameters are plain leaf tensors, trained with mini-batch Adam written as
in-place tensor updates under ``no_grad`` (the shape ``disttorch.optim.Adam`` has). It prints the
loss every few epochs, then the final accuracy, and exits with status 1 when the held-out accuracy
is below ``--min-accuracy``. The same script runs under PyTorch with ``import torch as disttorch``.

Usage::

    python examples/train_mlp.py [--epochs 40] [--seed 0] [--min-accuracy 0.9]
"""
from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import disttorch  # noqa: E402

try:  # the optional `examples` extra: a progress bar
    from tqdm import tqdm
except ImportError:
    tqdm = None

CLASSES, POINTS_PER_CLASS, HIDDEN = 3, 400, 64


def make_spirals(points_per_class: int, classes: int, noise: float = 0.3):
    """``(x, y)``: ``classes`` spiral arms of ``points_per_class`` 2-D points; ``y`` holds the arm index."""
    xs, ys = [], []
    for k in range(classes):
        radius = disttorch.linspace(0.05, 1.0, points_per_class)
        theta = disttorch.linspace(k * 4.0, (k + 1) * 4.0, points_per_class) \
            + disttorch.randn(points_per_class) * noise
        xs.append(disttorch.stack([radius * theta.sin(), radius * theta.cos()], dim=1))
        ys.append(disttorch.full((points_per_class,), k, dtype=disttorch.int64))
    return disttorch.cat(xs), disttorch.cat(ys)


def init_params(sizes):
    """Kaiming-normal weights and zero biases, as leaf tensors that require grad."""
    params = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        params.append((disttorch.randn(fan_in, fan_out) * math.sqrt(2.0 / fan_in)).requires_grad_())
        params.append(disttorch.zeros(fan_out, requires_grad=True))
    return params


def forward(params, x):
    """Logits of the MLP: linear, relu, linear, relu, linear."""
    w1, b1, w2, b2, w3, b3 = params
    h = (x @ w1 + b1).relu()
    h = (h @ w2 + b2).relu()
    return h @ w3 + b3


def cross_entropy(logits, y):
    """Mean negative log-likelihood of the targets under softmax(logits)."""
    return -logits.log_softmax(dim=1).gather(1, y.unsqueeze(1)).mean()


def accuracy(params, x, y) -> float:
    with disttorch.no_grad():
        return (forward(params, x).argmax(dim=1) == y).float().mean().item()


class Adam:
    """Adam with PyTorch's update rule, written with in-place tensor ops."""

    def __init__(self, params, lr: float = 1e-2, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        self.params, self.lr, self.betas, self.eps = list(params), lr, betas, eps
        self.exp_avg = [disttorch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [disttorch.zeros_like(p) for p in self.params]
        self.steps = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @disttorch.no_grad()
    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1 ** self.steps)
        bias_correction2_sqrt = math.sqrt(1 - beta2 ** self.steps)
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            g = p.grad
            m.mul_(beta1).add_(g, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = v.sqrt().div_(bias_correction2_sqrt).add_(self.eps)
            p.addcdiv_(m, denom, value=-step_size)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train an MLP on synthetic spirals with disttorch")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-accuracy", type=float, default=0.9,
                        help="exit with status 1 when the held-out accuracy is below this")
    parser.add_argument("--log-every", type=int, default=10, help="print the loss every N epochs")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    disttorch.manual_seed(args.seed)
    x, y = make_spirals(POINTS_PER_CLASS, CLASSES)
    order = disttorch.randperm(len(y))
    n_train = len(y) * 4 // 5
    x_train, y_train = x[order[:n_train]], y[order[:n_train]]
    x_test, y_test = x[order[n_train:]], y[order[n_train:]]
    params = init_params([2, HIDDEN, HIDDEN, CLASSES])
    opt = Adam(params, lr=args.lr)
    print(f"spirals: {CLASSES} classes, {n_train} train / {len(y) - n_train} test points; "
          f"MLP 2-{HIDDEN}-{HIDDEN}-{CLASSES}; Adam lr={args.lr}, batch {args.batch_size}, {args.epochs} epochs")

    epochs = range(1, args.epochs + 1)
    bar = tqdm(epochs, desc="training", unit="epoch", leave=False, disable=None) if tqdm is not None else None
    log = bar.write if bar is not None else print
    for epoch in bar if bar is not None else epochs:
        perm = disttorch.randperm(n_train)
        total, batches = 0.0, 0
        for i in range(0, n_train, args.batch_size):
            idx = perm[i:i + args.batch_size]
            loss = cross_entropy(forward(params, x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            batches += 1
        if epoch % args.log_every == 0 or epoch == 1 or epoch == args.epochs:
            log(f"epoch {epoch:4d}  loss {total / batches:.4f}")
    if bar is not None:
        bar.close()

    train_acc, test_acc = accuracy(params, x_train, y_train), accuracy(params, x_test, y_test)
    print(f"final accuracy: train {train_acc:.4f}, test {test_acc:.4f} "
          f"(threshold {args.min_accuracy:.2f}; {time.perf_counter() - start:.1f} s)")
    if test_acc < args.min_accuracy:
        print(f"FAILED: test accuracy {test_acc:.4f} is below {args.min_accuracy:.2f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
