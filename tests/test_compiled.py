"""The numba-compiled CPU kernels (disttorch/_compiled): each is bitwise equal to the NumPy path it replaces,
through the public ops, on one thread and split over the pool, and nothing loads numba when it is off or the
work is small."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import disttorch
import disttorch.nn.functional as F
from disttorch import _compiled as C

pytest.importorskip("numba")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(params=["one thread", "split"])
def mode(request, monkeypatch):
    """Compiled kernels on for any size; 'split' also runs them on two pool threads from a few elements."""
    monkeypatch.setattr(C, "MIN_ELEMENTS", 1)
    before = disttorch.get_num_threads()
    if request.param == "split":
        monkeypatch.setattr(C, "SPLIT_MIN", 1)
        disttorch.set_num_threads(2)
    yield request.param
    disttorch.set_num_threads(before)


def _both(monkeypatch, fn):
    """``fn()`` with the compiled kernels, then on the NumPy path: the two results."""
    got = fn()
    monkeypatch.setattr(C, "ENABLED", False)
    try:
        ref = fn()
    finally:
        monkeypatch.setattr(C, "ENABLED", True)
    return got, ref


def _same(a, b):
    for x, y in zip(a, b):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y, equal_nan=True), np.nanmax(np.abs(x.astype(float) - y.astype(float)))


def _data(shape, dtype, rng, specials=True):
    a = rng.standard_normal(shape).astype(dtype)
    if specials and a.size > 8:
        flat = a.reshape(-1)
        idx = rng.choice(a.size, size=max(4, a.size // 50), replace=False)
        flat[idx] = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0], size=idx.size)
        flat[idx[::3]] = flat[(idx[::3] + 1) % a.size]  # ties with a neighbour
    return a


# ---- Adam ------------------------------------------------------------------------------------------------
def _optimize(cls, inits, grads, **opts):
    """Parameters from ``inits`` stepped by ``cls`` once per gradient list: the parameters and every state array."""
    ps = [disttorch.nn.Parameter(disttorch.from_numpy(a.copy())) for a in inits]
    opt = cls(ps, **opts)
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = disttorch.from_numpy(g.copy())
        opt.step()
    state = [opt.state[p][k].numpy() for p in ps for k in sorted(opt.state[p])
             if k != "step" and opt.state[p][k] is not None]
    return [p.detach().numpy() for p in ps] + state



@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opts", [
    {}, {"weight_decay": 0.1}, {"amsgrad": True}, {"maximize": True}, {"betas": (0.3, 0.9)},
    {"amsgrad": True, "maximize": True, "weight_decay": 0.01}])
@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
def test_adam_matches_numpy_path(mode, monkeypatch, dtype, opts, cls):
    rng = np.random.default_rng(1)
    shapes = [(37, 29), (1000,), (3, 5, 7)]
    inits = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(3)]

    _same(*_both(monkeypatch, lambda: _optimize(getattr(disttorch.optim, cls), inits, grads, lr=0.01, **opts)))


def test_adam_reaches_the_compiled_kernel(monkeypatch):
    """The large parameter of a plain Adam step takes the branch-free kernel (the one that is fast)."""
    k = C.get("adam")
    calls = []
    monkeypatch.setattr(k, "adam_plain", lambda *a: calls.append(a[0].size))
    p = disttorch.nn.Parameter(disttorch.zeros(C.MIN_ELEMENTS))
    p.grad = disttorch.ones(C.MIN_ELEMENTS)
    disttorch.optim.Adam([p]).step()
    assert calls == [C.MIN_ELEMENTS]


# ---- 2x2 max pool --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 3, 8, 6), (2, 5, 7, 9), (3, 6, 4)])
def test_max_pool_2x2_matches_numpy_path(mode, monkeypatch, dtype, shape):
    rng = np.random.default_rng(2)
    a = _data(shape, dtype, rng)
    oh, ow = shape[-2] // 2, shape[-1] // 2
    g = rng.standard_normal(shape[:-2] + (oh, ow)).astype(dtype)

    def run():
        x = disttorch.from_numpy(a.copy()).requires_grad_()
        y, idx = F.max_pool2d(x, 2, return_indices=True)
        y.backward(disttorch.from_numpy(g))
        return y.detach().numpy(), idx.numpy(), x.grad.numpy()
    got, ref = _both(monkeypatch, run)
    _same(got, ref)


def test_max_pool_2x2_against_an_independent_scan():
    """PyTorch's rule, written out: first maximum in row-major order, or the last NaN of the window."""
    rng = np.random.default_rng(3)
    a = _data((2, 3, 6, 8), np.float32, rng)
    k = C.get("pool")
    a3 = a.reshape(-1, 6, 8)
    m = np.empty((6, 3, 4), np.float32)
    kk = np.empty((6, 3, 4), np.uint8)
    k.max2x2(a3, m, kk)
    for p in range(6):
        for i in range(3):
            for j in range(4):
                win = a3[p, 2 * i:2 * i + 2, 2 * j:2 * j + 2].reshape(-1)
                nans = np.flatnonzero(np.isnan(win))
                q = nans[-1] if nans.size else int(np.argmax(win))
                assert kk[p, i, j] == q
                assert np.array_equal(m[p, i, j], win[q], equal_nan=True)


