"""Whole jobs in a fresh interpreter (mp_job.py): the 'spawn' and 'forkserver' start methods, mp.spawn's
error propagation, and no /dev/shm leak with the 'file_system' strategy when a holder is SIGKILLed.

Each job runs in its own session; ``finally`` kills that process group by its id.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(150)]
JOB = Path(__file__).with_name("mp_job.py")
ROOT = Path(__file__).resolve().parents[2]
N = 50  # mp_job.N


def _shm_names() -> set:
    return {n for n in os.listdir("/dev/shm") if n.startswith("disttorch_")}


def _run(scenarios: str, timeout: float = 120.0, after=None) -> dict:
    """Run mp_job.py with ``scenarios`` (comma-separated); scenario name -> its RESULT."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(JOB), scenarios], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, cwd=str(JOB.parent), start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        if after is not None:
            after()  # while the job's helper processes (resource tracker) may still be finishing
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(timeout=10)
    assert proc.returncode == 0, out
    results = {}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[len("RESULT "):])
            results[r["scenario"]] = r
    assert set(results) == set(scenarios.split(",")), out
    return results


@pytest.fixture(scope="module")
def spawned():
    """One job for the scenarios that start fresh interpreters (each child imports disttorch)."""
    before = _shm_names()
    results = _run("spawn,forkserver,spawn_error")
    results["shm_left"] = _shm_names() - before  # the default strategy never names anything in /dev/shm
    return results


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_locked_updates_from_spawned_children_are_shared(spawned, method):
    res = spawned[method]
    assert res["exitcodes"] == [0, 0]
    # Each child added 1.0 N times under the lock, to a tensor and (by SGD) to every parameter of a module
    # that crossed as a start argument: the parent sees both children's writes.
    assert res["t"] == [2.0 * N] * 4
    assert abs(res["max_delta"] - 2 * N) < 1e-3 and abs(res["min_delta"] - 2 * N) < 1e-3
    # In the children the received tensor and parameters were shared memory; what they sent back arrived.
    assert res["children"] == [[0, True, True, True, [0.0, 0.0], True], [1, True, True, True, [1.0, 1.0], True]]
    assert spawned["shm_left"] == set()


def test_spawn_forwards_the_child_traceback(spawned):
    res = spawned["spawn_error"]
    assert res["type"] == "ProcessRaisedException" and res["index"] == 1
    msg = res["msg"]
    assert msg.startswith("\n\n-- Process 1 terminated with the following error:\nTraceback (most recent call last):")
    assert 'in _raise\n    raise KeyError("missing key in rank 1")' in msg
    assert msg.rstrip().endswith("KeyError: 'missing key in rank 1'")


def test_file_system_segments_do_not_leak_when_a_holder_is_killed():
    before = _shm_names()
    left = {}

    def wait_for_cleanup():
        # The job's resource tracker removes what the killed child held once every process has exited.
        deadline = time.monotonic() + 30
        while _shm_names() - before and time.monotonic() < deadline:
            time.sleep(0.05)  # polling /dev/shm, with a deadline
        left["names"] = _shm_names() - before

    res = _run("fs_kill", after=wait_for_cleanup)["fs_kill"]
    assert res["exitcodes"] == [-9, 0]
    assert res["seen"] == [res["name"], res["name"]] and res["exists_while_running"]
    # Released by every holder (no kill): unlinked at once, not only at the end of the job.
    assert res["seen_u"] == res["uname"] and res["u_exitcode"] == 0
    assert res["u_exists_after_child"] and not res["u_exists_after_del"]
    assert left["names"] == set(), left
