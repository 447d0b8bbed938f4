"""Ops whose NumPy code picks a formula by a host test (erf/erfc's ranges, the gradients of prod and cumprod with
zeros) take a branch-free path on a device: both formulas, selected by ``where``. On the stand-in CUDA device they
must give the right values (independent references: math.erf, products of the other elements, finite
differences for double backward) and make no host transfer."""
import itertools
import math

import numpy as np
import pytest

import disttorch
from disttorch.ops import _special as S

# Every range of Cody's method, its edges, and the special values.
_EDGES = [0.0, -0.0, 0.2, 0.46875, -0.46875, 0.47, 1.0, -2.5, 4.0, -4.0, 4.01, 6.0, -9.0, 27.4, 27.5, 30.0,
          1e-300, 5e-324, np.inf, -np.inf, np.nan]


def _dev(a, **kw):
    return disttorch.tensor(a, device="cuda", **kw)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_erf_erfc_erfinv_on_device_without_transfers(standin_cuda, dtype):
    x = np.array(_EDGES + list(np.linspace(-6.0, 6.0, 97)), dtype=dtype)
    t = _dev(x)
    y = _dev(np.tanh(x.astype(np.float64)).astype(dtype))
    standin_cuda.reset()
    got = [disttorch.erf(t), disttorch.erfc(t), disttorch.erfinv(y)]
    assert standin_cuda.total == 0, standin_cuda.summary()
    got = [g.cpu().numpy() for g in got]
    for g in got:
        assert g.dtype == dtype
    x64 = x.astype(np.float64)
    want_erf = np.array([math.erf(v) if not math.isnan(v) else math.nan for v in x64])
    want_erfc = np.array([math.erfc(v) if not math.isnan(v) else math.nan for v in x64])
    tol = {np.float64: 1e-15, np.float32: 1e-7, np.float16: 1e-3}[dtype]
    np.testing.assert_allclose(got[0], want_erf.astype(dtype), rtol=tol, atol=tol)
    np.testing.assert_allclose(got[1], want_erfc.astype(dtype), rtol=tol * 4, atol=1e-300)
    # erfinv is checked by going back through math.erf (on the inputs inside (-1, 1)).
    yy = np.tanh(x64).astype(dtype).astype(np.float64)
    inside = np.abs(yy) < 1
    back = np.array([math.erf(v) for v in got[2].astype(np.float64)[inside]])
    np.testing.assert_allclose(back, yy[inside], rtol=tol * 4, atol=tol)
    # The device path and the host path (one range at a time) agree element for element.
    for f, arg in ((disttorch.erf, x), (disttorch.erfc, x)):
        np.testing.assert_array_equal(f(_dev(arg)).cpu().numpy(), f(disttorch.tensor(arg)).numpy())


def test_exact_gelu_on_device_without_transfers(standin_cuda):
    x = np.array(_EDGES[:-3] + [-3.0, -0.5, 0.5, 3.0])
    t = _dev(x, requires_grad=True)
    disttorch.nn.functional.gelu(t).sum().backward()  # warm-up
    t.grad = None
    standin_cuda.reset()
    y = disttorch.nn.functional.gelu(t)
    y.sum().backward()
    assert standin_cuda.total == 0, standin_cuda.summary()
    want = np.array([v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in x])
    np.testing.assert_allclose(y.detach().cpu().numpy(), want, rtol=1e-14, atol=1e-300)
    phi = np.array([math.exp(-v * v / 2) / math.sqrt(2 * math.pi) for v in x])
    np.testing.assert_allclose(t.grad.cpu().numpy(), 0.5 * np.array([math.erfc(-v / math.sqrt(2)) for v in x])
                               + x * phi, rtol=1e-13, atol=1e-16)  # the two terms cancel far left


# Rows without zeros, with one zero (first, middle, last) and with two.
_X = np.array([[1.5, -0.5, 2.0, 0.7, 1.1],
               [0.0, 1.3, -0.8, 2.0, 0.9],
               [0.6, 1.2, 0.0, -1.4, 0.8],
               [0.9, 1.7, -0.3, 1.2, 0.0],
               [0.0, 0.4, 1.9, 0.0, -1.2]])


def _others_product(v):
    return np.array([np.prod(np.delete(v, i)) for i in range(len(v))])


def _cumprod_grad_ref(x, w):
    """d/dx_j of sum_k w_k * prod(x[:k + 1]), term by term."""
    n = len(x)
    return np.array([sum(w[k] * np.prod(np.delete(x[:k + 1], j)) for k in range(j, n)) for j in range(n)])


def _grad_and_transfers(counters, fn, x, w, create_graph=False):
    t = _dev(x, requires_grad=True)
    wt = _dev(w)
    (fn(t) * wt).sum().backward(create_graph=create_graph)  # warm-up: shape-derived tables, once
    t.grad = None
    counters.reset()
    (g,) = disttorch.autograd.grad((fn(t) * wt).sum(), t, create_graph=create_graph)
    if create_graph:
        g.sum().backward()
    assert counters.total == 0, counters.summary()
    return g


