"""Convolution benchmark: conv2d forward + backward, disttorch against NumPy and PyTorch CPU.

The shapes are those of the benchmark CNN (batch 64, 28x28 images, 3x3 kernels, padding 1):

- ``conv1``: 1 -> 16 channels on 28x28, input without grad (the first layer: weight and bias grads only);
- ``conv2``: 16 -> 32 channels on 28x28, input with grad;
- ``conv2/pool``: 16 -> 32 channels on 14x14 (after a 2x2 pool), input with grad;
- ``stack``: conv1 -> relu -> conv2 on 28x28, forward and backward together.

Each row is milliseconds per forward + backward (output gradient of ones) in float32. The NumPy column
is a hand-written im2col convolution (padding copy, strided view, one matmul per direction, col2im by
shifted adds): the floor an engine written over NumPy can approach. PyTorch's column appears when
``import torch`` works; the ratios are disttorch / NumPy and disttorch / PyTorch from the same run.

Each library is timed in its own child process (``--lib``), one after the other: in one process,
PyTorch's OpenMP threads and OpenBLAS's threads keep spinning after their work and steal each other's
cores, which on a small machine distorts both columns by several times.

Usage::

    python benchmarks/conv.py            # about a minute
    python benchmarks/conv.py --quick
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/conv.py   # one thread each
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HAVE_TORCH = importlib.util.find_spec("torch") is not None  # the optional `bench` extra

BATCH = 64
# name: (in_channels, out_channels, image size, input requires grad)
CASES = {"conv1": (1, 16, 28, False), "conv2": (16, 32, 28, True), "conv2/pool": (16, 32, 14, True)}


def best_time(fn, number: int, repeat: int, warmup: int = 2) -> float:
    """Best over ``repeat`` runs of the mean seconds per call of ``fn`` over ``number`` calls."""
    for _ in range(warmup):
        fn()
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


# ---- the NumPy reference -------------------------------------------------------------------------
def np_conv_fwd(x, w, b):
    n, c, h, wd = x.shape
    o = w.shape[0]
    xp = np.zeros((n, c, h + 2, wd + 2), np.float32)
    xp[:, :, 1:-1, 1:-1] = x
    s = xp.strides
    cols = np.lib.stride_tricks.as_strided(xp, (n, c, 3, 3, h, wd), s + s[2:]).reshape(n, c * 9, h * wd)
    y = np.matmul(w.reshape(o, -1), cols)
    y += b[:, None]
    return y.reshape(n, o, h, wd), cols


def np_conv_bwd(g, cols, w, x_shape, need_x: bool):
    n, c, h, wd = x_shape
    o = w.shape[0]
    g2 = g.reshape(n, o, -1)
    gw = np.matmul(g2, cols.transpose(0, 2, 1)).sum(0).reshape(w.shape)
    gb = g2.sum((0, 2))
    gx = None
    if need_x:
        gc = np.matmul(w.transpose(2, 3, 1, 0).reshape(9 * c, o), g2).reshape(n, 3, 3, c, h, wd)
        gx = np.zeros((n, c, h + 2, wd + 2), np.float32)
        for i in range(3):
            for j in range(3):
                gx[:, :, i:i + h, j:j + wd] += gc[:, i, j]
        gx = gx[:, :, 1:-1, 1:-1]
    return gx, gw, gb


def numpy_case(x, w, b, need_x: bool):
    def step():
        y, cols = np_conv_fwd(x, w, b)
        return np_conv_bwd(np.ones_like(y), cols, w, x.shape, need_x)
    return step


def numpy_stack(x, w1, b1, w2, b2):
    def step():
        z1, cols1 = np_conv_fwd(x, w1, b1)
        h1 = np.maximum(z1, 0)
        z2, cols2 = np_conv_fwd(h1, w2, b2)
        gh1, gw2, gb2 = np_conv_bwd(np.ones_like(z2), cols2, w2, h1.shape, True)
        gz1 = gh1 * (z1 > 0)
        return np_conv_bwd(gz1, cols1, w1, x.shape, False), gw2, gb2
    return step


# ---- the frameworks (same code: the APIs are the same) ---------------------------------------------
def framework_case(lib, conv2d, x, w, b, need_x: bool):
    xt = lib.tensor(x, requires_grad=need_x)
    wt = lib.tensor(w, requires_grad=True)
    bt = lib.tensor(b, requires_grad=True)

    def step():
        y = conv2d(xt, wt, bt, padding=1)
        y.backward(lib.ones_like(y))
        xt.grad = wt.grad = bt.grad = None
    return step


def framework_stack(lib, conv2d, x, w1, b1, w2, b2):
    xt = lib.tensor(x)
    params = [lib.tensor(p, requires_grad=True) for p in (w1, b1, w2, b2)]

    def step():
        h = conv2d(xt, params[0], params[1], padding=1).relu()
        y = conv2d(h, params[2], params[3], padding=1)
        y.backward(lib.ones_like(y))
        for p in params:
            p.grad = None
    return step


def check_agreement() -> float:
    """Largest relative difference of disttorch's conv2d output and gradients against the NumPy reference."""
    import disttorch
    import disttorch.ops.conv as C

    x, w, b = make_arrays(*CASES["conv2"][:3])
    xt, wt, bt = (disttorch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = C.conv2d(xt, wt, bt, padding=1)
    y.backward(disttorch.ones_like(y))
    ref_y, cols = np_conv_fwd(x, w, b)
    refs = (ref_y,) + np_conv_bwd(np.ones_like(ref_y), cols, w, x.shape, True)
    got = (y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy())
    return max(float(np.abs(a - r).max() / (np.abs(r).max() + 1e-12)) for a, r in zip(got, refs))


def make_arrays(ci: int, co: int, size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, ci, size, size), dtype=np.float32)
    w = (rng.standard_normal((co, ci, 3, 3)) / math.sqrt(ci * 9)).astype(np.float32)
    return x, w, rng.standard_normal(co).astype(np.float32)


