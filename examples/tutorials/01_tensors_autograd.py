"""Tutorial 1: tensors, autograd and a first training loop.

    python examples/tutorials/01_tensors_autograd.py [--quick]

disttorch speaks PyTorch's API, so a PyTorch script runs on it after one changed line::

    import disttorch as torch

**Tensors.** ``torch.tensor``, ``torch.randn``, ``torch.arange`` make tensors; arithmetic, ``@``, reductions
and indexing behave as in PyTorch, and ``.numpy()`` hands the data to NumPy.

**Autograd.** A tensor made with ``requires_grad=True`` records the operations applied to it; ``backward()``
on a scalar fills ``.grad`` of every leaf. For ``y = sum(x ** 3)`` the gradient is ``3 * x ** 2``.

**A custom autograd.Function.** Subclass ``torch.autograd.Function`` with static ``forward(ctx, ...)`` and
``backward(ctx, grad_output)``, save what backward needs with ``ctx.save_for_backward``, call it with
``.apply``. ``torch.autograd.gradcheck`` compares its backward with finite differences (in float64).

**Training.** An ``nn.Sequential`` model fits a synthetic regression task ``y = sin(3 x0) + x1 * x2`` with
``optim.Adam`` and a ``StepLR`` schedule that halves the learning rate; the loss is printed every few epochs.

**Checkpoints.** ``torch.save`` writes a dict of state dicts (model, optimizer, scheduler, epoch);
``torch.load(..., weights_only=True)`` reads it back without running any code from the file, and a fresh model
loaded from it predicts exactly what the trained one does.
"""
from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

import disttorch as torch
import disttorch.nn as nn


class Cube(torch.autograd.Function):
    """x ** 3 with a hand-written backward (3 x ** 2 * grad)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * 3 * x * x


def make_data(n: int, seed: int = 0):
    """Synthetic regression: 3 features uniform in [-1, 1], target sin(3 x0) + x1 * x2 plus a little noise.

    Made with NumPy and handed over with ``torch.from_numpy`` (no copy), as data often arrives."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    y = (np.sin(3 * x[:, 0]) + x[:, 1] * x[:, 2] + 0.01 * rng.standard_normal(n)).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y).unsqueeze(1)


def make_model() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a shortened run (the test suite's)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--checkpoint", default=None, help="where to save (default: a temporary directory)")
    args = p.parse_args(argv)
    epochs = args.epochs or (60 if args.quick else 300)
    torch.manual_seed(0)

    # tensors
    a = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    print("a @ a.T =", (a @ a.T).tolist())

    # autograd: d/dx sum(x ** 3) = 3 x ** 2
    x = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    (x ** 3).sum().backward()
    print("grad of sum(x**3):", x.grad.tolist())

    # a custom Function gives the same gradient, and gradcheck agrees with finite differences
    x2 = x.detach().clone().requires_grad_()
    Cube.apply(x2).sum().backward()
    print("grad of Cube:", x2.grad.tolist())
    ok = torch.autograd.gradcheck(Cube.apply, (torch.randn(4, dtype=torch.float64, requires_grad=True),))
    print("gradcheck:", ok)

    # training: Adam with a StepLR schedule on a synthetic regression task
    x_train, y_train = make_data(512, seed=0)
    x_test, y_test = make_data(256, seed=1)
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.5)
    loss_fn = nn.MSELoss()
    batch = 64
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(x_train.shape[0])
        for i in range(0, x_train.shape[0], batch):
            idx = perm[i:i + batch]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
        scheduler.step()
        if epoch == 0 or (epoch + 1) % max(1, epochs // 5) == 0:
            with torch.no_grad():
                train_loss = loss_fn(model(x_train), y_train).item()
            print(f"epoch {epoch + 1:4d}  train loss {train_loss:.5f}  lr {scheduler.get_last_lr()[0]:.5f}")
    model.eval()
    with torch.no_grad():
        test_loss = loss_fn(model(x_test), y_test).item()
    print(f"test loss {test_loss:.6f}")

    # checkpoint: save, load into a fresh model, same predictions
    with tempfile.TemporaryDirectory() as tmp:
        path = args.checkpoint or os.path.join(tmp, "regression.pt")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "epoch": epochs}, path)
        state = torch.load(path, weights_only=True)
        restored = make_model()
        restored.load_state_dict(state["model"])
        restored.eval()
        with torch.no_grad():
            same = torch.equal(restored(x_test), model(x_test))
        print(f"checkpoint reloaded at epoch {state['epoch']}: identical predictions {same}")


if __name__ == "__main__":
    main()
