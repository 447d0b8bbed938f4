"""The first-use self-check of the fused kernels (ops/_kernel_check.py), driven on the stand-in device with a
launcher standing in for CuPy's: a right kernel is verified once, a wrong one is caught, its output corrected from
the emulator, the fast path turned off with a warning naming the entry point."""
import numpy as np
import pytest

from disttorch.kernels import launch as L
from disttorch.ops import _fused, _kernel_check
from disttorch.testing import _kernel_emulator as EMU


@pytest.fixture
def check(standin_cuda):
    _kernel_check.reset()
    yield standin_cuda
    _kernel_check.reset()


def _softmax_ref(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _plan(xp, rng, n=5):
    x = xp.asarray(rng.standard_normal((3, n)).astype(np.float32))
    out = xp.empty((3, n), dtype=np.float32)
    return x, out, L.softmax_plan(x, out)


def test_a_right_kernel_is_checked_once(check):
    xp = _fused_xp()
    calls = []

    def good(plan, device_id=None):
        calls.append(plan.name)
        EMU.emulate(plan, [a._a if hasattr(a, "_a") else a for a in plan.args])

    run = _kernel_check.checked(good, xp)
    rng = np.random.default_rng(0)
    x, out, plan = _plan(xp, rng)
    check.reset()
    run(plan)
    assert check.to_host >= 2  # the check copied the arguments to the host (first use only)
    np.testing.assert_allclose(out.get(), _softmax_ref(x.get()), rtol=1e-6)
    x, out, plan = _plan(xp, rng)
    check.reset()
    run(plan)
    assert check.total == 0 and calls == [plan.name, plan.name]  # verified: no second check
    assert _kernel_check.disabled_reason() is None


def test_a_wrong_kernel_is_caught_corrected_and_turns_the_fast_path_off(check):
    xp = _fused_xp()

    def wrong(plan, device_id=None):
        a = [v._a if hasattr(v, "_a") else v for v in plan.args]
        EMU.emulate(plan, a)
        a[1][0, 0] += 0.5  # one wrong element

    run = _kernel_check.checked(wrong, xp)
    x, out, plan = _plan(xp, np.random.default_rng(1))
    with pytest.warns(RuntimeWarning, match=r"softmax_forward_f32 disagrees .*argument 1 \(float32\): 1 of 15"):
        run(plan)
    np.testing.assert_allclose(out.get(), _softmax_ref(x.get()), rtol=1e-6)  # the emulator's result was kept
    assert "softmax_forward_f32" in _kernel_check.disabled_reason()
    assert _fused.launcher(xp, x) is None  # off for the rest of the process


def test_large_launches_and_multi_tensor_kernels_are_not_checked(check, monkeypatch):
    xp = _fused_xp()
    ran = []
    run = _kernel_check.checked(lambda plan, device_id=None: ran.append(plan.name), xp)
    monkeypatch.setattr(_kernel_check, "CHECK_BYTES", 64)
    x, out, plan = _plan(xp, np.random.default_rng(2), n=50)
    check.reset()
    run(plan)
    assert check.total == 0 and ran == [plan.name]
    monkeypatch.setenv("DISTTORCH_KERNELS_SELF_CHECK", "0")
    monkeypatch.setattr(_kernel_check, "CHECK_BYTES", 1 << 30)
    run(plan)
    assert check.total == 0


def _fused_xp():
    from disttorch import cuda

    return cuda._cupy_module
