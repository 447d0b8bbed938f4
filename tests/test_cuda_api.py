"""disttorch.cuda without CUDA behaves as PyTorch 2.13's CPU build (values and exception types observed there),
and the error for a CUDA tensor says why CUDA is unavailable: no CuPy, no driver, or no device."""
import sys
import types
from collections import OrderedDict

import pytest

import disttorch
import disttorch.cuda as cuda


@pytest.fixture
def probe(monkeypatch):
    """disttorch.cuda as in a new process, with ``cupy`` replaced: None (not installed) or a stand-in module."""
    monkeypatch.setattr(cuda, "_probed", False)
    monkeypatch.setattr(cuda, "_cupy_module", None)
    monkeypatch.setattr(cuda, "_reason", None)
    monkeypatch.setattr(cuda, "_QUEUED", [])

    def install(cupy_module):
        monkeypatch.setitem(sys.modules, "cupy", cupy_module)

    return install


def _fake_cupy(get_count):
    mod = types.ModuleType("cupy")
    mod.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_count))
    return mod


class CUDARuntimeError(RuntimeError):
    pass


def _no_driver():
    raise CUDARuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime")


@pytest.mark.parametrize("cupy_module, words", [
    (None, ["CuPy is not installed", "install disttorch[cuda12x]"]),
    (_fake_cupy(_no_driver), ["CuPy is installed but the CUDA driver could not be used", "cudaErrorInsufficientDriver",
                              "NVIDIA driver"]),
    (_fake_cupy(lambda: 0), ["no CUDA device is visible", "CUDA_VISIBLE_DEVICES"]),
], ids=["no-cupy", "no-driver", "no-device"])
def test_cuda_tensor_error_names_the_reason(probe, cupy_module, words):
    probe(cupy_module)
    assert not cuda.is_available() and cuda.device_count() == 0
    for make in (lambda: disttorch.zeros(2, device="cuda"), lambda: disttorch.ones(2).to("cuda:1")):
        with pytest.raises(AssertionError) as info:  # PyTorch's CPU build raises AssertionError here
            make()
        assert isinstance(info.value, RuntimeError)
        msg = str(info.value)
        assert "CUDA is not available" in msg
        for w in words:
            assert w in msg
    with pytest.raises(AssertionError, match=words[0]):
        cuda.current_device()


@pytest.fixture
def no_cuda(probe):
    probe(None)


# (call, expected result) as PyTorch 2.13's CPU build answers
_VALUES = [
    (cuda.is_available, False), (cuda.device_count, 0), (cuda.is_initialized, False),
    (lambda: cuda.manual_seed(1), None), (lambda: cuda.manual_seed_all(1), None), (cuda.seed, None),
    (cuda.seed_all, None), (cuda.memory_allocated, 0), (cuda.max_memory_allocated, 0), (cuda.memory_reserved, 0),
    (cuda.max_memory_reserved, 0), (cuda.empty_cache, None), (cuda.memory_stats, OrderedDict()),
    (cuda.is_bf16_supported, False), (lambda: cuda.set_device(-1), None),
]


@pytest.mark.parametrize("i", range(len(_VALUES)))
def test_queries_answer_without_cuda(no_cuda, i):
    call, expected = _VALUES[i]
    got = call()
    assert got == expected and type(got) is type(expected)


# calls that PyTorch's CPU build refuses, with its exception type
_RAISES = [
    (cuda.init, AssertionError), (cuda.current_device, AssertionError), (cuda.get_device_name, AssertionError),
    (lambda: cuda.get_device_properties(0), AssertionError), (cuda.get_device_capability, AssertionError),
    (cuda.synchronize, AssertionError), (cuda.initial_seed, AssertionError), (cuda.current_stream, AssertionError),
    (cuda.default_stream, AssertionError), (cuda.Stream, RuntimeError), (cuda.Event, RuntimeError),
    (lambda: cuda.Event(enable_timing=True), RuntimeError), (lambda: cuda.device(0).__enter__(), RuntimeError),
    (lambda: cuda.set_device("cpu"), ValueError),
]


@pytest.mark.parametrize("i", range(len(_RAISES)))
def test_device_calls_raise_without_cuda(no_cuda, i):
    call, exc = _RAISES[i]
    with pytest.raises(exc) as info:
        call()
    if exc is not ValueError:
        assert "CUDA is not available: CuPy is not installed" in str(info.value)
    else:
        assert str(info.value) == "Expected a cuda device, but got: cpu"


def test_no_op_contexts_without_cuda(no_cuda):
    with cuda.stream(None) as s:
        assert s is None
    with cuda.device(-1), cuda.device(None):
        pass
    cuda.reset_peak_memory_stats()  # PyTorch's CPU build raises AttributeError from its C module: see differences
    assert cuda.max_memory_allocated() == 0


def test_pin_memory_as_the_cpu_build(no_cuda):
    t = disttorch.arange(3.0)
    assert t.is_pinned() is False
    with pytest.raises(RuntimeError, match=r"^Cannot access accelerator device when none is available\.$"):
        t.pin_memory()


def test_dataloader_pin_memory_warns_and_yields_the_batches(no_cuda):
    from disttorch.utils.data import DataLoader

    with pytest.warns(UserWarning, match="'pin_memory' argument is set as true but no accelerator is found"):
        batches = list(DataLoader([1, 2], pin_memory=True))
    assert [b.tolist() for b in batches] == [[1], [2]]
    assert not any(b.is_pinned() for b in batches)
