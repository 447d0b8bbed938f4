"""Max, average, power-average, adaptive and unpooling layers (disttorch.nn.modules.pooling)."""
import math

import numpy as np
import pytest

import disttorch as torch
from disttorch.nn.modules.pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AdaptiveMaxPool1d,
                                          AdaptiveMaxPool2d, AvgPool1d, AvgPool2d, LPPool1d, LPPool2d, MaxPool1d,
                                          MaxPool2d, MaxUnpool1d, MaxUnpool2d, _AdaptiveAvgPoolNd,
                                          _AdaptiveMaxPoolNd, _AvgPoolNd, _MaxPoolNd)
from tests.helpers import assert_close, rand_array

_rng = np.random.default_rng(7)


def distinct(shape):
    """Values far apart (max pooling's gradient is ill-defined at ties)."""
    return (_rng.permutation(math.prod(shape)).reshape(shape) * 0.1).astype(np.float64)


def out_len(n, k, s, p, d, ceil):
    span = n + 2 * p - d * (k - 1) - 1
    o = (-(-span // s) if ceil else span // s) + 1
    if ceil and (o - 1) * s >= n + p:
        o -= 1
    return o


def ref_pool2d(x, k, s, p, d=(1, 1), ceil=False, op="max", count_include_pad=True, divisor=None):
    """Direct 2-d pooling on (N, C, H, W) with explicit windows."""
    oh, ow = (out_len(x.shape[2 + i], k[i], s[i], p[i], d[i], ceil) for i in range(2))
    n, c, h, w = x.shape
    out = np.zeros((n, c, oh, ow))
    idx = np.zeros((n, c, oh, ow), dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            rows = [i * s[0] - p[0] + a * d[0] for a in range(k[0])]
            cols = [j * s[1] - p[1] + b * d[1] for b in range(k[1])]
            if op == "max":
                best = np.full((n, c), -np.inf)
                for r in rows:
                    for q in cols:
                        if 0 <= r < h and 0 <= q < w:
                            better = x[:, :, r, q] > best
                            best = np.where(better, x[:, :, r, q], best)
                            idx[:, :, i, j] = np.where(better, r * w + q, idx[:, :, i, j])
                out[:, :, i, j] = best
            else:
                vals = [x[:, :, r, q] for r in rows for q in cols if 0 <= r < h and 0 <= q < w]
                total = np.sum(vals, axis=0)
                # The divisor counts padding only inside the padded input, not the ceil_mode overhang.
                hi_r, hi_c = min(rows[-1], h + p[0] - 1), min(cols[-1], w + p[1] - 1)
                if count_include_pad:
                    cnt = (hi_r - rows[0] + 1) * (hi_c - cols[0] + 1)
                else:
                    cnt = len(vals)
                out[:, :, i, j] = total / (divisor if divisor else cnt)
    return out, idx


def ref_adaptive(x, out_sizes, fn):
    spatial = x.shape[2:]
    res = np.zeros(x.shape[:2] + tuple(out_sizes))
    for pos in np.ndindex(*out_sizes):
        sl = tuple(slice((i * n) // m, -(-((i + 1) * n) // m)) for i, n, m in zip(pos, spatial, out_sizes))
        res[(Ellipsis,) + pos] = fn(x[(slice(None), slice(None)) + sl], axis=tuple(range(2, x.ndim)))
    return res


def gradcheck_layer(layer, x):
    assert torch.autograd.gradcheck(layer, (torch.tensor(x, requires_grad=True),))


# ---- max pooling --------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2), dict(kernel_size=(2, 3), padding=1),
                                dict(kernel_size=3, stride=2, ceil_mode=True), dict(kernel_size=2, dilation=2),
                                dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)])
def test_maxpool2d_matches_reference(kw):
    m = MaxPool2d(**kw, return_indices=True)
    x = distinct((2, 3, 7, 6))
    k = kw["kernel_size"] if isinstance(kw["kernel_size"], tuple) else (kw["kernel_size"],) * 2
    s = (kw.get("stride"),) * 2 if kw.get("stride") else k
    p, d = (kw.get("padding", 0),) * 2, (kw.get("dilation", 1),) * 2
    ref, ref_idx = ref_pool2d(x, k, s, p, d, kw.get("ceil_mode", False))
    out, idx = m(torch.tensor(x))
    assert_close(out, ref)
    assert idx.dtype == torch.int64
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    out2 = MaxPool2d(**kw)(torch.tensor(x))
    assert isinstance(out2, torch.Tensor)
    assert_close(out2, ref)


def test_maxpool1d_matches_reference():
    x = distinct((2, 3, 9))
    out, idx = MaxPool1d(3, stride=2, padding=1, return_indices=True)(torch.tensor(x))
    ref, ref_idx = ref_pool2d(x[:, :, None], (1, 3), (1, 2), (0, 1))
    assert_close(out, ref[:, :, 0])
    np.testing.assert_array_equal(idx.numpy(), ref_idx[:, :, 0])
    assert tuple(MaxPool1d(2)(torch.tensor(x[0])).shape) == (3, 4)  # unbatched


def test_maxpool_gradcheck():
    gradcheck_layer(MaxPool2d(2, stride=1, padding=1), distinct((1, 2, 3, 3)))
    gradcheck_layer(MaxPool1d(2, ceil_mode=True), distinct((2, 5)))


def test_maxunpool_round_trip():
    x = distinct((1, 2, 4, 4))
    out, idx = MaxPool2d(2, return_indices=True)(torch.tensor(x))
    up = MaxUnpool2d(2)(out, idx)
    expected = np.zeros_like(x).reshape(1, 2, -1)
    np.put_along_axis(expected, idx.numpy().reshape(1, 2, -1), out.numpy().reshape(1, 2, -1), axis=-1)
    assert_close(up, expected.reshape(x.shape))
    up5 = MaxUnpool2d(2)(out, idx, output_size=[5, 5])
    assert tuple(up5.shape) == (1, 2, 5, 5)
    x1 = distinct((1, 2, 6))
    o1, i1 = MaxPool1d(2, return_indices=True)(torch.tensor(x1))
    u1 = MaxUnpool1d(2)(o1, i1).numpy()
    assert u1.shape == (1, 2, 6)
    np.testing.assert_allclose(u1.max(-1), x1.max(-1))
    assert torch.autograd.gradcheck(lambda a: MaxUnpool2d(2)(a, idx), (torch.tensor(out.numpy(), requires_grad=True),))


# ---- average pooling ----------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
                                dict(kernel_size=(3, 2), stride=2, ceil_mode=True), dict(kernel_size=2, divisor_override=3),
                                dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)])
