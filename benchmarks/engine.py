"""Engine benchmark: per-op overhead and one MLP training step, against NumPy and PyTorch CPU.

Two measurements, each printed as a table with the ratios disttorch/NumPy and disttorch/PyTorch:

(a) the fixed cost of one op: ``a + b`` on 3-element float32 tensors, without and with
    ``requires_grad``, and ``(a + b).sum().backward()`` (microseconds per iteration). The NumPy
    column is the same arithmetic on bare arrays (with a hand-written backward), i.e. the floor
    an engine written over NumPy can approach.
(b) one training step of an MLP 784-512-512-10, batch 128, float32: forward (linear, relu,
    linear, relu, linear, log_softmax + NLL written with tensor ops), backward and an Adam
    update (milliseconds per step). disttorch uses ``disttorch.optim.Adam`` when it exists, else a
    hand-written Adam of in-place tensor ops under ``no_grad``; PyTorch uses ``torch.optim.Adam``;
    the NumPy column is the same step written by hand (manual backward, Adam with ``out=``).

PyTorch is optional (``pip install disttorch[bench]``); without it its column says so. The BLAS
library and thread counts in use are printed first, since they dominate (b).

Usage::

    python benchmarks/engine.py            # full run (about a minute)
    python benchmarks/engine.py --quick    # a few seconds
    python benchmarks/engine.py --threads 1
"""
from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import disttorch  # noqa: E402

try:
    import torch
except ImportError:  # the optional `bench` extra
    torch = None

BATCH, SIZES, CLASSES = 128, (784, 512, 512), 10
LR, BETAS, EPS = 1e-3, (0.9, 0.999), 1e-8


# ---- timing --------------------------------------------------------------------------------
def best_time(fn, number: int, repeat: int) -> float:
    """Best over ``repeat`` runs of the mean seconds per call of ``fn`` over ``number`` calls."""
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def measure(fn, number: int, repeat: int, warmup: int = 3):
    """Seconds per call, or the error message when ``fn`` fails (an op not implemented yet)."""
    try:
        for _ in range(warmup):
            fn()
        return best_time(fn, number, repeat)
    except Exception as e:  # noqa: BLE001 - reported in the table instead of aborting the run
        return f"{type(e).__name__}: {e}"


# ---- (a) per-op overhead -------------------------------------------------------------------
def overhead_cases(lib):
    """The three overhead cases for disttorch or torch (same code: the APIs are the same)."""
    a = lib.tensor([1.0, 2.0, 3.0])
    b = lib.tensor([4.0, 5.0, 6.0])
    ag = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    bg = lib.tensor([4.0, 5.0, 6.0], requires_grad=True)
    return {
        "a + b": lambda: a + b,
        "a + b (requires_grad)": lambda: ag + bg,
        "(a + b).sum().backward()": lambda: (ag + bg).sum().backward(),
    }


def overhead_numpy():
    a = np.array([1.0, 2.0, 3.0], np.float32)
    b = np.array([4.0, 5.0, 6.0], np.float32)
    ga, gb = np.zeros_like(a), np.zeros_like(b)

    def fwd_bwd():
        c = a + b
        c.sum()
        g = np.ones_like(c)  # d(sum)/dc, then accumulate into both leaves' grads
        ga.__iadd__(g)
        gb.__iadd__(g)

    return {"a + b": lambda: a + b, "a + b (requires_grad)": lambda: a + b, "(a + b).sum().backward()": fwd_bwd}


