"""Adamax against an independent float64 NumPy implementation of PyTorch's documented algorithm."""
from __future__ import annotations

import numpy as np
import pytest
from optim_helpers import close, data, make, options, paths_agree_bitwise, resume_is_bitwise, run

import disttorch
from disttorch.optim import Adamax


def reference(params, grads_seq, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False):
    """torch.optim.Adamax's documented algorithm, in float64."""
    b1, b2 = betas
    params = [np.array(p, np.float64) for p in params]
    m = [np.zeros_like(p) for p in params]
    u = [np.zeros_like(p) for p in params]
    steps = [0] * len(params)
    for grads in grads_seq:
        for i, g in enumerate(grads):
            if g is None:
                continue
            steps[i] += 1
            g = -g if maximize else g
            if weight_decay:
                g = g + weight_decay * params[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            u[i] = np.maximum(b2 * u[i], np.abs(g) + eps)
            params[i] = params[i] - lr * m[i] / ((1 - b1 ** steps[i]) * u[i])
    return params, m, u


OPTIONS = options(betas=[(0.9, 0.999), (0.3, 0.5)], weight_decay=[0.0, 0.1], maximize=[False, True],
                  eps=[1e-8, 0.5])


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_matches_reference(opts):
    params, grads = data()
    tensors = make(params)
    opt = Adamax(tensors, lr=0.01, **opts)
    run(opt, tensors, grads)
    expected, m, u = reference(params, grads, 0.01, **opts)
    close(tensors, expected)
    for i, t in enumerate(tensors):
        st = opt.state[t]
        assert sorted(st) == ["exp_avg", "exp_inf", "step"]
        close([st["exp_avg"], st["exp_inf"]], [m[i], u[i]])


def test_float32_state_and_params_without_grad():
    params, grads = data(2)
    grads = [[g[0], None, g[2]] for g in grads]
    tensors = make(params, np.float32)
    opt = Adamax(tensors, lr=0.05)
    run(opt, tensors, grads, np.float32)
    assert tensors[1] not in opt.state
    st = opt.state[tensors[0]]
    assert st["step"].dtype == disttorch.float32 and st["step"].item() == 4 and st["exp_inf"].dtype == disttorch.float32
    close(tensors, reference(params, grads, 0.05)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(weight_decay=0.1, maximize=True), dict(betas=(0.5, 0.9), lr=0.1)])
def test_state_dict_resume_is_bitwise(kwargs):
    resume_is_bitwise(Adamax, kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_chunked_and_whole_array_paths_agree(monkeypatch, dtype):
    paths_agree_bitwise(monkeypatch, Adamax, dict(lr=0.01, weight_decay=0.1, maximize=True), dtype)


def test_complex_params():
    rng = np.random.default_rng(9)
    p = rng.standard_normal(6) + 1j * rng.standard_normal(6)
    grads = [rng.standard_normal(6) + 1j * rng.standard_normal(6) for _ in range(3)]
    t = disttorch.tensor(p, requires_grad=True)
    run(Adamax([t], lr=0.1), [t], [[g] for g in grads])
    ref = reference([p.view(np.float64)], [[g.view(np.float64)] for g in grads], 0.1)
    np.testing.assert_allclose(t.detach().numpy().view(np.float64), ref[0][0], rtol=1e-12)


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=-1), "Invalid learning rate: -1"),
    (dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    (dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (dict(weight_decay=-1), "Invalid weight_decay value: -1"),
])
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Adamax([disttorch.zeros(2, requires_grad=True)], **kwargs)


def test_defaults():
    opt = Adamax([disttorch.zeros(2, requires_grad=True)])
    assert opt.defaults == dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None,
                                maximize=False, differentiable=False, capturable=False)
