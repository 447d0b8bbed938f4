"""The torch.distributed API over both CPU backends: one parametrised suite, real multi-process jobs.

Each (backend, world size) job runs tests/distributed/api_worker.py on every rank once (module-scoped
cache); the tests below each assert one group of the worker's checks on every rank. The 3-rank jobs also
run the fault scenarios: mismatched collectives, a stall warning naming the late rank with its stack, and
a timeout when a rank skips a collective. Single-process tests cover init_process_group's argument errors.
"""
from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import _procs  # noqa: E402

import disttorch as torch  # noqa: E402
import disttorch.distributed as dist  # noqa: E402
from disttorch.distributed import distributed_c10d as c10d  # noqa: E402

WORKER = str(Path(__file__).with_name("api_worker.py"))
BACKENDS = ["zmq", pytest.param("mpi", marks=pytest.mark.mpi)]
SIZES = [2, 3, 4]
ERRORS_SIZE = 3
CHECKS = {
    "collectives": ["all_reduce_every_dtype_and_op", "all_reduce_views_and_0d", "broadcast_from_every_rank",
                    "reduce_to_last_rank", "all_gather_variants", "reduce_scatter_variants", "gather_and_scatter",
                    "all_to_all_variants", "argument_errors"],
    "point_to_point": ["point_to_point"],
    "async_and_groups": ["async_ops", "subgroups"],
    "objects": ["objects"],
    "nn_functional": ["nn_functional"],
}
_jobs: dict = {}


def _job(backend: str, nproc: int, tmp_path_factory):
    key = (backend, nproc)
    if key not in _jobs:
        if backend == "mpi" and _procs.mpi_skip_reason():
            pytest.skip(_procs.mpi_skip_reason())
        errors = nproc == ERRORS_SIZE
        env = {"DISTTORCH_COLLECTIVE_TIMEOUT": "20", "DISTTORCH_STALL_WARNING": "1"}
        if backend == "mpi" and errors:
            # Collectives through the backend's thread, so that the 2 s timeout raises instead of aborting the job.
            env["DISTTORCH_MPI_INLINE"] = "0"
        if backend == "mpi" and nproc == 4:
            # No MASTER_ADDR: init_process_group bootstraps its store over MPI.
            env.update({"MASTER_ADDR": "", "MASTER_PORT": ""})
        out = tmp_path_factory.mktemp(f"api_{backend}_{nproc}")
        _jobs[key] = (_procs.run_job(WORKER, nproc, backend, out, args=["--errors"] if errors else [], env=env,
                                     timeout=120), errors)
    return _jobs[key]


