"""The op/layer/optimizer parity suite on a real GPU: the same cases as the stand-in suite
(tests/gpu_standin/test_engine_on_standin.py) and, where PyTorch is installed, the PyTorch-parity cases
(tests/parity/test_torch_parity.py), each run on ``cuda`` (CuPy) and compared with the CPU result. The case lists
are read from those modules, not copied: a case added there runs here too.
"""
import importlib

import numpy as np
import pytest

import disttorch

pytestmark = pytest.mark.gpu

try:
    _standin = importlib.import_module("gpu_standin.test_engine_on_standin")
except ImportError as e:  # reported by the tests below (on a GPU), not as a collection error on every machine
    _standin, _STANDIN_ERROR = None, f"tests/gpu_standin/test_engine_on_standin.py does not import: {e}"
try:
    _TORCH_CASES = importlib.import_module("parity.test_torch_parity").CASES
except pytest.skip.Exception:  # the module skips itself without PyTorch
    _TORCH_CASES = {}
# Cases that build a CPU tensor inside the function: on CUDA that is a device-mixing error, as in PyTorch.
_HOST_TENSOR_CASES = {"index_select_masked"}


def _cases(test_name: str):
    """The parametrize values of one test of the stand-in module; if it is gone, one case that fails saying so."""
    test_fn = getattr(_standin, test_name, None)
    for mark in getattr(test_fn, "pytestmark", []):
        if mark.name == "parametrize":
            return mark.args[1]
    why = _STANDIN_ERROR if _standin is None else f"{test_name} has no parametrize mark: the stand-in suite changed"

    def missing(*args):
        raise AssertionError(f"{why}; update tests/gpu/test_parity_gpu.py")

    return [("<missing>", missing)]


def _both(fn, arrays, index=None, grad=True):
    """(output, input grads) of fn on CPU and on CUDA tensors made from the same float32 arrays."""
    res = []
    for dev in ("cpu", "cuda"):
        ts = [disttorch.tensor(a, device=dev, requires_grad=grad) for a in arrays]
        extra = [] if index is None else [disttorch.tensor(index, device=dev)]
        out = fn(*ts, *extra)
        assert out.device.type == dev, f"output on {out.device}, inputs on {dev}"
        if grad:
            (out * out).sum().backward()
        res.append((out.detach().cpu().numpy(), [None if t.grad is None else t.grad.cpu().numpy() for t in ts]))
    return res


def _assert_pair(res, name, rtol=1e-5, atol=1e-6):
    (cpu_out, cpu_grads), (gpu_out, gpu_grads) = res
    np.testing.assert_allclose(gpu_out, cpu_out, rtol=rtol, atol=atol, err_msg=name)
    for g, c in zip(gpu_grads, cpu_grads):
        assert (g is None) == (c is None), f"{name}: a gradient on one device only"
        if c is not None:
            np.testing.assert_allclose(g, c, rtol=rtol, atol=atol, err_msg=f"{name} (gradient)")


def _rand(*shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("name, fn", _cases("test_op_matches_cpu"))
def test_op_matches_cpu(cp, name, fn):
    _assert_pair(_both(fn, [_rand(4, 5, seed=1), _rand(4, 5, seed=2)], grad=False), name)


@pytest.mark.parametrize("name, fn", _cases("test_more_ops_match_cpu_with_grad"))
def test_more_ops_match_cpu_with_grad(cp, name, fn):
    _assert_pair(_both(fn, [_rand(4, 5, seed=9)], index=_standin._IDX), name)


@pytest.mark.parametrize("name, fn", _cases("test_conv_and_pooling_match_cpu_with_grad"))
def test_conv_and_pooling_match_cpu_with_grad(cp, name, fn):
    # cuDNN/cuBLAS sum in another order than NumPy: a looser bound than the element-wise ops
    _assert_pair(_both(fn, [_rand(2, 3, 6, 6, seed=3), _rand(4, 3, 3, 3, seed=4)]), name, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(_TORCH_CASES) or ["<no cases>"])
def test_torch_parity_case_matches_cpu(cp, name):
    if not _TORCH_CASES:
        pytest.skip("PyTorch is not installed: tests/parity/test_torch_parity.py (its case list) needs it to import")
    if name in _HOST_TENSOR_CASES:
        pytest.skip(f"{name} builds a CPU tensor inside the case: a device-mixing error on CUDA, as in PyTorch")
    fn, arrays = _TORCH_CASES[name]
    res = []
    for dev in ("cpu", "cuda"):
        ts = [disttorch.tensor(a, device=dev) if a.dtype.kind in "iu" else
              disttorch.tensor(a, device=dev, requires_grad=True) for a in arrays]
        out = fn(disttorch, *ts)
        out.sum().backward()
        res.append((out.detach().cpu().numpy(), [None if t.grad is None else t.grad.cpu().numpy() for t in ts]))
    _assert_pair(res, name)


def test_training_step_matches_cpu(cp):
    cpu_model, cpu_losses, _ = _standin._train("cpu")
    gpu_model, gpu_losses, _ = _standin._train("cuda")
    np.testing.assert_allclose([v.item() for v in gpu_losses], [v.item() for v in cpu_losses], rtol=1e-5)
    for p, q in zip(cpu_model.parameters(), gpu_model.parameters()):
        assert q.is_cuda
        np.testing.assert_allclose(q.detach().cpu().numpy(), p.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("opt_name, kwargs", [("AdamW", {"lr": 0.1, "weight_decay": 0.01}),
                                              ("Adam", {"lr": 0.1, "amsgrad": True}),
                                              ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
                                              ("RMSprop", {"lr": 0.01})])
def test_optimizer_steps_match_cpu(cp, opt_name, kwargs):
    out = []
    for dev in ("cpu", "cuda"):
        p = disttorch.nn.Parameter(disttorch.tensor([1.0, -2.0, 0.5], device=dev))
        opt = getattr(disttorch.optim, opt_name)([p], **kwargs)
        for _ in range(3):
            opt.zero_grad()
            (p * p * p).sum().backward()
            opt.step()
        out.append(p.detach().cpu().numpy())
    assert not np.allclose(out[0], [1.0, -2.0, 0.5]), "the optimizer did not move the parameter"
    np.testing.assert_allclose(out[1], out[0], rtol=1e-5, err_msg=opt_name)
