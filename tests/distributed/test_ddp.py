"""DistributedDataParallel and SyncBatchNorm on real 2-process jobs (zmq backend; mpi when mpiexec works).

All scenarios of ddp_worker.py run in one job per backend (process start-up dominates); each test below
checks one scenario's recorded results. Every job has a hard timeout and is killed by pid.
"""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ddp_starter import mpiexec, scenario_results  # noqa: E402

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ddp_worker.py")
WORLD = 2


@pytest.fixture(scope="module", params=["zmq", pytest.param("mpi", marks=pytest.mark.mpi)])
def results(request, tmp_path_factory):
    if request.param == "mpi" and mpiexec() is None:
        pytest.skip("mpi4py or mpiexec is not installed (pip install 'disttorch[mpi]')")
    out = tmp_path_factory.mktemp(f"ddp_{request.param}")
    return scenario_results(WORKER, request.param, out, WORLD, timeout=150)


pytestmark = pytest.mark.timeout(200)


def test_parameters_bitwise_identical_after_every_step(results):
    d = [r["identical"]["digests"] for r in results]
    assert all(x == d[0] for x in d), "parameters differ between ranks"
    assert len(d[0]) == 5 and len(set(d[0])) == 5  # the parameters did change every step
    assert results[0]["identical"]["buckets"] > 1


def test_n_ranks_equal_one_process_with_n_times_the_batch(results):
    for r in results:
        assert r["identical"]["max_diff"] < 1e-5


def test_no_sync_accumulation(results):
    for r in results:
        assert r["no_sync"]["grad_diff"] < 1e-6
    assert len({r["no_sync"]["grad_digest"] for r in results}) == 1


def test_fp16_compress_hook(results):
    for r in results:
        assert r["fp16"]["grad_diff"] < 2e-3
        assert r["fp16"]["grad_dtype"] == "disttorch.float32"
        assert r["fp16"]["get_future_hook_diff"] < 1e-6
    assert len({r["fp16"]["grad_digest"] for r in results}) == 1


def test_join_uneven_inputs(results):
    assert len({r["join"]["digest"] for r in results}) == 1
    for r in results:
        assert r["join"]["max_diff"] < 1e-5


def test_unused_parameter_error_and_find_unused(results):
    for rank, r in enumerate(results):
        msg = r["unused"]["error"]
        assert "Expected to have finished reduction in the prior iteration" in msg
        assert f"did not receive grad for rank {rank}: 2 3" in msg and "b.weight, b.bias" in msg
    assert len({r["unused"]["digest"] for r in results}) == 1
    assert not any(r["unused"]["b_grad_none"] for r in results)  # rank 1's head b reached every rank


def test_sync_batchnorm_equals_batchnorm_on_concatenated_batch(results):
    for r in results:
        s = r["syncbn"]
        assert s["out_diff"] < 1e-12 and s["grad_diff"] < 1e-12 and s["stat_diff"] < 1e-12
        assert s["ddp_weight_grad_diff"] < 1e-10
