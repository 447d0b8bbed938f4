"""Helpers the communication benchmarks share: byte sizes in and out, starting the script again under mpiexec,
and timing several variants in alternated rounds inside one MPI job."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def fmt_bytes(n: float) -> str:
    """``16384`` -> ``16 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:g} {unit}"
        n /= 1024
    return f"{n:g} TiB"


def parse_size(text: str) -> int:
    """``16K``, ``1M``, ``1MiB``, ``512`` -> bytes."""
    text = text.strip().upper().rstrip("B").rstrip("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(float(text.rstrip("KMG")) * mult)


def relaunch_mpiexec(script: str, ranks: int, argv: list, drop_env=()) -> int:
    """Run ``script argv`` as ``ranks`` processes under the mpiexec next to this Python (else on PATH), as root
    if need be, oversubscribed, one BLAS thread each, with this checkout importable; ``drop_env`` names
    variables removed from the ranks' environment. Returns mpiexec's exit status."""
    mpiexec = Path(sys.executable).with_name("mpiexec")
    mpiexec = str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit(f"{Path(script).stem}: no mpiexec found (install the mpi extra: mpi4py and an MPI library)")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p))
    for var in drop_env:
        env.pop(var, None)
    return subprocess.call([mpiexec, "-n", str(ranks), "--oversubscribe", sys.executable, script] + list(argv),
                           env=env)


def alternated_medians(paths: dict, rounds: int, iters: int, comm) -> dict:
    """Median seconds per call of each ``paths`` function: ``rounds`` rounds, each timing ``iters`` calls of
    every path in turn after a barrier (so drift hits all paths alike)."""
    times = {k: [] for k in paths}
    for _ in range(rounds):
        for name, fn in paths.items():
            comm.Barrier()
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            times[name].append((time.perf_counter() - t0) / iters)
    return {k: float(np.median(v)) for k, v in times.items()}
