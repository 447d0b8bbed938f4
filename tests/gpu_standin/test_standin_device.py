"""The stand-in device itself: it refuses implicit host conversion and host/device mixing as CuPy does, counts
transfers, and is opt-in (enable/disable restore the CUDA probe; ``import disttorch`` does not load it)."""
import subprocess
import sys

import numpy as np
import pytest

import disttorch
from disttorch.testing._standin_cuda import StandinArray, standin


def test_implicit_conversion_and_mixing_are_refused():
    x = standin.asarray(np.arange(6.0).reshape(2, 3))
    assert not isinstance(x, np.ndarray)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
        np.asarray(x)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.array(x)
    with pytest.raises(TypeError, match="host NumPy array"):
        x + np.ones(3)
    with pytest.raises(TypeError, match="host NumPy array"):
        standin.concatenate([x, np.ones((1, 3))])
    with pytest.raises(TypeError, match="host NumPy array"):
        np.exp(x) * np.ones((2, 3))  # a NumPy ufunc dispatches to the device, the host operand is refused


def test_results_stay_on_the_device_and_match_numpy():
    h = np.arange(6.0).reshape(2, 3)
    x = standin.asarray(h)
    s = x.sum()
    assert isinstance(s, StandinArray) and s.ndim == 0  # CuPy reductions return 0-d device arrays
    np.testing.assert_allclose(standin.asnumpy(standin.exp(x) @ x.T), np.exp(h) @ h.T)
    np.testing.assert_allclose((np.maximum(x, 2.0) - 1).get(), np.maximum(h, 2.0) - 1)
    y = standin.zeros((2, 3))
    standin.add(y, x, out=y)
    y[0, 1] = 10.0
    np.testing.assert_array_equal(y.get(), h + np.array([[0, 9.0, 0], [0, 0, 0]]))
    assert x.device.id == 0 and disttorch.tensor([1.0]).device.type == "cpu"


def test_transfers_are_counted_with_their_caller(standin_cuda):
    x = standin.asarray([1.0, 2.0])  # one host-to-device copy
    assert (standin_cuda.to_device, standin_cuda.to_host) == (1, 0)
    float(x.sum())
    x.get()
    x.tolist()
    bool(x[0] > 0)
    assert (standin_cuda.to_device, standin_cuda.to_host) == (1, 4)
    assert "test_standin_device.py" in standin_cuda.summary()
    x[np.array([0])]  # a host index array is a hidden upload
    assert standin_cuda.to_device == 2


def test_enable_disable_restore_the_cuda_probe():
    from disttorch.testing import _standin_cuda as S

    before = disttorch.cuda.is_available()
    S.enable()
    try:
        assert disttorch.cuda.is_available() and disttorch.cuda.device_count() == 1
        assert disttorch.zeros(2, device="cuda").device == disttorch.device("cuda", 0)
    finally:
        S.disable()
    assert disttorch.cuda.is_available() == before and not S.enabled()


def test_import_disttorch_does_not_load_the_standin():
    code = "import sys, disttorch; print('disttorch.testing._standin_cuda' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
