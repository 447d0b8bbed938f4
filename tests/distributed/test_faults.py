"""Fault tests: a worker SIGKILLed mid-training (restart from the checkpoint, same result as an undisturbed run),
an unreachable master (a clear error within the timeout, not a hang), and torchrun style (one launcher per
"node") on two loopback addresses. Workers: tests/distributed/fault_worker.py."""
from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FAULT_WORKER = os.path.join(HERE, "fault_worker.py")
PY = sys.executable
NODES = ("127.0.0.2", "127.0.0.3")


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DISTTORCH_", "PET_", "TORCHELASTIC_")) and k not in ("OMP_NUM_THREADS", "RANK",
                                                                                     "WORLD_SIZE", "LOCAL_RANK",
                                                                                     "MASTER_ADDR", "MASTER_PORT")}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _closed_port(host="127.0.0.1"):
    """A port on ``host`` where nothing listens (bound to 0 and released)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Launcher:
    """`disttorch launch ...` started in its own session; stdout/stderr read by threads (lines kept in order)."""

    def __init__(self, *args, env):
        self.p = subprocess.Popen([PY, "-m", "disttorch.launcher.cli", "launch", *args], env=env, cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.out, self.err = [], []
        self.lines: queue.Queue = queue.Queue()
        self.readers = [threading.Thread(target=self._read, args=(s, buf), daemon=True)
                        for s, buf in ((self.p.stdout, self.out), (self.p.stderr, self.err))]
        for t in self.readers:
            t.start()

    def _read(self, stream, buf):
        for line in stream:
            buf.append(line)
            self.lines.put(line)

    def wait_for(self, marker, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.p.poll() is not None and self.lines.empty():
                    break
                continue
            if marker in line:
                return line
        raise AssertionError(f"no {marker!r} within {timeout} s:\n{self.text()}")

    def finish(self, timeout):
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"launcher did not finish within {timeout} s:\n{self.text()}") from None
        for t in self.readers:
            t.join(5)
        return self.p.returncode, "".join(self.out), "".join(self.err)

    def text(self):
        return "".join(self.out) + "\n--- stderr\n" + "".join(self.err)

    def stop(self):
        """SIGTERM to the launcher (it stops its workers), then SIGKILL to its whole session (pgid = its pid)."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            pass


def _children(pid):
    kids = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids.update(int(c) for c in f.read().split())
        except FileNotFoundError:
            pass
    return kids


# ---------------------------------------------------------------------------------------------------------------
# 1. a worker SIGKILLed mid-training
# ---------------------------------------------------------------------------------------------------------------
EPOCHS, KILL_AFTER = 4, 2


def _digits_job(out_dir, kill_after, env):
    return Launcher("--nproc-per-node", "2", "--max-restarts", "1", "--grace-period", "3", FAULT_WORKER, "ddp",
                    str(kill_after), "1", "--", "--epochs", str(EPOCHS), "--seed", "3", "--no-progress",
                    "--backend", "zmq", "--out-dir", str(out_dir), env=env)


def _state(path):
    import disttorch

    return disttorch.load(str(path))


def _assert_same(a, b, where="state"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a, key=str) == sorted(b, key=str), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif hasattr(a, "numpy"):
        assert a.dtype == b.dtype and tuple(a.shape) == tuple(b.shape), where
        assert np.array_equal(a.numpy(), b.numpy()), f"{where} differs"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.mark.timeout(90)
