"""Per-op overhead and train steps of this tree against an earlier tree and PyTorch, each in its own process.

The engine's speed is judged on what users get: every library runs in a fresh subprocess with its default
threads (or ``--threads N`` for all), the processes are alternated round by round, and each figure is the
median over rounds of the per-process best (per-op cases: best of 5 x N calls; train steps: median of the
timed steps). Libraries:

- ``after``: disttorch from this checkout;
- ``before``: disttorch from ``--before DIR`` (e.g. ``git worktree add /tmp/before HEAD~1``);
- ``torch``: PyTorch CPU, when installed (``pip install disttorch[bench]``).

Cases: the three per-op cases of benchmarks/engine.py (``a + b`` on 3-element float32 tensors without and with
requires_grad, ``(a + b).sum().backward()``) plus ``a * 2.0`` and ``relu(a)`` with requires_grad, and one Adam
train step of the MLP and the Transformer of benchmarks/train_step.py.

Usage::

    python benchmarks/engine_compare.py --before /tmp/before             # default threads
    python benchmarks/engine_compare.py --before /tmp/before --threads 1
    python benchmarks/engine_compare.py --quick
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

OPS = ["a + b", "a + b (requires_grad)", "(a + b).sum().backward()", "a * 2.0 (requires_grad)",
       "relu(a) (requires_grad)"]
STEPS = ["mlp", "transformer"]


def _child(lib: str, tree: str, threads: int, number: int, steps: int) -> dict:
    """Runs in the subprocess: import one library, time every case, return the figures."""
    if lib == "torch":
        import torch as L
        if threads:
            L.set_num_threads(threads)
    else:
        sys.path.insert(0, tree)  # before anything imports disttorch: this tree's package wins
        import disttorch as L
        assert Path(L.__file__).resolve().is_relative_to(Path(tree).resolve()), L.__file__
    sys.path.insert(1, str(HERE))
    import numpy as np
    import train_step

    ag = L.tensor([1.0, 2.0, 3.0], requires_grad=True)
    bg = L.tensor([4.0, 5.0, 6.0], requires_grad=True)
    a, b = ag.detach(), bg.detach()
    relu = L.nn.functional.relu
    cases = {
        "a + b": lambda: a + b,
        "a + b (requires_grad)": lambda: ag + bg,
        "(a + b).sum().backward()": lambda: (ag + bg).sum().backward(),
        "a * 2.0 (requires_grad)": lambda: ag * 2.0,
        "relu(a) (requires_grad)": lambda: relu(ag),
    }
    out = {}
    for name, fn in cases.items():
        for _ in range(200):
            fn()
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            best = min(best, (time.perf_counter() - t0) / number)
        out[name] = best * 1e6
    for name in STEPS:
        build, x, y = train_step.make_case(name, np.random.default_rng(0))
        L.manual_seed(0)
        step = train_step.make_step(L, build(L), x, y)
        for _ in range(2):
            step()
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
        out[name] = statistics.median(times)
    return out


def _run_child(lib: str, tree: str, args) -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads),
                   MKL_NUM_THREADS=str(args.threads))
    code = (f"import sys, json; sys.path.insert(0, {str(HERE)!r}); import engine_compare as E; "
            f"print('RESULT', json.dumps(E._child({lib!r}, {tree!r}, {args.threads}, {args.number}, {args.steps})))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/",
                       timeout=args.timeout)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"engine_compare: the {lib} process failed (exit {p.returncode}):\n{p.stderr[-3000:]}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", help="a checkout of an earlier disttorch to compare with")
    ap.add_argument("--threads", type=int, default=0, help="threads for every library (default: their own)")
    ap.add_argument("--rounds", type=int, default=5, help="processes per library, alternated (median)")
    ap.add_argument("--number", type=int, default=20000, help="calls per timing of a per-op case")
    ap.add_argument("--steps", type=int, default=10, help="timed train steps per process")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--quick", action="store_true", help="2 rounds, fewer calls and steps")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.number, args.steps = 2, 3000, 3
    libs = {"after": str(ROOT)}
    if args.before:
        libs["before"] = str(Path(args.before).resolve())
    try:
        import importlib.util
        if importlib.util.find_spec("torch") is not None:
            libs["torch"] = ""
    except (ImportError, ValueError):
        pass
    figures = {lib: [] for lib in libs}
    for _ in range(args.rounds):
        for lib, tree in libs.items():
            figures[lib].append(_run_child("torch" if lib == "torch" else "disttorch", tree, args))
    med = {lib: {case: statistics.median(r[case] for r in runs) for case in OPS + STEPS}
           for lib, runs in figures.items()}
    threads = f"{args.threads} thread(s)" if args.threads else "default threads"
    print(f"# {os.cpu_count()} cores, {threads}, median of {args.rounds} processes per library, alternated")
    cols = list(libs)
    head = f"{'case':28s}" + "".join(f"{c:>12s}" for c in cols)
    if "before" in libs:
        head += f"{'after/before':>14s}"
    if "torch" in libs:
        head += f"{'after/torch':>13s}"
        if "before" in libs:
            head += f"{'before/torch':>14s}"
    print(head)
    for case in OPS + STEPS:
        unit = "us" if case in OPS else "ms"
        row = f"{case + ' [' + unit + ']':28s}" + "".join(f"{med[c][case]:12.2f}" for c in cols)
        if "before" in libs:
            row += f"{med['after'][case] / med['before'][case]:14.2f}"
        if "torch" in libs:
            row += f"{med['after'][case] / med['torch'][case]:13.2f}"
            if "before" in libs:
                row += f"{med['before'][case] / med['torch'][case]:14.2f}"
        print(row)


if __name__ == "__main__":
    main()
