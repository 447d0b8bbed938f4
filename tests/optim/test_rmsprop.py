"""RMSprop against an independent float64 NumPy implementation of PyTorch's documented algorithm."""
from __future__ import annotations

import numpy as np
import pytest
from optim_helpers import close, data, make, options, paths_agree_bitwise, resume_is_bitwise, run

import disttorch
from disttorch.optim import RMSprop


def reference(params, grads_seq, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
              maximize=False):
    """torch.optim.RMSprop's documented algorithm, in float64."""
    params = [np.array(p, np.float64) for p in params]
    v = [np.zeros_like(p) for p in params]
    g_ave = [np.zeros_like(p) for p in params]
    b = [np.zeros_like(p) for p in params]
    for grads in grads_seq:
        for i, g in enumerate(grads):
            if g is None:
                continue
            g = -g if maximize else g
            if weight_decay:
                g = g + weight_decay * params[i]
            v[i] = alpha * v[i] + (1 - alpha) * g * g
            v_tilde = v[i]
            if centered:
                g_ave[i] = alpha * g_ave[i] + (1 - alpha) * g
                v_tilde = v_tilde - g_ave[i] ** 2
            if momentum > 0:
                b[i] = momentum * b[i] + g / (np.sqrt(v_tilde) + eps)
                params[i] = params[i] - lr * b[i]
            else:
                params[i] = params[i] - lr * g / (np.sqrt(v_tilde) + eps)
    return params, dict(square_avg=v, grad_avg=g_ave, momentum_buffer=b)


OPTIONS = options(alpha=[0.99, 0.3], weight_decay=[0.0, 0.1], momentum=[0.0, 0.9], centered=[False, True],
                  maximize=[False, True])


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_matches_reference(opts):
    params, grads = data()
    tensors = make(params)
    opt = RMSprop(tensors, lr=0.01, **opts)
    run(opt, tensors, grads)
    expected, st = reference(params, grads, 0.01, **opts)
    close(tensors, expected, rtol=1e-10)
    for i, t in enumerate(tensors):
        state = opt.state[t]
        keys = {"step", "square_avg"} | ({"momentum_buffer"} if opts["momentum"] else set()) | (
            {"grad_avg"} if opts["centered"] else set())
        assert set(state) == keys
        for k in keys - {"step"}:
            close([state[k]], [st[k][i]], rtol=1e-10)


def test_state_layout_and_params_without_grad():
    params, grads = data(2)
    grads = [[g[0], None, g[2] if k % 2 else None] for k, g in enumerate(grads)]
    tensors = make(params, np.float32)
    opt = RMSprop(tensors, momentum=0.5, centered=True)
    run(opt, tensors, grads, np.float32)
    assert tensors[1] not in opt.state
    step = opt.state[tensors[2]]["step"]
    assert step.dtype == disttorch.float32 and step.dim() == 0 and step.item() == 2.0
    assert opt.state[tensors[0]]["square_avg"].dtype == disttorch.float32
    close(tensors, reference(params, grads, momentum=0.5, centered=True)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(momentum=0.9, centered=True, weight_decay=0.1), dict(maximize=True)])
def test_state_dict_resume_is_bitwise(kwargs):
    opt = resume_is_bitwise(RMSprop, kwargs)
    assert opt.state_dict()["param_groups"][0]["momentum"] == kwargs.get("momentum", 0)


def test_momentum_switched_on_later():
    params, grads = data(3)
    tensors = make(params)
    opt = RMSprop(tensors, lr=0.05)
    run(opt, tensors, grads[:1])
    opt.param_groups[0]["momentum"] = 0.9
    run(opt, tensors, grads[1:])
    assert "momentum_buffer" in opt.state[tensors[0]]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_chunked_and_whole_array_paths_agree(monkeypatch, dtype):
    paths_agree_bitwise(monkeypatch, RMSprop, dict(momentum=0.9, centered=True, weight_decay=0.1, maximize=True),
                        dtype)


def test_complex_params_update_real_and_imaginary_parts_separately():
    rng = np.random.default_rng(9)
    p = rng.standard_normal(6) + 1j * rng.standard_normal(6)
    grads = [rng.standard_normal(6) + 1j * rng.standard_normal(6) for _ in range(3)]
    t = disttorch.tensor(p, requires_grad=True)
    run(RMSprop([t], lr=0.1, momentum=0.5, centered=True), [t], [[g] for g in grads])
    ref = reference([p.view(np.float64)], [[g.view(np.float64)] for g in grads], 0.1, momentum=0.5, centered=True)
    np.testing.assert_allclose(t.detach().numpy().view(np.float64), ref[0][0], rtol=1e-10)


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=-1), "Invalid learning rate: -1"),
    (dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (dict(momentum=-0.5), "Invalid momentum value: -0.5"),
    (dict(weight_decay=-1), "Invalid weight_decay value: -1"),
    (dict(alpha=-0.1), "Invalid alpha value: -0.1"),
])
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RMSprop([disttorch.zeros(2, requires_grad=True)], **kwargs)


def test_defaults():
    opt = RMSprop([disttorch.zeros(2, requires_grad=True)])
    assert opt.defaults == dict(lr=1e-2, momentum=0, alpha=0.99, eps=1e-8, centered=False, weight_decay=0,
                                capturable=False, foreach=None, maximize=False, differentiable=False)
    with pytest.raises(NotImplementedError, match="differentiable"):
        RMSprop([disttorch.zeros(2, requires_grad=True)], differentiable=True)
