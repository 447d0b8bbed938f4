"""disttorch.accelerator on a machine without an accelerator: PyTorch 2.13's answers and error messages."""
from __future__ import annotations

import pytest

import disttorch as torch
from disttorch import accelerator as acc

NONE = "Cannot access accelerator device when none is available."

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without an accelerator")


def test_queries():
    assert acc.is_available() is False
    assert acc.current_accelerator() is None and acc.current_accelerator(check_available=True) is None
    assert acc.device_count() == 0
    device = acc.current_accelerator() if acc.is_available() else "cpu"  # the start-up idiom
    assert torch.ones(2).to(device).device == torch.device("cpu")


@pytest.mark.parametrize("call", [
    lambda: acc.current_device_index(), lambda: acc.set_device_index(0), lambda: acc.synchronize(),
    lambda: acc.synchronize(0), lambda: acc.current_stream(), lambda: acc.empty_cache(), lambda: acc.memory_stats(),
    lambda: acc.memory_allocated(), lambda: acc.max_memory_allocated(0), lambda: acc.memory_reserved(),
    lambda: acc.max_memory_reserved(), lambda: acc.reset_peak_memory_stats(),
    lambda: acc.reset_accumulated_memory_stats(), lambda: acc.get_memory_info(), lambda: acc.empty_host_cache(),
    lambda: acc.get_device_capability()])
def test_device_functions_raise_pytorchs_error(call):
    with pytest.raises(RuntimeError) as e:
        call()
    assert str(e.value) == NONE


def test_device_arguments():
    acc.set_device_index(-1)  # a negative index is a no-op, as in PyTorch
    for bad in ("cpu", "cuda:0", torch.device("cuda", 1)):
        with pytest.raises(RuntimeError, match="^Accelerator expected$"):
            acc.set_device_index(bad)
    with pytest.raises(RuntimeError, match="^Accelerator expected$"):
        acc.synchronize("cuda")
    with acc.device_index(None):  # no switching: works without an accelerator
        pass
    with pytest.raises(RuntimeError, match=NONE):
        with acc.device_index(0):
            pass


def test_deprecated_aliases_warn():
    with pytest.warns(FutureWarning, match="Use `current_device_index` instead."):
        with pytest.raises(RuntimeError, match=NONE):
            acc.current_device_idx()
    with pytest.warns(FutureWarning, match="Use `set_device_index` instead."):
        acc.set_device_idx(-1)


def test_tensor_device_kind_properties():
    t = torch.ones(2)
    for name in ("is_xpu", "is_mps", "is_meta", "is_quantized", "is_mkldnn", "is_vulkan", "is_ipu", "is_hpu",
                 "is_mtia", "is_maia", "is_xla", "is_nested", "is_sparse_csr", "is_cuda"):
        assert getattr(t, name) is False, name
    assert t.is_cpu is True
    assert t.is_conj() is False and t.is_neg() is False and t.is_distributed() is False
    assert t.is_signed() and not torch.ones(1, dtype=torch.uint8).is_signed()
    assert not torch.ones(1, dtype=torch.bool).is_signed()
    assert t.is_same_size(torch.zeros(2)) and not t.is_same_size(torch.zeros(3))


def test_default_backend_for_device():
    import disttorch.distributed as dist

    assert dist.get_default_backend_for_device("cuda") == "nccl"
    assert dist.get_default_backend_for_device(torch.device("cuda", 1)) == "nccl"
    assert dist.get_default_backend_for_device("cpu") in ("zmq", "mpi")
    with pytest.raises(ValueError, match="^Default backend not registered for device : meta$"):
        dist.get_default_backend_for_device("meta")


def test_default_cpu_backend_is_what_backend_none_picks(monkeypatch):
    import disttorch.distributed as dist
    from disttorch.distributed import distributed_c10d as c10d

    for var in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert dist.get_default_backend_for_device("cpu") == "zmq"
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "0")
    monkeypatch.setattr(c10d, "is_mpi_available", lambda: True)
    assert dist.get_default_backend_for_device("cpu") == "mpi"
