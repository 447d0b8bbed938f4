"""disttorch.cuda.manual_seed / manual_seed_all: lazy as PyTorch's (applied to CuPy's generators when CUDA
initialises, dropped on a machine without CUDA). A stand-in ``cupy`` module records what reaches it."""
import sys
import types

import pytest

import disttorch
import disttorch.cuda as cuda


class _FakeCupy(types.ModuleType):
    """Just what disttorch.cuda touches: runtime device count/current device, Device(i) as context, random.seed."""

    def __init__(self, n_devices: int) -> None:
        super().__init__("cupy")
        self.seeds = []  # (device index, seed)
        self.current = 0
        fake = self

        class Device:
            def __init__(self, i=None):
                self.i = fake.current if i is None else i

            def __enter__(self):
                self.prev, fake.current = fake.current, self.i
                return self

            def __exit__(self, *exc):
                fake.current = self.prev

        runtime = types.SimpleNamespace(getDeviceCount=lambda: n_devices, getDevice=lambda: fake.current)
        self.cuda = types.SimpleNamespace(runtime=runtime, Device=Device)
        self.random = types.SimpleNamespace(seed=lambda s: fake.seeds.append((fake.current, s)))


@pytest.fixture
def fresh_cuda(monkeypatch):
    """disttorch.cuda as in a new process (CUDA not probed yet), with ``cupy`` replaced by the stand-in."""
    monkeypatch.setattr(cuda, "_probed", False)
    monkeypatch.setattr(cuda, "_cupy_module", None)
    monkeypatch.setattr(cuda, "_QUEUED", [])

    def install(n_devices: int):
        fake = _FakeCupy(n_devices)
        monkeypatch.setitem(sys.modules, "cupy", fake)
        return fake

    return install


def test_manual_seed_waits_for_cuda_then_seeds_current_device(fresh_cuda):
    fake = fresh_cuda(2)
    cuda.manual_seed(1234)
    assert fake.seeds == [] and not cuda.is_initialized()  # lazy: CUDA is not started by seeding
    fake.current = 1
    assert cuda.is_available()  # the first CUDA use initialises it and applies the seed
    assert fake.seeds == [(1, 1234)]
    cuda.manual_seed(-1)  # once initialised the seed applies at once; negative seeds wrap as in PyTorch
    assert fake.seeds[-1] == (1, 2**64 - 1)


def test_manual_seed_all_seeds_every_device(fresh_cuda):
    fake = fresh_cuda(3)
    cuda.manual_seed_all(7)
    assert fake.seeds == []
    cuda.device_count()
    assert fake.seeds == [(0, 7), (1, 7), (2, 7)]
    assert fake.current == 0  # the current device is restored


def test_disttorch_manual_seed_reaches_the_gpus(fresh_cuda):
    fake = fresh_cuda(1)
    disttorch.manual_seed(5)
    cuda.is_available()
    assert fake.seeds == [(0, 5)]
    assert disttorch.initial_seed() == 5


def test_no_op_without_cuda(fresh_cuda):
    fake = fresh_cuda(0)  # cupy importable but no GPU visible
    cuda.manual_seed(3)
    cuda.manual_seed_all(3)
    assert not cuda.is_available() and not cuda.is_initialized()
    assert fake.seeds == [] and cuda._QUEUED == []
    cuda.manual_seed(4)  # after the probe: still nothing, and nothing queued
    assert fake.seeds == [] and cuda._QUEUED == []
