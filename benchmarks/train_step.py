"""Training-step benchmark: disttorch against PyTorch CPU, alternated in one process.

Three models, each built with the same code from ``lib.nn`` (``lib`` is disttorch or torch), the same
float32 weights and the same batch; one step is ``zero_grad``, forward, loss, backward and ``Adam.step``:

- MLP 784-512-512-10, batch 128, cross-entropy;
- CNN: Conv2d 1->16 3x3, ReLU, MaxPool 2, Conv2d 16->32 3x3, ReLU, MaxPool 2, Linear -> 10, on 28x28 inputs,
  batch 64;
- Transformer: Embedding(1000, 128), 2-layer TransformerEncoder (d_model 128, 4 heads, ff 512, batch_first),
  Linear head -> 1000, sequence 64, batch 16, next-token cross-entropy.

Rounds alternate disttorch and PyTorch (so both see the same machine state); the table reports the median
milliseconds per step of each and the ratio disttorch/PyTorch. Targets from the nn issue: MLP <= 1.0,
CNN <= 1.5, Transformer <= 1.25.

Usage::

    python benchmarks/train_step.py             # needs torch (pip install disttorch[bench])
    python benchmarks/train_step.py --quick
    python benchmarks/train_step.py --only cnn
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import disttorch  # noqa: E402

TARGETS = {"mlp": 1.0, "cnn": 1.5, "transformer": 1.25}


def build_mlp(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


def build_cnn(lib):
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


class _LM:
    """Embedding + TransformerEncoder + head, built from ``lib.nn`` (a plain holder: each lib gets a Module)."""

    @staticmethod
    def build(lib):
        nn = lib.nn

        class LM(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = nn.Embedding(1000, 128)
                layer = nn.TransformerEncoderLayer(128, 4, 512, dropout=0.0, batch_first=True)
                self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
                self.head = nn.Linear(128, 1000)

            def forward(self, x):
                return self.head(self.enc(self.emb(x)))
        return LM()


def make_case(name: str, rng):
    if name == "mlp":
        x = rng.standard_normal((128, 784)).astype(np.float32)
        y = rng.integers(0, 10, 128)
        return build_mlp, x, y
    if name == "cnn":
        x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
        y = rng.integers(0, 10, 64)
        return build_cnn, x, y
    x = rng.integers(0, 1000, (16, 64))
    y = rng.integers(0, 1000, (16 * 64,))
    return _LM.build, x, y


def copy_weights(src, dst) -> None:
    """Copy disttorch parameters into the torch model (same registration order)."""
    import torch

    with torch.no_grad():
        for (n1, p1), (n2, p2) in zip(src.named_parameters(), dst.named_parameters()):
            assert tuple(p1.shape) == tuple(p2.shape), (n1, n2)
            p2.copy_(torch.from_numpy(p1.detach().numpy().copy()))


def make_step(lib, model, x, y):
    opt = lib.optim.Adam(model.parameters(), lr=1e-3)
    xt = lib.from_numpy(x)
    yt = lib.from_numpy(y)
    F = lib.nn.functional

    def step():
        opt.zero_grad()
        out = model(xt)
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), yt)
        loss.backward()
        opt.step()
        return loss
    return step


def time_steps(step, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n * 1e3


def run(name: str, rounds: int, steps: int) -> tuple:
    import torch

    rng = np.random.default_rng(0)
    build, x, y = make_case(name, rng)
    disttorch.manual_seed(0)
    dm = build(disttorch)
    tm = build(torch)
    copy_weights(dm, tm)
    ds, ts = make_step(disttorch, dm, x, y), make_step(torch, tm, x, y)
    l1, l2 = ds().item(), ts().item()  # warm-up; first losses agree since the weights do
    if abs(l1 - l2) > 1e-3 * max(1.0, abs(l2)):
        print(f"  warning: first-step losses differ: disttorch {l1:.6f} torch {l2:.6f}")
    d_times, t_times = [], []
    for _ in range(rounds):
        d_times.append(time_steps(ds, steps))
        t_times.append(time_steps(ts, steps))
    d, t = statistics.median(d_times), statistics.median(t_times)
    return d, t


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", choices=sorted(TARGETS), action="append")
    p.add_argument("--threads", type=int, default=None, help="threads for both libraries (default: theirs)")
    args = p.parse_args(argv)
    try:
        import torch
    except ImportError:
        sys.exit("benchmarks/train_step.py compares against PyTorch: pip install 'disttorch[bench]'")
    if args.threads:
        torch.set_num_threads(args.threads)
        disttorch.set_num_threads(args.threads)
    rounds, steps = (3, 3) if args.quick else (7, 10)
    print(f"torch {torch.__version__} threads {torch.get_num_threads()}, disttorch {disttorch.__version__} threads "
          f"{disttorch.get_num_threads()}; {rounds} alternating rounds x {steps} steps, median ms/step")
    print(f"{'model':<12} {'disttorch':>10} {'torch':>10} {'ratio':>7} {'target':>7}")
    for name in args.only or ["mlp", "cnn", "transformer"]:
        d, t = run(name, rounds, steps)
        ratio = d / t
        mark = "met" if ratio <= TARGETS[name] else "NOT met"
        print(f"{name:<12} {d:>10.2f} {t:>10.2f} {ratio:>7.2f} {TARGETS[name]:>7.2f}  {mark}", flush=True)


if __name__ == "__main__":
    main()
