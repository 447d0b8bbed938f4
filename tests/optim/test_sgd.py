"""SGD against an independent float64 NumPy implementation of PyTorch's algorithm."""
from __future__ import annotations

import numpy as np
import pytest

import disttorch
from disttorch.optim import SGD
from disttorch.optim import _functional as F

SHAPES = [(4, 3), (5,), ()]
STEPS = 4


def reference_sgd(params, grads_seq, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                  maximize=False):
    """PyTorch's SGD, per element in float64: negate (maximize), L2, momentum buffer (first step: the
    gradient itself), nesterov look-ahead, then ``p -= lr * g``."""
    params = [p.astype(np.float64).copy() for p in params]
    bufs = [None] * len(params)
    for grads in grads_seq:
        for i, (p, g) in enumerate(zip(params, grads)):
            if g is None:
                continue
            d = -np.asarray(g, np.float64) if maximize else np.asarray(g, np.float64)
            if weight_decay:
                d = d + weight_decay * p
            if momentum:
                bufs[i] = d.copy() if bufs[i] is None else momentum * bufs[i] + (1 - dampening) * d
                d = d + momentum * bufs[i] if nesterov else bufs[i]
            params[i] = p - lr * d
    return params, bufs


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


OPTIONS = [dict(momentum=m, dampening=d, nesterov=n, weight_decay=wd, maximize=mx)
           for m in (0.0, 0.9) for d in (0.0, 0.3) for n in (False, True) for wd in (0.0, 0.1)
           for mx in (False, True) if not (n and (m == 0 or d != 0)) and not (m == 0 and d != 0)]


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_sgd_matches_reference(opts):
    params, grads = data()
    tensors = make(params)
    opt = SGD(tensors, lr=0.05, **opts)
    run(opt, tensors, grads)
    expected, bufs = reference_sgd(params, grads, 0.05, **opts)
    for t, e in zip(tensors, expected):
        np.testing.assert_allclose(t.detach().numpy(), e, rtol=1e-13, atol=1e-14)
    for t, b in zip(tensors, bufs):
        if opts["momentum"]:
            np.testing.assert_allclose(opt.state[t]["momentum_buffer"].numpy(), b, rtol=1e-13, atol=1e-14)
        else:
            assert t not in opt.state  # PyTorch keeps no state without momentum


def test_param_groups_with_their_own_options():
    params, grads = data(1)
    tensors = make(params)
    opt = SGD([{"params": tensors[:2]}, {"params": tensors[2:], "lr": 0.5, "momentum": 0.8}], lr=0.01,
              weight_decay=0.1)
    run(opt, tensors, grads)
    e0, _ = reference_sgd(params[:2], [g[:2] for g in grads], 0.01, weight_decay=0.1)
    e1, _ = reference_sgd(params[2:], [g[2:] for g in grads], 0.5, momentum=0.8, weight_decay=0.1)
    for t, e in zip(tensors, e0 + e1):
        np.testing.assert_allclose(t.detach().numpy(), e, rtol=1e-13, atol=1e-14)
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[0]["momentum"] == 0


def test_params_without_grad_are_skipped():
    params, grads = data(2)
    grads = [[g[0], None, g[2]] for g in grads]
    tensors = make(params)
    opt = SGD(tensors, lr=0.1, momentum=0.9)
    run(opt, tensors, grads)
    np.testing.assert_array_equal(tensors[1].detach().numpy(), params[1])
    assert tensors[1] not in opt.state
    expected, _ = reference_sgd(params, grads, 0.1, momentum=0.9)
    np.testing.assert_allclose(tensors[0].detach().numpy(), expected[0], rtol=1e-13)