# ---- convolution columns and the 'same' col2im -------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", [
    dict(shape=(3, 2, 9, 7), w=(4, 2, 3, 3), stride=1, padding=1, dilation=1),
    dict(shape=(2, 3, 11, 8), w=(5, 3, 3, 2), stride=(2, 1), padding=(2, 0), dilation=(1, 2)),
    dict(shape=(2, 4, 10, 10), w=(6, 2, 5, 5), stride=1, padding=2, dilation=1, groups=2),
    dict(shape=(1, 1, 6, 5), w=(2, 1, 3, 3), stride=3, padding=1, dilation=2)])
def test_conv2d_matches_numpy_path(mode, monkeypatch, dtype, cfg):
    rng = np.random.default_rng(4)
    cfg = dict(cfg)
    a = rng.standard_normal(cfg.pop("shape")).astype(dtype)
    w = rng.standard_normal(cfg.pop("w")).astype(dtype)

    def run():
        x = disttorch.from_numpy(a.copy()).requires_grad_()
        wt = disttorch.from_numpy(w.copy()).requires_grad_()
        y = F.conv2d(x, wt, **cfg)
        y.backward(disttorch.from_numpy(np.cos(np.arange(y.numel(), dtype=dtype)).reshape(tuple(y.shape))))
        return y.detach().numpy(), x.grad.numpy(), wt.grad.numpy()
    _same(*_both(monkeypatch, run))


