"""NAdam against an independent float64 NumPy implementation of PyTorch's documented algorithm."""
from __future__ import annotations

import numpy as np
import pytest
from optim_helpers import close, data, make, options, paths_agree_bitwise, resume_is_bitwise, run

import disttorch
from disttorch.optim import NAdam


def reference(params, grads_seq, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
              decoupled_weight_decay=False, maximize=False):
    """torch.optim.NAdam's documented algorithm, in float64.

    The running product of the mu_t is kept in float32, as PyTorch's ``mu_product`` state tensor is.
    """
    b1, b2 = betas
    params = [np.array(p, np.float64) for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    mu_prod = [np.float32(1.0)] * len(params)
    steps = [0] * len(params)
    for grads in grads_seq:
        for i, g in enumerate(grads):
            if g is None:
                continue
            steps[i] += 1
            t = steps[i]
            g = -g if maximize else g
            if weight_decay and decoupled_weight_decay:
                params[i] = params[i] - lr * weight_decay * params[i]
            elif weight_decay:
                g = g + weight_decay * params[i]
            mu = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
            mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
            mu_prod[i] = mu_prod[i] * np.float32(mu)
            prod_t = float(mu_prod[i])
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat = mu_next * m[i] / (1 - prod_t * mu_next) + (1 - mu) * g / (1 - prod_t)
            v_hat = v[i] / (1 - b2 ** t)
            params[i] = params[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return params, m, v, mu_prod


OPTIONS = options(betas=[(0.9, 0.999), (0.3, 0.5)], weight_decay=[0.0, 0.1], decoupled_weight_decay=[False, True],
                  momentum_decay=[4e-3, 0.5], maximize=[False, True])


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_matches_reference(opts):
    params, grads = data()
    tensors = make(params)
    opt = NAdam(tensors, lr=0.01, **opts)
    run(opt, tensors, grads)
    expected, m, v, mu_prod = reference(params, grads, 0.01, **opts)
    close(tensors, expected, rtol=1e-10)
    for i, t in enumerate(tensors):
        st = opt.state[t]
        assert sorted(st) == ["exp_avg", "exp_avg_sq", "mu_product", "step"]
        assert st["mu_product"].dtype == disttorch.float32 and st["mu_product"].item() == mu_prod[i]
        close([st["exp_avg"], st["exp_avg_sq"]], [m[i], v[i]])


def test_float32_params_without_grad():
    params, grads = data(2)
    grads = [[g[0], None, g[2]] for g in grads]
    tensors = make(params, np.float32)
    opt = NAdam(tensors, lr=0.05)
    run(opt, tensors, grads, np.float32)
    assert tensors[1] not in opt.state and opt.state[tensors[0]]["step"].item() == 4
    close(tensors, reference(params, grads, 0.05)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(weight_decay=0.1, decoupled_weight_decay=True),
                                    dict(maximize=True, momentum_decay=0.1, weight_decay=0.1)])
def test_state_dict_resume_is_bitwise(kwargs):
    resume_is_bitwise(NAdam, kwargs)


def test_load_accepts_python_number_scalars():
    params, grads = data(3)
    tensors = make(params)
    opt = NAdam(tensors)
    run(opt, tensors, grads[:2])
    sd = opt.state_dict()
    for st in sd["state"].values():
        st["step"], st["mu_product"] = float(st["step"]), float(st["mu_product"])
    opt2 = NAdam(make(params))
    opt2.load_state_dict(sd)
    st = next(iter(opt2.state.values()))
    assert isinstance(st["mu_product"], disttorch.Tensor) and st["mu_product"].dtype == disttorch.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_chunked_and_whole_array_paths_agree(monkeypatch, dtype):
    paths_agree_bitwise(monkeypatch, NAdam, dict(lr=0.01, weight_decay=0.1, maximize=True), dtype)


def test_complex_params():
    rng = np.random.default_rng(9)
    p = rng.standard_normal(6) + 1j * rng.standard_normal(6)
    grads = [rng.standard_normal(6) + 1j * rng.standard_normal(6) for _ in range(3)]
    t = disttorch.tensor(p, requires_grad=True)
    run(NAdam([t], lr=0.1), [t], [[g] for g in grads])
    ref = reference([p.view(np.float64)], [[g.view(np.float64)] for g in grads], 0.1)
    np.testing.assert_allclose(t.detach().numpy().view(np.float64), ref[0][0], rtol=1e-10)


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=-1), "Invalid learning rate: -1"),
    (dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    (dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (dict(betas=(0.9, 1.0)), "Invalid beta parameter at index 1: 1.0"),
    (dict(weight_decay=-1), "Invalid weight_decay value: -1"),
    (dict(momentum_decay=-1), "Invalid momentum_decay value: -1"),
])
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NAdam([disttorch.zeros(2, requires_grad=True)], **kwargs)


def test_defaults():
    opt = NAdam([disttorch.zeros(2, requires_grad=True)])
    assert opt.defaults == dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                                decoupled_weight_decay=False, maximize=False, foreach=None, capturable=False,
                                differentiable=False)
