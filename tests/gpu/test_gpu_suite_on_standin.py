"""The CUDA parity tests of this directory (test_parity_gpu.py), run on the stand-in device in `make test`.

A check of the test code itself (case lists read from the stand-in suite, helpers, device handling) on CPU-only
machines, so that a GPU run fails only where the GPU differs. Not marked ``gpu``: the stand-in needs no GPU.
"""
import importlib.util
import pathlib

import pytest

from disttorch.testing import _standin_cuda as S

_spec = importlib.util.spec_from_file_location("gpu_parity_suite", pathlib.Path(__file__).with_name("test_parity_gpu.py"))
par = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(par)

CASES = [(test, name, fn) for test in ("test_op_matches_cpu", "test_more_ops_match_cpu_with_grad",
                                       "test_conv_and_pooling_match_cpu_with_grad") for name, fn in par._cases(test)]


@pytest.fixture
def standin():
    S.enable()
    try:
        yield S.TRANSFERS
    finally:
        S.disable()


@pytest.mark.parametrize("test, name, fn", CASES, ids=[f"{t.removeprefix('test_')}-{n}" for t, n, _ in CASES])
def test_parity_case_on_standin(standin, test, name, fn):
    getattr(par, test)(None, name, fn)  # cp: unused by the body; the stand-in plays CUDA


def test_training_step_and_optimizers_on_standin(standin):
    par.test_training_step_matches_cpu(None)
    for opt_name, kwargs in _optimizer_cases():
        par.test_optimizer_steps_match_cpu(None, opt_name, kwargs)


def _optimizer_cases():
    for mark in par.test_optimizer_steps_match_cpu.pytestmark:
        if mark.name == "parametrize":
            return mark.args[1]
    raise LookupError("test_parity_gpu.test_optimizer_steps_match_cpu lost its parametrize mark")


def test_a_wrong_result_fails_on_standin(standin):
    # the comparison helper must catch a device result that differs from the CPU one
    with pytest.raises(AssertionError):
        par.test_op_matches_cpu(None, "wrong", lambda a, b: a + (1.0 if a.is_cuda else 0.0))
