"""GPU benchmarks (issue 13): training steps against PyTorch CUDA, and the fused kernels' memory bandwidth.

1. Training steps: the MLP, CNN and Transformer of benchmarks/train_step.py (same models, batches and Adam step)
   on one GPU, disttorch (CuPy) against PyTorch CUDA. Every measurement runs in its own process (a fresh CUDA
   context and memory pool per library), the two libraries alternate round by round, and the table reports the
   median milliseconds per step and the ratio disttorch / PyTorch. Targets: MLP <= 1.3, CNN <= 1.6,
   Transformer <= 1.3.
2. Kernels: each fused kernel of disttorch.kernels, launched through its plan on arrays of about 64 MiB, timed
   with CUDA events; its achieved bandwidth (the bytes it must at least read and write, over its time) against a
   device-to-device copy (CuPy) of the same bytes, alternated. Target: element-wise and normalisation kernels
   >= 70% of the copy.

Without CuPy or a GPU it prints why ("no GPU: ...") and exits with status 77 (the conventional "skipped").

Usage::

    python benchmarks/gpu.py             # both parts (PyTorch CUDA needed for part 1: pip install torch)
    python benchmarks/gpu.py --quick     # fewer rounds and steps: a few minutes
    python benchmarks/gpu.py --only kernels
    python benchmarks/gpu.py --only mlp,cnn
    python benchmarks/gpu.py --check     # the GPU, CUDA and NCCL versions only (what `make test-gpu` records)
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

TARGETS = {"mlp": 1.3, "cnn": 1.6, "transformer": 1.3}
KERNEL_TARGET = 0.70
NO_GPU = 77


def gpu_unavailable_reason() -> str:
    """Why no GPU benchmark can run here, or '' when one can."""
    try:
        import cupy
    except Exception as e:
        return f"CuPy is not importable ({type(e).__name__}: {e}); install disttorch[cuda12x]"
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            return "CuPy sees no CUDA device"
    except Exception as e:
        return f"CuPy finds no usable CUDA driver ({type(e).__name__}: {e})"
    return ""


def describe_gpu() -> str:
    """One line naming the GPU, its compute capability and the CUDA/CuPy/NCCL versions (for gpu-validation.md)."""
    import cupy

    rt = cupy.cuda.runtime
    props = rt.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]

    def ver(v: int) -> str:
        return f"{v // 1000}.{v % 1000 // 10}"

    try:
        from cupy.cuda import nccl

        nccl_v = str(nccl.get_version())
    except Exception as e:  # CuPy without the NCCL library
        nccl_v = f"unavailable ({type(e).__name__})"
    return (f"GPU 0 of {rt.getDeviceCount()}: {name}, compute capability {props['major']}.{props['minor']}; "
            f"CUDA runtime {ver(rt.runtimeGetVersion())}, driver {ver(rt.driverGetVersion())}; "
            f"CuPy {cupy.__version__}; NCCL {nccl_v}")


# ---- part 1: training steps, one process per measurement ------------------------------------------------------
def _child_train(lib_name: str, name: str, steps: int) -> dict:
    """Median ms per training step of ``name`` on the GPU with ``lib_name``; runs in its own process."""
    sys.path.insert(0, str(HERE))
    import train_step as T  # the models and batches of the CPU benchmark

    if lib_name == "torch":
        import torch as lib

        sync = lib.cuda.synchronize
    else:
        import disttorch as lib

        sync = lib.cuda.synchronize
    rng = np.random.default_rng(0)
    build, x, y = T.make_case(name, rng)
    lib.manual_seed(0)
    step = T.make_step(lib, build(lib).to("cuda"), x, y, device="cuda")

    for _ in range(3):  # warm-up: kernel compilation, memory pool growth, cuBLAS handles
        step()
    sync()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"ms": statistics.median(times)}


def _spawn(args: list[str], timeout: float) -> dict:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["failed"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def train_steps(names: list[str], rounds: int, steps: int) -> None:
    print(f"training steps on the GPU: median ms/step over {rounds} alternated rounds of {steps} steps, "
          f"each in its own process")
    print(f"{'model':<12}{'disttorch':>11}{'torch':>9}{'ratio':>8}{'target':>8}")
    for name in names:
        got = {"disttorch": [], "torch": []}
        errors = {}
        for _ in range(rounds):
            for lib in ("disttorch", "torch"):
                r = _spawn(["--child-train", lib, name, str(steps)], timeout=600)
                if "error" in r:
                    errors[lib] = r["error"]
                else:
                    got[lib].append(r["ms"])
        if errors:
            print(f"{name:<12} failed: {errors}")
            continue
        d, t = statistics.median(got["disttorch"]), statistics.median(got["torch"])
        print(f"{name:<12}{d:>11.2f}{t:>9.2f}{d / t:>8.2f}{TARGETS[name]:>8.2f}"
              f"  {'ok' if d / t <= TARGETS[name] else 'MISSED'}")


# ---- part 2: kernel bandwidth against a device-to-device copy ---------------------------------------------------
def _kernel_cases(cp, n: int):
    """(name, plan, bytes the kernel must move) for arrays of about ``n`` float32 elements."""
    from disttorch.kernels import launch as L

    f32 = np.float32
    rows, cols = n // 4096, 4096
    x = cp.random.standard_normal((rows, cols), dtype=f32)
    y, g = cp.empty_like(x), cp.random.standard_normal((rows, cols), dtype=f32)
    stats = [cp.empty(rows, f32) for _ in range(2)]
    w, b = cp.ones(cols, f32), cp.zeros(cols, f32)
    mask = cp.empty((rows, cols), np.uint8)
    s = x.nbytes
    out = [("softmax", L.softmax_plan(x, y), 2 * s),
           ("softmax_backward", L.softmax_backward_plan(g, x, y), 3 * s),
           ("layer_norm", L.layer_norm_plan(x, w, b, y, *stats, cols), 2 * s),
           ("layer_norm_backward_input", L.layer_norm_backward_input_plan(g, x, *stats, w, y, cols), 3 * s),
           ("gelu", L.activation_plan("gelu", x, y), 2 * s),
           ("gelu_backward", L.activation_backward_plan("gelu", g, x, y), 3 * s),
           ("silu", L.activation_plan("silu", x, y), 2 * s),
           ("dropout", L.dropout_plan(x, y, mask, 0.1, 1, 0), 2 * s + mask.nbytes),
           ("dropout_backward", L.dropout_backward_plan(g, mask, y, 0.1), 2 * s + mask.nbytes)]
    t = cp.zeros(rows, np.int64)
    loss = cp.empty(rows, f32)
    out += [("cross_entropy", L.cross_entropy_plan(x, t, None, loss, stats[0]), s),
            ("cross_entropy_backward",
             L.cross_entropy_backward_plan(x, t, None, stats[0], cp.ones(1, f32), y), 2 * s)]
    params = [cp.random.standard_normal(n // 4, dtype=f32) for _ in range(4)]
    groups = [params[:2], params[2:]] + [[cp.zeros(n // 4, f32) for _ in range(2)] for _ in range(2)]
    out.append(("adam (4 tensors/elem, 7 passes)", L.adam_plan(*groups, step=1, lr=1e-3), 7 * 2 * params[0].nbytes))
    bucket = cp.empty(n // 2, np.float16)
    out.append(("bucket_pack f32->f16", L.bucket_plan(params[:2], bucket), 2 * params[0].nbytes + bucket.nbytes))
    batch = max(1, min(16, n // (64 * 56 * 56)))  # a ResNet-like 64-channel 56x56 layer
    img = cp.random.standard_normal((batch, 64, 56, 56), dtype=f32)
    col = cp.empty((batch, 64 * 9, 56 * 56), f32)
    out += [("im2col 3x3", L.im2col_plan(img, col, 3, padding=1), img.nbytes + col.nbytes),
            ("col2im 3x3", L.col2im_plan(col, img, 3, padding=1), img.nbytes + col.nbytes)]
    return out


def _time(cp, fn, reps: int) -> float:
    start, end = cp.cuda.Event(), cp.cuda.Event()
    fn()  # first call: compilation and memory
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return cp.cuda.get_elapsed_time(start, end) / reps / 1e3


def _child_kernels(quick: bool) -> dict:
    import cupy as cp

    from disttorch.kernels import launch as L

    n = (16 if quick else 64) * 2 ** 20 // 4
    reps = 5 if quick else 20
    res = {}
    for name, plan, nbytes in _kernel_cases(cp, n):
        src = cp.empty(nbytes // 2, np.uint8)
        dst = cp.empty_like(src)
        k, c = [], []
        for _ in range(3):  # alternate kernel and copy
            k.append(_time(cp, lambda: L.launch(plan), reps))
            c.append(_time(cp, lambda: dst.__setitem__(Ellipsis, src), reps))
        res[name] = {"kernel_gbs": nbytes / statistics.median(k) / 1e9, "copy_gbs": nbytes / statistics.median(c) / 1e9}
    return res


def kernels(quick: bool) -> None:
    r = _spawn(["--child-kernels"] + (["--quick"] if quick else []), timeout=600)
    if "error" in r:
        print(f"kernel bandwidth failed: {r['error']}")
        return
    print("fused kernels: achieved bandwidth (minimum bytes moved / time) against a device-to-device copy of as "
          "many bytes")
    print(f"{'kernel':<34}{'GB/s':>9}{'copy GB/s':>11}{'ratio':>8}")
    for name, v in r.items():
        ratio = v["kernel_gbs"] / v["copy_gbs"]
        print(f"{name:<34}{v['kernel_gbs']:>9.0f}{v['copy_gbs']:>11.0f}{ratio:>8.2f}"
              f"  {'ok' if ratio >= KERNEL_TARGET else 'below 0.70'}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog=f"Exits with status {NO_GPU} (skipped) when no GPU is usable.")
    p.add_argument("--quick", action="store_true", help="3 rounds of 10 steps; smaller kernel arrays")
    p.add_argument("--only", default="mlp,cnn,transformer,kernels", help="comma-separated subset")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--check", action="store_true", help="only print the GPU and CUDA versions (or why none)")
    p.add_argument("--child-train", nargs=3, metavar=("LIB", "MODEL", "STEPS"), help=argparse.SUPPRESS)
    p.add_argument("--child-kernels", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_train:
        lib, name, steps = args.child_train
        print(json.dumps(_child_train(lib, name, int(steps))))
        return 0
    if args.child_kernels:
        print(json.dumps(_child_kernels(args.quick)))
        return 0
    reason = gpu_unavailable_reason()
    if reason:
        print(f"no GPU: benchmarks/gpu.py needs CuPy and an NVIDIA GPU; {reason}")
        return NO_GPU
    print(describe_gpu())
    if args.check:
        return 0
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - {*TARGETS, "kernels"}
    if unknown:
        p.error(f"--only: unknown {sorted(unknown)}; choose from mlp, cnn, transformer, kernels")
    rounds = args.rounds or (3 if args.quick else 7)
    steps = args.steps or (10 if args.quick else 30)
    names = [n for n in only if n in TARGETS]
    if names:
        train_steps(names, rounds, steps)
    if "kernels" in only:
        kernels(args.quick)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing
    sys.exit(main())
