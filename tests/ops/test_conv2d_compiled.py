"""2-D convolutions through the compiled per-sample kernels (disttorch/ops/conv2d_compiled.py): forward, weight
and input gradients against a reference written out here (padded windows and einsum, independent of im2col),
on one thread and split over the pool, and the cases that keep the NumPy path."""
import numpy as np
import pytest

import disttorch
import disttorch.nn.functional as F
from disttorch import _compiled as C
from disttorch import _parallel as P
from disttorch.ops import conv2d_compiled as CC

pytest.importorskip("numba")

# (N, C, H, W, O, kernel, stride, padding, dilation)
GEOMETRIES = [
    (8, 16, 14, 14, 32, (3, 3), (1, 1), (1, 1), (1, 1)),
    (4, 8, 17, 13, 16, (3, 5), (2, 1), (1, 2), (1, 1)),
    (4, 8, 16, 16, 8, (3, 3), (1, 1), (2, 2), (2, 2)),
    (3, 12, 11, 12, 6, (4, 4), (2, 3), (0, 0), (1, 1)),
    (2, 4, 20, 20, 5, (3, 3), (3, 2), (4, 1), (2, 3)),
]


def _pads(pad):
    """((top, bottom), (left, right)) from PyTorch's symmetric (ph, pw) or already per side."""
    return tuple(p if isinstance(p, tuple) else (p, p) for p in pad)