def test_avgpool2d_matches_reference(kw):
    x = rand_array((2, 2, 7, 6))
    k = kw["kernel_size"] if isinstance(kw["kernel_size"], tuple) else (kw["kernel_size"],) * 2
    s = (kw["stride"],) * 2 if "stride" in kw else k
    p = (kw.get("padding", 0),) * 2
    ref, _ = ref_pool2d(x, k, s, p, ceil=kw.get("ceil_mode", False), op="avg",
                        count_include_pad=kw.get("count_include_pad", True), divisor=kw.get("divisor_override"))
    assert_close(AvgPool2d(**kw)(torch.tensor(x)), ref, rtol=1e-10, atol=1e-12)


def test_avgpool1d_matches_reference():
    x = rand_array((2, 3, 7))
    out = AvgPool1d(3, stride=2, padding=1, count_include_pad=False)(torch.tensor(x))
    ref, _ = ref_pool2d(x[:, :, None], (1, 3), (1, 2), (0, 1), op="avg", count_include_pad=False)
    assert_close(out, ref[:, :, 0])
    assert_close(AvgPool1d(3, stride=2)(torch.tensor([[[1., 2, 3, 4, 5, 6, 7]]])), [[[2., 4., 6.]]])


def test_avgpool_float32_dtype_and_gradcheck():
    assert AvgPool2d(2)(torch.randn(1, 1, 4, 4)).dtype == torch.float32
    gradcheck_layer(AvgPool2d(2, stride=1, padding=1, count_include_pad=False), rand_array((1, 1, 3, 3)))
    gradcheck_layer(AvgPool1d(2, ceil_mode=True), rand_array((2, 5)))


def test_lppool():
    x = np.abs(rand_array((1, 2, 4, 4))) + 0.1
    out = LPPool2d(2, 2)(torch.tensor(x))
    ref = np.sqrt((x ** 2).reshape(1, 2, 2, 2, 2, 2).sum(axis=(3, 5)))
    assert_close(out, ref)
    out1 = LPPool1d(3, 2)(torch.tensor(x[:, :, 0]))
    assert_close(out1, np.cbrt((x[:, :, 0] ** 3).reshape(1, 2, 2, 2).sum(-1)))