def _assert_checks(backend, nproc, names, tmp_path_factory):
    job, errors = _job(backend, nproc, tmp_path_factory)
    res = job.results(nproc)
    assert not job.timed_out, f"the job did not finish in time:\n{job.logs}"
    assert sorted(res) == list(range(nproc)), f"ranks without results: {sorted(set(range(nproc)) - set(res))}\n" \
                                              f"{job.logs}"
    failures = [res[r]["results"].get(n, f"{n}: not run on rank {r}") for r in range(nproc) for n in names
                if res[r]["results"].get(n) != "ok"]
    assert not failures, "\n\n".join(failures)
    assert all(res[r]["backend"] == backend for r in range(nproc))
    # A timed-out MPI call cannot be cancelled, so the mpi backend ends that job with MPI_Abort (by design).
    if not (backend == "mpi" and errors):
        assert job.returncodes == [0] * len(job.returncodes), f"exit codes {job.returncodes}\n{job.logs}"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("nproc", SIZES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("group", list(CHECKS))
def test_api(group, backend, nproc, tmp_path_factory):
    _assert_checks(backend, nproc, CHECKS[group], tmp_path_factory)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("check", ["mismatched_collectives", "stall_check", "timeout_check"])
def test_faults(check, backend, tmp_path_factory):
    _assert_checks(backend, ERRORS_SIZE, [check], tmp_path_factory)


# ---------------------------------------------------------------------------------------------------------------
# in-process: argument errors and a one-rank world
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def clean_env(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"):
        monkeypatch.delenv(var, raising=False)
    yield monkeypatch
    if dist.is_initialized():
        dist.destroy_process_group()


@pytest.mark.parametrize("missing", ["RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"])
def test_env_init_names_the_missing_variable(clean_env, missing):
    env = {"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
    for k, v in env.items():
        if k != missing:
            clean_env.setenv(k, v)
    with pytest.raises(ValueError, match=f"environment variable {missing} expected, but not set"):
        dist.init_process_group("gloo")
    assert not dist.is_initialized()


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"backend": "bogus"}, ValueError, "Invalid backend"),
    ({"init_method": "file:///tmp/x", "rank": 0, "world_size": 1}, ValueError, "file://"),
    ({"init_method": "tcp://127.0.0.1:1", "world_size": 1}, ValueError, "rank parameter missing"),
    ({"init_method": "udp://x:1", "rank": 0, "world_size": 1}, ValueError, "No rendezvous handler"),
    ({"store": object(), "world_size": 1}, ValueError, "rank must be non-negative"),
    ({"store": object(), "rank": 0, "init_method": "env://", "world_size": 1}, ValueError, "both init_method and store"),
])
def test_init_argument_errors(clean_env, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        dist.init_process_group(**kwargs)


def test_nccl_without_gpu_is_a_clear_error(clean_env):
    if dist.is_nccl_available():
        pytest.skip("the nccl backend is available here")
    with pytest.raises(RuntimeError, match="NCCL"):
        dist.init_process_group("nccl", init_method="tcp://127.0.0.1:1", rank=0, world_size=1)


def test_backend_choice(clean_env):
    assert c10d._choose_backend(None) == "zmq"
    assert c10d._choose_backend("gloo") == "zmq" and c10d._choose_backend("GLOO") == "zmq"
    assert c10d._choose_backend("cpu:gloo,cuda:nccl") == "cpu:zmq,cuda:nccl"
    clean_env.setenv("OMPI_COMM_WORLD_RANK", "0")
    assert c10d._choose_backend(None) == ("mpi" if dist.is_mpi_available() else "zmq")
    assert dist.Backend("GLOO") == "gloo" and dist.Backend.NCCL == "nccl"


def test_uninitialized_queries(clean_env):
    assert dist.is_available() and not dist.is_initialized()
    assert dist.GroupMember.WORLD is None and dist.group.WORLD is None
    with pytest.raises(ValueError, match="has not been initialized"):
        dist.get_rank()
    with pytest.raises(ValueError, match="has not been initialized"):
        dist.all_reduce(torch.ones(1))


@pytest.mark.timeout(60)
def test_one_rank_world(clean_env):
    port = _procs.free_port()
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1,
                            timeout=timedelta(seconds=30))
    assert dist.is_initialized() and dist.get_rank() == 0 and dist.get_world_size() == 1
    assert dist.get_backend() == "zmq" and dist.GroupMember.WORLD is not None
    with pytest.raises(ValueError, match="trying to initialize the default process group twice!"):
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    t = torch.tensor([1.0, 2.0])
    v = t._version
    dist.all_reduce(t, op=dist.ReduceOp.AVG)
    assert t.tolist() == [1.0, 2.0] and t._version == v + 1
    # one rank: every reduction is the identity, done on the caller's thread (async handles complete at once)
    w = dist.all_reduce(t, async_op=True)
    assert w.is_completed() and w.wait() and t.tolist() == [1.0, 2.0] and t._version == v + 2
    i = torch.tensor([3, -4])
    for op in (dist.ReduceOp.SUM, dist.ReduceOp.MAX, dist.ReduceOp.MIN, dist.ReduceOp.PRODUCT):
        dist.all_reduce(i, op=op)
        assert i.tolist() == [3, -4], op
    objs = [None]
    dist.all_gather_object(objs, {1: (2, 3)})
    assert objs == [{1: (2, 3)}]
    sub = dist.new_group([0], timeout=timedelta(seconds=7))  # the backend's own deadlines follow the group's
    assert sub._timeout == 7.0 and sub._pg.timeout == 7.0 and dist.new_group([0])._pg.timeout == 30.0
    dist.destroy_process_group()
    assert not dist.is_initialized()
