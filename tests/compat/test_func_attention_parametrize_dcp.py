"""Compatibility programs for torch.func, torch.nn.attention, nn.utils.parametrizations and torch.distributed.checkpoint.

Each program (tests/compat/progs/func_*.py, attention_*.py, parametrize_*.py, dcp_*.py) is written as a
PyTorch script with ``import disttorch as torch``; it runs in a subprocess and the JSON it prints is
checked here against expectations computed independently with NumPy (closed forms).
"""
import re

import numpy as np
from compat_support import run_program



def test_per_sample_gradients_ensembles_and_hessians():
    out = run_program("func_per_sample_grads.py")
    assert out["grad_shapes"] == {"conv1.weight": [8, 4, 1, 3, 3], "conv1.bias": [8, 4], "fc1.weight": [8, 10, 36],
                                  "fc1.bias": [8, 10]}
    assert out["max_diff"] < 1e-6
    lin = out["lin"]
    w, b, x, y = np.array(lin["w"]), np.array(lin["b"]), np.array(lin["x"]), np.array(lin["y"])
    r = x @ w[0] + b[0] - y  # d/dw (w.x + b - y)^2 = 2 r x
    np.testing.assert_allclose(np.array(lin["gw"])[:, 0], 2 * r[:, None] * x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.array(lin["gb"])[:, 0], 2 * r, rtol=1e-5, atol=1e-6)
    assert out["ens_shape"] == [4, 5, 2] and out["ens_diff"] < 1e-6
    x0 = np.array([1.0, -1.0])
    np.testing.assert_allclose(out["hessian"], np.array([[2.0, 1.0], [1.0, 3.0]]) - np.diag(np.sin(x0)), rtol=1e-6)
    np.testing.assert_allclose(out["jac"], np.diag(1 - np.tanh(x0) ** 2), rtol=1e-6)


def test_causal_attention_under_sdpa_kernel():
    out = run_program("attention_sdpa_kernel.py")
    assert out["same"] == 0.0
    assert out["flex_diff"] < 1e-5 and out["capped_shape"] == [2, 4, 6, 8]
    assert out["last_loss"] < 0.5 * out["first_loss"]
    q, k, v = (np.array(out[n])[0, 0] for n in "qkv")
    s = q @ k.T * out["scale"]
    s = np.where(np.tril(np.ones((2, 5), bool), 3), s, -np.inf)  # lower-right: query i sees keys <= i + 3
    p = np.exp(s - s.max(-1, keepdims=True))
    np.testing.assert_allclose(np.array(out["dec"])[0, 0], (p / p.sum(-1, keepdims=True)) @ v, rtol=1e-5, atol=1e-6)
    assert out["refused"] == "No available kernel.  Aborting execution."


def test_weight_norm_spectral_norm_and_orthogonal_in_training():
    out = run_program("parametrize_weight_norm.py")
    assert out["keys"] == ["bias", "parametrizations.weight.original0", "parametrizations.weight.original1"]
    assert out["cls"] == "ParametrizedConv1d" and out["base"] == "Conv1d"
    w = np.array(out["w"])
    np.testing.assert_allclose(np.sqrt((w ** 2).sum(axis=(1, 2))), np.abs(out["g"]), rtol=1e-5)  # ||w_o|| = |g_o|
    assert out["last_loss"] < 0.2 * out["first_loss"]
    assert out["disc_keys"] == ["bias", "parametrizations.weight.0._u", "parametrizations.weight.0._v",
                                "parametrizations.weight.original"]
    assert abs(out["sigma"] - 1.0) < 0.05
    w_hh = np.array(out["w_hh"])
    np.testing.assert_allclose(w_hh @ w_hh.T, np.eye(6), atol=1e-5)
    assert out["orig_grad"] is True


def test_dcp_checkpoint_and_resume_in_a_training_loop():
    out = run_program("dcp_training_loop.py")
    assert out["files"][0] == ".metadata" and len(out["files"]) == 2
    assert re.fullmatch(r"__0_[0-9a-f]+\.distcp", out["files"][1])
    assert out["resumed_from"] == 10
    assert out["max_param_diff"] == 0.0
