"""All-reduce bandwidth of the zmq backend vs raw pyzmq ping-pong (and mpi4py Allreduce) on 2 processes.

Usage: ``python benchmarks/allreduce.py [--max-mb 64] [--no-mpi]``. The script starts its own two workers
(and, when mpi4py and ``mpiexec`` are present, a 2-rank ``mpiexec`` job), then prints per size:

- ``zmq busbw``: the backend's ring all-reduce, bus bandwidth ``2 (n-1)/n * bytes / time`` (float32, SUM);
- ``ping-pong``: raw pyzmq PAIR ping-pong of the same bytes, ``bytes / (round trip / 2)``, the wire's speed;
- ``mpi busbw``: ``comm.Allreduce(IN_PLACE, buf, SUM)`` under mpiexec;
and the ratios zmq/ping-pong and zmq/mpi. Times are medians over repetitions.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np

from _bench_util import fmt_bytes  # benchmarks/ is sys.path[0]

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)


def _sizes(max_mb: float) -> list:
    sizes, s = [], 1024
    while s <= max_mb * (1 << 20):
        sizes.append(s)
        s *= 4
    return sizes


def _reps(nbytes: int) -> int:
    return max(3, min(200, int(64e6 / max(nbytes, 1) / 4)))


def _median_time(fn, reps: int, sync) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        sync()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def zmq_worker(rank: int, port: int, max_mb: float) -> None:
    from datetime import timedelta

    import zmq

    from disttorch.distributed.backends.zmq import ZMQProcessGroup
    from disttorch.distributed.process_group import ReduceOp
    from disttorch.distributed.store import TCPStore

    store = TCPStore("127.0.0.1", port, 2, rank == 0, timedelta(seconds=60))
    pg = ZMQProcessGroup.create(store, rank, 2, 60.0, {"interface": "127.0.0.1"})
    barrier = lambda: pg.barrier().wait()  # noqa: E731
    # raw pyzmq ping-pong over its own PAIR socket
    ctx = zmq.Context()
    pair = ctx.socket(zmq.PAIR)
    if rank == 0:
        pp = pair.bind_to_random_port("tcp://127.0.0.1")
        store.set("pingpong", str(pp))
    else:
        pair.connect(f"tcp://127.0.0.1:{store.get('pingpong').decode()}")
    results = []
    for nbytes in _sizes(max_mb):
        buf = np.ones(nbytes // 4, np.float32)
        reps = _reps(nbytes)
        t_ar = _median_time(lambda: pg.allreduce([buf], ReduceOp.SUM).wait(), reps, barrier)

        def pingpong():
            if rank == 0:
                pair.send(memoryview(buf), copy=False)
                pair.recv(copy=False)
            else:
                pair.recv(copy=False)
                pair.send(memoryview(buf), copy=False)

        t_pp = _median_time(pingpong, reps, barrier)
        results.append({"bytes": nbytes, "allreduce_s": t_ar, "pingpong_s": t_pp})
    barrier()
    pair.close(linger=5000)  # the last reply may still be queued
    ctx.term()
    pg.shutdown()
    if rank == 0:
        print(json.dumps(results), flush=True)


def mpi_worker(max_mb: float) -> None:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    results = []
    for nbytes in _sizes(max_mb):
        buf = np.ones(nbytes // 4, np.float32)
        t = _median_time(lambda: comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM), _reps(nbytes), comm.Barrier)
        results.append({"bytes": nbytes, "mpi_s": t})
    if comm.rank == 0:
        print(json.dumps(results), flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmds: list, env: dict, timeout: float) -> str:
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, text=True) for c in cmds]
    try:
        outs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if any(p.returncode for p in procs):
        raise SystemExit(f"benchmark workers failed: {[p.returncode for p in procs]}")
    return next(o for o in outs if o.strip())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-mb", type=float, default=64)
    ap.add_argument("--no-mpi", action="store_true")
    ap.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--mpi-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return zmq_worker(args.worker[0], args.worker[1], args.max_mb)
    if args.mpi_worker:
        return mpi_worker(args.max_mb)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    port = _free_port()
    zres = json.loads(_run([[sys.executable, HERE, "--worker", str(r), str(port), "--max-mb", str(args.max_mb)]
                            for r in range(2)], env, 600).strip().splitlines()[-1])
    mres = None
    mpiexec = shutil.which("mpiexec") or shutil.which("mpiexec", path=os.path.dirname(sys.executable))
    if not args.no_mpi and mpiexec:
        try:
            import mpi4py  # noqa: F401
            menv = dict(env, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
            out = _run([[mpiexec, "-n", "2", "--oversubscribe", sys.executable, HERE, "--mpi-worker",
                         "--max-mb", str(args.max_mb)]], menv, 600)
            mres = json.loads(out.strip().splitlines()[-1])
        except (ImportError, SystemExit, ValueError) as e:
            print(f"(mpi4py comparison skipped: {e})")
    print(f"{'size':>9} {'zmq busbw':>11} {'ping-pong':>11} {'zmq/pp':>7}" + (f" {'mpi busbw':>11} {'zmq/mpi':>8}"
                                                                              if mres else ""))
    for i, z in enumerate(zres):
        nb = z["bytes"]
        bus = nb / z["allreduce_s"]  # 2 (n-1) / n = 1 for two ranks
        pp = nb / (z["pingpong_s"] / 2)
        line = f"{fmt_bytes(nb):>9} {bus / 1e9:8.3f} GB/s {pp / 1e9:6.3f} GB/s {bus / pp:7.2f}"
        if mres:
            mb = nb / mres[i]["mpi_s"]
            line += f" {mb / 1e9:6.3f} GB/s {bus / mb:8.2f}"
        print(line)


if __name__ == "__main__":
    main()