# ---- (b) MLP training step -----------------------------------------------------------------
def init_arrays(seed: int = 0):
    """Deterministic float32 data and parameters shared by all three implementations."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, CLASSES, BATCH)
    dims = SIZES + (CLASSES,)
    params = []
    for fan_in, fan_out in itertools.pairwise(dims):
        bound = 1.0 / math.sqrt(fan_in)
        params.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32))
        params.append(rng.uniform(-bound, bound, fan_out).astype(np.float32))
    return x, y, params


class HandAdam:
    """Adam (PyTorch's formula) from in-place tensor ops, for a ``lib`` without ``optim.Adam``.

    Like the NumPy step, it writes into preallocated buffers (``out=``) instead of making
    temporaries, which is how a PyTorch user writes a fast hand-rolled update.
    """

    def __init__(self, lib, params, lr=LR, betas=BETAS, eps=EPS) -> None:
        self.lib, self.params, self.lr, self.betas, self.eps = lib, list(params), lr, betas, eps
        self.m = [lib.zeros_like(p) for p in self.params]
        self.v = [lib.zeros_like(p) for p in self.params]
        self.buf = [lib.empty_like(p) for p in self.params]
        self.t = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        bc1, bc2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        step_size, bc2_sqrt = self.lr / bc1, math.sqrt(bc2)
        lib = self.lib
        with lib.no_grad():
            for p, m, v, buf in zip(self.params, self.m, self.v, self.buf):
                g = p.grad
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                lib.sqrt(v, out=buf).div_(bc2_sqrt).add_(self.eps)
                p.addcdiv_(m, buf, value=-step_size)


def make_framework_step(lib, arrays, use_optim: bool):
    """``(train_step, forward, optimizer_name)`` for disttorch or torch from the shared arrays."""
    x_np, y_np, p_np = arrays
    x = lib.tensor(x_np)
    y = lib.tensor(y_np)
    params = [lib.tensor(p.copy(), requires_grad=True) for p in p_np]
    w1, b1, w2, b2, w3, b3 = params
    index = y.unsqueeze(1)

    def forward():
        h = (x @ w1 + b1).relu()
        h = (h @ w2 + b2).relu()
        logits = h @ w3 + b3
        return -logits.log_softmax(dim=1).gather(1, index).mean()

    if use_optim:
        opt = lib.optim.Adam(params, lr=LR, betas=BETAS, eps=EPS)
        name = f"{lib.__name__}.optim.Adam"
    else:
        opt = HandAdam(lib, params)
        name = "hand-written Adam (in-place tensor ops)"

    def step():
        opt.zero_grad()
        loss = forward()
        loss.backward()
        opt.step()
        return loss

    def infer():
        with lib.no_grad():
            return forward()

    return step, infer, name


def make_numpy_step(arrays):
    """The same step on bare arrays: manual backward and Adam with preallocated ``out=`` buffers."""
    x, y, params = arrays
    params = [p.copy() for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    tmp = [np.empty_like(p) for p in params]
    rows = np.arange(BATCH)
    state = {"t": 0}

    def forward():
        w1, b1, w2, b2, w3, b3 = params
        z1 = x @ w1 + b1
        h1 = np.maximum(z1, 0)
        z2 = h1 @ w2 + b2
        h2 = np.maximum(z2, 0)
        logits = h2 @ w3 + b3
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        logp = shifted - np.log(s)
        loss = -logp[rows, y].mean()
        return loss, (z1, h1, z2, h2, e / s)

    def step():
        w2, w3 = params[2], params[4]
        loss, (z1, h1, z2, h2, prob) = forward()
        g = prob
        g[rows, y] -= 1
        g /= BATCH
        grads = [None] * 6
        grads[4], grads[5] = h2.T @ g, g.sum(axis=0)
        g = g @ w3.T
        g *= z2 > 0
        grads[2], grads[3] = h1.T @ g, g.sum(axis=0)
        g = g @ w2.T
        g *= z1 > 0
        grads[0], grads[1] = x.T @ g, g.sum(axis=0)
        state["t"] += 1
        t = state["t"]
        bt1, bt2 = BETAS
        step_size, bc2_sqrt = LR / (1 - bt1 ** t), math.sqrt(1 - bt2 ** t)
        for p, gr, mi, vi, buf in zip(params, grads, m, v, tmp):
            np.multiply(mi, bt1, out=mi)
            np.multiply(gr, 1 - bt1, out=buf)
            np.add(mi, buf, out=mi)
            np.multiply(vi, bt2, out=vi)
            np.multiply(gr, gr, out=buf)
            np.multiply(buf, 1 - bt2, out=buf)
            np.add(vi, buf, out=vi)
            np.sqrt(vi, out=buf)
            np.divide(buf, bc2_sqrt, out=buf)
            np.add(buf, EPS, out=buf)
            np.divide(mi, buf, out=buf)
            np.multiply(buf, -step_size, out=buf)
            np.add(p, buf, out=p)
        return loss

    return step, lambda: forward()[0]


# ---- reporting -----------------------------------------------------------------------------
def environment_lines(threads) -> list[str]:
    lines = [f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
             f"numpy {np.__version__}; disttorch {disttorch.__version__}; "
             + (f"torch {torch.__version__} ({torch.get_num_threads()} threads, "
                f"MKL {'yes' if torch.backends.mkl.is_available() else 'no'})" if torch is not None
                else "torch not installed (PyTorch column skipped: pip install 'disttorch[bench]')")]
    try:
        from threadpoolctl import threadpool_info

        for info in threadpool_info():
            lines.append(f"{info.get('user_api')}: {info.get('internal_api')} {info.get('version')} "
                         f"threads={info.get('num_threads')} arch={info.get('architecture', '-')} "
                         f"({Path(info.get('filepath', '')).name})")
    except ImportError:
        lines.append("threadpoolctl not installed: BLAS details unknown")
    env = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS_", "OMP_", "MKL_"))}
    if env:
        lines.append("env: " + " ".join(f"{k}={v}" for k, v in sorted(env.items())))
    if threads:
        lines.append(f"--threads {threads}: BLAS and torch limited to {threads} thread(s)")
    return lines


def fmt(value, scale: float) -> str:
    return f"{value * scale:10.2f}" if isinstance(value, float) else f"{'n/a':>10}"


def ratio(a, b) -> str:
    return f"{a / b:8.2f}x" if isinstance(a, float) and isinstance(b, float) else f"{'-':>9}"


def print_table(title: str, unit: str, scale: float, rows) -> None:
    print(f"\n{title}")
    print(f"{'case':<34}{'disttorch':>10}{'numpy':>10}{'torch':>10}{'dt/np':>9}{'dt/torch':>9}   ({unit})")
    notes = []
    for name, dt, npv, tv in rows:
        print(f"{name:<34}{fmt(dt, scale)}{fmt(npv, scale)}{fmt(tv, scale)}{ratio(dt, npv)}{ratio(dt, tv)}")
        for label, val in (("disttorch", dt), ("torch", tv)):
            if isinstance(val, str) and val:
                notes.append(f"  {name} [{label}]: {val}")
    for note in notes:
        print(note)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="disttorch engine benchmark (vs NumPy and PyTorch CPU)")
    parser.add_argument("--quick", action="store_true", help="short run (fewer iterations and repeats)")
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS (and torch) threads")
    args = parser.parse_args(argv)

    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)
    op_n, op_r = (2000, 3) if args.quick else (20000, 5)
    mlp_n, mlp_r = (3, 3) if args.quick else (20, 5)

    print("disttorch engine benchmark" + (" (quick run)" if args.quick else ""))
    for line in environment_lines(args.threads):
        print("  " + line)

    # (a) per-op overhead
    dt_cases = overhead_cases(disttorch)
    np_cases = overhead_numpy()
    t_cases = overhead_cases(torch) if torch is not None else {}
    rows = []
    for name in dt_cases:
        rows.append((name, measure(dt_cases[name], op_n, op_r), measure(np_cases[name], op_n, op_r),
                     measure(t_cases[name], op_n, op_r) if torch is not None else ""))
    print_table(f"(a) per-op overhead, 3-element float32 tensors: best of {op_r} x {op_n} iterations",
                "us / iteration", 1e6, rows)

    # (b) MLP training step
    arrays = init_arrays()
    np_step, np_infer = make_numpy_step(arrays)
    has_optim = hasattr(disttorch, "optim") and hasattr(disttorch.optim, "Adam")
    dt_step, dt_infer, dt_opt = make_framework_step(disttorch, arrays, has_optim)
    if torch is not None:
        t_step, t_infer, t_opt = make_framework_step(torch, arrays, True)
    rows = [
        ("forward (no_grad)", measure(dt_infer, mlp_n, mlp_r, 1), measure(np_infer, mlp_n, mlp_r, 1),
         measure(t_infer, mlp_n, mlp_r, 1) if torch is not None else ""),
        ("train step (fwd + bwd + Adam)", measure(dt_step, mlp_n, mlp_r, 2), measure(np_step, mlp_n, mlp_r, 2),
         measure(t_step, mlp_n, mlp_r, 2) if torch is not None else ""),
    ]
    print_table(f"(b) MLP {'-'.join(map(str, SIZES + (CLASSES,)))}, batch {BATCH}, float32: "
                f"best of {mlp_r} x {mlp_n} steps", "ms / step", 1e3, rows)
    print(f"  optimizers: disttorch: {dt_opt}; numpy: hand-written Adam with out=; "
          + (f"torch: {t_opt}" if torch is not None else "torch: not installed"))
    check_agreement(arrays, has_optim)
    return 0


def check_agreement(arrays, has_optim: bool) -> None:
    """Sanity check that the implementations compute the same thing: losses over 3 fresh steps."""
    losses = {}
    np_step, _ = make_numpy_step(arrays)
    losses["numpy"] = [float(np_step()) for _ in range(3)]
    try:
        dt_step, _, _ = make_framework_step(disttorch, arrays, has_optim)
        losses["disttorch"] = [float(dt_step().item()) for _ in range(3)]
    except Exception as e:  # noqa: BLE001
        print(f"  agreement check skipped for disttorch: {type(e).__name__}: {e}")
    if torch is not None:
        t_step, _, _ = make_framework_step(torch, arrays, True)
        losses["torch"] = [float(t_step().item()) for _ in range(3)]
    ref = losses["numpy"]
    parts = []
    for name, vals in losses.items():
        ok = all(abs(a - b) <= 1e-4 * max(1.0, abs(b)) for a, b in zip(vals, ref))
        parts.append(f"{name} {vals[-1]:.6f}" + ("" if ok else " (DIFFERS from numpy)"))
    print("  loss after 3 steps: " + ", ".join(parts))


if __name__ == "__main__":
    sys.exit(main())