def stack_arrays(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, 1, 28, 28), dtype=np.float32)
    return x, [(rng.standard_normal((16, 1, 3, 3)) / 3).astype(np.float32), np.zeros(16, np.float32),
               (rng.standard_normal((32, 16, 3, 3)) / 12).astype(np.float32), np.zeros(32, np.float32)]


def time_lib(lib_name: str, number: int, repeat: int) -> dict:
    """Milliseconds per step of every case for one library ('numpy', 'disttorch' or 'torch')."""
    if lib_name == "numpy":
        cases = {name: numpy_case(*make_arrays(ci, co, size), need_x)
                 for name, (ci, co, size, need_x) in CASES.items()}
        x, ps = stack_arrays()
        cases["stack"] = numpy_stack(x, *ps)
    else:
        if lib_name == "torch":
            import torch as lib
            from torch.nn.functional import conv2d
        else:
            import disttorch as lib
            from disttorch.ops.conv import conv2d
        cases = {name: framework_case(lib, conv2d, *make_arrays(ci, co, size), need_x)
                 for name, (ci, co, size, need_x) in CASES.items()}
        x, ps = stack_arrays()
        cases["stack"] = framework_stack(lib, conv2d, x, *ps)
    return {name: best_time(step, number, repeat) * 1e3 for name, step in cases.items()}


def run_child(lib_name: str, number: int, repeat: int):
    """``time_lib`` in a fresh interpreter (its thread pools alone on the machine); None if it fails."""
    cmd = [sys.executable, __file__, "--lib", lib_name, "--number", str(number), "--repeat", str(repeat)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        print(f"{lib_name}: failed ({res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode})")
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def fmt(t) -> str:
    return "-" if t is None else f"{t:8.2f}"


def ratio(a, b) -> str:
    return "-" if a is None or b is None else f"{a / b:5.2f}x"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--lib", choices=("numpy", "disttorch", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--number", type=int, default=10, help=argparse.SUPPRESS)
    ap.add_argument("--repeat", type=int, default=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.lib:
        print(json.dumps(time_lib(args.lib, args.number, args.repeat)))
        return
    number, repeat = (3, 2) if args.quick else (args.number, args.repeat)
    print(f"numpy {np.__version__}, cores {os.cpu_count()}, OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
          f", torch {'found' if HAVE_TORCH else 'not installed'}")
    print(f"agreement with the NumPy reference (max relative difference): {check_agreement():.1e}")
    res = {lib: run_child(lib, number, repeat) for lib in ("disttorch", "numpy") + (("torch",) if HAVE_TORCH else ())}
    print(f"\nconv2d forward + backward, batch {BATCH}, float32, ms per step (each library in its own process)")
    print(f"{'case':<12}{'disttorch':>10}{'numpy':>10}{'torch':>10}{'dt/np':>9}{'dt/torch':>10}")
    for name in list(CASES) + ["stack"]:
        t_dt, t_np, t_pt = ((res.get(lib) or {}).get(name) for lib in ("disttorch", "numpy", "torch"))
        print(f"{name:<12}{fmt(t_dt):>10}{fmt(t_np):>10}{fmt(t_pt):>10}{ratio(t_dt, t_np):>9}{ratio(t_dt, t_pt):>10}")


if __name__ == "__main__":
    main()
