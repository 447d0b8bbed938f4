"""CUDA tensors on the CPU backends (staged through host memory) and CPU tensors on a pure nccl group (staged through
the device), in 2 real processes on the stand-in device (no GPU here), with DDP checked against single-process
full-batch gradients worked out with NumPy.

The stand-in counts every host<->device copy, so the staging's copies are checked exactly: an in-place collective
(all_reduce) makes 1 down + 1 up per tensor, an input goes down only, an output comes up only, a CPU tensor none.
What cannot be checked here: real CuPy copies into pinned memory, and CUDA-aware MPI (no GPU, no such MPI).
"""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import device_staging_worker as W  # noqa: E402
from _procs import free_port, mpi_skip_reason, run_job  # noqa: E402

WORKER = str(Path(__file__).with_name("device_staging_worker.py"))


def _reference():
    """The parameters after each full-batch SGD step and the gradients of each step, by hand in NumPy: the
    average of the two ranks' mean-squared-error gradients is the full batch's."""
    (w1, b1, w2, b2), data = W.make_problem()
    grads = []
    for x, t in data:
        h = np.tanh(x @ w1.T + b1)
        y = h @ w2.T + b2
        dy = 2.0 * (y - t) / y.size
        dz = (dy @ w2) * (1.0 - h * h)
        g = [dz.T @ x, dz.sum(0), dy.T @ h, dy.sum(0)]
        grads.append(g)
        w1, b1, w2, b2 = (p - W.LR * d for p, d in zip((w1, b1, w2, b2), g))
    return grads, [w1, b1, w2, b2]


def _check_ddp(run):
    grads, params = _reference()
    got_grads, got_params = run
    for step in range(W.STEPS):
        for got, want in zip(got_grads[step], grads[step]):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=f"step {step}")
    for got, want in zip(got_params, params):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def _check_cpu_backend_job(job):
    res = job.results(2)
    assert not job.timed_out and sorted(res) == [0, 1], job.logs
    for r in range(2):
        got = res[r]
        assert got["all_reduce"] == [3.0, 2.0] and got["all_reduce_avg"] == [1.5, 1.0]
        assert got["async_all_reduce"] == [12, 6] and got["broadcast"] == [1.0, 1.0, 1.0]
        assert got["all_gather"] == [[0, 0], [1, -1]] and got["all_reduce_strided"] == [[2.0, 6.0], [4.0, 8.0]]
        assert got["reduce_scatter_tensor"] == ([1.0, 3.0] if r == 0 else [5.0, 7.0])
        assert got["all_to_all_single"] == [float(r), 100.0 + r]
        assert got["cpu_all_reduce"] == [3.0]
        # copies as (device-to-host, host-to-device)
        assert got["all_reduce_copies"] == [1, 1] and got["async_copies"] == [1, 1]
        assert got["broadcast_copies"] == ([1, 0] if r == 1 else [0, 1])  # the source sends, the others receive
        assert got["all_gather_copies"] == [1, 2]  # the input down, each of the 2 outputs up
        assert got["cpu_all_reduce_copies"] == [0, 0]
        assert got["pool_allocations_for_3_repeats"] == 0  # the host buffer of that shape is reused
        _check_ddp(got["ddp_cuda"])
        _check_ddp(got["ddp_cpu"])
        # a whole DDP step on cuda copies only what its bucket all-reduces stage: 1 down and 1 up per bucket
        assert got["ddp_buckets"] >= 2 and got["ddp_step_copies"] == [got["ddp_buckets"]] * 2
    assert res[0]["send_copies"] == [1, 0] and res[1]["recv_copies"] == [0, 1] and res[1]["recv"] == [7.0, 8.0]


@pytest.mark.timeout(120)
def test_cuda_tensors_and_ddp_on_zmq(tmp_path):
    _check_cpu_backend_job(run_job(WORKER, 2, "zmq", tmp_path, args=["--backend", "zmq"], timeout=60))


@pytest.mark.mpi
@pytest.mark.timeout(120)
@pytest.mark.skipif(mpi_skip_reason() is not None, reason=str(mpi_skip_reason()))
def test_cuda_tensors_and_ddp_on_mpi(tmp_path):
    _check_cpu_backend_job(run_job(WORKER, 2, "mpi", tmp_path, args=["--backend", "mpi"],
                                   env={"DISTTORCH_MPI_CUDA_AWARE": "0"}, timeout=60))


@pytest.mark.timeout(120)
def test_cpu_tensors_objects_and_ddp_on_pure_nccl(tmp_path):
    job = run_job(WORKER, 2, "zmq", tmp_path, args=["--backend", "nccl", "--fake-port", str(free_port())],
                  timeout=60)
    res = job.results(2)
    assert not job.timed_out and sorted(res) == [0, 1], job.logs
    for r in range(2):
        got = res[r]
        assert got["backend"] == "nccl" and got["cpu_all_reduce"] == [3.0, 20.0]
        assert got["user_cpu_all_reduce"].startswith("error: all_reduce on the nccl backend needs CUDA tensors")
        # a CPU tensor costs the copies a CUDA one does (the fingerprint check) plus 1 up and 1 down
        assert [c - d for c, d in zip(got["cpu_all_reduce_copies"], got["cuda_all_reduce_copies"])] == [1, 1]
        assert got["objects"] == [{"rank": 0, "tag": ["x", 0]}, {"rank": 1, "tag": ["x", 1]}]
        assert got["broadcast_objects"] == [{"from": "rank0"}, 3]
        _check_ddp(got["ddp_cuda"])
