"""interpolate (every mode, align_corners both ways, size vs scale_factor), aliases, pixel_shuffle/unshuffle."""
import math

import numpy as np
import pytest

import disttorch
from disttorch.ops import upsample as U
from helpers import assert_close, check_grad, rand_array

pytestmark = pytest.mark.filterwarnings("error")

T = disttorch.tensor


# ---- per-pixel references (PyTorch's UpSample.h formulas, one output pixel at a time) -----------------------
def src_scale(n_in, n_out, align, scale):
    if align:
        return (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return 1.0 / scale if scale else n_in / n_out


def nearest_src(i, n_in, n_out, scale, exact):
    s = np.float32(1.0 / scale if scale else n_in / n_out)
    if exact:
        return min(int(math.floor(np.float32((i + 0.5) * float(s)))), n_in - 1)
    if n_out == n_in:
        return i
    if n_out == 2 * n_in:
        return i // 2
    return min(int(math.floor(np.float32(i) * s)), n_in - 1)


def ref_nearest(a, out, scales, exact=False):
    sp = a.shape[2:]
    res = np.zeros(a.shape[:2] + tuple(out))
    for pos in np.ndindex(*out):
        src = tuple(nearest_src(p, n, o, s, exact) for p, n, o, s in zip(pos, sp, out, scales))
        res[(..., *pos)] = a[(..., *src)]
    return res


def linear_src(i, n_in, n_out, align, scale):
    s = src_scale(n_in, n_out, align, scale)
    x = s * i if align else max(s * (i + 0.5) - 0.5, 0.0)
    i0 = int(x)
    i1 = i0 + (1 if i0 < n_in - 1 else 0)
    lam = x - i0
    return [(i0, 1 - lam), (i1, lam)]


def ref_linear(a, out, align, scales):
    """1-D, 2-D or 3-D multilinear: the product of per-axis weights over all corner combinations."""
    sp = a.shape[2:]
    res = np.zeros(a.shape[:2] + tuple(out))
    for pos in np.ndindex(*out):
        taps = [linear_src(p, n, o, align, s) for p, n, o, s in zip(pos, sp, out, scales)]
        for combo in np.ndindex(*([2] * len(sp))):
            w = math.prod(taps[d][c][1] for d, c in enumerate(combo))
            res[(..., *pos)] += w * a[(..., *(taps[d][c][0] for d, c in enumerate(combo)))]
    return res


def cubic_w(t, A=-0.75):
    def c1(x):
        return ((A + 2) * x - (A + 3)) * x * x + 1

    def c2(x):
        return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A
    return [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)]


def ref_bicubic(a, out, align, scales):
    h, w = a.shape[2:]
    res = np.zeros(a.shape[:2] + tuple(out))
    for i in range(out[0]):
        for j in range(out[1]):
            sy, sx = src_scale(h, out[0], align, scales[0]), src_scale(w, out[1], align, scales[1])
            y = sy * i if align else sy * (i + 0.5) - 0.5
            x = sx * j if align else sx * (j + 0.5) - 0.5
            y0, x0 = math.floor(y), math.floor(x)
            wy, wx = cubic_w(y - y0), cubic_w(x - x0)
            for u in range(4):
                for v in range(4):
                    yy, xx = min(max(y0 - 1 + u, 0), h - 1), min(max(x0 - 1 + v, 0), w - 1)
                    res[:, :, i, j] += wy[u] * wx[v] * a[:, :, yy, xx]
    return res


