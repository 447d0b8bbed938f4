"""layer_norm through the compiled row kernels (ops/norm_compiled.py) against a float64 reference written here,
against the NumPy path, gradcheck in float64, and the cases that keep the NumPy path."""
from __future__ import annotations

import numpy as np
import pytest

import disttorch
import disttorch.nn.functional as F
from disttorch import _compiled as C
from disttorch.ops import norm_compiled as NC
from tests.helpers import check_grad

pytestmark = pytest.mark.skipif(not C.available(), reason="numba is not available")

rng = np.random.default_rng(11)


def _reference(x, w, b, g, eps=1e-5):
    """Layer norm over the last axis and its gradients, in float64 from the formulas."""
    x, w, b, g = (a.astype(np.float64) for a in (x, w, b, g))
    mu = x.mean(-1, keepdims=True)
    r = 1.0 / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps)
    xh = (x - mu) * r
    gxh = g * w
    gx = (gxh - gxh.mean(-1, keepdims=True) - xh * (gxh * xh).mean(-1, keepdims=True)) * r
    axes = tuple(range(x.ndim - 1))
    return xh * w + b, gx, (g * xh).sum(axes), g.sum(axes)


def _run(x, w, b, g, compiled: bool, monkeypatch):
    monkeypatch.setattr(NC, "_MIN", 0 if compiled else 1 << 62)
    X, W, B = (disttorch.from_numpy(a.copy()).requires_grad_(True) for a in (x, w, b))
    y = F.layer_norm(X, (x.shape[-1],), W, B)
    assert y.grad_fn.compiled is compiled
    grads = disttorch.autograd.grad(y, (X, W, B), disttorch.from_numpy(g))
    return [y.detach().numpy()] + [t.numpy() for t in grads]


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("shape", [(16, 64, 128), (300, 7), (5, 1)])
def test_compiled_layer_norm_matches_reference_and_numpy_path(monkeypatch, dtype, tol, shape):
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    w, b = (rng.standard_normal(shape[-1]).astype(dtype) for _ in range(2))
    g = rng.standard_normal(shape).astype(dtype)
    got = _run(x, w, b, g, True, monkeypatch)
    numpy_path = _run(x, w, b, g, False, monkeypatch)
    rows = int(np.prod(shape[:-1]))
    for name, c, n, r in zip(("y", "gx", "gw", "gb"), got, numpy_path, _reference(x, w, b, g)):
        scale = tol * (rows if name in ("gw", "gb") else 1) ** 0.5 * max(1.0, float(np.abs(r).max()))
        assert c.dtype == dtype and c.shape == r.shape, name
        np.testing.assert_allclose(c, r, rtol=0, atol=scale, err_msg=name)
        np.testing.assert_allclose(c, n, rtol=0, atol=2 * scale, err_msg=name)


def test_compiled_layer_norm_gradcheck(monkeypatch):
    monkeypatch.setattr(NC, "_MIN", 0)
    check_grad(lambda x, w, b: F.layer_norm(x, (6,), w, b), rng.standard_normal((4, 3, 6)),
               rng.standard_normal(6), rng.standard_normal(6), gradgrad=True)


def test_compiled_layer_norm_without_grad_and_as_a_module(monkeypatch):
    monkeypatch.setattr(NC, "_MIN", 0)
    x = rng.standard_normal((8, 32)).astype(np.float32)
    ln = disttorch.nn.LayerNorm(32)
    with disttorch.no_grad():
        ln.weight.mul_(1.5)
        ln.bias.add_(0.25)
        quiet = ln(disttorch.from_numpy(x)).numpy()  # y and xhat share one buffer here
    y = ln(disttorch.from_numpy(x))
    assert y.grad_fn.compiled
    assert np.array_equal(quiet, y.detach().numpy())
    np.testing.assert_allclose(quiet, _reference(x, ln.weight.detach().numpy(), ln.bias.detach().numpy(),
                                                  np.zeros_like(x))[0], atol=2e-6)


def test_cases_that_keep_the_numpy_path(monkeypatch):
    monkeypatch.setattr(NC, "_MIN", 0)
    x = rng.standard_normal((6, 10)).astype(np.float32)
    w = disttorch.ones(10, requires_grad=True)
    cases = {
        "no bias": (disttorch.from_numpy(x), w, None),
        "no weight": (disttorch.from_numpy(x), None, disttorch.zeros(10)),
        "float16": (disttorch.from_numpy(x.astype(np.float16)), w.half(), disttorch.zeros(10).half()),
        "mixed dtypes": (disttorch.from_numpy(x.astype(np.float64)), w, disttorch.zeros(10)),
        "not contiguous": (disttorch.from_numpy(np.ascontiguousarray(x.T)).t(), w, disttorch.zeros(10)),
    }
    for name, (xt, wt, bt) in cases.items():
        xt = xt.detach().requires_grad_(True)
        y = F.layer_norm(xt, (10,), wt, bt)
        assert not y.grad_fn.compiled, name
        ref = _reference(x, np.ones(10), np.zeros(10), np.zeros_like(x))[0]
        np.testing.assert_allclose(y.detach().float().numpy(), ref, atol=5e-3 if name == "float16" else 1e-5,
                                   err_msg=name)
    monkeypatch.setattr(NC, "_MIN", 1 << 62)  # below the size floor
    y = F.layer_norm(disttorch.from_numpy(x).requires_grad_(True), (10,), w, disttorch.zeros(10))
    assert not y.grad_fn.compiled
