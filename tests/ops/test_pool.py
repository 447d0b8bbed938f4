"""Pools (max / avg / adaptive / unpool / lp): naive-loop NumPy references, indices, gradchecks, errors."""
import math
import types

import ml_dtypes
import numpy as np
import pytest

import disttorch
from disttorch.ops import pool, pool_adaptive
from helpers import assert_close, check_grad, rand_array

P = types.SimpleNamespace(**{**vars(pool), **vars(pool_adaptive)})  # both pool files under one name

pytestmark = pytest.mark.filterwarnings("error")

T = disttorch.tensor


# ---- naive references (PyTorch's C++ loops, written out) ----------------------------------------------------
def out_len(n, k, s, p, d, ceil):
    eff = d * (k - 1) + 1
    if ceil:
        o = -(-(n + 2 * p - eff) // s) + 1
        if (o - 1) * s >= n + p:
            o -= 1
    else:
        o = (n + 2 * p - eff) // s + 1
    return o


def ref_max_pool2d(a, k, s, p, d, ceil):
    n, c, h, w = a.shape
    oh, ow = out_len(h, k[0], s[0], p[0], d[0], ceil), out_len(w, k[1], s[1], p[1], d[1], ceil)
    out = np.zeros((n, c, oh, ow), a.dtype)
    idx = np.zeros((n, c, oh, ow), np.int64)
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    best, arg = -np.inf, -1
                    for u in range(k[0]):
                        for v in range(k[1]):
                            r, q = i * s[0] - p[0] + u * d[0], j * s[1] - p[1] + v * d[1]
                            if 0 <= r < h and 0 <= q < w and (arg < 0 or a[b, ch, r, q] > best):
                                best, arg = a[b, ch, r, q], r * w + q
                    out[b, ch, i, j], idx[b, ch, i, j] = best, arg
    return out, idx


def ref_avg_pool2d(a, k, s, p, ceil, include_pad, divisor):
    n, c, h, w = a.shape
    oh, ow = out_len(h, k[0], s[0], p[0], 1, ceil), out_len(w, k[1], s[1], p[1], 1, ceil)
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
            h1, w1 = min(h0 + k[0], h + p[0]), min(w0 + k[1], w + p[1])
            size = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            if h0 >= h1 or w0 >= w1:
                continue
            div = divisor if divisor else (size if include_pad else (h1 - h0) * (w1 - w0))
            out[:, :, i, j] = a[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / div
    return out


def windows(n, m):
    return [((i * n) // m, -(-((i + 1) * n) // m)) for i in range(m)]


def ref_adaptive(a, oh, ow, kind):
    n, c, h, w = a.shape
    out = np.zeros((n, c, oh, ow), a.dtype)
    idx = np.zeros((n, c, oh, ow), np.int64)
    for i, (h0, h1) in enumerate(windows(h, oh)):
        for j, (w0, w1) in enumerate(windows(w, ow)):
            blk = a[:, :, h0:h1, w0:w1].reshape(n, c, -1)
            if kind == "avg":
                out[:, :, i, j] = blk.mean(-1)
            else:
                am = blk.argmax(-1)
                out[:, :, i, j] = blk.max(-1)
                idx[:, :, i, j] = (h0 + am // (w1 - w0)) * w + w0 + am % (w1 - w0)
    return out, idx


def distinct(shape, seed=0):
    """Values in random order and at least 0.1 apart, so argmax never ties under gradcheck's perturbation."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(math.prod(shape)).reshape(shape) * 0.1 - 1.0).astype(np.float64)


# ---- max pool ------------------------------------------------------------------------------------------------
MAX_CONFIGS = [  # shape, kernel, stride, padding, dilation, ceil
    ((2, 3, 6, 6), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((1, 2, 7, 5), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((1, 2, 7, 5), (2, 2), (2, 2), (0, 0), (1, 1), True),
    ((2, 2, 5, 6), (3, 3), (2, 2), (1, 1), (1, 1), False),
    ((2, 2, 5, 6), (3, 3), (2, 2), (1, 1), (1, 1), True),
    ((1, 3, 6, 7), (3, 2), (1, 2), (1, 0), (1, 1), False),
    ((1, 2, 8, 8), (3, 3), (2, 3), (1, 1), (2, 2), True),
    ((1, 1, 9, 7), (2, 3), (3, 2), (1, 1), (2, 1), False),
    ((2, 1, 4, 4), (4, 4), (4, 4), (0, 0), (1, 1), False),
    ((1, 1, 5, 5), (1, 1), (1, 1), (0, 0), (1, 1), False),
]


@pytest.mark.parametrize("shape,k,s,p,d,ceil", MAX_CONFIGS)
def test_max_pool2d_forward_and_indices(shape, k, s, p, d, ceil):
    a = rand_array(shape)
    out, idx = P.max_pool2d(T(a), k, s, p, d, ceil, return_indices=True)
    ref, ridx = ref_max_pool2d(a, k, s, p, d, ceil)
    assert_close(out, ref)
    assert idx.dtype == disttorch.int64
    np.testing.assert_array_equal(idx.numpy(), ridx)
    assert_close(P.max_pool2d(T(a), k, s, p, d, ceil), ref)


@pytest.mark.parametrize("shape", [(2, 3, 6, 6), (1, 2, 5, 7)])
def test_max_pool2d_ties_pick_first(shape):
    a = np.maximum(rand_array(shape), 0.5)  # many equal values, as after a ReLU
    a[0, 0, :2, :2] = 0.5
    out, idx = P.max_pool2d(T(a), 2, return_indices=True)
    ref, ridx = ref_max_pool2d(a, (2, 2), (2, 2), (0, 0), (1, 1), False)
    assert_close(out, ref)
    np.testing.assert_array_equal(idx.numpy(), ridx)
    g = T(rand_array(out.shape))
    x = T(a, requires_grad=True)
    P.max_pool2d(x, 2).backward(g)
    expected = np.zeros(a.size)
    np.add.at(expected, (ridx + np.arange(a.shape[0] * a.shape[1]).reshape(a.shape[:2] + (1, 1)) *
                         shape[2] * shape[3]).ravel(), g.numpy().ravel())
    assert_close(x.grad, expected.reshape(a.shape))


def test_max_pool2d_unbatched_and_defaults():
    a = rand_array((3, 6, 5))
    out = P.max_pool2d(T(a), 2)
    assert_close(out, ref_max_pool2d(a[None], (2, 2), (2, 2), (0, 0), (1, 1), False)[0][0])
    out, idx = P.max_pool2d(T(a), (3, 2), stride=1, padding=1, return_indices=True)
    ref, ridx = ref_max_pool2d(a[None], (3, 2), (1, 1), (1, 1), (1, 1), False)
    assert_close(out, ref[0])
    np.testing.assert_array_equal(idx.numpy(), ridx[0])


def test_max_pool2d_nan_propagates():
    a = rand_array((1, 1, 4, 4))
    a[0, 0, 1, 1] = np.nan
    out, idx = P.max_pool2d(T(a), 2, return_indices=True)
    assert np.isnan(out.numpy()[0, 0, 0, 0]) and idx.numpy()[0, 0, 0, 0] == 5
    assert not np.isnan(out.numpy()[0, 0, 1, 1])


@pytest.mark.parametrize("shape,k,s,p,d,ceil", [((1, 2, 4, 4), 2, 2, 0, 1, False), ((1, 1, 5, 4), 3, 2, 1, 1, True),
                                                ((2, 1, 5, 5), 2, 1, 1, 2, False), ((2, 4, 4), 2, None, 0, 1, False)])
def test_max_pool2d_gradcheck(shape, k, s, p, d, ceil):
    check_grad(lambda x: P.max_pool2d(x, k, s, p, d, ceil), distinct(shape), gradgrad=True)


@pytest.mark.parametrize("dtype,dt", [(np.float32, disttorch.float32), (np.float16, disttorch.float16),
                                      (ml_dtypes.bfloat16, disttorch.bfloat16), (np.int64, disttorch.int64)])
def test_max_pool2d_dtypes(dtype, dt):
    a = rand_array((1, 2, 4, 6), low=-50, high=50).astype(dtype)
    for k, s in ((2, 2), (3, 1)):
        out = P.max_pool2d(T(a), k, s)
        assert out.dtype == dt
        ref, _ = ref_max_pool2d(a.astype(np.float64), (k, k), (s, s), (0, 0), (1, 1), False)
        assert_close(out, ref)


def test_max_pool_grad_fn_and_double_backward():
    x = T(distinct((1, 1, 4, 4)), requires_grad=True)
    y = P.max_pool2d(x, 2)
    assert y.grad_fn.name() == "MaxPool2DWithIndicesBackward0"
    g = T(np.ones((1, 1, 2, 2)), requires_grad=True)
    (gx,) = disttorch.autograd.grad(y, x, g, create_graph=True)
    assert gx.grad_fn.name() == "MaxPool2DWithIndicesBackwardBackward0"
    assert gx.sum().item() == 4
    assert P.max_pool1d(T(distinct((2, 6)), requires_grad=True), 2).grad_fn.name() == "SqueezeBackward1"


@pytest.mark.parametrize("shape,k,s,p,d,ceil", [((2, 3, 8), 2, None, 0, 1, False), ((1, 2, 7), 3, 2, 1, 1, True),
                                                ((3, 9), 2, 3, 1, 2, False), ((1, 1, 5), 5, 1, 2, 1, False)])
def test_max_pool1d(shape, k, s, p, d, ceil):
    a = rand_array(shape)
    out, idx = P.max_pool1d(T(a), k, s, p, d, ceil, return_indices=True)
    a4 = a.reshape((-1, 1, 1, shape[-1]))
    ref, ridx = ref_max_pool2d(a4, (1, k), (1, s or k), (0, p), (1, d), ceil)
    assert_close(out, ref.reshape(shape[:-1] + (-1,)))
    np.testing.assert_array_equal(idx.numpy(), ridx.reshape(shape[:-1] + (-1,)))
    o2, i2 = P.max_pool1d_with_indices(T(a), k, s, p, d, ceil)
    assert_close(o2, out.numpy())
    check_grad(lambda x: P.max_pool1d(x, k, s, p, d, ceil), distinct(shape))


@pytest.mark.parametrize("call,exc,match", [
    (lambda x: P.max_pool2d(x, 2, padding=2), RuntimeError, "pad should be at most half of effective kernel size"),
    (lambda x: P.max_pool2d(x, 2, stride=0), RuntimeError, "stride should not be zero"),
    (lambda x: P.max_pool2d(x, 0, 1), RuntimeError, "kernel size should be greater than zero"),
    (lambda x: P.max_pool2d(x, 2, dilation=0), RuntimeError, "dilation should be greater than zero"),
    (lambda x: P.max_pool2d(x, 6), RuntimeError, r"Given input size: \(2x4x5\). Calculated output size: "
                                                 r"\(2x0x0\). Output size is too small"),
    (lambda x: P.max_pool2d(x, (2, 2, 2)), RuntimeError, "kernel_size must either be a single int"),
    (lambda x: P.max_pool2d(x, 2.0), TypeError, "kernel_size"),
    (lambda x: P.max_pool2d(x[0, 0], 2), RuntimeError, r"non-empty 3D or 4D \(batch mode\) tensor expected for input"),
    (lambda x: P.max_pool1d(x, 2), RuntimeError,
     r"max_pool1d: Expected 2D or 3D \(batch mode\) tensor with optional 0 dim batch size for input, but got:\["),
    (lambda x: P.max_pool1d(x[0], 3, padding=2), RuntimeError, "padding should be at most half of kernel size"),
    (lambda x: P.max_pool1d(x[0], 0), RuntimeError, "kernel_size must be greater than zero"),
    (lambda x: P.avg_pool2d(x, 2, divisor_override=0), RuntimeError, "divisor must be not zero"),
    (lambda x: P.avg_pool2d(x, 3, padding=2), RuntimeError, "pad should be at most half"),
    (lambda x: P.avg_pool1d(x, 2), RuntimeError, "Expected 2 to 3 dimensions"),
    (lambda x: P.avg_pool1d(x[0], (2, 2)), RuntimeError, "should contain one int"),
    (lambda x: P.max_pool2d(x.to(disttorch.bool), 2), RuntimeError, "not implemented for 'Bool'"),
    (lambda x: P.avg_pool2d(x.to(disttorch.int32), 2), RuntimeError, "not implemented for 'Int'"),
    (lambda x: P.adaptive_avg_pool2d(x[0, 0, 0], 2), RuntimeError, "Expected 3D or 4D tensor"),
    (lambda x: P.adaptive_avg_pool2d(x, -1), RuntimeError, "greater than or equal to 0"),
    (lambda x: P.adaptive_max_pool2d(x, (1, 2, 3)), RuntimeError, "output_size must be 2"),
    (lambda x: P.adaptive_max_pool2d(x[:, :0], 2), RuntimeError, "non-zero size for non-batch dimensions"),
    (lambda x: P.max_pool2d([1.0], 2), TypeError, "must be Tensor"),
])
def test_pool_errors(call, exc, match):
    x = T(rand_array((1, 2, 4, 5)))
    with pytest.raises(exc, match=match):
        call(x)


# ---- avg pool ------------------------------------------------------------------------------------------------
AVG_CONFIGS = [  # shape, kernel, stride, padding, ceil, count_include_pad, divisor_override
    ((2, 3, 6, 6), (2, 2), None, (0, 0), False, True, None),
    ((1, 2, 7, 5), (2, 2), None, (0, 0), True, True, None),
    ((1, 2, 5, 6), (3, 3), (2, 2), (1, 1), False, True, None),
    ((1, 2, 5, 6), (3, 3), (2, 2), (1, 1), False, False, None),
    ((1, 2, 5, 6), (3, 3), (2, 2), (1, 1), True, True, None),
    ((1, 2, 5, 6), (3, 3), (2, 2), (1, 1), True, False, None),
    ((1, 1, 6, 7), (3, 2), (1, 2), (1, 1), True, True, None),
    ((1, 1, 6, 7), (2, 3), (2, 1), (1, 1), False, True, 5),
    ((2, 1, 4, 4), (2, 2), (3, 3), (1, 1), True, False, 3),
]


@pytest.mark.parametrize("shape,k,s,p,ceil,cip,div", AVG_CONFIGS)
def test_avg_pool2d_forward(shape, k, s, p, ceil, cip, div):
    a = rand_array(shape)
    out = P.avg_pool2d(T(a), k, s, p, ceil, cip, div)
    assert_close(out, ref_avg_pool2d(a, k, s or k, p, ceil, cip, div))
    out3 = P.avg_pool2d(T(a[0]), k, s, p, ceil, cip, div)
    assert_close(out3, ref_avg_pool2d(a[:1], k, s or k, p, ceil, cip, div)[0])


@pytest.mark.parametrize("shape,k,s,p,ceil,cip,div", AVG_CONFIGS[::2])
def test_avg_pool2d_gradcheck(shape, k, s, p, ceil, cip, div):
    a = rand_array((1, 1) + shape[2:])
    check_grad(lambda x: P.avg_pool2d(x, k, s, p, ceil, cip, div), a, gradgrad=True)


def test_avg_pool_grad_fn_dtype_and_int64():
    x = T(rand_array((1, 2, 4, 4)).astype(np.float32), requires_grad=True)
    y = P.avg_pool2d(x, 2)
    assert y.dtype == disttorch.float32 and y.grad_fn.name() == "AvgPool2DBackward0"
    (gx,) = disttorch.autograd.grad(y.sum(), x, create_graph=True)
    assert gx.dtype == disttorch.float32
    assert_close(gx, np.full((1, 2, 4, 4), 0.25))
    h = P.avg_pool2d(T(rand_array((1, 1, 4, 4)).astype(np.float16)), 2)
    assert h.dtype == disttorch.float16
    ints = np.array([[[[-7, 2, 5], [0, 1, 9]]]], dtype=np.int64)
    out = P.avg_pool2d(T(ints), (2, 2), 1)
    np.testing.assert_array_equal(out.numpy(), np.array([[[[-1, 4]]]]))  # truncation toward zero
    assert out.dtype == disttorch.int64


@pytest.mark.parametrize("shape,k,s,p,ceil,cip", [((2, 3, 8), 2, None, 0, False, True), ((1, 2, 7), 3, 2, 1, True, False),
                                                  ((3, 9), 3, 2, 1, False, True)])
def test_avg_pool1d(shape, k, s, p, ceil, cip):
    a = rand_array(shape)
    out = P.avg_pool1d(T(a), k, s, p, ceil, cip)
    ref = ref_avg_pool2d(a.reshape(-1, 1, 1, shape[-1]), (1, k), (1, s or k), (0, p), ceil, cip, None)
    assert_close(out, ref.reshape(shape[:-1] + (-1,)))
    check_grad(lambda x: P.avg_pool1d(x, k, s, p, ceil, cip), a)


def test_lp_pool():
    a = np.abs(rand_array((1, 2, 4, 6))) + 0.1
    out = P.lp_pool2d(T(a), 2, 2)
    ref = np.sqrt((a ** 2).reshape(1, 2, 2, 2, 3, 2).sum(axis=(3, 5)))
    assert_close(out, ref)
    out1 = P.lp_pool1d(T(a[0]), 3, 3, 3)
    assert_close(out1, np.cbrt((a[0] ** 3).reshape(2, 4, 2, 3).sum(-1)))
    check_grad(lambda x: P.lp_pool2d(x, 2, 2), a)


# ---- adaptive --------------------------------------------------------------------------------------------------
ADAPT = [((1, 2, 5, 7), (3, 4)), ((2, 1, 6, 6), (4, 4)), ((1, 1, 7, 3), (2, 5)), ((1, 2, 4, 4), (4, 4)),
         ((1, 1, 5, 5), (1, 1)), ((1, 1, 3, 8), (3, 3))]


@pytest.mark.parametrize("shape,out", ADAPT)
def test_adaptive_pools_forward(shape, out):
    a = rand_array(shape)
    ref, _ = ref_adaptive(a, *out, "avg")
    assert_close(P.adaptive_avg_pool2d(T(a), out), ref)
    assert_close(P.adaptive_avg_pool2d(T(a[0]), out), ref[0])
    mref, midx = ref_adaptive(a, *out, "max")
    v, i = P.adaptive_max_pool2d(T(a), out, return_indices=True)
    assert_close(v, mref)
    np.testing.assert_array_equal(i.numpy(), midx)
    v2, i2 = P.adaptive_max_pool2d_with_indices(T(a[0]), out)
    assert_close(v2, mref[0])
    np.testing.assert_array_equal(i2.numpy(), midx[0])


def test_adaptive_none_and_int_output_size():
    a = rand_array((1, 2, 5, 6))
    assert_close(P.adaptive_avg_pool2d(T(a), (None, 3)), ref_adaptive(a, 5, 3, "avg")[0])
    assert_close(P.adaptive_max_pool2d(T(a), (2, None)), ref_adaptive(a, 2, 6, "max")[0])
    assert_close(P.adaptive_avg_pool2d(T(a), 2), ref_adaptive(a, 2, 2, "avg")[0])
    assert P.adaptive_avg_pool2d(T(a), 0).shape == (1, 2, 0, 0)
    assert P.adaptive_avg_pool3d(T(rand_array((1, 2, 3, 4, 5))), (2, 3, 2)).shape == (1, 2, 2, 3, 2)
    a3 = rand_array((2, 3, 4, 5))
    ref3 = np.array([[[[a3[c, d0:d1, h0:h1, w0:w1].mean() for (w0, w1) in windows(5, 3)] for (h0, h1) in windows(4, 1)]
                      for (d0, d1) in windows(3, 2)] for c in range(2)])
    assert_close(P.adaptive_avg_pool3d(T(a3), (2, 1, 3)), ref3)


@pytest.mark.parametrize("shape,out", ADAPT[:4])
def test_adaptive_gradcheck(shape, out):
    a = distinct((1, 1) + shape[2:])
    check_grad(lambda x: P.adaptive_avg_pool2d(x, out), a, gradgrad=True)
    check_grad(lambda x: P.adaptive_max_pool2d(x, out), a, gradgrad=True)


def test_adaptive_1d_and_grad_fns():
    a = rand_array((2, 3, 7))
    ref, _ = ref_adaptive(a.reshape(6, 1, 1, 7), 1, 3, "avg")
    assert_close(P.adaptive_avg_pool1d(T(a), 3), ref.reshape(2, 3, 3))
    mref, midx = ref_adaptive(a.reshape(6, 1, 1, 7), 1, 4, "max")
    v, i = P.adaptive_max_pool1d(T(a), 4, return_indices=True)
    assert_close(v, mref.reshape(2, 3, 4))
    np.testing.assert_array_equal(i.numpy(), midx.reshape(2, 3, 4))
    assert isinstance(P.adaptive_max_pool1d_with_indices(T(a), 4), tuple)
    x = T(distinct((1, 2, 4, 4)), requires_grad=True)
    assert P.adaptive_avg_pool2d(x, 3).grad_fn.name() == "AdaptiveAvgPool2DBackward0"
    assert P.adaptive_avg_pool2d(x, 1).grad_fn.name().startswith("Mean")
    assert P.adaptive_max_pool2d(x, 3).grad_fn.name() == "AdaptiveMaxPool2DBackward0"
    check_grad(lambda t: P.adaptive_avg_pool1d(t, 3), a[0])
    check_grad(lambda t: P.adaptive_max_pool1d(t, 3), distinct((2, 7)))
    assert P.adaptive_avg_pool2d(T(a[..., None].astype(np.float32)), (3, 1)).dtype == disttorch.float32


# ---- max_unpool ------------------------------------------------------------------------------------------------
def test_max_unpool2d_roundtrip_and_grad():
    a = distinct((2, 1, 4, 6))
    out, idx = P.max_pool2d(T(a), 2, return_indices=True)
    up = P.max_unpool2d(out, idx, 2)
    expected = np.zeros_like(a)
    flat = expected.reshape(2, 1, -1)
    np.put_along_axis(flat, idx.numpy().reshape(2, 1, -1), out.numpy().reshape(2, 1, -1), -1)
    assert_close(up, expected)
    kept = a * (expected != 0)
    assert_close(up, kept)
    up2 = P.max_unpool2d(out, idx, 2, output_size=(5, 7))
    assert up2.shape == (2, 1, 5, 7)
    check_grad(lambda v: P.max_unpool2d(v, idx, 2), out.numpy(), gradgrad=True)
    o1, i1 = P.max_pool1d(T(a[0]), 2, return_indices=True)
    u1 = P.max_unpool1d(o1, i1, 2)
    assert u1.shape == (1, 4, 6)
    e1 = np.zeros((1, 4, 6))
    np.put_along_axis(e1, i1.numpy(), o1.numpy(), -1)
    assert_close(u1, e1)
    assert (e1 != 0).sum() == 12
    with pytest.raises(RuntimeError, match="Found an invalid max index"):
        P.max_unpool2d(out, idx * 100, 2)
    with pytest.raises(ValueError, match="invalid output_size"):
        P.max_unpool2d(out, idx, 2, output_size=(9, 9))
    with pytest.raises(RuntimeError, match="should be type int64"):
        P.max_unpool2d(out, idx.to(disttorch.int32), 2)


def test_exports():
    assert set(pool.__all__) <= set(pool.FUNCTIONAL)
    for name in pool.FUNCTIONAL:
        assert callable(getattr(pool, name))
    assert pool.adaptive_max_pool2d is pool_adaptive.adaptive_max_pool2d
    assert "adaptive_max_pool1d" not in pool.__all__  # torch.adaptive_max_pool1d returns (values, indices)


@pytest.mark.parametrize("call", [lambda x: P.max_pool2d(x, 2), lambda x: P.max_pool2d(x, 3, 1, 1),
                                  lambda x: P.avg_pool2d(x, 3, 2, 1, True), lambda x: P.adaptive_avg_pool2d(x, 3),
                                  lambda x: P.adaptive_max_pool2d(x, 3)])
def test_empty_batch_and_bfloat16_backward(call):
    x = T(np.zeros((0, 2, 4, 4)), requires_grad=True)
    call(x).sum().backward()
    assert x.grad.shape == (0, 2, 4, 4)
    xb = T(distinct((1, 1, 4, 4)), requires_grad=True)
    xb = xb.detach().to(disttorch.bfloat16).requires_grad_()
    y = call(xb)
    y.sum().backward()
    assert y.dtype == xb.grad.dtype == disttorch.bfloat16
    xd = T(distinct((1, 1, 4, 4)), requires_grad=True)
    call(xd).sum().backward()
    assert_close(xb.grad, xd.grad.numpy(), rtol=1e-2, atol=1e-2)


def test_max_unpool_output_size_takes_spatial_or_full_sizes_only():
    F = disttorch.nn.functional
    p, i = F.max_pool2d(disttorch.tensor(rand_array((1, 2, 4, 4))), 2, return_indices=True)
    for size in ((4, 4), (1, 2, 4, 4)):
        assert tuple(F.max_unpool2d(p, i, 2, output_size=size).shape) == (1, 2, 4, 4)
    for size in ((2, 4, 4), (4,), (1, 1, 2, 4, 4)):
        with pytest.raises(ValueError, match=f"output_size should be a sequence containing 2 or 4 elements, but it "
                                             f"has a length of '{len(size)}'"):
            F.max_unpool2d(p, i, 2, output_size=size)
    p1, i1 = F.max_pool1d(disttorch.tensor(rand_array((1, 2, 4))), 2, return_indices=True)
    with pytest.raises(ValueError, match="containing 1 or 3 elements, but it has a length of '2'"):
        F.max_unpool1d(p1, i1, 2, output_size=(2, 4))
