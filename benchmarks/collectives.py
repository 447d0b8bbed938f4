"""All-reduce bus bandwidth of the mpi and zmq backends against raw mpi4py, in one job, on the same buffers.

    disttorch launch -n 2 --backend mpi benchmarks/collectives.py [--max-mb 256] [--min-kb 4] [--budget 8]
    python benchmarks/collectives.py            # relaunches itself as the line above

The ranks are MPI ranks, so three all-reduces run side by side on one float32 buffer per size:

  raw   ``comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)`` on the mpi backend's own communicator (duplicates
        of COMM_WORLD were measured to differ by up to ~10% from each other with Open MPI);
  mpi   ``dist.all_reduce(t)`` on the default group (``init_process_group("mpi")``), synchronous;
  zmq   ``dist.all_reduce(t, group=zg)`` with ``zg = dist.new_group(backend="zmq")``, synchronous.

``t`` wraps ``buf`` (``from_numpy``), so all three move the same memory; the public API's checks and
fingerprints are part of what is measured. Each size is first checked for the right sum on every path,
then timed in rounds that interleave the three (so drift hits all alike): a round is ``iters`` back-to-back
calls after a barrier, its time is the mean per call, and the table shows the median over the rounds.
busbw = 2 (n-1)/n * bytes / time (NCCL's definition: the per-link traffic of a bandwidth-optimal
algorithm). Targets from the issue: mpi >= 0.95x raw at >= 1 MiB; zmq >= 0.7x raw at >= 4 MiB
(``ok``/``MISS`` in the last column; smaller sizes are shown for information).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

from _bench_util import alternated_medians, fmt_bytes  # benchmarks/ is sys.path[0]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MPI_ENV = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")
MPI_TARGET, MPI_FROM = 0.95, 1 << 20
ZMQ_TARGET, ZMQ_FROM = 0.70, 4 << 20


def _plan(nbytes: int, budget_s: float, est_bw: float = 1.5e9) -> tuple:
    """(rounds, calls per round) so that one variant at this size takes about ``budget_s / 3`` seconds."""
    per_call = 30e-6 + nbytes / est_bw
    total = max(1, int(budget_s / 3 / per_call))
    rounds = 5 if total >= 25 else max(3, min(5, total))
    return rounds, max(1, min(500, total // rounds))


def relaunch(argv: list) -> int:
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in [ROOT, os.environ.get("PYTHONPATH", "")] if p))
    exe = os.path.join(os.path.dirname(sys.executable), "disttorch")
    cmd = ([exe] if os.access(exe, os.X_OK) else [sys.executable, "-m", "disttorch.launcher.cli"])
    return subprocess.call(cmd + ["launch", "-n", "2", "--backend", "mpi", os.path.abspath(__file__)] + argv, env=env)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-kb", type=int, default=4)
    ap.add_argument("--max-mb", type=int, default=256)
    ap.add_argument("--budget", type=float, default=8.0, help="seconds of timed calls per size (all 3 paths)")
    args = ap.parse_args(argv)
    if not any(v in os.environ for v in _MPI_ENV):
        sys.exit(relaunch(sys.argv[1:] if argv is None else list(argv)))

    import disttorch as torch
    import disttorch.distributed as dist
    import mpi4py
    from mpi4py import MPI

    torch.set_num_threads(1)
    dist.init_process_group("mpi")
    zg = dist.new_group(backend="zmq")
    comm = dist.group.WORLD._pg._comm  # the mpi backend's communicator (see the module docstring)
    rank, n = dist.get_rank(), dist.get_world_size()
    factor = 2 * (n - 1) / n
    if rank == 0:
        print(f"# {n} ranks, {MPI.Get_library_version().split(',')[0].strip()}, mpi4py {mpi4py.__version__}, "
              f"zmq group over {zg._pg._t.address.rsplit(':', 1)[0]}", flush=True)
        print(f"{'size':>9} {'raw GB/s':>9} {'mpi GB/s':>9} {'zmq GB/s':>9} {'mpi/raw':>8} {'zmq/raw':>8}"
              f" {'raw us':>10} {'mpi us':>10} {'zmq us':>10}  targets", flush=True)
    rows = []
    t_start = time.perf_counter()
    nbytes = args.min_kb << 10
    while nbytes <= args.max_mb << 20:
        buf = np.zeros(nbytes // 4, np.float32)
        t = torch.from_numpy(buf)
        paths = {"raw": lambda: comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM),
                 "mpi": lambda: dist.all_reduce(t),
                 "zmq": lambda: dist.all_reduce(t, group=zg)}
        expect = n * (n + 1) / 2
        for name, fn in paths.items():  # correctness and warm-up (connections, algorithm selection, page faults)
            buf[:] = rank + 1
            fn()
            if not (buf[0] == expect and buf[-1] == expect):
                raise SystemExit(f"collectives: {name} all_reduce of {fmt_bytes(nbytes)} gave {buf[0]}, {buf[-1]} "
                                 f"instead of {expect}")
        buf[:] = 0  # sums of zeros stay finite however often they repeat
        for fn in paths.values():
            fn()
        rounds, iters = _plan(nbytes, args.budget)
        med = alternated_medians(paths, rounds, iters, comm)
        bw = {k: factor * nbytes / v / 1e9 for k, v in med.items()}
        r_mpi, r_zmq = med["raw"] / med["mpi"], med["raw"] / med["zmq"]
        marks = []
        if nbytes >= MPI_FROM:
            marks.append(f"mpi {'ok' if r_mpi >= MPI_TARGET else 'MISS'}")
        if nbytes >= ZMQ_FROM:
            marks.append(f"zmq {'ok' if r_zmq >= ZMQ_TARGET else 'MISS'}")
        rows.append((nbytes, r_mpi, r_zmq))
        if rank == 0:
            print(f"{fmt_bytes(nbytes):>9} {bw['raw']:9.3f} {bw['mpi']:9.3f} {bw['zmq']:9.3f} {r_mpi:8.2f} {r_zmq:8.2f}"
                  f" {med['raw'] * 1e6:10.1f} {med['mpi'] * 1e6:10.1f} {med['zmq'] * 1e6:10.1f}  {', '.join(marks)}",
                  flush=True)
        del t, buf, paths
        nbytes *= 4
    if rank == 0:
        def verdict(ratios, target):
            return "n/a" if not ratios else "met" if min(ratios) >= target else "MISSED"

        mpi_v = verdict([r for nb, r, _ in rows if nb >= MPI_FROM], MPI_TARGET)
        zmq_v = verdict([r for nb, _, r in rows if nb >= ZMQ_FROM], ZMQ_TARGET)
        print(f"# targets: mpi >= {MPI_TARGET}x raw at >= 1 MiB: {mpi_v}; zmq >= {ZMQ_TARGET}x raw at >= 4 MiB: {zmq_v} "
              f"({time.perf_counter() - t_start:.0f} s)", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
