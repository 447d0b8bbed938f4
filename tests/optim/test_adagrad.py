"""Adagrad against an independent float64 NumPy implementation of PyTorch's documented algorithm."""
from __future__ import annotations

import numpy as np
import pytest
from optim_helpers import close, data, make, options, paths_agree_bitwise, resume_is_bitwise, run

import disttorch
from disttorch.optim import Adagrad


def reference(params, grads_seq, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
              maximize=False):
    """torch.optim.Adagrad's documented algorithm, in float64."""
    params = [np.array(p, np.float64) for p in params]
    sums = [np.full_like(p, initial_accumulator_value) for p in params]
    steps = [0] * len(params)
    for grads in grads_seq:
        for i, g in enumerate(grads):
            if g is None:
                continue
            steps[i] += 1
            g = -g if maximize else g
            clr = lr / (1 + (steps[i] - 1) * lr_decay)
            if weight_decay:
                g = g + weight_decay * params[i]
            sums[i] = sums[i] + g * g
            params[i] = params[i] - clr * g / (np.sqrt(sums[i]) + eps)
    return params, sums


OPTIONS = options(lr_decay=[0.0, 0.3], weight_decay=[0.0, 0.1], initial_accumulator_value=[0.0, 0.5],
                  maximize=[False, True])


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_matches_reference(opts):
    params, grads = data()
    tensors = make(params)
    opt = Adagrad(tensors, lr=0.1, **opts)
    run(opt, tensors, grads)
    expected, sums = reference(params, grads, 0.1, **opts)
    close(tensors, expected)
    for t, s in zip(tensors, sums):
        assert sorted(opt.state[t]) == ["step", "sum"]
        close([opt.state[t]["sum"]], [s])


def test_state_is_made_by_the_constructor():
    tensors = make(data()[0], np.float32)
    opt = Adagrad(tensors, initial_accumulator_value=0.25)
    st = opt.state[tensors[0]]
    assert st["step"].dtype == disttorch.float32 and st["step"].dim() == 0 and st["step"].item() == 0.0
    np.testing.assert_array_equal(st["sum"].numpy(), np.full((4, 3), 0.25, np.float32))
    assert sorted(opt.state_dict()["state"]) == [0, 1, 2]


def test_params_without_grad_and_added_group():
    params, grads = data(4)
    grads = [[g[0], None, g[2] if k % 2 else None] for k, g in enumerate(grads)]
    tensors = make(params)
    opt = Adagrad(tensors[:2], lr=0.05, initial_accumulator_value=0.1)
    opt.add_param_group({"params": tensors[2:]})
    run(opt, tensors, grads)
    assert opt.state[tensors[1]]["step"].item() == 0 and opt.state[tensors[2]]["step"].item() == 2
    close(tensors, reference(params, grads, 0.05, initial_accumulator_value=0.1)[0])


@pytest.mark.parametrize("kwargs", [dict(lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.2),
                                    dict(maximize=True)])
def test_state_dict_resume_is_bitwise(kwargs):
    resume_is_bitwise(Adagrad, kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_chunked_and_whole_array_paths_agree(monkeypatch, dtype):
    paths_agree_bitwise(monkeypatch, Adagrad, dict(lr=0.1, lr_decay=0.1, weight_decay=0.1, maximize=True), dtype)


def test_complex_params():
    rng = np.random.default_rng(9)
    p = rng.standard_normal(6) + 1j * rng.standard_normal(6)
    grads = [rng.standard_normal(6) + 1j * rng.standard_normal(6) for _ in range(3)]
    t = disttorch.tensor(p, requires_grad=True)
    run(Adagrad([t], lr=0.1, initial_accumulator_value=0.3), [t], [[g] for g in grads])
    ref = reference([p.view(np.float64)], [[g.view(np.float64)] for g in grads], 0.1, initial_accumulator_value=0.3)
    np.testing.assert_allclose(t.detach().numpy().view(np.float64), ref[0][0], rtol=1e-12)


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=-1), "Invalid learning rate: -1"),
    (dict(lr_decay=-0.5), "Invalid lr_decay value: -0.5"),
    (dict(weight_decay=-1), "Invalid weight_decay value: -1"),
    (dict(initial_accumulator_value=-1), "Invalid initial_accumulator_value value: -1"),
    (dict(eps=-1.0), "Invalid epsilon value: -1.0"),
])
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Adagrad([disttorch.zeros(2, requires_grad=True)], **kwargs)


def test_defaults():
    opt = Adagrad([disttorch.zeros(2, requires_grad=True)])
    assert opt.defaults == dict(lr=1e-2, lr_decay=0, eps=1e-10, weight_decay=0, initial_accumulator_value=0,
                                foreach=None, maximize=False, differentiable=False, fused=None)
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together."):
        Adagrad([disttorch.zeros(2, requires_grad=True)], fused=True, foreach=True)
