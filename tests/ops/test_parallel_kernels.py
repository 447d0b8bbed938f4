"""Kernels split over the intra-op pool give the single-threaded (pure NumPy) result bit for bit.

Each case runs once with one pool thread (the reference path) and once with 2 on sizes above the pool's
thresholds (lowered to 256 Ki elements to keep the arrays small; the defaults are 4 Mi and 16 Mi), counts
that the pool really ran, and compares the bytes of every output and gradient. BLAS stays at one thread in
both runs: a multi-threaded BLAS may itself sum in another order (outside the pool's rule). The compiled
kernels (disttorch/_compiled, tested in tests/test_compiled.py) are off here: these are the NumPy paths' splits.
"""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import disttorch
import disttorch.nn.functional as F
from disttorch import _compiled as C
from disttorch import _parallel as P


@pytest.fixture(autouse=True)
def _numpy_paths(monkeypatch):
    monkeypatch.setattr(C, "ENABLED", False)


@pytest.fixture
def split_counter(monkeypatch):
    """Runs ``fn`` with 1 then 2 threads; returns (serial, split) results and asserts the split used the pool."""
    before = disttorch.get_num_threads()
    calls = []
    real = P.run_tasks

    def counting(tasks, blas=False):
        calls.append(len(tasks))
        return real(tasks, blas=blas)

    monkeypatch.setattr(P, "run_tasks", counting)

    def both(fn):
        try:
            with threadpool_limits(1, user_api="blas"):
                P.set_threads(1)
                ref = fn()
                assert calls == [], "the 1-thread reference must not split"
                P.set_threads(2)
                P.MIN_SIZE = P.MIN_STREAM = 1 << 18  # reset by set_num_threads below
                got = fn()
            assert calls and max(calls) >= 2, "the 2-thread run did not use the pool"
            calls.clear()
            return ref, got
        finally:
            disttorch.set_num_threads(before)
    return both


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    assert a.tobytes() == b.tobytes()


def _conv_step(x, w, b, stride=1, padding=1):
    xt = disttorch.from_numpy(x.copy()).requires_grad_()
    wt = disttorch.from_numpy(w.copy()).requires_grad_()
    bt = disttorch.from_numpy(b.copy()).requires_grad_()
    y = F.conv2d(xt, wt, bt, stride=stride, padding=padding)
    g = np.cos(np.arange(y.numel(), dtype=np.float32)).reshape(tuple(y.shape))
    y.backward(disttorch.from_numpy(g))
    return [y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()]


@pytest.mark.parametrize("cin,cout,stride", [(1, 16, 1), (16, 32, 1), (8, 16, 2)])
def test_conv2d_forward_and_grads_bitwise(split_counter, monkeypatch, cin, cout, stride):
    from disttorch.ops import im2col as K

    monkeypatch.setattr(K, "_SPLIT_WORK", 4_000_000)  # split the products too (the CNN's sizes use BLAS threads)
    rng = np.random.default_rng(cin)
    x = rng.standard_normal((64, cin, 28, 28)).astype(np.float32)
    w = rng.standard_normal((cout, cin, 3, 3)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    ref, got = split_counter(lambda: _conv_step(x, w, b, stride))
    for r, g in zip(ref, got):
        _same_bits(r, g)
    # and the forward against an independent reference (a direct sum over the 9 taps, float64)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    ho = (28 + 2 - 3) // stride + 1
    direct = np.zeros((64, cout, ho, ho))
    for i in range(3):
        for j in range(3):
            patch = xp[:, :, i:i + stride * ho:stride, j:j + stride * ho:stride]
            direct += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j].astype(np.float64))
    np.testing.assert_allclose(got[0], direct + b[:, None, None], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("hw", [(32, 32), (33, 31)])
def test_max_pool2d_forward_and_grad_bitwise(split_counter, hw):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 16) + hw).astype(np.float32)
    x[:, :, 0, :4] = 0.5  # ties: the first maximum must win on every path

    def step():
        xt = disttorch.from_numpy(x.copy()).requires_grad_()
        y = F.max_pool2d(xt, 2)
        y.backward(disttorch.from_numpy(np.sin(np.arange(y.numel(), dtype=np.float32)).reshape(tuple(y.shape))))
        return [y.detach().numpy(), xt.grad.numpy()]

    ref, got = split_counter(step)
    for r, g in zip(ref, got):
        _same_bits(r, g)
    oh, ow = hw[0] // 2, hw[1] // 2
    expect = x[:, :, :2 * oh, :2 * ow].reshape(32, 16, oh, 2, ow, 2).max(axis=(3, 5))
    _same_bits(got[0], expect)
    assert got[1].sum() == pytest.approx(np.sin(np.arange(32 * 16 * oh * ow, dtype=np.float32)).sum(), rel=1e-4)


@pytest.mark.parametrize("name,dtype", [("Adam", np.float32), ("AdamW", np.float32), ("SGD", np.float32),
                                        ("Adam", np.float16), ("Adam", np.float64)])