def _windows(x, kh, kw, stride, pad, dil):
    """(N, C, KH, KW, OH, OW): the padded input under every kernel position."""
    (t, bo), (le, ri) = _pads(pad)
    xp = np.pad(x, ((0, 0), (0, 0), (t, bo), (le, ri)))
    oh = (xp.shape[2] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (xp.shape[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    win = np.empty(x.shape[:2] + (kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dil[0], j * dil[1]
            rows = slice(r0, r0 + stride[0] * (oh - 1) + 1, stride[0])
            win[:, :, i, j] = xp[:, :, rows, c0:c0 + stride[1] * (ow - 1) + 1:stride[1]]
    return win


def _reference(x, w, b, g, stride, pad, dil):
    """Forward, weight gradient and input gradient of conv2d, in float64 loops over kernel positions."""
    x64, w64, g64 = x.astype(np.float64), w.astype(np.float64), g.astype(np.float64)
    kh, kw = w.shape[2:]
    win = _windows(x64, kh, kw, stride, pad, dil)
    y = np.einsum("ocij,ncijhw->nohw", w64, win) + b.astype(np.float64)[None, :, None, None]
    gw = np.einsum("nohw,ncijhw->ocij", g64, win)
    (t, bo), (le, ri) = _pads(pad)
    gxp = np.zeros((x.shape[0], x.shape[1], x.shape[2] + t + bo, x.shape[3] + le + ri))
    oh, ow = g.shape[2:]
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dil[0], j * dil[1]
            gxp[:, :, r0:r0 + stride[0] * (oh - 1) + 1:stride[0], c0:c0 + stride[1] * (ow - 1) + 1:stride[1]] += \
                np.einsum("oc,nohw->nchw", w64[:, :, i, j], g64)
    gx = gxp[:, :, t:t + x.shape[2], le:le + x.shape[3]]
    return y, gw, gx


def _through_api(x, w, b, g, stride, pad, dil):
    xt = disttorch.from_numpy(x.copy()).requires_grad_(True)
    wt = disttorch.from_numpy(w.copy()).requires_grad_(True)
    bt = disttorch.from_numpy(b.copy()).requires_grad_(True)
    y = F.conv2d(xt, wt, bt, stride=stride, padding=pad, dilation=dil)
    y.backward(disttorch.from_numpy(g.copy()))
    return y.detach().numpy(), wt.grad.numpy(), xt.grad.numpy(), bt.grad.numpy()


def _case(geom, dtype, seed=0):
    n, c, h, w_, o, k, stride, pad, dil = geom
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w_)).astype(dtype)
    w = (rng.standard_normal((o, c) + k) / np.sqrt(c * k[0] * k[1])).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    oh = (h + 2 * pad[0] - dil[0] * (k[0] - 1) - 1) // stride[0] + 1
    ow = (w_ + 2 * pad[1] - dil[1] * (k[1] - 1) - 1) // stride[1] + 1
    g = rng.standard_normal((n, o, oh, ow)).astype(dtype)
    return x, w, b, g


@pytest.fixture
def small_work(monkeypatch):
    """The compiled path from any size (the geometries above are small to keep the test fast)."""
    monkeypatch.setattr(C, "MIN_ELEMENTS", 1)


@pytest.mark.parametrize("geom", GEOMETRIES, ids=lambda g: "x".join(map(str, g[:5])) + f"-k{g[5]}s{g[6]}p{g[7]}d{g[8]}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_reference(small_work, geom, dtype):
    x, w, b, g = _case(geom, dtype)
    stride, pad, dil = geom[6:]
    pads = ((pad[0], pad[0]), (pad[1], pad[1]))
    assert CC.forward(x, w, b, pads, stride, dil) is not None  # the compiled path applies to these
    y, gw, gx, gb = _through_api(x, w, b, g, stride, pad, dil)
    ry, rgw, rgx = _reference(x, w, b, g, stride, pad, dil)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    for got, want in ((y, ry), (gw, rgw), (gx, rgx)):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, **tol)
    np.testing.assert_allclose(gb, g.astype(np.float64).sum((0, 2, 3)), **tol)


def test_same_padding_with_an_even_kernel(small_work):
    """padding='same' with a 4x4 kernel pads one row/column before and two after (PyTorch's split)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 6, 9, 10))
    w = rng.standard_normal((5, 6, 4, 4)) / 10
    b = rng.standard_normal(5)
    g = rng.standard_normal((3, 5, 9, 10))
    assert CC.forward(x, w, b, ((1, 2), (1, 2)), (1, 1), (1, 1)) is not None
    xt = disttorch.from_numpy(x.copy()).requires_grad_(True)
    wt = disttorch.from_numpy(w.copy()).requires_grad_(True)
    with pytest.warns(UserWarning, match="even kernel"):  # as PyTorch
        y = F.conv2d(xt, wt, disttorch.from_numpy(b), padding="same")
    y.backward(disttorch.from_numpy(g))
    ry, rgw, rgx = _reference(x, w, b, g, (1, 1), ((1, 2), (1, 2)), (1, 1))
    for got, want in ((y.detach().numpy(), ry), (wt.grad.numpy(), rgw), (xt.grad.numpy(), rgx)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("geom", GEOMETRIES[:3], ids=["base", "strided", "dilated"])
def test_split_over_the_pool(small_work, monkeypatch, geom):
    """Two pool threads: every gradient bitwise as on one thread (the same per-sample products; the weight
    gradient's partial sums are per fixed piece of samples); every BLAS back at its thread count."""
    from threadpoolctl import threadpool_info

    geom = (2 * CC._PIECE,) + geom[1:]  # two pieces of the weight gradient's partial sums
    x, w, b, g = _case(geom, np.float32, seed=1)
    stride, pad, dil = geom[6:]
    before = disttorch.get_num_threads()
    try:
        disttorch.set_num_threads(1)
        one = _through_api(x, w, b, g, stride, pad, dil)
        disttorch.set_num_threads(2)
        blas = [(i["filepath"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]
        monkeypatch.setattr(C, "SPLIT_MIN", 1)
        calls = []
        real = P.run_tasks
        monkeypatch.setattr(P, "run_tasks", lambda tasks, **kw: calls.append(len(tasks)) or real(tasks, **kw))
        two = _through_api(x, w, b, g, stride, pad, dil)
        assert calls.count(2) >= 3  # forward, weight and input gradients each split in two
        assert [(i["filepath"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"
                and i["filepath"] in dict(blas)] == blas
    finally:
        disttorch.set_num_threads(before)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)


def test_cases_that_keep_the_numpy_path(small_work, monkeypatch):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 8, 10, 10)).astype(np.float32)
    w = rng.standard_normal((6, 8, 3, 3)).astype(np.float32)
    pads = ((1, 1), (1, 1))
    assert CC.forward(x, w, None, pads, (1, 1), (1, 1)) is not None
    # grouped, thin columns (1 channel, 3x3: 9 < 32), half precision, mixed dtypes, 3-D input, no kernels
    assert CC.forward(x, w[:, :4], None, pads, (1, 1), (1, 1), groups=2) is None
    assert CC.forward(x[:, :1], w[:, :1], None, pads, (1, 1), (1, 1)) is None
    assert CC.forward(x.astype(np.float16), w.astype(np.float16), None, pads, (1, 1), (1, 1)) is None
    assert CC.forward(x, w.astype(np.float64), None, pads, (1, 1), (1, 1)) is None
    assert CC.input_grad(x[:, :6], w, (4, 8, 10), pads, (1, 1), (1, 1)) is None
    monkeypatch.setattr(C, "get", lambda name: None)
    assert CC.forward(x, w, None, pads, (1, 1), (1, 1)) is None
    # and the public op still gives the reference's values on the NumPy path
    g = rng.standard_normal((4, 6, 10, 10)).astype(np.float32)
    y, gw, gx, _ = _through_api(x, w, np.zeros(6, np.float32), g, (1, 1), (1, 1), (1, 1))
    ry, rgw, rgx = _reference(x, w, np.zeros(6, np.float32), g, (1, 1), (1, 1), (1, 1))
    for got, want in ((y, ry), (gw, rgw), (gx, rgx)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_bounded_scratch_and_partial_sums(small_work, monkeypatch):
    """Per-sample columns beyond the cache-sized limit keep the NumPy path; with few partial sums allowed the
    pieces grow (from the shapes alone), and two threads still give the one-thread weight gradient bit for bit."""
    x, w, b, g = _case(GEOMETRIES[0], np.float32, seed=5)
    pads = ((1, 1), (1, 1))
    monkeypatch.setattr(CC, "_MAX_SAMPLE_COLS", 144 * 196 - 1)
    assert CC.forward(x, w, b, pads, (1, 1), (1, 1)) is None
    assert CC.weight_grad(x, g, w.shape, pads, (1, 1), (1, 1)) is None
    assert CC.input_grad(g, w, x.shape, pads, (1, 1), (1, 1)) is None
    monkeypatch.setattr(CC, "_MAX_SAMPLE_COLS", 1 << 22)
    monkeypatch.setattr(CC, "_KEEP_LIMIT", 2 * 144 * 32)  # two weight-sized partial sums: pieces of 4 of 8 samples
    monkeypatch.setattr(CC, "_PIECE", 1)
    monkeypatch.setattr(C, "SPLIT_MIN", 1)
    shapes = []
    real_zeros = np.zeros
    monkeypatch.setattr(CC.np, "zeros", lambda shape, **kw: shapes.append(shape) or real_zeros(shape, **kw))
    before = disttorch.get_num_threads()
    try:
        disttorch.set_num_threads(1)
        one = CC.weight_grad(x, g, w.shape, pads, (1, 1), (1, 1))
        disttorch.set_num_threads(2)
        two = CC.weight_grad(x, g, w.shape, pads, (1, 1), (1, 1))
    finally:
        disttorch.set_num_threads(before)
    assert shapes == [(2, 144, 32), (2, 144, 32)]
    assert np.array_equal(one, two)
    rgw = _reference(x, w, b, g, (1, 1), (1, 1), (1, 1))[1]
    np.testing.assert_allclose(one, rgw, rtol=1e-4, atol=1e-4)


def test_below_the_size_threshold_nothing_is_compiled():
    x = np.ones((1, 4, 6, 6), np.float32)
    w = np.ones((2, 4, 3, 3), np.float32)
    assert x.shape[1] * 9 * 36 < C.MIN_ELEMENTS
    assert CC.forward(x, w, None, ((1, 1), (1, 1)), (1, 1), (1, 1)) is None


def test_matmul_holds_small_products_to_one_blas_thread(monkeypatch):
    """P.matmul: the NumPy product's values; BLAS at one thread during a small product with several threads in use,
    untouched for large ones and with one thread."""
    rng = np.random.default_rng(3)
    seen = []

    def spy():
        seen.append("serial")
        return []
    monkeypatch.setattr(P, "_blas_serial", spy)
    before = disttorch.get_num_threads()
    try:
        disttorch.set_num_threads(2)
        for shape_a, shape_b in (((64, 100), (100, 30)), ((5, 64, 100), (100, 30)), ((100,), (100, 200))):
            a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
            assert np.array_equal(P.matmul(np, a, b), np.matmul(a, b))
        assert len(seen) == 3
        big_a, big_b = np.ones((256, 256)), np.ones((256, 256))  # 16.8 M multiply-adds
        out = np.empty((256, 256))
        P.matmul(np, big_a, big_b, out=out)
        assert len(seen) == 3 and out[0, 0] == 256
        tiny = P.matmul(np, np.ones((4, 4)), np.ones((4, 4)))  # below OpenBLAS's own threading
        assert len(seen) == 3 and tiny[0, 0] == 4
        disttorch.set_num_threads(1)
        P.matmul(np, *(rng.standard_normal((64, 100)), rng.standard_normal((100, 30))))
        assert len(seen) == 3
    finally:
        disttorch.set_num_threads(before)
