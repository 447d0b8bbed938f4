"""MPIProcessGroup.allreduce against raw mpi4py Allreduce on the same float32 buffers, in the same job.

    python benchmarks/mpi_allreduce.py            # starts itself under `mpiexec -n 2`
    mpiexec -n 2 python benchmarks/mpi_allreduce.py [--max-mb 64] [--ranks N]

Columns (best median time per synchronous call, then ratio raw/ours; 1.00 = no overhead):
  raw     comm.Allreduce(MPI.IN_PLACE, buf) on the inline group's own communicator
  inline  group.allreduce([buf], SUM).wait(): the default; the waiting caller runs the MPI call itself
  thread  the same with options={"inline_sync": False}: every call hops to the communication thread
          (its ratio is against raw Allreduce on that group's communicator)
Raw calls use each group's own communicator because identical duplicates of COMM_WORLD were measured to
differ by up to ~10% from one another at 1 MiB (Open MPI), which would drown the wrapper's overhead.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def relaunch(args) -> int:
    mpiexec = Path(sys.executable).with_name("mpiexec")
    mpiexec = str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("mpi_allreduce: no mpiexec found (install the mpi extra: mpi4py and an MPI library)")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p))
    cmd = [mpiexec, "-n", str(args.ranks), "--oversubscribe", sys.executable, __file__, "--max-mb", str(args.max_mb)]
    return subprocess.call(cmd, env=env)


def measure(fn, iters: int, reps: int, comm) -> float:
    """Median over ``reps`` of the mean time of ``iters`` calls (ranks start each rep together)."""
    times = []
    for _ in range(reps):
        comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        times.append((time.perf_counter() - t0) / iters)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-mb", type=int, default=64)
    parser.add_argument("--ranks", type=int, default=2)
    args = parser.parse_args()
    if not any(v in os.environ for v in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")):
        sys.exit(relaunch(args))

    from mpi4py import MPI

    from disttorch.distributed.backends.mpi import MPIProcessGroup
    from disttorch.distributed.process_group import ReduceOp

    inline = MPIProcessGroup.create(None, -1, -1, 300.0, {})
    thread = MPIProcessGroup.create(None, -1, -1, 300.0, {"inline_sync": False})
    raw_comm, raw_thread = inline._comm, thread._comm
    rank = raw_comm.Get_rank()
    if rank == 0:
        print(f"{raw_comm.Get_size()} ranks, {MPI.Get_library_version().splitlines()[0]}, "
              f"thread level {MPI.Query_thread()} (MULTIPLE={MPI.THREAD_MULTIPLE})")
        print(f"{'bytes':>10} {'raw us':>10} {'inline us':>10} {'thread us':>10} {'raw/inline':>11} {'raw/thread':>11}"
              f" {'busbw GB/s':>11}")
    nbytes = 4096
    while nbytes <= args.max_mb << 20:
        buf = np.ones(nbytes // 4, np.float32)
        iters = int(min(2000, max(5, 2e8 / nbytes)))
        fns = {"raw": lambda: raw_comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM),
               "inline": lambda: inline.allreduce([buf], ReduceOp.SUM).wait(),
               "raw_t": lambda: raw_thread.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM),
               "thread": lambda: thread.allreduce([buf], ReduceOp.SUM).wait()}
        for fn in fns.values():  # warm up buffers and algorithms
            fn()
        best = {k: float("inf") for k in fns}
        for _ in range(3):  # interleave so drift hits every variant alike
            for k, fn in fns.items():
                best[k] = min(best[k], measure(fn, iters, 3, raw_comm))
        if rank == 0:
            n = raw_comm.Get_size()
            busbw = 2 * (n - 1) / n * nbytes / best["raw"] / 1e9
            print(f"{nbytes:>10} {best['raw'] * 1e6:>10.1f} {best['inline'] * 1e6:>10.1f} {best['thread'] * 1e6:>10.1f}"
                  f" {best['raw'] / best['inline']:>11.2f} {best['raw_t'] / best['thread']:>11.2f} {busbw:>11.2f}",
                  flush=True)
        nbytes *= 4
    thread.shutdown()
    inline.shutdown()


if __name__ == "__main__":
    main()