def test_sigkilled_worker_restarts_from_checkpoint_with_identical_result(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    env = _env(DISTTORCH_COLLECTIVE_TIMEOUT="30")
    faulty = _digits_job(tmp_path / "faulty", KILL_AFTER, env)
    try:
        line = faulty.wait_for("FAULT_POINT", timeout=40)
        pid = int(line.rsplit("pid=", 1)[1])
        assert pid in _children(faulty.p.pid), "the paused process is not one of the launcher's workers"
        assert (tmp_path / "faulty" / "checkpoint.pt").exists()
        os.kill(pid, signal.SIGKILL)
        rc, out, err = faulty.finish(timeout=40)
    finally:
        faulty.stop()
    assert rc == 0, faulty.text()
    # the launcher names the killed rank and the signal, once, then restarts the group
    assert err.count("worker failure") == 1, err
    assert f"first failure : rank 1 (local_rank 1) on host {socket.gethostname()}, pid {pid}" in err, err
    assert "cause         : killed by signal SIGKILL (9)" in err
    assert "restarting the whole group: restart 1 of 1" in err
    # the restarted group resumes after epoch KILL_AFTER and trains only the remaining epochs
    assert f"resumed from {tmp_path / 'faulty' / 'checkpoint.pt'} after epoch {KILL_AFTER} (restart 1)" in out, out
    before, after = out.split("resumed from", 1)
    assert re.findall(r"\] epoch +(\d+)/", before) == [str(e) for e in range(1, KILL_AFTER + 1)], out
    assert re.findall(r"\] epoch +(\d+)/", after) == [str(e) for e in range(KILL_AFTER + 1, EPOCHS + 1)], out

    calm = _digits_job(tmp_path / "calm", 0, env)
    try:
        rc2, out2, err2 = calm.finish(timeout=40)
    finally:
        calm.stop()
    assert rc2 == 0 and "worker failure" not in err2, calm.text()

    def final(text):
        return [line.split("] ", 1)[1] for line in text.splitlines() if "final test accuracy" in line]

    fa, fb = final(out), final(out2)
    assert len(fa) == len(fb) == 1 and fa[0].split(" in ")[0] == fb[0].split(" in ")[0], (fa, fb)
    # bitwise the same model, optimizer, scheduler and history as the undisturbed run
    _assert_same(_state(tmp_path / "faulty" / "checkpoint.pt"), _state(tmp_path / "calm" / "checkpoint.pt"))


# ---------------------------------------------------------------------------------------------------------------
# 2. an unreachable master
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_unreachable_master_raises_within_the_timeout():
    port = _closed_port()
    env = _env(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="1", WORLD_SIZE="2")
    p = subprocess.Popen([PY, FAULT_WORKER, "init", "3"], env=env, cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)
    assert p.returncode == 0, err
    r = json.loads(out.split("INIT ", 1)[1])
    assert r["type"] == "DistStoreError" and r["is_runtime_error"], r
    assert f"127.0.0.1:{port}" in r["msg"] and "within 3 s" in r["msg"], r
    assert 2.9 <= r["elapsed"] < 8, r  # the 3 s timeout, not a hang


@pytest.mark.timeout(30)
def test_launcher_node_whose_master_never_comes_up_exits_with_a_clear_error():
    port = _closed_port()
    t0 = time.monotonic()
    job = Launcher("--nnodes", "2", "--node-rank", "1", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
                   "--master-port", str(port), FAULT_WORKER, "allreduce",
                   env=_env(DISTTORCH_COLLECTIVE_TIMEOUT="3", DISTTORCH_JOB_SECRET="ab" * 16))
    try:
        rc, out, err = job.finish(timeout=20)
    finally:
        job.stop()
    elapsed = time.monotonic() - t0
    assert rc == 1, job.text()
    assert elapsed < 15, elapsed  # 3 s store timeout + start-up of the launcher and two workers
    assert err.count("worker failure") == 1 and "giving up" in err
    summary = err[err.index("=" * 72):]
    assert f"no answer from the store at 127.0.0.1:{port} within 3 s" in summary, summary
    assert "ALLREDUCE" not in out


# ---------------------------------------------------------------------------------------------------------------
# 3. torchrun style on two loopback "nodes"
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_one_launcher_per_node_on_two_loopback_addresses():
    port = str(_closed_port(NODES[0]))
    common = ("--nnodes", "2", "--nproc-per-node", "2", "--master-addr", NODES[0], "--master-port", port)
    secret = "5a" * 16
    # node 0 binds through --interface, node 1 through DISTTORCH_INTERFACE in the launcher's environment
    jobs = [Launcher(*common, "--node-rank", "0", "--interface", NODES[0], FAULT_WORKER, "allreduce",
                     env=_env(DISTTORCH_JOB_SECRET=secret)),
            Launcher(*common, "--node-rank", "1", FAULT_WORKER, "allreduce",
                     env=_env(DISTTORCH_JOB_SECRET=secret, DISTTORCH_INTERFACE=NODES[1]))]
    try:
        results = [j.finish(timeout=40) for j in jobs]
    finally:
        for j in jobs:
            j.stop()
    infos = {}
    for node, (j, (rc, out, err)) in enumerate(zip(jobs, results)):
        assert rc == 0, j.text()
        for line in out.splitlines():
            if "] ALLREDUCE " in line:
                info = json.loads(line.split("] ALLREDUCE ", 1)[1])
                assert line.startswith(f"[rank {info['rank']}] ") and info["rank"] // 2 == node
                infos[info["rank"]] = info
    assert sorted(infos) == [0, 1, 2, 3]
    for r, info in infos.items():
        node = NODES[r // 2]
        assert info["world"] == 4 and info["result"] == [10.0, 14.0]  # sum(r + 1), sum(r * r)
        assert info["interface"] == node and info["listen"] == [node], info
        assert NODES[0] in info["peers"]  # everyone talks to node 0 (the store, and the ring neighbours)
    assert any(NODES[1] in infos[r]["peers"] for r in (0, 1))  # node 0 reaches node 1's workers
