"""conv1d/2d/3d, conv_transpose1d/2d/3d, unfold and fold against naive loop references, plus gradchecks."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import disttorch
from disttorch.ops.conv import conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d, fold, \
    unfold
from tests.helpers import assert_close, check_grad

rng = np.random.default_rng(0)
CONV = {1: conv1d, 2: conv2d, 3: conv3d}
CONV_T = {1: conv_transpose1d, 2: conv_transpose2d, 3: conv_transpose3d}


def R(*shape):
    return rng.standard_normal(shape)


def T(a, requires_grad=False):
    return disttorch.tensor(a, requires_grad=requires_grad)


# ---- naive references (direct loops over output positions; only for tiny shapes) ---------------------
def _tup(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def ref_conv(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Cross-correlation by a loop over (sample, group, output position)."""
    unbatched = x.ndim == w.ndim - 1
    if unbatched:
        x = x[None]
    nsp = w.ndim - 2
    stride, dilation = _tup(stride, nsp), _tup(dilation, nsp)
    ksize = w.shape[2:]
    if padding == "valid":
        pads = [(0, 0)] * nsp
    elif padding == "same":
        tot = [d * (k - 1) for k, d in zip(ksize, dilation)]
        pads = [(t // 2, t - t // 2) for t in tot]
    else:
        pads = [(p, p) for p in _tup(padding, nsp)]
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)
    n, c = x.shape[:2]
    o, cg = w.shape[:2]
    og = o // groups
    osize = [(xp.shape[2 + i] - dilation[i] * (ksize[i] - 1) - 1) // stride[i] + 1 for i in range(nsp)]
    y = np.zeros((n, o, *osize), dtype=np.result_type(x, w))
    for ni, g in itertools.product(range(n), range(groups)):
        for pos in itertools.product(*[range(s) for s in osize]):
            win = xp[(ni, slice(g * cg, (g + 1) * cg)) + tuple(
                slice(p * s, p * s + d * (k - 1) + 1, d) for p, s, d, k in zip(pos, stride, dilation, ksize))]
            for oi in range(g * og, (g + 1) * og):
                y[(ni, oi) + pos] = (win * w[oi]).sum()
    if b is not None:
        y += b.reshape((-1,) + (1,) * nsp)
    return y[0] if unbatched else y


def ref_conv_t(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed convolution by scattering every input element times the kernel."""
    unbatched = x.ndim == w.ndim - 1
    if unbatched:
        x = x[None]
    nsp = w.ndim - 2
    stride, padding, dilation = _tup(stride, nsp), _tup(padding, nsp), _tup(dilation, nsp)
    opad = _tup(output_padding, nsp)
    ksize = w.shape[2:]
    n, cin = x.shape[:2]
    cg = w.shape[1]
    ig = cin // groups
    full = [(i - 1) * s + d * (k - 1) + 1 + q for i, s, d, k, q in zip(x.shape[2:], stride, dilation, ksize, opad)]
    y = np.zeros((n, cg * groups, *full), dtype=np.result_type(x, w))
    for ni, ci in itertools.product(range(n), range(cin)):
        g = ci // ig
        for pos in itertools.product(*[range(s) for s in x.shape[2:]]):
            for kpos in itertools.product(*[range(k) for k in ksize]):
                tgt = tuple(p * s + kp * d for p, s, kp, d in zip(pos, stride, kpos, dilation))
                y[(ni, slice(g * cg, (g + 1) * cg)) + tgt] += x[(ni, ci) + pos] * w[(ci, slice(None)) + kpos]
    y = y[(slice(None), slice(None)) + tuple(slice(p, f - p) for p, f in zip(padding, full))]
    if b is not None:
        y += b.reshape((-1,) + (1,) * nsp)
    return y[0] if unbatched else y


def ref_unfold(x, kernel_size, dilation=1, padding=0, stride=1):
    k, d, p, s = _tup(kernel_size, 2), _tup(dilation, 2), _tup(padding, 2), _tup(stride, 2)
    xp = np.pad(x, [(0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])])
    oh = (xp.shape[2] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (xp.shape[3] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    out = np.zeros((x.shape[0], x.shape[1] * k[0] * k[1], oh * ow))
    for i, j in itertools.product(range(oh), range(ow)):
        blk = xp[:, :, i * s[0]:i * s[0] + d[0] * (k[0] - 1) + 1:d[0], j * s[1]:j * s[1] + d[1] * (k[1] - 1) + 1:d[1]]
        out[:, :, i * ow + j] = blk.reshape(x.shape[0], -1)
    return out


def ref_fold(cols, size, kernel_size, dilation=1, padding=0, stride=1):
    k, d, p, s = _tup(kernel_size, 2), _tup(dilation, 2), _tup(padding, 2), _tup(stride, 2)
    n = cols.shape[0]
    c = cols.shape[1] // (k[0] * k[1])
    out = np.zeros((n, c, size[0] + 2 * p[0], size[1] + 2 * p[1]))
    oh = (out.shape[2] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (out.shape[3] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    for i, j in itertools.product(range(oh), range(ow)):
        blk = cols[:, :, i * ow + j].reshape(n, c, k[0], k[1])
        out[:, :, i * s[0]:i * s[0] + d[0] * (k[0] - 1) + 1:d[0], j * s[1]:j * s[1] + d[1] * (k[1] - 1) + 1:d[1]] += blk
    return out[:, :, p[0]:p[0] + size[0], p[1]:p[1] + size[1]]


# ---- forward ----------------------------------------------------------------------------------------
CONV_CASES = [
    # (x shape, w shape, bias, kwargs)
    ((2, 3, 9), (4, 3, 3), True, {}),
    ((2, 3, 9), (4, 3, 3), False, dict(stride=2, padding=1)),
    ((3, 10), (2, 3, 4), True, dict(padding="same", dilation=2)),  # unbatched 1d
    ((2, 4, 8), (4, 1, 3), False, dict(groups=4, padding="valid")),  # depthwise 1d
    ((2, 3, 7, 6), (4, 3, 3, 3), True, {}),
    ((2, 3, 7, 6), (4, 3, 3, 2), True, dict(stride=(2, 1), padding=(1, 2))),
    ((2, 3, 7, 6), (4, 3, 3, 3), False, dict(dilation=2, padding=2)),
    ((2, 4, 6, 6), (6, 2, 3, 3), True, dict(groups=2, stride=2, padding=1)),
    ((2, 4, 6, 6), (8, 1, 3, 3), True, dict(groups=4, padding=1)),  # depthwise, channel multiplier 2
    ((2, 3, 6, 5), (4, 3, 2, 2), True, dict(padding="same")),  # even kernel: asymmetric padding
    ((2, 3, 6, 5), (4, 3, 3, 2), False, dict(padding="same", dilation=(2, 1))),
    ((3, 6, 5), (4, 3, 3, 3), True, dict(padding=1)),  # unbatched 2d
    ((2, 3, 5, 5), (4, 3, 1, 1), True, {}),  # 1x1
    ((2, 3, 5, 5), (4, 3, 5, 5), True, {}),  # kernel as big as the image
    ((1, 2, 4, 5, 4), (3, 2, 2, 3, 2), True, dict(stride=(1, 2, 1), padding=(1, 0, 1))),
    ((2, 5, 4, 4), (2, 2, 2, 2, 2), False, dict(padding="same")),  # unbatched 3d
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("xs,ws,has_b,kw", CONV_CASES)
def test_conv_forward(xs, ws, has_b, kw):
    x, w = R(*xs), R(*ws)
    b = R(ws[0]) if has_b else None
    out = CONV[len(ws) - 2](T(x), T(w), None if b is None else T(b), **kw)
    assert_close(out, ref_conv(x, w, b, **kw), rtol=1e-10, atol=1e-10, check_dtype=disttorch.float64)


CONV_T_CASES = [
    ((2, 3, 5), (3, 2, 3), True, {}),
    ((2, 3, 5), (3, 2, 3), False, dict(stride=3, padding=1, output_padding=2)),
    ((3, 5), (3, 2, 2), True, dict(dilation=2)),  # unbatched 1d
    ((2, 3, 4, 5), (3, 2, 3, 3), True, {}),
    ((2, 3, 4, 5), (3, 2, 3, 2), True, dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2))),
    ((2, 4, 3, 3), (4, 1, 3, 3), False, dict(groups=4, stride=2)),
    ((2, 4, 3, 3), (4, 3, 2, 2), True, dict(groups=2, dilation=3, output_padding=2)),  # op < dilation
    ((3, 4, 4), (3, 2, 3, 3), False, dict(stride=2, padding=1, output_padding=1)),  # unbatched 2d
    ((1, 2, 2, 3, 2), (2, 3, 2, 2, 2), True, dict(stride=2, padding=1, output_padding=1)),
]


@pytest.mark.parametrize("xs,ws,has_b,kw", CONV_T_CASES)
def test_conv_transpose_forward(xs, ws, has_b, kw):
    x, w = R(*xs), R(*ws)
    b = R(ws[1] * kw.get("groups", 1)) if has_b else None
    out = CONV_T[len(ws) - 2](T(x), T(w), None if b is None else T(b), **kw)
    assert_close(out, ref_conv_t(x, w, b, **kw), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("xs,ws,kw", [((2, 3, 6, 5), (4, 3, 3, 2), dict(stride=2, padding=1)),
                                      ((1, 4, 5, 5), (4, 2, 3, 3), dict(groups=2, dilation=2, padding=1))])
def test_conv_transpose_is_adjoint_of_conv(xs, ws, kw):
    x, w = R(*xs), R(*ws)
    y = conv2d(T(x), T(w), **kw).numpy()
    z = R(*y.shape)
    size = xs[2:]
    base = [(o - 1) * kw.get("stride", 1) - 2 * kw["padding"] + kw.get("dilation", 1) * (k - 1) + 1
            for o, k in zip(y.shape[2:], ws[2:])]
    opad = tuple(s - b for s, b in zip(size, base))
    zt = conv_transpose2d(T(z), T(w), output_padding=opad, **kw).numpy()
    assert zt.shape == x.shape
    np.testing.assert_allclose((y * z).sum(), (x * zt).sum(), rtol=1e-10)


def test_empty_batch():
    out = conv2d(T(np.zeros((0, 3, 5, 5))), T(R(4, 3, 3, 3)), T(R(4)), padding=1)
    assert tuple(out.shape) == (0, 4, 5, 5)
    out = conv_transpose2d(T(np.zeros((0, 3, 5, 5))), T(R(3, 4, 3, 3)))
    assert tuple(out.shape) == (0, 4, 7, 7)


# ---- dtypes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dt,tol", [(disttorch.float32, 1e-5), (disttorch.float16, 2e-2), (disttorch.bfloat16, 5e-2)])
def test_dtype_preserved(dt, tol):
    x, w, b = R(2, 3, 6, 6), R(4, 3, 3, 3) / 3, R(4)
    out = conv2d(T(x).to(dt), T(w).to(dt), T(b).to(dt), padding=1)
    assert out.dtype == dt
    assert_close(out.float(), ref_conv(x, w, b, padding=1), rtol=tol, atol=tol * 4)
    out = conv_transpose2d(T(x).to(dt), T(R(3, 4, 3, 3) / 3).to(dt), stride=2)
    assert out.dtype == dt
    assert unfold(T(x).to(dt), 2).dtype == dt


def test_float32_grads_stay_float32():
    x = T(R(2, 3, 6, 6)).float().requires_grad_()
    w = T(R(4, 3, 3, 3)).float().requires_grad_()
    b = T(R(4)).float().requires_grad_()
    conv2d(x, w, b, padding=1).sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == disttorch.float32


def test_integer_conv():
    x, w = rng.integers(-3, 3, (2, 3, 5, 5)), rng.integers(-3, 3, (4, 3, 3, 3))
    out = conv2d(disttorch.tensor(x), disttorch.tensor(w))
    assert out.dtype == disttorch.int64
    np.testing.assert_array_equal(out.numpy(), ref_conv(x, w))


# ---- unfold / fold ------------------------------------------------------------------------------------
UNFOLD_CASES = [((2, 3, 5, 5), dict(kernel_size=2)),
                ((1, 2, 6, 5), dict(kernel_size=(2, 3), stride=2, padding=1)),
                ((2, 2, 7, 6), dict(kernel_size=(3, 2), dilation=(2, 1), padding=(1, 0), stride=(1, 2)))]


@pytest.mark.parametrize("xs,kw", UNFOLD_CASES)
def test_unfold_fold_forward(xs, kw):
    x = R(*xs)
    cols = unfold(T(x), **kw)
    assert_close(cols, ref_unfold(x, **kw), rtol=1e-12, atol=0)
    c = R(*cols.shape)
    assert_close(fold(T(c), xs[2:], **kw), ref_fold(c, xs[2:], **kw), rtol=1e-10, atol=1e-12)
    # fold(unfold(x)) multiplies each pixel by the number of blocks covering it.
    count = fold(unfold(T(np.ones(xs)), **kw), xs[2:], **kw).numpy()
    assert_close(fold(cols, xs[2:], **kw), x * count, rtol=1e-12, atol=1e-12)
    # fold is unfold's adjoint.
    np.testing.assert_allclose((cols.numpy() * c).sum(), (x * fold(T(c), xs[2:], **kw).numpy()).sum(), rtol=1e-10)


def test_unfold_fold_unbatched():
    x = R(3, 5, 4)
    cols = unfold(T(x), 2, padding=1)
    assert_close(cols, ref_unfold(x[None], 2, padding=1)[0])
    assert tuple(fold(cols, (5, 4), 2, padding=1).shape) == (3, 5, 4)


# ---- gradients ----------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("xs,ws,has_b,kw", [
    ((1, 2, 4, 4), (2, 2, 2, 2), True, dict(stride=2, padding=1)),
    ((1, 2, 4, 5), (2, 2, 3, 2), True, dict(padding="same", dilation=(1, 2))),
    ((1, 4, 4, 4), (4, 2, 2, 2), False, dict(groups=2, stride=(1, 2))),
    ((3, 4, 3), (2, 3, 2, 2), True, {}),  # unbatched
])
def test_conv2d_gradcheck_gradgradcheck(xs, ws, has_b, kw):
    args = (R(*xs), R(*ws), R(ws[0]) if has_b else None)
    check_grad(lambda x, w, b: conv2d(x, w, b, **kw), *args, gradgrad=True)


@pytest.mark.parametrize("nsp,xs,ws,kw", [
    (1, (2, 2, 5), (3, 2, 2), dict(stride=2, padding=1, dilation=2)),
    (3, (1, 1, 3, 3, 3), (2, 1, 2, 2, 2), dict(padding=(1, 0, 0))),
])
def test_conv1d_conv3d_gradcheck(nsp, xs, ws, kw):
    check_grad(lambda x, w, b: CONV[nsp](x, w, b, **kw), R(*xs), R(*ws), R(ws[0]))


@pytest.mark.parametrize("xs,ws,kw", [
    ((1, 2, 3, 3), (2, 2, 2, 2), dict(stride=2, output_padding=1)),
    ((1, 2, 2, 3), (2, 1, 2, 2), dict(groups=2, padding=1, dilation=2, output_padding=1)),
])
def test_conv_transpose2d_gradcheck_gradgradcheck(xs, ws, kw):
    b = R(ws[1] * kw.get("groups", 1))
    check_grad(lambda x, w, b: conv_transpose2d(x, w, b, **kw), R(*xs), R(*ws), b, gradgrad=True)


def test_conv_transpose1d_gradcheck():
    check_grad(lambda x, w: conv_transpose1d(x, w, stride=3, padding=1, output_padding=2), R(2, 2, 3), R(2, 3, 2))


def test_weight_only_grad_matches_full_grad():
    # The first layer of a CNN: the input needs no grad, so the weight grad reuses the forward's columns.
    x, w, b = R(2, 3, 5, 5), R(4, 3, 3, 3), R(4)
    g = R(2, 4, 3, 3)
    w1, b1 = T(w, True), T(b, True)
    conv2d(T(x), w1, b1, stride=2, padding=1).backward(T(g))
    x2, w2, b2 = T(x, True), T(w, True), T(b, True)
    gx, gw, gb = disttorch.autograd.grad(conv2d(x2, w2, b2, stride=2, padding=1), (x2, w2, b2), T(g), create_graph=True)
    assert_close(w1.grad, gw.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert_close(b1.grad, gb.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_conv_transpose_shared_columns_match_graph_path():
    # A plain backward of a transposed conv builds the columns of the output gradient once for both gradients;
    # with create_graph it takes the two differentiable primitives. Both must agree.
    x, w, b = R(3, 4, 3, 3), R(4, 2, 3, 3), R(2)
    g = R(3, 2, 7, 7)
    x1, w1, b1 = T(x, True), T(w, True), T(b, True)
    conv_transpose2d(x1, w1, b1, stride=2, padding=0).backward(T(g))
    x2, w2, b2 = T(x, True), T(w, True), T(b, True)
    gx, gw, gb = disttorch.autograd.grad(conv_transpose2d(x2, w2, b2, stride=2, padding=0), (x2, w2, b2), T(g),
                                         create_graph=True)
    assert_close(x1.grad, gx.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert_close(w1.grad, gw.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert_close(b1.grad, gb.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kw", [dict(kernel_size=2, stride=2, padding=1), dict(kernel_size=(2, 1), dilation=2)])
def test_unfold_fold_gradcheck(kw):
    check_grad(lambda x: unfold(x, **kw), R(1, 2, 3, 4), gradgrad=True)
    nblocks = unfold(T(np.zeros((1, 2, 3, 4))), **kw).shape[-1]
    kvol = np.prod(kw["kernel_size"]) if isinstance(kw["kernel_size"], tuple) else kw["kernel_size"] ** 2
    check_grad(lambda c: fold(c, (3, 4), **kw), R(1, 2 * kvol, nblocks), gradgrad=True)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("xs,ws,kw,transposed", [
    ((40, 3, 4, 4), (5, 3, 4, 4), dict(stride=2, padding=1), False),  # 2x2 outputs: multi-sample products
    ((9, 2, 12, 12), (3, 2, 3, 3), dict(padding=1, stride=1), False),  # 144 outputs: per-sample products
    ((40, 3, 2, 2), (3, 5, 4, 4), dict(stride=2, padding=1), True),    # small inputs to a transposed conv
    ((6, 2, 12, 12), (2, 3, 4, 4), dict(stride=2, padding=1), True),
])
def test_batched_products_match_reference(monkeypatch, request, threads, xs, ws, kw, transposed):
    # Batches large enough that the kernels split them into chunks (and, with 2 threads, run the chunks on two
    # threads); forward, input and weight gradients against the loop reference and the adjoint identity.
    from disttorch import _parallel as P
    from disttorch.ops import im2col as K

    before = P.threads()
    P.set_threads(threads)
    request.addfinalizer(lambda: P.set_threads(before))
    if threads > 1:  # split every product, however small
        monkeypatch.setattr(P, "MIN_SIZE", 0)
        monkeypatch.setattr(K, "_SPLIT_WORK", 0)
    monkeypatch.setattr(K, "_COLS_PER_GEMM", 16)  # many chunks even at these small sizes
    x, w = R(*xs), R(*ws) / 4
    xt, wt = T(x, True), T(w, True)
    fn = conv_transpose2d if transposed else conv2d
    y = fn(xt, wt, **kw)
    ref = ref_conv_t(x, w, None, **kw) if transposed else ref_conv(x, w, None, **kw)
    assert_close(y, ref, rtol=1e-10, atol=1e-10)
    g = R(*y.shape)
    y.backward(T(g))
    # y is linear in w and in x, so <grad_w, d> = <g, y(x, d)> for any direction d (likewise for x).
    d = R(*ws)
    dref = ref_conv_t(x, d, None, **kw) if transposed else ref_conv(x, d, None, **kw)
    np.testing.assert_allclose((wt.grad.numpy() * d).sum(), (g * dref).sum(), rtol=1e-9)
    dx = R(*xs)
    dxref = ref_conv_t(dx, w, None, **kw) if transposed else ref_conv(dx, w, None, **kw)
    np.testing.assert_allclose((xt.grad.numpy() * dx).sum(), (g * dxref).sum(), rtol=1e-9)


def test_weight_grad_memory_is_bounded_by_weight_and_columns():
    # A discriminator's 256->512 4x4 stride-2 conv at batch 64 on 8x8 inputs: the weight is 8 MiB and the columns
    # 16 MiB (float32). Per-sample partial weight gradients would be 64 x 8 MiB = 512 MiB.
    import tracemalloc

    x = T(np.random.default_rng(1).standard_normal((64, 256, 8, 8), dtype=np.float32))
    w = T(np.random.default_rng(2).standard_normal((512, 256, 4, 4), dtype=np.float32) / 64, True)
    y = conv2d(x, w, stride=2, padding=1)
    g = T(np.ones(y.shape, np.float32))
    tracemalloc.start()
    tracemalloc.reset_peak()
    y.backward(g)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert w.grad is not None and w.grad.shape == w.shape
    assert peak < 64 << 20, f"weight backward peaked at {peak / 2**20:.0f} MiB"


def test_node_names():
    x, w = T(R(1, 2, 4, 4), True), T(R(3, 2, 3, 3), True)
    y = conv2d(x, w)
    assert y.grad_fn.name() == "ConvolutionBackward0"
    assert len(y.grad_fn.next_functions) == 3 and y.grad_fn.next_functions[2][0] is None
    assert conv_transpose2d(x, T(R(2, 3, 3, 3), True)).grad_fn.name() == "ConvolutionBackward0"
    assert unfold(x, 2).grad_fn.name() == "Im2ColBackward0"
    assert fold(unfold(x, 2), (4, 4), 2).grad_fn.name() == "Col2ImBackward0"
    assert conv2d(T(R(1, 2, 4, 4)), T(R(3, 2, 3, 3))).grad_fn is None


def test_inplace_change_of_input_after_forward_is_detected():
    x, w = T(R(1, 2, 4, 4), True), T(R(3, 2, 3, 3), True)
    h = x * 1
    y = conv2d(h, w)
    h.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


# ---- errors ----------------------------------------------------------------------------------------
def _err(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()


X5 = R(1, 3, 5, 5)
W3 = R(4, 3, 3, 3)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: conv2d(T(R(2, 3)), T(W3)), RuntimeError,
     r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d, but got input of size: \[2, 3\]"),
    (lambda: conv1d(T(X5), T(W3)), RuntimeError, r"Expected 2D \(unbatched\) or 3D \(batched\) input to conv1d"),
    (lambda: conv2d(T(R(1, 2, 5, 5)), T(W3)), RuntimeError,
     r"Given groups=1, weight of size \[4, 3, 3, 3\], expected input\[1, 2, 5, 5\] to have 3 channels, but got 2 "
     r"channels instead"),
    (lambda: conv2d(T(R(2, 5, 5)), T(W3)), RuntimeError, r"expected input\[1, 2, 5, 5\] to have 3 channels"),
    (lambda: conv2d(T(R(1, 3, 2, 2)), T(W3)), RuntimeError,
     r"Calculated padded input size per channel: \(2 x 2\). Kernel size: \(3 x 3\). Kernel size can't be greater"),
    (lambda: conv2d(T(X5), T(W3), stride=2, padding="same"), RuntimeError,
     "padding='same' is not supported for strided convolutions"),
    (lambda: conv2d(T(X5), T(W3), padding="full"), RuntimeError, "Invalid padding string: 'full'"),
    (lambda: conv2d(T(X5), T(W3), stride=0), RuntimeError, "non-positive stride is not supported"),
    (lambda: conv2d(T(X5), T(W3), padding=-1), RuntimeError, "negative padding is not supported"),
    (lambda: conv2d(T(X5), T(W3), dilation=0), RuntimeError, "dilation should be greater than zero"),
    (lambda: conv2d(T(X5), T(W3), groups=0), RuntimeError, "non-positive groups is not supported"),
    (lambda: conv2d(T(R(1, 6, 5, 5)), T(R(3, 3, 3, 3)), groups=2), RuntimeError,
     "expected weight to be divisible by 2 at dimension 0"),
    (lambda: conv2d(T(X5), T(W3), T(R(3))), RuntimeError,
     r"expected bias to be 1-dimensional with 4 elements, but got bias of size \[3\]"),
    (lambda: conv2d(T(X5), T(W3), stride=(1, 2, 3)), RuntimeError,
     "expected stride to be a single integer value or a list of 2 values"),
    (lambda: conv2d(T(X5), T(W3), stride=1.5), TypeError, "must be tuple of ints"),
    (lambda: conv2d(T(X5), T(R(4, 3, 3))), RuntimeError, "4-dimensional weight"),
    (lambda: conv2d(T(X5).float(), T(W3)), RuntimeError, "expected scalar type Float but found Double"),
    (lambda: conv2d(T(X5), T(W3), T(R(4)).float()), RuntimeError,
     r"Input type \(double\) and bias type \(float\) should be the same"),
    (lambda: conv2d(T(X5) > 0, T(W3) > 0), NotImplementedError, "not implemented for 'Bool'"),
    (lambda: conv2d(X5, T(W3)), TypeError, "must be Tensor"),
    (lambda: conv_transpose2d(T(R(1, 2, 5, 5)), T(R(3, 4, 3, 3))), RuntimeError,
     r"Given transposed=1, weight of size \[3, 4, 3, 3\], expected input\[1, 2, 5, 5\] to have 3 channels"),
    (lambda: conv_transpose2d(T(X5), T(R(3, 4, 3, 3)), output_padding=1), RuntimeError,
     "output padding must be smaller than either stride or dilation"),
    (lambda: conv_transpose2d(T(X5), T(R(3, 4, 3, 3)), padding=5), RuntimeError, "Output size is too small"),
    (lambda: conv_transpose2d(T(X5), T(R(3, 4, 3, 3)), T(R(3))), RuntimeError,
     "Given transposed=1, weight of size .* expected bias to be 1-dimensional with 4 elements"),
    (lambda: conv_transpose2d(T(X5), T(R(3, 4, 3, 3)), padding="same"), TypeError, "must be tuple of ints"),
    (lambda: unfold(T(R(1, 2, 3, 3)), 4), RuntimeError, "calculated shape of the array of sliding blocks"),
    (lambda: unfold(T(R(1, 2, 3, 3, 3)), 2), RuntimeError, "Expected 3D or 4D"),
    (lambda: unfold(T(X5), 2, stride=0), RuntimeError, "stride should be greater than zero"),
    (lambda: unfold(T(X5), (2, 2, 2)), RuntimeError, "It is expected kernel_size equals to 2"),
    (lambda: fold(T(R(1, 5, 9)), (4, 4), 2), RuntimeError,
     r"divisible by the product of kernel_size, but got input.size\(1\)=5"),
    (lambda: fold(T(R(1, 8, 8)), (4, 4), 2), RuntimeError,
     r"calculated number of sliding blocks 3 \* 3 = 9, but got input.size\(2\)=8"),
    (lambda: fold(T(R(1, 8, 9, 1)), (4, 4), 2), RuntimeError, "Expected 2D or 3D"),
])
def test_errors(call, exc, match):
    _err(call, exc, match)


def test_same_padding_even_kernel_warns():
    with pytest.warns(UserWarning, match="even kernel lengths"):
        conv2d(T(X5), T(R(4, 3, 2, 2)), padding="same")


def test_public_names():
    import disttorch.ops.conv as mod

    assert {"conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d"} <= set(mod.__all__)
    assert {"unfold", "fold"} <= set(mod.FUNCTIONAL) and "unfold" not in mod.__all__
