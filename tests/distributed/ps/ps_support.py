"""Helpers for the parameter-server tests: an in-process server thread, and a whole job of real processes.

``Job`` starts a scheduler, servers and workers with the launcher's environment contract, each in its own
session; ``finish`` waits with a hard deadline and always kills every process group it started, by pid.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """A ParameterServer serving in a thread of this process (for protocol tests)."""

    def __init__(self, num_workers: int = 1, secret: bytes | None = None, secure: bool = False, **kw) -> None:
        import zmq

        from disttorch.distributed.ps.server import ParameterServer

        self.secret = secret or secrets.token_bytes(16)
        self.ctx = zmq.Context()
        try:
            self.server = ParameterServer(self.ctx, "127.0.0.1:0", self.secret, num_workers, secure, **kw)
        except BaseException:
            self.ctx.term()
            raise
        self.address = self.server.address
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self.server.serve, args=(self._stop.is_set,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(10)
        self.server.close()
        self.ctx.term()


class Job:
    """A scheduler, ``servers`` servers and ``workers`` workers running ``script`` (real processes)."""

    def __init__(self, script: str, out_dir: Path, servers: int = 2, workers: int = 2, args=(), env=None) -> None:
        self.out_dir, self.workers = out_dir, workers
        out_dir.mkdir(parents=True, exist_ok=True)
        base = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        base.update({"DISTTORCH_JOB_SECRET": secrets.token_hex(16), "OMP_NUM_THREADS": "1",
                     "PYTHONUNBUFFERED": "1", "DISTTORCH_PS_SCHEDULER": f"127.0.0.1:{free_port()}",
                     "DISTTORCH_PS_NUM_SERVERS": str(servers), "DISTTORCH_PS_NUM_WORKERS": str(workers),
                     "DISTTORCH_PS_TIMEOUT": "60", "DISTTORCH_PS_CONNECT_TIMEOUT": "60",
                     "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
        base.update(env or {})
        self.env = base
        self.procs: list = []
        self._logs: list = []
        self._start("scheduler", [PYTHON, "-m", "disttorch.distributed.ps.scheduler"], DISTTORCH_PS_ROLE="scheduler")
        for s in range(servers):
            self._start(f"server{s}", [PYTHON, "-m", "disttorch.distributed.ps.server"], DISTTORCH_PS_ROLE="server",
                        DISTTORCH_PS_SERVER_ID=str(s))
        for r in range(workers):
            self._start(f"rank{r}", [PYTHON, script, "--out", str(out_dir), *args], DISTTORCH_PS_ROLE="worker",
                        RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(workers))

    def _start(self, name: str, cmd: list, **extra) -> None:
        log = open(self.out_dir / f"{name}.log", "wb")
        self._logs.append(log)
        p = subprocess.Popen(cmd, env=dict(self.env, **extra), stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True, cwd=str(ROOT))
        p.name = name
        self.procs.append(p)

    def finish(self, timeout: float = 90.0) -> dict:
        """name -> exit code (None: still running at the deadline, then killed). Kills everything it started."""
        deadline = time.monotonic() + timeout
        codes = {}
        try:
            for p in self.procs:
                try:
                    codes[p.name] = p.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    codes[p.name] = None
        finally:
            self.kill()
        return codes

    def kill(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for f in self._logs:
            f.close()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.out_dir.glob("*.log")))

    def results(self) -> dict:
        out = {}
        for r in range(self.workers):
            p = self.out_dir / f"rank{r}.json"
            if p.exists():
                out[r] = json.loads(p.read_text())
        return out
