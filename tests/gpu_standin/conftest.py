"""The stand-in CUDA device (disttorch.testing._standin_cuda) as a fixture: opt-in, undone after each test."""
import pytest


@pytest.fixture
def standin_cuda():
    """Registers the NumPy-backed stand-in as ``cuda`` for one test; yields the transfer counters."""
    from disttorch.testing import _standin_cuda as S

    S.enable()
    try:
        yield S.TRANSFERS
    finally:
        S.disable()
