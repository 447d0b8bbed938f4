"""The staging of device arrays through a CPU backend (disttorch.distributed._staging), in one process: a recording
backend stands in for zmq/mpi, so each test sees exactly what the backend was given and how many host<->device
copies the stand-in counted. The 2-process runs are in tests/distributed/test_device_staging.py."""
import numpy as np
import pytest

from disttorch.distributed import _staging as G
from disttorch.distributed import runner as R
from disttorch.distributed.process_group import ProcessGroup, ReduceOp, Work
from disttorch.testing._standin_cuda import StandinArray, standin


class _Recording(ProcessGroup):
    """Rank 0 of 2: all_reduce adds 10 (the other rank's contribution), all_gather fills rank r's slot with r,
    and records the class of every array it was given. ``fail`` makes the next call's Work fail."""

    def __init__(self):
        super().__init__(0, 2)
        self.seen, self.fail = [], False

    def _work(self):
        w = Work("recording")
        w._finish(RuntimeError("backend failed") if self.fail else None)
        return w

    def allreduce(self, arrays, op):
        self.seen += [a.__class__ for a in arrays]
        for a in arrays:
            a += 10
        return self._work()

    def allgather(self, outputs, array):
        self.seen += [array.__class__] + [o.__class__ for o in outputs]
        for r, o in enumerate(outputs):
            o[...] = array + r
        return self._work()


class _Group:  # what runner.backend_for reads of groups.ProcessGroup
    def __init__(self, pg, backend):
        self._pg, self._backend = pg, backend


def test_device_arrays_are_staged_with_one_copy_each_way(standin_cuda):
    pg = _Recording()
    g = _Group(pg, "zmq")
    a = standin.asarray(np.array([1.0, 2.0], np.float32))
    standin_cuda.reset()
    staged = R.backend_for(g, a)
    assert isinstance(staged, G.StagedGroup) and staged.size == 2
    staged.allreduce([a], ReduceOp.SUM).wait(5)
    assert pg.seen == [np.ndarray]  # the backend got a host buffer
    assert (standin_cuda.to_host, standin_cuda.to_device) == (1, 1), standin_cuda.summary()
    np.testing.assert_array_equal(a.get(), [11.0, 12.0])


def test_inputs_go_down_only_and_outputs_come_up_only(standin_cuda):
    pg = _Recording()
    x = standin.asarray(np.array([5, 6], np.int64))
    outs = [standin.zeros(2, np.int64) for _ in range(2)]
    standin_cuda.reset()
    R.backend_for(_Group(pg, "mpi"), x).allgather(outs, x).wait(5)
    assert (standin_cuda.to_host, standin_cuda.to_device) == (1, 2), standin_cuda.summary()
    assert [o.get().tolist() for o in outs] == [[5, 6], [6, 7]]


def test_cpu_arrays_take_the_backend_itself():
    pg = _Recording()
    assert R.backend_for(_Group(pg, "zmq"), np.zeros(2)) is pg
    assert R.backend_for(_Group(pg, "cpu:zmq,cuda:nccl"), np.zeros(2)) is pg  # the mixed group picks by device
    # a user's CPU tensor on a pure nccl group reaches the backend (which raises PyTorch's error) ...
    assert R.backend_for(_Group(pg, "nccl"), np.zeros(2)) is pg
    with G.host_tensors_on_device():  # ... unless object collectives / DDP's checks stage it through the device
        assert isinstance(R.backend_for(_Group(pg, "nccl"), np.zeros(2)), G.StagedGroup)


def test_host_buffers_are_reused_per_shape_and_returned_on_failure(standin_cuda):
    pg = _Recording()
    g = _Group(pg, "zmq")
    a = standin.asarray(np.zeros((3, 2), np.float64))
    R.backend_for(g, a).allreduce([a], ReduceOp.SUM).wait(5)
    before = G.POOL.allocated
    for _ in range(3):
        R.backend_for(g, a).allreduce([a], ReduceOp.SUM).wait(5)
    assert G.POOL.allocated == before
    pg.fail = True
    with pytest.raises(RuntimeError, match="backend failed"):
        R.backend_for(g, a).allreduce([a], ReduceOp.SUM).wait(5)
    np.testing.assert_array_equal(a.get(), np.full((3, 2), 40.0))  # the failed call's result is not copied back
    pg.fail = False
    R.backend_for(g, a).allreduce([a], ReduceOp.SUM).wait(5)
    assert G.POOL.allocated == before  # the failed call gave its buffer back
    b = standin.asarray(np.zeros(7, np.float64))  # a new shape: a new buffer
    R.backend_for(g, b).allreduce([b], ReduceOp.SUM).wait(5)
    assert G.POOL.allocated == before + 1


def test_two_in_flight_collectives_of_one_shape_get_different_buffers():
    bufs = [G.POOL.take((4,), np.dtype(np.float32)) for _ in range(2)]
    assert bufs[0] is not bufs[1]
    for b in bufs:
        G.POOL.give(b)


def test_cuda_aware_mpi_switch(monkeypatch):
    monkeypatch.setenv("DISTTORCH_MPI_CUDA_AWARE", "1")
    assert G.mpi_cuda_aware()
    monkeypatch.setenv("DISTTORCH_MPI_CUDA_AWARE", "0")
    assert not G.mpi_cuda_aware()
    # stand-in arrays are never passed to MPI directly: they are not CuPy arrays MPI could read
    monkeypatch.setenv("DISTTORCH_MPI_CUDA_AWARE", "1")
    a = StandinArray(np.zeros(2))
    assert isinstance(R.backend_for(_Group(_Recording(), "mpi"), a), G.StagedGroup)