# ---- forward ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,kw,exact", [
    ((1, 2, 3, 4), dict(size=(6, 8)), False), ((1, 2, 3, 4), dict(size=(5, 7)), False),
    ((2, 1, 5, 6), dict(size=(2, 4)), False), ((1, 1, 4, 5), dict(scale_factor=1.7), False),
    ((1, 1, 4, 5), dict(scale_factor=(0.6, 2.5)), False), ((1, 2, 3, 4), dict(size=(5, 7)), True),
    ((1, 1, 4, 5), dict(scale_factor=1.7), True), ((2, 1, 5, 6), dict(size=(2, 4)), True),
    ((1, 2, 5), dict(size=8), False), ((1, 2, 5), dict(scale_factor=0.5), True),
    ((1, 1, 2, 3, 4), dict(size=(3, 5, 2)), False), ((1, 1, 2, 3, 4), dict(scale_factor=1.5), True),
])
def test_nearest(shape, kw, exact):
    a = rand_array(shape)
    mode = "nearest-exact" if exact else "nearest"
    out = U.interpolate(T(a), mode=mode, **kw)
    dim = len(shape) - 2
    if "size" in kw:
        size = kw["size"] if isinstance(kw["size"], tuple) else (kw["size"],) * dim
        scales = [None] * dim
    else:
        sf = kw["scale_factor"]
        scales = list(sf) if isinstance(sf, tuple) else [sf] * dim
        size = tuple(int(n * s) for n, s in zip(shape[2:], scales))
    assert_close(out, ref_nearest(a, size, scales, exact))


def test_nearest_closed_forms():
    a = rand_array((1, 2, 3, 4))
    assert_close(U.interpolate(T(a), scale_factor=2), a.repeat(2, 2).repeat(2, 3))
    assert_close(U.interpolate(T(a), size=(3, 2)), a[..., ::2])
    ints = np.arange(12).reshape(1, 1, 3, 4)
    out = U.interpolate(T(ints), scale_factor=2)
    assert out.dtype == disttorch.int64
    np.testing.assert_array_equal(out.numpy(), ints.repeat(2, 2).repeat(2, 3))


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("shape,mode,kw", [
    ((1, 2, 4), "linear", dict(size=7)), ((1, 2, 6), "linear", dict(scale_factor=0.7)),
    ((2, 1, 3, 4), "bilinear", dict(size=(5, 7))), ((1, 2, 5, 6), "bilinear", dict(size=(3, 2))),
    ((1, 1, 4, 5), "bilinear", dict(scale_factor=1.7)), ((1, 1, 4, 5), "bilinear", dict(scale_factor=(2.5, 0.6))),
    ((1, 1, 2, 3, 3), "trilinear", dict(size=(3, 4, 2))), ((1, 1, 2, 3, 2), "trilinear", dict(scale_factor=1.5)),
])
def test_linear_modes(shape, mode, kw, align):
    a = rand_array(shape)
    out = U.interpolate(T(a), mode=mode, align_corners=align, **kw)
    dim = len(shape) - 2
    if "size" in kw:
        size = kw["size"] if isinstance(kw["size"], tuple) else (kw["size"],) * dim
        scales = [None] * dim
    else:
        sf = kw["scale_factor"]
        scales = list(sf) if isinstance(sf, tuple) else [sf] * dim
        size = tuple(int(n * s) for n, s in zip(shape[2:], scales))
    assert_close(out, ref_linear(a, size, align, scales))


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("shape,kw", [((1, 2, 3, 4), dict(size=(5, 7))), ((1, 1, 6, 5), dict(size=(3, 2))),
                                      ((1, 1, 4, 4), dict(scale_factor=1.6))])
def test_bicubic(shape, kw, align):
    a = rand_array(shape)
    out = U.interpolate(T(a), mode="bicubic", align_corners=align, **kw)
    if "size" in kw:
        size, scales = kw["size"], [None, None]
    else:
        scales = [kw["scale_factor"]] * 2
        size = tuple(int(n * kw["scale_factor"]) for n in shape[2:])
    assert_close(out, ref_bicubic(a, size, align, scales))


def test_closed_form_values():
    x = T([[[1.0, 2.0]]])
    assert_close(U.interpolate(x, scale_factor=2, mode="linear"), [[[1.0, 1.25, 1.75, 2.0]]])
    assert_close(U.interpolate(x, size=4, mode="linear", align_corners=True), [[[1.0, 4 / 3, 5 / 3, 2.0]]])
    sq = T(np.arange(4.0).reshape(1, 1, 2, 2))
    assert_close(U.interpolate(sq, size=(3, 3), mode="bilinear", align_corners=True),
                 [[[[0, 0.5, 1], [1, 1.5, 2], [2, 2.5, 3]]]])
    row = np.arange(8.0) ** 2
    aa = U.interpolate(T(row.reshape(1, 1, 1, 8)), size=(1, 4), mode="bilinear", antialias=True)
    expected = [(3 * row[0] + 3 * row[1] + row[2]) / 7, (row[1] + 3 * row[2] + 3 * row[3] + row[4]) / 8,
                (row[3] + 3 * row[4] + 3 * row[5] + row[6]) / 8, (row[5] + 3 * row[6] + 3 * row[7]) / 7]
    assert_close(aa, np.array(expected).reshape(1, 1, 1, 4))


