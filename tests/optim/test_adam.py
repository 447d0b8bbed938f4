"""Adam and AdamW against an independent float64 NumPy implementation of PyTorch's documented algorithm."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import disttorch
from disttorch.optim import Adam, AdamW
from disttorch.optim import _functional as F

SHAPES = [(4, 3), (5,), ()]
STEPS = 4


def reference_adam(params, grads_seq, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                   maximize=False, decoupled=False):
    """The algorithm of PyTorch's Adam/AdamW documentation, in float64."""
    b1, b2 = betas
    params = [p.astype(np.float64).copy() for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    vmax = [np.zeros_like(p) for p in params]
    steps = [0] * len(params)
    for grads in grads_seq:
        for i, g in enumerate(grads):
            if g is None:
                continue
            steps[i] += 1
            t = steps[i]
            g = np.asarray(g, np.float64)
            g = -g if maximize else g
            if weight_decay and decoupled:
                params[i] = params[i] * (1 - lr * weight_decay)
            elif weight_decay:
                g = g + weight_decay * params[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat = m[i] / (1 - b1 ** t)
            if amsgrad:
                vmax[i] = np.maximum(vmax[i], v[i])
                v_hat = vmax[i] / (1 - b2 ** t)
            else:
                v_hat = v[i] / (1 - b2 ** t)
            params[i] = params[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return params, m, v, vmax


def make(arrays, dtype=np.float64):
    return [disttorch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]


def data(seed=0, shapes=SHAPES, steps=STEPS):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(steps)]
    return params, grads


def run(opt, tensors, grads_seq, dtype=np.float64):
    for grads in grads_seq:
        for t, g in zip(tensors, grads):
            t.grad = None if g is None else disttorch.tensor(g.astype(dtype))
        opt.step()


def close(tensors, expected, rtol=1e-12, atol=1e-14):
    for t, e in zip(tensors, expected):
        np.testing.assert_allclose(t.detach().numpy().astype(np.float64), e, rtol=rtol, atol=atol)


@pytest.mark.parametrize("cls", [Adam, AdamW])
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("maximize", [False, True])
def test_matches_reference(cls, amsgrad, weight_decay, maximize):
    params, grads = data()
    tensors = make(params)
    opt = cls(tensors, lr=0.01, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
    run(opt, tensors, grads)
    expected, m, v, vmax = reference_adam(params, grads, 0.01, weight_decay=weight_decay, amsgrad=amsgrad,
                                          maximize=maximize, decoupled=cls is AdamW)
    close(tensors, expected)
    for i, t in enumerate(tensors):
        st = opt.state[t]
        close([st["exp_avg"], st["exp_avg_sq"]], [m[i], v[i]])
        assert ("max_exp_avg_sq" in st) == amsgrad
        if amsgrad:
            close([st["max_exp_avg_sq"]], [vmax[i]])


@pytest.mark.parametrize("betas", [(0.3, 0.4), (0.0, 0.0), (0.5, 0.99)])
def test_other_betas(betas):
    # beta1 <= 0.5 takes lerp's other branch (weight >= 0.5)
    params, grads = data(1)
    tensors = make(params)
    run(Adam(tensors, lr=0.1, betas=betas, eps=1e-6), tensors, grads)
    close(tensors, reference_adam(params, grads, 0.1, betas=betas, eps=1e-6)[0])


def test_state_layout():
    params, grads = data(2)
    tensors = make(params, np.float32)
    opt = Adam(tensors, amsgrad=True)
    run(opt, tensors, grads[:3], np.float32)
    st = opt.state[tensors[0]]
    assert sorted(st) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
    step = st["step"]
    assert isinstance(step, disttorch.Tensor) and step.dtype == disttorch.float32 and step.dim() == 0
    assert step.item() == 3.0
    assert st["exp_avg"].dtype == disttorch.float32 and st["exp_avg"].shape == (4, 3)


def test_param_groups_with_different_lr():
    params, grads = data(3)
    tensors = make(params)
    opt = AdamW([{"params": tensors[:1], "lr": 0.1}, {"params": tensors[1:], "weight_decay": 0.0}], lr=0.02)
    run(opt, tensors, grads)
    e0 = reference_adam(params[:1], [g[:1] for g in grads], 0.1, weight_decay=0.01, decoupled=True)[0]
    e1 = reference_adam(params[1:], [g[1:] for g in grads], 0.02)[0]
    close(tensors, e0 + e1)


def test_params_without_grad_keep_no_state():
    params, grads = data(4)
    grads = [[g[0], None, g[2] if k % 2 else None] for k, g in enumerate(grads)]
    tensors = make(params)
    opt = Adam(tensors, lr=0.05)
    run(opt, tensors, grads)
    assert tensors[1] not in opt.state and opt.state[tensors[2]]["step"].item() == 2
    close(tensors, reference_adam(params, grads, 0.05)[0])


@pytest.mark.parametrize("chunk_bytes", [None, 64])
def test_chunk_boundaries(monkeypatch, chunk_bytes):
    if chunk_bytes is not None:
        monkeypatch.setattr(F, "_CHUNK_BYTES", chunk_bytes)
        shapes = [(5, 9)]
    else:
        shapes = [(7 * F._CHUNK_BYTES // 16,)]  # 3.5 float64 chunks
    params, grads = data(5, shapes, steps=3)
    tensors = make(params)
    run(Adam(tensors, lr=0.01, amsgrad=True, weight_decay=0.1), tensors, grads)
    close(tensors, reference_adam(params, grads, 0.01, amsgrad=True, weight_decay=0.1)[0])


@pytest.mark.parametrize("dtype,tol", [(np.float16, 2e-3), (disttorch.bfloat16.np, 2e-2)])
def test_low_precision_params(dtype, tol):
    params, grads = data(6, [(70, 3), (7,)])
    tensors = make(params, dtype)
    opt = Adam(tensors, lr=0.1)
    run(opt, tensors, grads, dtype)
    expected = reference_adam([p.astype(dtype) for p in params], [[g.astype(dtype) for g in gs] for gs in grads],
                              0.1)[0]
    for t, e, p0 in zip(tensors, expected, params):
        assert t._data.dtype == dtype and opt.state[t]["exp_avg"]._data.dtype == dtype
        got = t.detach().numpy().astype(np.float64)
        np.testing.assert_allclose(got, e, atol=2 * tol, rtol=tol)
        assert np.abs(got - p0).max() > 0.2  # it moved by far more than the tolerance


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_chunked_and_whole_array_paths_agree_bitwise(monkeypatch, dtype):
    params, grads = data(7, [(40, 9)])
    monkeypatch.setattr(F, "_CHUNK_BYTES", 256)
    results = []
    for fusable in (True, False):
        if not fusable:
            monkeypatch.setattr(F, "_fusable", lambda arrays: False)
        tensors = make(params, dtype)
        run(Adam(tensors, lr=0.01, amsgrad=True, weight_decay=0.1, maximize=True), tensors, grads, dtype)
        results.append(tensors[0].detach().numpy().copy())
    np.testing.assert_array_equal(results[0], results[1])


def test_non_contiguous_param():
    params, grads = data(8, [(4, 6)])
    t = disttorch.tensor(np.asfortranarray(params[0]), requires_grad=True)
    run(AdamW([t], lr=0.01, amsgrad=True), [t], grads)
    close([t], reference_adam(params, grads, 0.01, weight_decay=0.01, amsgrad=True, decoupled=True)[0])


def test_complex_params_update_real_and_imaginary_parts_separately():
    rng = np.random.default_rng(9)
    p = rng.standard_normal(6) + 1j * rng.standard_normal(6)
    grads = [rng.standard_normal(6) + 1j * rng.standard_normal(6) for _ in range(3)]
    t = disttorch.tensor(p, requires_grad=True)
    run(Adam([t], lr=0.1), [t], [[g] for g in grads], np.complex128)
    ref = reference_adam([p.view(np.float64)], [[g.view(np.float64)] for g in grads], 0.1)[0][0]
    np.testing.assert_allclose(t.detach().numpy().view(np.float64), ref, rtol=1e-12)


def test_adam_update_function_on_raw_arrays():
    rng = np.random.default_rng(10)
    p, g = rng.standard_normal(8), rng.standard_normal(8)
    expected = reference_adam([p], [[g]], 0.1)[0][0]
    m, v = np.zeros(8), np.zeros(8)
    F.adam_update(np, p, g, m, v, None, 1, 0.1, 0.9, 0.999, 1e-8, 0.0, False, False)
    np.testing.assert_allclose(p, expected, rtol=1e-13)
    p2 = rng.standard_normal(8)
    expected = reference_adam([p2], [[g]], 0.1, weight_decay=0.5, decoupled=True)[0][0]
    F.adamw_update(np, p2, g, np.zeros(8), np.zeros(8), None, 1, 0.1, 0.9, 0.999, 1e-8, 0.5, False, False)
    np.testing.assert_allclose(p2, expected, rtol=1e-13)


def test_zero_eps_gives_nan_silently():
    t = disttorch.tensor([1.0, 2.0], dtype=disttorch.float32, requires_grad=True)
    opt = Adam([t], eps=0.0)
    t.grad = disttorch.zeros(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
    assert np.isnan(t.detach().numpy()).all()


def test_version_counter_and_amsgrad_switched_on_later():
    t = disttorch.tensor([1.0, -2.0], requires_grad=True)
    opt = Adam([t], lr=0.1)
    t.grad = disttorch.tensor([0.5, 0.5])
    opt.step()
    v = t._version
    opt.param_groups[0]["amsgrad"] = True
    opt.step()
    assert t._version == v + 1 and "max_exp_avg_sq" in opt.state[t]


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=-1e-3), "Invalid learning rate: -0.001"),
    (dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    (dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (dict(weight_decay=-1), "Invalid weight_decay value: -1"),
])
@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_argument_errors(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls([disttorch.zeros(2, requires_grad=True)], **kwargs)


def test_defaults_and_repr():
    w = disttorch.zeros(2, requires_grad=True)
    adam, adamw = Adam([w]), AdamW([w])
    assert adam.defaults == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
                                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None,
                                 decoupled_weight_decay=False)
    assert adamw.defaults["weight_decay"] == 1e-2 and adamw.defaults["decoupled_weight_decay"] is True
    assert repr(adam) == ("Adam (\nParameter Group 0\n    amsgrad: False\n    betas: (0.9, 0.999)\n"
                          "    capturable: False\n    decoupled_weight_decay: False\n    differentiable: False\n"
                          "    eps: 1e-08\n    foreach: None\n    fused: None\n    lr: 0.001\n    maximize: False\n"
                          "    weight_decay: 0\n)")
    assert repr(adamw).startswith("AdamW (\nParameter Group 0\n")
