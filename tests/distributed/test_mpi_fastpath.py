"""The mpi backend's per-call fast path (tests/distributed/mpi_fastpath_worker.py under ``mpiexec -n 2``).

One job runs every check: lazily created Work flags and callback lists (a second thread waiting while
the first runs the call, callbacks registered before and after completion, failures), the in-place
all-reduce on the caller's array, mismatch detection through ``dist.all_reduce`` with warm caches, and the
same-host shared-memory path of large all-reduces (results equal to MPI's, mismatches fail, no segment left).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import _procs  # noqa: E402

WORKER = str(Path(__file__).with_name("mpi_fastpath_worker.py"))
CHECKS = ["second_thread_waits_while_first_runs", "callbacks_before_and_after_completion",
          "failure_reaches_waiter_and_callbacks_and_frees_group", "in_place_on_the_callers_array",
          "digest_check_on_either_thread", "api_mismatch_caught_with_warm_caches",
          "api_check_runs_inside_the_collective", "new_group_timeout_reaches_the_backend",
          "api_mismatched_kinds_fail_before_data_moves",
          "failed_launch_drops_the_pending_check", "large_all_reduce_through_shared_memory",
          "shared_memory_mismatch_fails_instead_of_hanging"]

pytestmark = [pytest.mark.mpi, pytest.mark.skipif(_procs.mpi_skip_reason() is not None,
                                                  reason=str(_procs.mpi_skip_reason()))]


@pytest.mark.timeout(120)
def test_fast_path_checks(tmp_path):
    job = _procs.run_job(WORKER, 2, "mpi", tmp_path, env={"DISTTORCH_COLLECTIVE_TIMEOUT": "30"}, timeout=90)
    assert not job.timed_out, f"the job did not finish in time:\n{job.logs}"
    res = job.results(2)
    assert sorted(res) == [0, 1], job.logs
    failures = [f"rank {r} {name}: {res[r]['results'].get(name, 'not run')}" for r in (0, 1) for name in CHECKS
                if res[r]["results"].get(name) != "ok"]
    assert not failures, "\n\n".join(failures)
    assert job.returncodes == [0], f"exit codes {job.returncodes}\n{job.logs}"
    left = [p for p in os.listdir("/dev/shm") if p.startswith("disttorch-mpi-")] if os.path.isdir("/dev/shm") else []
    assert not left, f"shared-memory segments left behind: {left}"


@pytest.mark.timeout(120)
def test_singleton_leaves_no_shared_memory_file(tmp_path):
    """A process no MPI launcher started (an MPI singleton) initialises Open MPI with the loopback transport
    only: Open MPI 5's shared-memory transport would leave its 16 MiB backing file in /dev/shm at exit. The
    setting is for MPI's start-up alone (an mpiexec the program starts keeps every transport)."""
    import subprocess

    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm on this machine")
    code = ("import os, disttorch, disttorch.distributed as dist\n"
            "dist.init_process_group('mpi')\n"
            "from mpi4py import MPI\n"
            "print('OPENMPI' if 'Open MPI' in MPI.Get_library_version() else 'OTHER')\n"
            "t = disttorch.tensor([1.0, 2.0]); dist.all_reduce(t)\n"
            "print(t.tolist(), 'OMPI_MCA_btl' in os.environ)\n"
            "dist.destroy_process_group()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PMI_", "MASTER_"))
           and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    before = set(os.listdir("/dev/shm"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=90,
                         cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.split("\n")
    assert lines[1] == "[1.0, 2.0] False", out.stdout
    new = sorted(set(os.listdir("/dev/shm")) - before)
    if lines[0] == "OPENMPI":
        assert not [p for p in new if p.startswith("sm_segment")], f"left in /dev/shm: {new}"