def test_scale_factor_vs_size_and_recompute():
    a = rand_array((1, 1, 5, 5))
    by_scale = U.interpolate(T(a), scale_factor=1.7, mode="bilinear")
    by_size = U.interpolate(T(a), size=(8, 8), mode="bilinear")
    recomputed = U.interpolate(T(a), scale_factor=1.7, mode="bilinear", recompute_scale_factor=True)
    assert by_scale.shape == by_size.shape == (1, 1, 8, 8)
    assert not np.allclose(by_scale.numpy(), by_size.numpy())
    assert_close(recomputed, by_size.numpy())
    assert_close(U.interpolate(T(a), scale_factor=1.0, mode="bilinear"), a)


def test_area_and_antialias_bicubic():
    a = rand_array((1, 2, 6, 7))
    out = U.interpolate(T(a), size=(4, 3), mode="area")
    ref = np.zeros((1, 2, 4, 3))
    for i in range(4):
        for j in range(3):
            h0, h1, w0, w1 = i * 6 // 4, -(-(i + 1) * 6 // 4), j * 7 // 3, -(-(j + 1) * 7 // 3)
            ref[:, :, i, j] = a[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    assert_close(out, ref)
    assert U.interpolate(T(a), scale_factor=0.5, mode="area").shape == (1, 2, 3, 3)
    assert U.interpolate(T(rand_array((1, 1, 6))), size=4, mode="area").shape == (1, 1, 4)
    flat = np.ones((1, 1, 9, 9))
    assert_close(U.interpolate(T(flat), size=(4, 3), mode="bicubic", antialias=True), np.ones((1, 1, 4, 3)))
    up = U.interpolate(T(a), size=(9, 9), mode="bilinear", antialias=True)
    assert_close(up, U.interpolate(T(a), size=(9, 9), mode="bilinear").numpy())  # no filtering when upsampling


@pytest.mark.parametrize("shape,kw", [
    ((1, 1, 3), dict(size=5, mode="nearest")), ((1, 1, 2, 3), dict(size=(3, 2), mode="nearest-exact")),
    ((1, 1, 4), dict(size=7, mode="linear")), ((1, 1, 3, 2), dict(scale_factor=1.5, mode="bilinear")),
    ((1, 1, 3, 3), dict(size=(4, 2), mode="bilinear", align_corners=True)),
    ((1, 1, 3, 3), dict(size=(4, 5), mode="bicubic")), ((1, 1, 2, 2, 2), dict(size=3, mode="trilinear")),
    ((1, 1, 5, 4), dict(size=(3, 3), mode="area")), ((1, 1, 6, 6), dict(size=(3, 4), mode="bilinear", antialias=True)),
])
def test_interpolate_gradcheck(shape, kw):
    check_grad(lambda x: U.interpolate(x, **kw), rand_array(shape), gradgrad=kw["mode"] == "bilinear")


def test_grad_fn_names_and_dtype():
    x = T(rand_array((1, 1, 3, 3)).astype(np.float32), requires_grad=True)
    names = {"nearest": "UpsampleNearest2DBackward0", "bilinear": "UpsampleBilinear2DBackward0",
             "bicubic": "UpsampleBicubic2DBackward0", "nearest-exact": "UpsampleNearestExact2DBackward0"}
    for mode, name in names.items():
        y = U.interpolate(x, scale_factor=2, mode=mode)
        assert y.grad_fn.name() == name and y.dtype == disttorch.float32
    assert U.interpolate(x, size=(2, 2), mode="bilinear", antialias=True).grad_fn.name() == \
        "UpsampleBilinear2DAaBackward0"
    y = U.interpolate(x, scale_factor=2, mode="bilinear")
    (g,) = disttorch.autograd.grad(y.sum(), x)
    assert g.dtype == disttorch.float32
    assert_close(g, np.full((1, 1, 3, 3), 4.0), rtol=1e-5)  # each input spreads total weight 4
    h = U.interpolate(T(rand_array((1, 1, 2, 2)).astype(np.float16)), size=(3, 3), mode="bilinear")
    assert h.dtype == disttorch.float16


@pytest.mark.parametrize("call,exc,match", [
    (lambda x: U.interpolate(x, size=2, scale_factor=2), ValueError, "only one of size or scale_factor"),
    (lambda x: U.interpolate(x), ValueError, "either size or scale_factor should be defined"),
    (lambda x: U.interpolate(x, size=2, align_corners=True), ValueError, "align_corners option can only be set"),
    (lambda x: U.interpolate(x, size=(2, 2, 2)), ValueError, "same number of spatial dimensions"),
    (lambda x: U.interpolate(x, scale_factor=(2, 2, 2)), ValueError, "Input and scale_factor must have the same"),
    (lambda x: U.interpolate(x, size=2, mode="linear"), NotImplementedError, "Got 4D input, but linear mode needs 3D"),
    (lambda x: U.interpolate(x[0], size=2, mode="bilinear"), NotImplementedError, "Got 3D input, but bilinear"),
    (lambda x: U.interpolate(x, size=2, mode="trilinear"), NotImplementedError, "Got 4D input, but trilinear"),
    (lambda x: U.interpolate(x, size=2, mode="cubic"), NotImplementedError, "Input Error: Only 3D, 4D and 5D"),
    (lambda x: U.interpolate(x[0, 0], size=2), NotImplementedError, r"got 2D"),
    (lambda x: U.interpolate(x, size=2, antialias=True), ValueError, "Anti-alias option is restricted"),
    (lambda x: U.interpolate(x, size=2.5), TypeError, "expected size to be one of int"),
    (lambda x: U.interpolate(x, size=2, recompute_scale_factor=True), ValueError, "not meaningful"),
    (lambda x: U.interpolate(x, scale_factor=0.1), RuntimeError, r"Input and output sizes should be greater than 0, "
                                                                 r"but got input \(H: 3, W: 4\) output \(H: 0, W: 0\)"),
    (lambda x: U.interpolate(x.to(disttorch.int64), size=2, mode="bilinear"), RuntimeError, "not implemented"),
])
def test_interpolate_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call(T(rand_array((1, 2, 3, 4))))


def test_deprecated_aliases():
    a = rand_array((1, 1, 2, 3))
    with pytest.warns(UserWarning, match="upsample is deprecated"):
        out = U.upsample(T(a), scale_factor=2)
    assert_close(out, a.repeat(2, 2).repeat(2, 3))
    with pytest.warns(UserWarning, match="upsample_nearest is deprecated"):
        assert_close(U.upsample_nearest(T(a), size=(4, 6)), a.repeat(2, 2).repeat(2, 3))
    with pytest.warns(UserWarning, match="upsample_bilinear is deprecated"):
        out = U.upsample_bilinear(T(a), size=(3, 5))
    assert_close(out, ref_linear(a, (3, 5), True, [None, None]))


# ---- pixel shuffle -------------------------------------------------------------------------------------------
def ref_shuffle(a, r):
    *lead, c, h, w = a.shape
    out = np.zeros(tuple(lead) + (c // (r * r), h * r, w * r))
    for ch in range(c // (r * r)):
        for i in range(h * r):
            for j in range(w * r):
                out[..., ch, i, j] = a[..., ch * r * r + (i % r) * r + j % r, i // r, j // r]
    return out


@pytest.mark.parametrize("shape,r", [((1, 4, 2, 3), 2), ((2, 9, 2, 2), 3), ((8, 1, 2), 2), ((2, 1, 4, 2, 2), 2),
                                     ((3, 2, 2), 1)])
def test_pixel_shuffle(shape, r):
    a = rand_array(shape)
    out = U.pixel_shuffle(T(a), r)
    assert_close(out, ref_shuffle(a, r))
    back = U.pixel_unshuffle(out, r)
    assert_close(back, a)
    check_grad(lambda x: U.pixel_shuffle(x, r), a, gradgrad=True)
    check_grad(lambda x: U.pixel_unshuffle(x, r), out.numpy())
    x = T(a, requires_grad=True)
    assert U.pixel_shuffle(x, r).grad_fn.name() == "PixelShuffleBackward0"
    assert U.pixel_unshuffle(x.detach().reshape(out.shape).requires_grad_(), r).grad_fn.name() == \
        "PixelUnshuffleBackward0"
    src = T(a)
    U.pixel_shuffle(src, r).numpy()[...] = 0
    assert_close(src, a)  # the result never aliases the input


@pytest.mark.parametrize("call,match", [
    (lambda: U.pixel_shuffle(T(np.zeros((1, 3, 2, 2))), 2), "not divisible by 4"),
    (lambda: U.pixel_shuffle(T(np.zeros((4, 2))), 2), "at least 3 dimensions"),
    (lambda: U.pixel_shuffle(T(np.zeros((1, 4, 2, 2))), 0), "expects a positive upscale_factor, but got 0"),
    (lambda: U.pixel_unshuffle(T(np.zeros((1, 1, 3, 4))), 2), "height to be divisible"),
    (lambda: U.pixel_unshuffle(T(np.zeros((1, 1, 4, 3))), 2), "width to be divisible"),
])
def test_pixel_shuffle_errors(call, match):
    with pytest.raises(RuntimeError, match=match):
        call()


def test_exports():
    assert set(U.__all__) <= set(U.FUNCTIONAL)
    for name in U.FUNCTIONAL:
        assert callable(getattr(U, name))


# (input shape, interpolate kwargs) -> PyTorch's op name, as its profiler and grad_fn report it
_OP_NAMES = [
    ((1, 1, 3), dict(scale_factor=2, mode="nearest"), "upsample_nearest1d"),
    ((1, 1, 3, 3), dict(scale_factor=2, mode="nearest"), "upsample_nearest2d"),
    ((1, 1, 2, 2, 2), dict(scale_factor=2, mode="nearest"), "upsample_nearest3d"),
    ((1, 1, 3), dict(scale_factor=2, mode="nearest-exact"), "_upsample_nearest_exact1d"),
    ((1, 1, 3, 3), dict(scale_factor=2, mode="nearest-exact"), "_upsample_nearest_exact2d"),
    ((1, 1, 2, 2, 2), dict(scale_factor=2, mode="nearest-exact"), "_upsample_nearest_exact3d"),
    ((1, 1, 3), dict(scale_factor=2, mode="linear"), "upsample_linear1d"),
    ((1, 1, 3, 3), dict(scale_factor=2, mode="bilinear"), "upsample_bilinear2d"),
    ((1, 1, 3, 3), dict(scale_factor=2, mode="bicubic"), "upsample_bicubic2d"),
    ((1, 1, 2, 2, 2), dict(scale_factor=2, mode="trilinear"), "upsample_trilinear3d"),
    ((1, 1, 6, 6), dict(size=(3, 3), mode="bilinear", antialias=True), "_upsample_bilinear2d_aa"),
    ((1, 1, 6, 6), dict(size=(3, 3), mode="bicubic", antialias=True), "_upsample_bicubic2d_aa"),
]


@pytest.mark.parametrize("shape,kw,op", _OP_NAMES, ids=[o for _, _, o in _OP_NAMES])
def test_observers_and_double_backward_see_pytorch_op_names(shape, kw, op):
    from disttorch.autograd.op import add_observer

    seen = []
    x = T(rand_array(shape), requires_grad=True)
    handle = add_observer(lambda name, *rest: seen.append(name))
    try:
        y = U.interpolate(x, **kw)
        (g,) = disttorch.autograd.grad((y * y).sum(), x, create_graph=True)
    finally:
        handle.remove()
    assert op in seen and f"{op}_backward" in seen and "linear_map" not in seen
    # PyTorch's grad_fn names: UpsampleNearest2DBackward0, and UpsampleNearest2DBackwardBackward0 for its backward.
    camel = "".join(p[:1].upper() + p[1:] for p in op.strip("_").split("_")).replace("1d", "1D").replace(
        "2d", "2D").replace("3d", "3D")
    assert y.grad_fn.name() == f"{camel}Backward0"
    assert any(n.name() == f"{camel}BackwardBackward0" for n, _ in g.grad_fn.next_functions if n is not None) \
        or g.grad_fn.name() == f"{camel}BackwardBackward0"