def test_optimizer_update_bitwise(split_counter, name, dtype):
    rng = np.random.default_rng(2)
    p0 = rng.standard_normal((800, 700)).astype(dtype)  # 560,000 elements: several chunks per thread
    grads = [rng.standard_normal(p0.shape).astype(dtype) for _ in range(3)]
    kw = {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2} if name == "SGD" else \
        {"lr": 1e-2, "weight_decay": 1e-2, "amsgrad": True}

    def run():
        p = disttorch.nn.Parameter(disttorch.from_numpy(p0.copy()))
        opt = getattr(disttorch.optim, name)([p], **kw)
        for g in grads:
            p.grad = disttorch.from_numpy(g.copy())
            opt.step()
        return p.detach().numpy().copy()

    ref, got = split_counter(run)
    _same_bits(ref, got)
    if name == "Adam" and dtype == np.float64:  # against the textbook formulas (AMSGrad, L2 decay)
        p, m, v, vmax = p0.copy(), 0.0, 0.0, 0.0
        for t, g in enumerate(grads, 1):
            g = g + 1e-2 * p
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            vmax = np.maximum(vmax, v)
            p = p - 1e-2 / (1 - 0.9 ** t) * m / (np.sqrt(vmax) / np.sqrt(1 - 0.999 ** t) + 1e-8)
        np.testing.assert_allclose(got, p, rtol=1e-10, atol=1e-12)


def test_small_tensors_stay_on_the_serial_path(monkeypatch):
    before = disttorch.get_num_threads()
    disttorch.set_num_threads(2)
    try:
        calls = []
        monkeypatch.setattr(P, "run_tasks", lambda tasks, blas=False: calls.append(1))
        x = disttorch.randn(2, 4, 8, 8, requires_grad=True)
        F.max_pool2d(F.conv2d(x, disttorch.randn(4, 4, 3, 3), padding=1), 2).sum().backward()
        p = disttorch.nn.Parameter(disttorch.randn(100))
        p.grad = disttorch.randn(100)
        disttorch.optim.Adam([p]).step()
        assert calls == []
    finally:
        disttorch.set_num_threads(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unary_math_and_relu_bitwise(split_counter, dtype):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(300_003) * 3).astype(dtype)  # odd size: the last piece ends in a SIMD tail
    x[:5] = [0.0, -0.0, np.inf, -np.inf, np.nan]

    def run():
        out = []
        for name in ("exp", "log", "sqrt", "sin", "tanh", "atan", "floor", "abs"):
            out.append(getattr(disttorch, name)(disttorch.from_numpy(x)).numpy())
        xt = disttorch.from_numpy(x[:294_000].reshape(7, 42_000).copy()).requires_grad_()
        r = F.relu(xt)
        r.backward(disttorch.from_numpy(np.cos(np.arange(r.numel(), dtype=dtype)).reshape(tuple(r.shape))))
        return out + [r.detach().numpy(), xt.grad.numpy()]

    ref, got = split_counter(run)
    for r, g in zip(ref, got):
        _same_bits(r, g)
    with np.errstate(all="ignore"):  # against NumPy itself
        _same_bits(got[0], np.exp(x))
        _same_bits(got[1], np.log(x))
    xr = x[:294_000].reshape(7, 42_000)
    _same_bits(got[-2], np.maximum(xr, 0))


@pytest.mark.parametrize("kind", ["layer", "rms", "group"])
def test_row_norms_forward_and_grads_bitwise(split_counter, kind):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2000, 160)).astype(np.float32) * 3 + 1  # 2000 rows: not a multiple of the row align
    w = rng.standard_normal(160).astype(np.float32)
    b = rng.standard_normal(160).astype(np.float32)

    def run():
        xt, wt, bt = (disttorch.from_numpy(a.copy()).requires_grad_() for a in (x, w, b))
        if kind == "layer":
            y = F.layer_norm(xt, (160,), wt, bt)
        elif kind == "rms":
            y = F.rms_norm(xt, (160,), wt, eps=1e-6)
        else:
            y = F.group_norm(xt.reshape(200, 160, 10), 8, wt, bt)
        y.backward(disttorch.from_numpy(np.sin(np.arange(y.numel(), dtype=np.float32)).reshape(tuple(y.shape))))
        return [y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()]

    ref, got = split_counter(run)
    for r, g in zip(ref, got):
        _same_bits(r, g)
    if kind == "layer":  # against the definition, in float64
        x64 = x.astype(np.float64)
        expect = (x64 - x64.mean(1, keepdims=True)) / np.sqrt(x64.var(1, keepdims=True) + 1e-5) * w + b
        np.testing.assert_allclose(got[0], expect, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32])
def test_sums_over_leading_or_trailing_axes_bitwise(split_counter, dtype):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((12, 50, 500)) * 100).astype(dtype)

    def run():
        t = disttorch.from_numpy(x)
        out = [t.sum((1, 2)), t.sum(0), t.sum((0, 1), keepdim=True), t.sum(-1)]
        if dtype != np.int32:
            out += [t.mean((2, 1)), t.mean(0, keepdim=True)]
        return [o.numpy() for o in out]

    ref, got = split_counter(run)
    for r, g in zip(ref, got):
        _same_bits(r, g)
    if dtype in (np.float32, np.float64):  # NumPy's own sums, summed in the same order
        _same_bits(got[0], x.sum((1, 2)))
        _same_bits(got[1], x.sum(0))
        _same_bits(got[3], x.sum(-1))


def test_many_small_adam_updates_run_together_bitwise(split_counter):
    rng = np.random.default_rng(6)
    shapes = [(128, 128), (384, 128), (384,), (512, 128), (128,), (128, 512), (1000, 128), (7,)]  # each < threshold
    p0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    g0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]

    def run():
        ps = [disttorch.nn.Parameter(disttorch.from_numpy(a.copy())) for a in p0]
        opt = disttorch.optim.AdamW(ps, lr=1e-2)
        for _ in range(2):
            for p, g in zip(ps, g0):
                p.grad = disttorch.from_numpy(g.copy())
            opt.step()
        return [p.detach().numpy().copy() for p in ps]

    ref, got = split_counter(run)
    for r, g in zip(ref, got):
        _same_bits(r, g)
