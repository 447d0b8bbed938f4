"""Dead workers: a worker that stops heart-beating (SIGKILL) is declared dead; the others finish the job."""
from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ps_support import Job  # noqa: E402

pytest.importorskip("zmq")
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_killed_worker_is_declared_dead_and_the_job_finishes(tmp_path, mode):
    job = Job(os.path.join(HERE, "ps_fault_worker.py"), tmp_path, args=["--mode", mode],
              env={"DISTTORCH_PS_HEARTBEAT_TIMEOUT": "1.5"})
    codes = job.finish(timeout=90)
    logs = job.logs()
    assert codes["rank1"] == -9, f"{codes}\n{logs}"
    assert all(codes[n] == 0 for n in ("scheduler", "server0", "server1", "rank0")), f"{codes}\n{logs}"
    r0 = job.results()[0]
    assert "error" not in r0, r0["error"]
    assert r0["clock"] == 5
    assert "worker rank 1 on host" in (tmp_path / "scheduler.log").read_text()
    if mode == "sync":  # two halves while both pushed, then rank 0's half alone: the mean of what arrived
        diff = max(float(np.max(np.abs(np.array(a) - np.array(b)))) for a, b in zip(r0["final"], r0["ref_final"]))
        assert diff < 1e-10


def _poll(cond, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.02)


def test_server_sigkill_restart_from_snapshot_loses_nothing(tmp_path):
    snap = tmp_path / "snap"
    snap.mkdir()
    job = Job(os.path.join(HERE, "ps_restart_worker.py"), tmp_path,
              env={"DISTTORCH_PS_SNAPSHOT_DIR": str(snap), "DISTTORCH_PS_SNAPSHOT_STEPS": "1"})
    try:
        _poll(lambda: (tmp_path / "reached").exists(), 60, "rank 0 to reach the pause")
        server0 = next(p for p in job.procs if p.name == "server0")
        os.killpg(server0.pid, signal.SIGKILL)
        server0.wait(timeout=10)
        (tmp_path / "killed").touch()  # rank 0 goes on while server 0 is down
        job._start("server0-restarted", [sys.executable, "-m", "disttorch.distributed.ps.server"],
                   DISTTORCH_PS_ROLE="server", DISTTORCH_PS_SERVER_ID="0")
    except BaseException:
        job.kill()
        raise
    codes = job.finish(timeout=90)
    logs = job.logs()
    assert codes["server0"] == -9, f"{codes}\n{logs}"
    assert all(codes[n] == 0 for n in ("scheduler", "server1", "server0-restarted", "rank0", "rank1")), \
        f"{codes}\n{logs}"
    assert "restored" in (tmp_path / "server0-restarted.log").read_text()
    for r, res in job.results().items():
        assert "error" not in res, res["error"]
        diff = max(float(np.max(np.abs(np.array(a) - np.array(b)))) for a, b in zip(res["final"], res["ref_final"]))
        assert diff < 1e-10, (r, diff)


def test_restarted_worker_rejoins_and_pulls_the_current_parameters(tmp_path):
    # rank 1 dies after step 2; rank 0 trains step 3 alone once rank 1 is declared dead, then pauses until the
    # restarted rank 1 has rejoined; steps 4 and 5 have both again: an exact reference exists
    job = Job(os.path.join(HERE, "ps_fault_worker.py"), tmp_path, args=["--mode", "sync", "--pause-after", "3"],
              env={"DISTTORCH_PS_HEARTBEAT_TIMEOUT": "1.5"})
    try:
        rank1 = next(p for p in job.procs if p.name == "rank1")
        rank1.wait(timeout=60)  # it kills itself after 2 steps
        _poll(lambda: "declared dead" in (tmp_path / "scheduler.log").read_text(), 30, "rank 1 declared dead")
        job._start("rank1-restarted", [sys.executable, os.path.join(HERE, "ps_fault_worker.py"), "--out",
                                       str(tmp_path), "--mode", "sync", "--restarted"],
                   DISTTORCH_PS_ROLE="worker", RANK="1", LOCAL_RANK="1", WORLD_SIZE="2")
        _poll(lambda: (tmp_path / "joined").exists(), 60, "rank 1 to rejoin")
        (tmp_path / "go").touch()
    except BaseException:
        job.kill()
        raise
    codes = job.finish(timeout=90)
    logs = job.logs()
    assert codes["rank1"] == -9, f"{codes}\n{logs}"
    assert all(codes[n] == 0 for n in ("scheduler", "server0", "server1", "rank0", "rank1-restarted")), \
        f"{codes}\n{logs}"
    res = job.results()
    for r in (0, 1):
        assert "error" not in res[r], res[r]["error"]
        assert res[r]["clock"] == 5
    assert res[1]["start_clock"] == 3  # it went on at the job's step, not from 0
    assert res[0]["final"] == res[1]["final"]  # and both end on the servers' parameters
    diff = max(float(np.max(np.abs(np.array(a) - np.array(b))))
               for a, b in zip(res[0]["final"], res[0]["ref_final"]))
    assert diff < 1e-10
    assert "rank 1 rejoined" in (tmp_path / "scheduler.log").read_text()
