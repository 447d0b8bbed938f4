"""The backend registry: nccl without CuPy fails at use with PyTorch's wording and what is missing, not with an
import error."""
import pytest

import disttorch.distributed as dist
from disttorch.distributed import process_group as PG


@pytest.fixture
def no_rendezvous_env(monkeypatch):
    for k in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK",
              "PMIX_RANK"):
        monkeypatch.delenv(k, raising=False)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_nccl_without_cupy_is_not_an_import_error(no_rendezvous_env):
    if dist.is_nccl_available():
        pytest.skip("this installation has the nccl backend")
    with pytest.raises(RuntimeError) as info:
        dist.init_process_group("nccl", init_method="tcp://127.0.0.1:1", rank=0, world_size=1)
    msg = str(info.value)
    assert msg.startswith("Distributed package doesn't have NCCL built in")  # PyTorch's wording
    assert "needs CuPy" in msg and "backend='zmq'" in msg
    assert not isinstance(info.value, ImportError) and info.value.__cause__ is None
    assert not dist.is_initialized()


def test_registry_names_and_unknown_backend():
    assert set(PG.BACKENDS) == {"mpi", "zmq", "nccl"}
    with pytest.raises(ValueError, match="Invalid backend: 'ucc'"):
        PG.backend_class("ucc")
    assert PG.backend_class("zmq").__name__ == "ZMQProcessGroup"