# ---- adaptive pooling ---------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(3, 2), 4, (5, 7), (1, 1)])
def test_adaptive_avg_max_pool2d(size):
    x = distinct((2, 2, 5, 6))
    sizes = size if isinstance(size, tuple) else (size, size)
    assert_close(AdaptiveAvgPool2d(size)(torch.tensor(x)), ref_adaptive(x, sizes, np.mean))
    out, idx = AdaptiveMaxPool2d(size, return_indices=True)(torch.tensor(x))
    assert_close(out, ref_adaptive(x, sizes, np.max))
    np.testing.assert_array_equal(np.take_along_axis(x.reshape(2, 2, -1), idx.numpy().reshape(2, 2, -1), -1),
                                  out.numpy().reshape(2, 2, -1))
    assert isinstance(AdaptiveMaxPool2d(size)(torch.tensor(x)), torch.Tensor)


def test_adaptive_pool1d_and_3d():
    x = distinct((2, 3, 7))
    assert_close(AdaptiveAvgPool1d(3)(torch.tensor(x)), ref_adaptive(x, (3,), np.mean))
    assert_close(AdaptiveMaxPool1d(4)(torch.tensor(x)), ref_adaptive(x, (4,), np.max))
    x3 = rand_array((1, 2, 3, 4, 5))
    assert_close(AdaptiveAvgPool3d((2, 2, 3))(torch.tensor(x3)), ref_adaptive(x3, (2, 2, 3), np.mean))


def test_adaptive_gradcheck():
    gradcheck_layer(AdaptiveAvgPool2d((2, 3)), rand_array((1, 2, 3, 4)))
    gradcheck_layer(AdaptiveMaxPool2d(2), distinct((1, 1, 3, 5)))
    gradcheck_layer(AdaptiveAvgPool1d(2), rand_array((2, 5)))


# ---- bases, repr, state -------------------------------------------------------------------------
def test_pool_bases_and_attributes():
    assert isinstance(MaxPool2d(2), _MaxPoolNd) and isinstance(MaxPool1d(2), _MaxPoolNd)
    assert isinstance(AvgPool2d(2), _AvgPoolNd) and isinstance(AvgPool1d(2), _AvgPoolNd)
    assert isinstance(AdaptiveAvgPool2d(2), _AdaptiveAvgPoolNd) and isinstance(AdaptiveMaxPool1d(2), _AdaptiveMaxPoolNd)
    m = MaxPool2d(3)
    assert (m.kernel_size, m.stride, m.padding, m.dilation, m.return_indices, m.ceil_mode) == (3, 3, 0, 1, False, False)
    a = AvgPool1d(3)
    assert (a.kernel_size, a.stride, a.padding) == ((3,), (3,), (0,))
    u = MaxUnpool2d(2, stride=1)
    assert (u.kernel_size, u.stride, u.padding) == ((2, 2), (1, 1), (0, 0))


@pytest.mark.parametrize("m,text", [
    (MaxPool2d(2), "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"),
    (MaxPool1d(3, stride=2, ceil_mode=True), "MaxPool1d(kernel_size=3, stride=2, padding=0, dilation=1, ceil_mode=True)"),
    (MaxPool2d((3, 2), stride=(2, 1)), "MaxPool2d(kernel_size=(3, 2), stride=(2, 1), padding=0, dilation=1, "
                                       "ceil_mode=False)"),
    (AvgPool2d(3, stride=2), "AvgPool2d(kernel_size=3, stride=2, padding=0)"),
    (AvgPool1d(3, stride=2), "AvgPool1d(kernel_size=(3,), stride=(2,), padding=(0,))"),
    (AdaptiveAvgPool2d((5, 7)), "AdaptiveAvgPool2d(output_size=(5, 7))"),
    (AdaptiveMaxPool1d(3), "AdaptiveMaxPool1d(output_size=3)"),
    (MaxUnpool2d(2), "MaxUnpool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))"),
    (LPPool2d(2, 3), "LPPool2d(norm_type=2, kernel_size=3, stride=None, ceil_mode=False)"),
])
def test_pool_repr(m, text):
    assert repr(m) == text


def test_pool_no_state_and_train_eval_identical():
    m = MaxPool2d(2)
    assert m.state_dict() == {} and list(m.parameters()) == []
    x = torch.randn(1, 1, 4, 4)
    y = m(x).numpy()
    np.testing.assert_array_equal(m.eval()(x).numpy(), y)


def test_pool_bad_input_errors():
    with pytest.raises(RuntimeError):
        MaxPool2d(2)(torch.randn(4))
    with pytest.raises(RuntimeError):
        AvgPool1d(2)(torch.randn(1, 1, 1, 4))
    with pytest.raises(RuntimeError):
        AdaptiveAvgPool2d(2)(torch.randn(3))
    with pytest.raises(ValueError, match="output_size"):
        MaxUnpool2d(2)(torch.randn(1, 1, 2, 2), torch.zeros(1, 1, 2, 2, dtype=torch.int64), output_size=[9, 9])