@pytest.mark.parametrize("chunk_bytes", [None, 64])
def test_chunk_boundaries(monkeypatch, chunk_bytes):
    # float64 chunks are _CHUNK_BYTES // 8 elements: the first case spans 3.5 real chunks, the second
    # (8-element chunks) leaves a ragged last chunk.
    if chunk_bytes is not None:
        monkeypatch.setattr(F, "_CHUNK_BYTES", chunk_bytes)
        shapes = [(37,)]
    else:
        shapes = [(7 * F._CHUNK_BYTES // 16,)]
    params, grads = data(3, shapes, steps=3)
    tensors = make(params)
    opt = SGD(tensors, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    run(opt, tensors, grads)
    expected, _ = reference_sgd(params, grads, 0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    np.testing.assert_allclose(tensors[0].detach().numpy(), expected[0], rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("dtype,atol", [(np.float16, 3e-3), (disttorch.bfloat16.np, 3e-2), (np.float32, 1e-6)])
def test_low_precision_params(dtype, atol):
    params, grads = data(4, [(6, 5), (3,)])
    tensors = make(params, dtype)
    opt = SGD(tensors, lr=0.1, momentum=0.9, weight_decay=0.1)
    run(opt, tensors, grads, dtype)
    expected, _ = reference_sgd([p.astype(dtype) for p in params], [[g.astype(dtype) for g in gs] for gs in grads],
                                0.1, momentum=0.9, weight_decay=0.1)
    for t, e in zip(tensors, expected):
        assert t._data.dtype == dtype and opt.state[t]["momentum_buffer"]._data.dtype == dtype
        np.testing.assert_allclose(t.detach().numpy().astype(np.float64), e, atol=atol * 4, rtol=atol)


def test_chunked_and_whole_array_paths_agree_bitwise(monkeypatch):
    params, grads = data(5, [(300,)])
    results = []
    for fusable in (True, False):
        if not fusable:
            monkeypatch.setattr(F, "_fusable", lambda arrays: False)
        tensors = make(params, np.float32)
        opt = SGD(tensors, lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.05, maximize=True)
        run(opt, tensors, grads, np.float32)
        results.append(tensors[0].detach().numpy().copy())
    np.testing.assert_array_equal(results[0], results[1])


def test_non_contiguous_param_uses_whole_array_path():
    params, grads = data(6, [(4, 6)])
    t = disttorch.tensor(np.asfortranarray(params[0]), requires_grad=True)
    assert not t.is_contiguous()
    opt = SGD([t], lr=0.1, momentum=0.5)
    run(opt, [t], grads)
    expected, _ = reference_sgd(params, grads, 0.1, momentum=0.5)
    np.testing.assert_allclose(t.detach().numpy(), expected[0], rtol=1e-13)


def test_sgd_update_is_a_pure_array_function():
    rng = np.random.default_rng(7)
    p, g = rng.standard_normal(10), rng.standard_normal(10)
    p_view = np.zeros(20)[::2]  # a strided destination takes the whole-array path
    p_view[:] = p
    buf = F.sgd_update(np, p_view, g, None, 0.1, 0.9, 0.0, 0.0, False, False)
    np.testing.assert_allclose(p_view, p - 0.1 * g, rtol=1e-15)
    np.testing.assert_array_equal(buf, g)
    assert F.sgd_update(np, p_view, g, None, 0.1, 0.0, 0.0, 0.0, False, False) is None


def test_version_counter_bumps_once_per_step():
    t = disttorch.tensor([1.0, 2.0], requires_grad=True)
    opt = SGD([t], lr=0.1)
    t.grad = disttorch.tensor([1.0, 1.0])
    v = t._version
    opt.step()
    assert t._version == v + 1


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=-1), "Invalid learning rate: -1"),
    (dict(momentum=-0.5), "Invalid momentum value: -0.5"),
    (dict(weight_decay=-1e-3), "Invalid weight_decay value: -0.001"),
    (dict(nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    (dict(nesterov=True, momentum=0.9, dampening=0.1), "Nesterov momentum requires a momentum and zero dampening"),
])
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SGD([disttorch.zeros(2, requires_grad=True)], **kwargs)


def test_defaults_and_repr():
    opt = SGD([disttorch.zeros(2, requires_grad=True)], lr=0.1)
    assert opt.defaults == dict(lr=0.1, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False,
                                foreach=None, differentiable=False, fused=None)
    assert repr(opt) == ("SGD (\nParameter Group 0\n    dampening: 0\n    differentiable: False\n    foreach: None\n"
                         "    fused: None\n    lr: 0.1\n    maximize: False\n    momentum: 0\n    nesterov: False\n"
                         "    weight_decay: 0\n)")
    assert SGD([disttorch.zeros(1, requires_grad=True)]).defaults["lr"] == 1e-3
