"""RAdam against an independent float64 NumPy implementation of PyTorch's documented algorithm."""
from __future__ import annotations

import numpy as np
import pytest
from optim_helpers import close, data, make, options, paths_agree_bitwise, resume_is_bitwise, run

import disttorch
from disttorch.optim import RAdam


def reference(params, grads_seq, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
              decoupled_weight_decay=False, maximize=False):
    """torch.optim.RAdam's documented algorithm, in float64."""
    b1, b2 = betas
    rho_inf = 2 / (1 - b2) - 1
    params = [np.array(p, np.float64) for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
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
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat = m[i] / (1 - b1 ** t)
            rho_t = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
            if rho_t > 5:
                adaptive = np.sqrt(1 - b2 ** t) / (np.sqrt(v[i]) + eps)
                r = np.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                params[i] = params[i] - lr * m_hat * r * adaptive
            else:
                params[i] = params[i] - lr * m_hat
    return params, m, v


# beta2 = 0.5 reaches rho_t > 5 only after a few steps; 0.999 later (both branches are covered over 8 steps)
OPTIONS = options(betas=[(0.9, 0.999), (0.3, 0.5)], weight_decay=[0.0, 0.1], decoupled_weight_decay=[False, True],
                  maximize=[False, True])


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_matches_reference(opts):
    params, grads = data(steps=8)
    tensors = make(params)
    opt = RAdam(tensors, lr=0.01, **opts)
    run(opt, tensors, grads)
    expected, m, v = reference(params, grads, 0.01, **opts)
    close(tensors, expected, rtol=1e-10)
    for i, t in enumerate(tensors):
        st = opt.state[t]
        assert sorted(st) == ["exp_avg", "exp_avg_sq", "step"] and st["step"].item() == 8
        close([st["exp_avg"], st["exp_avg_sq"]], [m[i], v[i]])


def test_rectified_branch_is_reached():
    # with beta2 = 0.9, rho_t = 19 - 2t 0.9^t / (1 - 0.9^t) exceeds 5 from t = 6 on
    params, grads = data(1, [(3,)], steps=8)
    expected_early = reference(params, grads[:5], 0.1, betas=(0.9, 0.9))[0]
    expected = reference(params, grads, 0.1, betas=(0.9, 0.9))[0]
    tensors = make(params)
    opt = RAdam(tensors, lr=0.1, betas=(0.9, 0.9))
    run(opt, tensors, grads[:5])
    close(tensors, expected_early)
    run(opt, tensors, grads[5:])
    close(tensors, expected)


def test_float32_params_without_grad():
    params, grads = data(2, steps=8)
    grads = [[g[0], None, g[2]] for g in grads]
    tensors = make(params, np.float32)
    opt = RAdam(tensors, lr=0.05, betas=(0.9, 0.5))
    run(opt, tensors, grads, np.float32)
    assert tensors[1] not in opt.state and opt.state[tensors[0]]["step"].dtype == disttorch.float32
    close(tensors, reference(params, grads, 0.05, betas=(0.9, 0.5))[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(weight_decay=0.1, decoupled_weight_decay=True, betas=(0.9, 0.5)),
                                    dict(maximize=True, weight_decay=0.1, betas=(0.5, 0.8))])
def test_state_dict_resume_is_bitwise(kwargs):
    resume_is_bitwise(RAdam, kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_chunked_and_whole_array_paths_agree(monkeypatch, dtype):
    paths_agree_bitwise(monkeypatch, RAdam, dict(lr=0.01, weight_decay=0.1, maximize=True, betas=(0.5, 0.5)), dtype)


def test_complex_params():
    rng = np.random.default_rng(9)
    p = rng.standard_normal(6) + 1j * rng.standard_normal(6)
    grads = [rng.standard_normal(6) + 1j * rng.standard_normal(6) for _ in range(8)]
    t = disttorch.tensor(p, requires_grad=True)
    run(RAdam([t], lr=0.1, betas=(0.9, 0.8)), [t], [[g] for g in grads])
    ref = reference([p.view(np.float64)], [[g.view(np.float64)] for g in grads], 0.1, betas=(0.9, 0.8))
    np.testing.assert_allclose(t.detach().numpy().view(np.float64), ref[0][0], rtol=1e-10)


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=-1), "Invalid learning rate: -1"),
    (dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    (dict(betas=(-0.1, 0.999)), "Invalid beta parameter at index 0: -0.1"),
    (dict(betas=(0.9, 1.5)), "Invalid beta parameter at index 1: 1.5"),
    (dict(weight_decay=-1), "Invalid weight_decay value: -1"),
])
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RAdam([disttorch.zeros(2, requires_grad=True)], **kwargs)


def test_defaults():
    opt = RAdam([disttorch.zeros(2, requires_grad=True)])
    assert opt.defaults == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, maximize=False, foreach=None,
                                capturable=False, decoupled_weight_decay=False, differentiable=False)