@pytest.mark.parametrize("dim", [1, 0, None])
def test_prod_grad_with_zeros_on_device_without_transfers(standin_cuda, dim):
    w = np.linspace(0.5, 1.5, 5 if dim is not None else 1)
    fn = (lambda t: t.prod(dim)) if dim is not None else (lambda t: t.prod())
    if dim is None:  # one product over everything: one zero, then two
        for x in (_X[1:4, :2].copy(), _X[1:, :2].copy(), _X[2:3]):
            g = _grad_and_transfers(standin_cuda, fn, x, w)
            np.testing.assert_allclose(g.cpu().numpy().ravel(), w[0] * _others_product(x.ravel()), rtol=1e-14)
        return
    g = _grad_and_transfers(standin_cuda, fn, _X, w).cpu().numpy()
    want = np.stack([w[i] * _others_product(r) for i, r in enumerate(_X if dim == 1 else _X.T)])
    np.testing.assert_allclose(g, want if dim == 1 else want.T, rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("dim", [1, 0])
def test_cumprod_grad_with_zeros_on_device_without_transfers(standin_cuda, dim):
    w = np.random.default_rng(3).uniform(0.5, 1.5, _X.shape)
    g = _grad_and_transfers(standin_cuda, lambda t: disttorch.cumprod(t, dim), _X, w).cpu().numpy()
    xs, ws = (_X, w) if dim == 1 else (_X.T, w.T)
    want = np.stack([_cumprod_grad_ref(r, q) for r, q in zip(xs, ws)])
    np.testing.assert_allclose(g, want if dim == 1 else want.T, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("op", ["prod", "cumprod"])
def test_double_backward_with_zeros_matches_finite_differences(standin_cuda, op):
    """The discarded formula must not leak inf/NaN into second derivatives: the Hessian-vector product from
    double backward equals central differences of the device's own gradient (exact here: the gradient is
    multilinear in x)."""
    fn = (lambda t: t.prod(1)) if op == "prod" else (lambda t: disttorch.cumprod(t, 1))
    w = np.linspace(0.5, 1.5, 25).reshape(5, 5)
    v = np.random.default_rng(4).uniform(-1.0, 1.0, _X.shape)

    def grad_at(x):
        t = _dev(x, requires_grad=True)
        (g,) = disttorch.autograd.grad((fn(t) * _dev(w if op == "cumprod" else w[:, 0])).sum(), t)
        return g.cpu().numpy()

    t = _dev(_X, requires_grad=True)
    g = _grad_and_transfers(standin_cuda, fn, _X, w if op == "cumprod" else w[:, 0], create_graph=False)
    assert np.isfinite(g.cpu().numpy()).all()
    (g,) = disttorch.autograd.grad((fn(t) * _dev(w if op == "cumprod" else w[:, 0])).sum(), t, create_graph=True)
    (hv,) = disttorch.autograd.grad((g * _dev(v)).sum(), t)
    eps = 1e-3
    num = np.zeros_like(_X)
    for i, j in itertools.product(range(5), range(5)):
        d = np.zeros_like(_X)
        d[i, j] = eps
        num[i, j] = ((grad_at(_X + d) - grad_at(_X - d)) * v).sum() / (2 * eps)
    hv = hv.cpu().numpy()
    if op == "cumprod":  # the host's double backward gives the same, bit for bit
        t_cpu = disttorch.tensor(_X, requires_grad=True)
        (g_cpu,) = disttorch.autograd.grad((fn(t_cpu) * disttorch.tensor(w)).sum(), t_cpu, create_graph=True)
        (hv_cpu,) = disttorch.autograd.grad((g_cpu * disttorch.tensor(v)).sum(), t_cpu)
        np.testing.assert_array_equal(hv, hv_cpu.numpy())
    np.testing.assert_allclose(hv, num, rtol=1e-9, atol=1e-9)


_EDGE_INPUTS = [np.array([[np.inf, 0.0, 2.0], [3.0, 4.0, np.nan]]), np.array([[np.inf, 1.0, 2.0], [3.0, 4.0, np.nan]]),
                np.array([[np.inf, 0.0, 2.0], [3.0, np.inf, 0.0]]), np.array([[1e300, 1e300, 2.0], [3.0, 1e-300, 0.0]]),
                np.zeros((0, 3)), np.zeros((2, 3))]


@pytest.mark.parametrize("dtype", [disttorch.float64, disttorch.float16])
@pytest.mark.parametrize("op", ["prod0", "prod1", "prod_all", "cumprod0", "cumprod1"])
def test_gradients_with_inf_nan_and_zeros_equal_the_host(standin_cuda, op, dtype):
    """The device picks the host's formula without asking the host, so even inf/NaN gradients agree bit for bit."""
    fn = {"prod0": lambda t: t.prod(0), "prod1": lambda t: t.prod(1), "prod_all": lambda t: t.prod(),
          "cumprod0": lambda t: disttorch.cumprod(t, 0), "cumprod1": lambda t: disttorch.cumprod(t, 1)}[op]
    for a in _EDGE_INPUTS:
        grads = []
        for dev in ("cpu", "cuda"):
            t = disttorch.tensor(a, dtype=dtype, device=dev, requires_grad=True)
            fn(t).sum().backward()
            grads.append(t.grad.cpu().numpy())
        np.testing.assert_array_equal(grads[1], grads[0], err_msg=f"{op} {a.tolist()}")


def test_host_path_still_branches_per_tensor():
    """On NumPy the gradient keeps the one-test formula pick (the device-only code is not used there): a zero-free
    input gives exactly g * prod / x."""
    x = disttorch.tensor(_X[0:1], requires_grad=True)
    x.prod(1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.prod(_X[0]) / _X[0:1])
    assert S._cody(np, np.array([0.1]))[0].dtype == np.float64
