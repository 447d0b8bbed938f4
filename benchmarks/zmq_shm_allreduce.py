"""The zmq backend's all-reduce, same-host shared memory vs TCP, against raw mpi4py in the same mpiexec job.

    python benchmarks/zmq_shm_allreduce.py [--quick] [--sizes 16K,1M,16M,64M] [--ranks 2]
    mpiexec -n 2 python benchmarks/zmq_shm_allreduce.py ...     # what the line above starts

Three all-reduces (float32, SUM, in place, synchronous) run side by side on one buffer per size:

  raw   ``comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)`` on COMM_WORLD;
  shm   ``ZMQProcessGroup.allreduce([buf], SUM).wait()`` with the same-host shared-memory path (the default),
        launched inside ``blocking_call`` as ``dist.all_reduce(async_op=False)`` launches it;
  tcp   the same on a second zmq group created with ``DISTTORCH_ZMQ_SHM=0`` (the path before shared memory).

Each size is first checked for the right sum on every path, then timed in rounds that alternate the three
(drift hits all alike): a round is ``iters`` calls after a barrier; the table shows the median per-call time
over the rounds and the ratios raw/shm and raw/tcp (1.00 = as fast as MPI). Targets (issue 14): shm >= 0.7x
raw from 1 MiB; a 16 KiB shm all-reduce within 3x of raw's time. ``--quick`` takes ~1 min on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
from datetime import timedelta

import numpy as np

from _bench_util import alternated_medians, fmt_bytes, parse_size, relaunch_mpiexec  # benchmarks/ is sys.path[0]

_MPI_ENV = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")


def _group(comm, shm: bool):
    """A zmq world group over its own store (port chosen by rank 0, shared through MPI)."""
    from disttorch.distributed.backends.zmq import ZMQProcessGroup
    from disttorch.distributed.store import TCPStore

    rank, n = comm.Get_rank(), comm.Get_size()
    port = 0
    if rank == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    port = comm.bcast(port, root=0)
    os.environ["DISTTORCH_ZMQ_SHM"] = "1" if shm else "0"
    try:
        store = TCPStore("127.0.0.1", port, n, rank == 0, timedelta(seconds=60))
        pg = ZMQProcessGroup.create(store, rank, n, 120.0, {"interface": "127.0.0.1"})
    finally:
        del os.environ["DISTTORCH_ZMQ_SHM"]
    assert (pg._shm is not None) == shm, "the zmq group did not take the path asked for"
    return pg, store


def _blocking(pg, buf) -> None:
    """One all-reduce as ``dist.all_reduce(async_op=False)`` launches it: inside ``blocking_call``, then waited."""
    from disttorch.distributed.process_group import ReduceOp, blocking_call

    with blocking_call():
        work = pg.allreduce([buf], ReduceOp.SUM)
    work.wait()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="16K,1M,16M,64M", help="comma-separated byte sizes (K/M suffixes)")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer rounds and calls (about a minute)")
    ap.add_argument("--budget", type=float, default=6.0, help="seconds of timed calls per size, all paths")
    args = ap.parse_args(argv)
    if not any(v in os.environ for v in _MPI_ENV):
        sys.exit(relaunch_mpiexec(__file__, args.ranks, sys.argv[1:] if argv is None else list(argv),
                                  drop_env=("DISTTORCH_ZMQ_SHM",)))

    from mpi4py import MPI


    comm = MPI.COMM_WORLD
    rank, n = comm.Get_rank(), comm.Get_size()
    shm_pg, s1 = _group(comm, True)
    tcp_pg, s2 = _group(comm, False)
    budget = 1.5 if args.quick else args.budget
    if rank == 0:
        print(f"# {n} ranks on one host, {MPI.Get_library_version().split(',')[0].strip()}; per-call median us "
              f"and raw/ours ratio (1.00 = MPI's speed); busbw = 2(n-1)/n * bytes / time", flush=True)
        print(f"{'size':>9} {'raw us':>10} {'shm us':>10} {'tcp us':>10} {'raw/shm':>8} {'raw/tcp':>8} "
              f"{'shm GB/s':>9} {'raw GB/s':>9}  target", flush=True)
    for nbytes in [parse_size(t) for t in args.sizes.split(",")]:
        buf = np.zeros(nbytes // 4, np.float32)
        paths = {"raw": lambda: comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM),
                 "shm": lambda: _blocking(shm_pg, buf), "tcp": lambda: _blocking(tcp_pg, buf)}
        expect = n * (n + 1) / 2
        for name, fn in paths.items():  # correctness, and warm-up (page faults, connections)
            buf[:] = rank + 1
            fn()
            if not (buf[0] == expect and buf[-1] == expect):
                raise SystemExit(f"{name} all_reduce of {fmt_bytes(nbytes)} gave {buf[0]}, {buf[-1]}, not {expect}")
        buf[:] = 0
        per_call = 40e-6 + nbytes / 1e9
        total = max(3, int(budget / 3 / per_call))
        rounds = 5 if total >= 25 else 3
        iters = max(1, min(1000, total // rounds))
        med = alternated_medians(paths, rounds, iters, comm)
        if rank == 0:
            r_shm, r_tcp = med["raw"] / med["shm"], med["raw"] / med["tcp"]
            if nbytes >= 1 << 20:
                target = f"shm >= 0.7x: {'ok' if r_shm >= 0.7 else 'MISS'}"
            elif nbytes <= 64 << 10:
                target = f"shm <= 3x raw time: {'ok' if r_shm >= 1 / 3 else 'MISS'}"
            else:
                target = ""
            bw = 2 * (n - 1) / n * nbytes / 1e9
            print(f"{fmt_bytes(nbytes):>9} {med['raw'] * 1e6:10.1f} {med['shm'] * 1e6:10.1f} {med['tcp'] * 1e6:10.1f} "
                  f"{r_shm:8.2f} {r_tcp:8.2f} {bw / med['shm']:9.3f} {bw / med['raw']:9.3f}  {target}", flush=True)
    comm.Barrier()
    shm_pg.shutdown()
    tcp_pg.shutdown()
    comm.Barrier()


if __name__ == "__main__":
    main()
