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

Threads: in one process, two BLAS/OpenMP thread pools (OpenBLAS under NumPy, PyTorch's own) spin-wait
against each other on a small machine and slow *both* libraries down unpredictably (PyTorch's MLP step went
from 5.5 ms alone to 14 ms next to NumPy here). So the alternating run uses one thread per library by
default (``--threads 1``), and ``--solo`` additionally times each library alone in its own subprocess with
the given thread count, which is the fair way to compare multi-threaded runs.

Usage::

    python benchmarks/train_step.py             # needs torch (pip install disttorch[bench])
    python benchmarks/train_step.py --quick
    python benchmarks/train_step.py --only cnn
    python benchmarks/train_step.py --solo --threads 2   # each library alone in a subprocess, 2 threads
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
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


def make_step(lib, model, x, y, device=None):
    """One training step (zero_grad, forward, cross-entropy, backward, Adam) of ``model`` on ``x, y``, with the
    batch moved to ``device`` when given (the model must be there already)."""
    opt = lib.optim.Adam(model.parameters(), lr=1e-3)
    xt = lib.from_numpy(x)
    yt = lib.from_numpy(y)
    if device is not None:
        xt, yt = xt.to(device), yt.to(device)
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


def solo(lib_name: str, names: list, rounds: int, steps: int, threads: int) -> dict:
    """Median ms/step of each case for one library, timed in a fresh subprocess."""
    code = (f"import sys, json; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); import train_step as B; "
            f"print(json.dumps(B._solo_child({lib_name!r}, {names!r}, {rounds}, {steps}, {threads})))")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _solo_child(lib_name: str, names: list, rounds: int, steps: int, threads: int) -> dict:
    lib = __import__(lib_name)
    lib.set_num_threads(threads)
    result = {}
    for name in names:
        build, x, y = make_case(name, np.random.default_rng(0))
        lib.manual_seed(0)
        step = make_step(lib, build(lib), x, y)
        for _ in range(3):  # warm-up: first-use work (allocator growth, disttorch's compiled kernels loading)
            step()
        result[name] = statistics.median(time_steps(step, steps) for _ in range(rounds))
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", choices=sorted(TARGETS), action="append")
    p.add_argument("--threads", type=int, default=1, help="threads for both libraries (default 1, see above)")
    p.add_argument("--solo", action="store_true", help="also time each library alone in its own subprocess")
    args = p.parse_args(argv)
    try:
        import torch
    except ImportError:
        sys.exit("benchmarks/train_step.py compares against PyTorch: pip install 'disttorch[bench]'")
    torch.set_num_threads(args.threads)
    disttorch.set_num_threads(args.threads)
    rounds, steps = (3, 3) if args.quick else (7, 10)
    names = args.only or ["mlp", "cnn", "transformer"]
    print(f"torch {torch.__version__}, disttorch {disttorch.__version__}, {args.threads} thread(s) each; "
          f"{rounds} alternating rounds x {steps} steps in one process, median ms/step")
    print(f"{'model':<12} {'disttorch':>10} {'torch':>10} {'ratio':>7} {'target':>7}")
    for name in names:
        d, t = run(name, rounds, steps)
        ratio = d / t
        mark = "met" if ratio <= TARGETS[name] else "NOT met"
        print(f"{name:<12} {d:>10.2f} {t:>10.2f} {ratio:>7.2f} {TARGETS[name]:>7.2f}  {mark}", flush=True)
    if args.solo:
        print(f"\nsolo: each library alone in a subprocess, {args.threads} thread(s), median ms/step")
        d_all = solo("disttorch", names, rounds, steps, args.threads)
        t_all = solo("torch", names, rounds, steps, args.threads)
        print(f"{'model':<12} {'disttorch':>10} {'torch':>10} {'ratio':>7} {'target':>7}")
        for name in names:
            ratio = d_all[name] / t_all[name]
            mark = "met" if ratio <= TARGETS[name] else "NOT met"
            print(f"{name:<12} {d_all[name]:>10.2f} {t_all[name]:>10.2f} {ratio:>7.2f} {TARGETS[name]:>7.2f}  {mark}",
                  flush=True)


if __name__ == "__main__":
    main()
