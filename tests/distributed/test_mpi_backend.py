"""The mpi backend (MPIProcessGroup) under real ``mpiexec`` jobs of 2 and 3 ranks.

Each job runs tests/distributed/mpi_worker.py, which batches every check into one MPI start (~1-2 s each) and
prints ``R<rank> <check> ok|FAIL ...`` lines that are parsed here.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("mpi_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _mpiexec():
    beside = Path(sys.executable).with_name("mpiexec")
    return str(beside) if beside.exists() else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
pytestmark = [
    pytest.mark.mpi,
    pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None, reason="mpi4py is not installed (the mpi extra)"),
    pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec launcher found beside the interpreter or on PATH"),
]


def run_mpi(nranks: int, mode: str, timeout: float = 90.0) -> tuple:
    """Run the worker under ``mpiexec -n nranks``; return (returncode, stdout, stderr). Kills the whole job
    (mpiexec's process group) in any case."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "DISTTORCH_MPI_INLINE"):
        env.pop(var, None)
    cmd = [MPIEXEC, "-n", str(nranks), "--oversubscribe", sys.executable, str(WORKER), mode]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # start_new_session: the pgid is mpiexec's pid
            except ProcessLookupError:
                pass
            proc.communicate()


def parse(out: str, nranks: int) -> dict:
    """{rank: {check: status line}} from the worker's output, with each rank's DONE count checked."""
    results = {r: {} for r in range(nranks)}
    done = {}
    for line in out.splitlines():
        m = re.match(r"R(\d+) (\S+) (.*)$", line)
        if not m:
            continue
        rank, name, rest = int(m.group(1)), m.group(2), m.group(3)
        if name == "DONE":
            done[rank] = int(rest)
        else:
            results[rank][name] = rest
    for r in range(nranks):
        assert r in done, f"rank {r} did not finish"
        assert len(results[r]) == done[r], f"rank {r}: {len(results[r])} result lines for {done[r]} checks"
    return results


@pytest.mark.timeout(120)
@pytest.mark.parametrize("nranks", [2, 3])
def test_all_methods(nranks):
    rc, out, err = run_mpi(nranks, "main")
    assert rc == 0, f"mpiexec exited with {rc}\n{out[-3000:]}\n{err[-3000:]}"
    results = parse(out, nranks)
    failures = [f"rank {r} {name}: {status}" for r in results for name, status in results[r].items()
                if not status.startswith("ok")]
    assert not failures, "\n".join(failures)
    names = set(results[0])
    assert all(set(results[r]) == names for r in results)
    # the batch covers every method, reduce op and dtype family
    for needed in ["allreduce_int64_BXOR", "allreduce_bool_BAND", "allreduce_float16_SUM", "allreduce_bfloat16_SUM",
                   "allreduce_float16_user_op", "world_broadcast", "world_reduce", "world_allgather",
                   "world_reduce_scatter", "world_gather", "world_scatter", "world_alltoall", "world_barrier",
                   "threaded_alltoall", "p2p_ring", "p2p_tags_any_source", "p2p_then", "world_async_overlap",
                   "threaded_async_out_of_order", "world_async_blocked_elsewhere", "verify_mismatch",
                   "subgroup_collectives", "subgroup_concurrent", "create_mismatch", "thread_multiple", "after_shutdown"]:
        assert needed in names, needed


@pytest.mark.timeout(120)
def test_timeout_raises_then_watchdog_aborts():
    # rank 0 waits on collectives rank 1 never calls: through the communication thread it gets a RuntimeError;
    # blocked on its own thread (fast path) the watchdog prints the error and aborts the whole MPI job
    rc, out, err = run_mpi(2, "timeout")
    assert rc != 0
    results = parse(out, 2)
    assert results[0]["timeout_raises"].startswith("ok"), results[0]
    assert "NOT ABORTED" not in out
    assert re.search(r"RuntimeError: MPI all_reduce\(SUM\) on rank 0 .*did not complete within 1 s: the other ranks "
                     r"did not join", err), err[-3000:]
