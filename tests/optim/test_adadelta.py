"""Adadelta against an independent float64 NumPy implementation of PyTorch's documented algorithm."""
from __future__ import annotations

import numpy as np
import pytest
from optim_helpers import close, data, make, options, paths_agree_bitwise, resume_is_bitwise, run

import disttorch
from disttorch.optim import Adadelta


def reference(params, grads_seq, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False):
    """torch.optim.Adadelta's documented algorithm, in float64."""
    params = [np.array(p, np.float64) for p in params]
    v = [np.zeros_like(p) for p in params]
    u = [np.zeros_like(p) for p in params]
    for grads in grads_seq:
        for i, g in enumerate(grads):
            if g is None:
                continue
            g = -g if maximize else g
            if weight_decay:
                g = g + weight_decay * params[i]
            v[i] = rho * v[i] + (1 - rho) * g * g
            dx = np.sqrt(u[i] + eps) / np.sqrt(v[i] + eps) * g
            u[i] = rho * u[i] + (1 - rho) * dx * dx
            params[i] = params[i] - lr * dx
    return params, v, u


OPTIONS = options(lr=[1.0, 0.5], rho=[0.9, 0.3], weight_decay=[0.0, 0.1], maximize=[False, True])


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_matches_reference(opts):
    params, grads = data()
    tensors = make(params)
    opt = Adadelta(tensors, eps=1e-3, **opts)
    run(opt, tensors, grads)
    expected, v, u = reference(params, grads, eps=1e-3, **opts)
    close(tensors, expected)
    for i, t in enumerate(tensors):
        st = opt.state[t]
        assert sorted(st) == ["acc_delta", "square_avg", "step"] and st["step"].item() == len(grads)
        close([st["square_avg"], st["acc_delta"]], [v[i], u[i]])


def test_float32_state_and_params_without_grad():
    params, grads = data(2)
    grads = [[g[0], None, g[2]] for g in grads]
    tensors = make(params, np.float32)
    opt = Adadelta(tensors, weight_decay=0.1)
    run(opt, tensors, grads, np.float32)
    assert tensors[1] not in opt.state
    assert opt.state[tensors[0]]["step"].dtype == disttorch.float32
    assert opt.state[tensors[0]]["acc_delta"].dtype == disttorch.float32
    close(tensors, reference(params, grads, weight_decay=0.1)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(weight_decay=0.1, maximize=True), dict(rho=0.5, lr=0.3)])
def test_state_dict_resume_is_bitwise(kwargs):
    resume_is_bitwise(Adadelta, kwargs)


@pytest.mark.parametrize("kwargs", [dict(weight_decay=0.1, maximize=True), dict(weight_decay=0.1), dict()])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_chunked_and_whole_array_paths_agree(monkeypatch, dtype, kwargs):
    paths_agree_bitwise(monkeypatch, Adadelta, dict(eps=1e-2, **kwargs), dtype)


def test_complex_params():
    rng = np.random.default_rng(9)
    p = rng.standard_normal(6) + 1j * rng.standard_normal(6)
    grads = [rng.standard_normal(6) + 1j * rng.standard_normal(6) for _ in range(3)]
    t = disttorch.tensor(p, requires_grad=True)
    run(Adadelta([t], eps=1e-3), [t], [[g] for g in grads])
    ref = reference([p.view(np.float64)], [[g.view(np.float64)] for g in grads], eps=1e-3)
    np.testing.assert_allclose(t.detach().numpy().view(np.float64), ref[0][0], rtol=1e-12)


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=-1), "Invalid learning rate: -1"),
    (dict(rho=1.5), "Invalid rho value: 1.5"),
    (dict(rho=-0.1), "Invalid rho value: -0.1"),
    (dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    (dict(weight_decay=-1), "Invalid weight_decay value: -1"),
])
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Adadelta([disttorch.zeros(2, requires_grad=True)], **kwargs)


def test_defaults():
    opt = Adadelta([disttorch.zeros(2, requires_grad=True)])
    assert opt.defaults == dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, maximize=False, capturable=False,
                                foreach=None, differentiable=False)