def test_conv_cols_against_an_independent_gather():
    """Columns from the padded input, element by element (no code shared with ops/im2col.py)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    kh, kw, (ph, pw), (sh, sw), (dh, dw) = 3, 2, (1, 2), (2, 1), (1, 2)
    oh = (7 + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (6 + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cols = np.empty((3, kh, kw, 2, oh, ow), np.float32)
    shape = np.array((2, 3, 7, 6, kh, kw, oh, ow), np.int64)
    C.get("conv").im2col2d(x.reshape(-1), cols.reshape(-1), shape, 0, 3, 7, 6, ph, pw, sh, sw, dh, dw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    for c, i, j, n, oy, ox in np.ndindex(cols.shape):
        assert cols[c, i, j, n, oy, ox] == xp[n, c, oy * sh + i * dh, ox * sw + j * dw]


def test_same_col2im_against_an_independent_sum():
    rng = np.random.default_rng(6)
    cols = rng.standard_normal((2, 9, 3, 5, 4)).astype(np.float64)
    out = np.zeros((2, 3, 5, 4))
    shifts = [(i - 1, j - 1) for i in range(3) for j in range(3)]
    C.get("conv").col2im_same2d(cols.reshape(-1), out.reshape(-1), np.array(cols.shape), 0, 2,
                                np.array([s[0] for s in shifts]), np.array([s[1] for s in shifts]))
    ref = np.zeros_like(out)
    for k, (dy, dx) in enumerate(shifts):
        for y, x in np.ndindex(5, 4):
            if 0 <= y + dy < 5 and 0 <= x + dx < 4:
                ref[:, :, y + dy, x + dx] += cols[:, k, :, y, x]
    assert np.allclose(out, ref, rtol=1e-12, atol=1e-12)


# ---- relu backward ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_backward_matches_numpy_path(mode, monkeypatch, dtype):
    rng = np.random.default_rng(7)
    a = _data((5, 301), dtype, rng)
    g = _data((5, 301), dtype, rng)

    def run():
        x = disttorch.from_numpy(a.copy()).requires_grad_()
        F.relu(x).backward(disttorch.from_numpy(g))
        return (x.grad.numpy(),)
    got, ref = _both(monkeypatch, run)
    _same(got, ref)
    r = np.maximum(a, 0)  # PyTorch's threshold_backward(g, relu(a), 0): 0 where r <= 0, else g (NaN r: g)
    assert np.array_equal(got[0], np.where(r <= 0, dtype(0), g), equal_nan=True)


# ---- loading ---------------------------------------------------------------------------------------------
def _py(code: str, **env) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=ROOT, **env))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


_TRAIN = ("import sys, disttorch as t; m = t.nn.Linear({n}, 4); o = t.optim.Adam(m.parameters()); "
          "x = t.randn(8, {n}); t.nn.functional.relu(m(x)).sum().backward(); o.step(); "
          "print('numba' in sys.modules)")


def test_small_work_never_imports_numba():
    assert _py(_TRAIN.format(n=16)) == "False"


def test_switched_off_never_imports_numba():
    n = math.ceil(C.MIN_ELEMENTS / 4) + 1  # a weight above the threshold
    assert _py(_TRAIN.format(n=n)) == "True"
    assert _py(_TRAIN.format(n=n), DISTTORCH_COMPILED="0") == "False"


def test_a_kernel_module_that_fails_to_load_leaves_the_numpy_path(monkeypatch):
    """A numba that cannot compile or cache (say, no writable cache directory) warns once and falls back."""
    import importlib

    monkeypatch.setattr(C, "_MODULES", {"numba": True})
    monkeypatch.setattr(C, "_STATE", {"failed": None})
    real = importlib.import_module

    def failing(name, *a):
        if name.startswith("disttorch._compiled."):
            raise RuntimeError("cannot cache function 'adam': no locator available")
        return real(name, *a)
    monkeypatch.setattr(importlib, "import_module", failing)
    with pytest.warns(UserWarning, match="NumPy path"):
        assert C.get("adam") is None
    assert C.get("pool") is None and not C.available()
    p = disttorch.nn.Parameter(disttorch.zeros(C.MIN_ELEMENTS))
    p.grad = disttorch.ones(C.MIN_ELEMENTS)
    disttorch.optim.Adam([p], lr=0.5).step()  # the NumPy rule
    assert np.allclose(p.detach().numpy(), -0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_forward_matches_numpy(mode, monkeypatch, dtype):
    a = _data((7, 211), dtype, np.random.default_rng(8))
    got, ref = _both(monkeypatch, lambda: (F.relu(disttorch.from_numpy(a.copy())).numpy(),))
    _same(got, ref)
    assert got[0].tobytes() == np.maximum(a, dtype(0)).tobytes()  # NumPy's bits, -0.0 -> +0.0 included


# ---- SGD -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opts", [{}, {"momentum": 0.9}, {"momentum": 0.9, "dampening": 0.1},
                                  {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, {"maximize": True}])
def test_sgd_matches_numpy_path(mode, monkeypatch, dtype, opts):
    rng = np.random.default_rng(9)
    shapes = [(37, 29), (1000,)]
    inits = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[_data(s, dtype, rng, specials=False) for s in shapes] for _ in range(3)]

    _same(*_both(monkeypatch, lambda: _optimize(disttorch.optim.SGD, inits, grads, lr=0.1, **opts)))


def test_sgd_reaches_the_compiled_kernel(monkeypatch):
    k = C.get("sgd")
    calls = []
    monkeypatch.setattr(k, "sgd_momentum", lambda *a: calls.append(a[0].size))
    p = disttorch.nn.Parameter(disttorch.zeros(C.MIN_ELEMENTS))
    opt = disttorch.optim.SGD([p], lr=0.1, momentum=0.9)
    for _ in range(2):
        p.grad = disttorch.ones(C.MIN_ELEMENTS)
        opt.step()
    assert calls == [C.MIN_ELEMENTS]  # the first step makes the buffer on the NumPy path


# ---- embedding backward (np.add.at) ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_backward_matches_numpy_path(mode, monkeypatch, dtype):
    rng = np.random.default_rng(10)
    w0 = rng.standard_normal((50, 24)).astype(dtype)
    idx = rng.integers(0, 50, (9, 31))  # many repeats: the order of the sums matters
    g = rng.standard_normal((9, 31, 24)).astype(dtype)

    def run():
        w = disttorch.from_numpy(w0.copy()).requires_grad_()
        F.embedding(disttorch.from_numpy(idx), w).backward(disttorch.from_numpy(g))
        return (w.grad.numpy(),)
    got, ref = _both(monkeypatch, run)
    _same(got, ref)
    independent = np.zeros_like(w0)
    for i, row in zip(idx.reshape(-1), g.reshape(-1, 24)):
        independent[i] += row
    assert np.array_equal(got[0], independent)


def test_embedding_backward_rechecks_indices(monkeypatch):
    """Indices changed in place after the forward are checked again, never written out of bounds."""
    monkeypatch.setattr(C, "MIN_ELEMENTS", 1)
    idx = disttorch.tensor([1, 2, 3])
    w = disttorch.randn(4, 5, requires_grad=True)
    out = F.embedding(idx, w)
    idx.numpy()[1] = 1000
    with pytest.raises(IndexError, match="out of range"):
        out.sum().backward()


def test_pool_adjoint_of_another_dtype_takes_the_numpy_scatter():
    """A gradient in a dtype the kernels are not compiled for (float16) goes through the NumPy adjoint."""
    from disttorch.ops import pool as PL

    a = np.random.default_rng(11).standard_normal((2, 3, 6, 4)).astype(np.float32)
    _, _, scatter = PL._max_pool2d_compiled(a, (3, 2), False)
    g = np.arange(2 * 3 * 3 * 2, dtype=np.float16).reshape(2, 3, 3, 2)
    got = scatter(g)
    assert got.dtype == np.float16
    assert np.array_equal(got.astype(np.float32), scatter(g.astype(np.float32)))
