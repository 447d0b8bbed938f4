"""Autocast on the CPU: each op class against NumPy references with explicit ml_dtypes rounding.

Inputs are float32 values whose bfloat16/float16 rounding is known exactly: ``xb * (1 + r)`` with ``xb`` a
multiple of 1/8 and ``|r| < 2**-12``, so rounding to the low dtype gives back ``xb``. Products and sums of
such values are exact in float32 (and float64), so the reference, the exact result rounded once to the low
dtype, must equal the op's output bit for bit. A missing input rounding shows up as a mismatch, since the
unrounded inputs give different exact products.
"""
from __future__ import annotations

import itertools

import ml_dtypes
import numpy as np
import pytest

import disttorch as torch
import disttorch.nn.functional as F

LOW = {"bfloat16": (torch.bfloat16, ml_dtypes.bfloat16), "float16": (torch.float16, np.float16)}


def exact_inputs(rng, shape):
    """(float32 array that rounds to xb in bf16 and fp16, the rounded values xb as float64)."""
    xb = rng.integers(-24, 25, size=shape) / 8.0
    r = rng.uniform(-2.0 ** -12, 2.0 ** -12, size=shape)
    return (xb * (1 + r)).astype(np.float32), xb


def rounded(values, npdt):
    """``values`` (float64, exact) rounded once to the low dtype."""
    return np.asarray(values, dtype=np.float64).astype(np.float32).astype(npdt)


def check_low(out, ref64, name: str, tdt, npdt):
    assert out.dtype is tdt, f"{name}: {out.dtype}"
    got = out.detach().numpy()
    np.testing.assert_array_equal(got.astype(np.float64), rounded(ref64, npdt).astype(np.float64), err_msg=name)


@pytest.fixture(params=sorted(LOW))
def low(request):
    return LOW[request.param]


def test_matrix_products(low):
    tdt, npdt = low
    rng = np.random.default_rng(0)
    a, ab = exact_inputs(rng, (5, 7))
    b, bb = exact_inputs(rng, (7, 3))
    c, cb = exact_inputs(rng, (5, 3))
    A, Ab = exact_inputs(rng, (4, 5, 7))
    B, Bb = exact_inputs(rng, (4, 7, 3))
    C, Cb = exact_inputs(rng, (4, 5, 3))
    w, wb = exact_inputs(rng, (3, 7))
    bias, biasb = exact_inputs(rng, (3,))
    T = torch.tensor
    with torch.autocast("cpu", dtype=tdt):
        cases = {
            "matmul": (torch.matmul(T(a), T(b)), ab @ bb),
            "@ 3d x 2d": (T(A) @ T(b), Ab @ bb),
            "mm": (torch.mm(T(a), T(b)), ab @ bb),
            "bmm": (torch.bmm(T(A), T(B)), Ab @ Bb),
            "addmm": (torch.addmm(T(c), T(a), T(b)), cb + ab @ bb),
            "addmm alpha beta": (torch.addmm(T(c), T(a), T(b), beta=0.5, alpha=2.0), 0.5 * cb + 2.0 * (ab @ bb)),
            "baddbmm": (torch.baddbmm(T(C), T(A), T(B)), Cb + Ab @ Bb),
            "linear": (F.linear(T(a), T(w), T(bias)), ab @ wb.T + biasb),
            "linear 3d": (F.linear(T(A), T(w)), Ab @ wb.T),
            "tensordot": (torch.tensordot(T(a), T(b), 1), ab @ bb),
            "einsum": (torch.einsum("bij,bjk->bik", T(A), T(B)), Ab @ Bb),
        }
    for name, (out, ref) in cases.items():
        check_low(out, ref, name, tdt, npdt)
    # without input rounding the exact products differ: the check above would have caught a missing cast
    assert not np.array_equal(rounded(a.astype(np.float64) @ b.astype(np.float64), npdt), rounded(ab @ bb, npdt))


def test_addbmm_rounds_each_partial_sum(low):
    tdt, npdt = low
    rng = np.random.default_rng(1)
    # wide values so partial sums need rounding: PyTorch adds the batch products one by one, rounding each time
    A = (rng.integers(-60, 61, size=(3, 4, 6)) / 4.0).astype(np.float32)
    B = (rng.integers(-60, 61, size=(3, 6, 5)) / 4.0).astype(np.float32)
    c = (rng.integers(-60, 61, size=(4, 5)) / 4.0).astype(np.float32)
    with torch.autocast("cpu", dtype=tdt):
        out = torch.addbmm(torch.tensor(c), torch.tensor(A), torch.tensor(B))
    acc = rounded(c, npdt).astype(np.float64)
    for i in range(3):
        acc = rounded(acc + A[i].astype(np.float64) @ B[i].astype(np.float64), npdt).astype(np.float64)
    assert out.dtype is tdt
    np.testing.assert_array_equal(out.numpy().astype(np.float64), acc)


def _conv_ref(x, w, b, stride, pad, dil):
    """Direct N-d cross-correlation in float64 (groups=1)."""
    nsp = x.ndim - 2
    x = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pad])
    ks = w.shape[2:]
    out_sp = [(x.shape[2 + i] - dil[i] * (ks[i] - 1) - 1) // stride[i] + 1 for i in range(nsp)]
    out = np.zeros((x.shape[0], w.shape[0], *out_sp))
    for kk in itertools.product(*[range(k) for k in ks]):
        sl = tuple(slice(kk[i] * dil[i], kk[i] * dil[i] + stride[i] * (out_sp[i] - 1) + 1, stride[i]) for i in range(nsp))
        patch = x[(slice(None), slice(None)) + sl]
        out += np.einsum("nc...,oc->no...", patch, w[(slice(None), slice(None)) + kk])
    return out + b.reshape((1, -1) + (1,) * nsp)


def _conv_t_ref(x, w, b, stride, pad, dil):
    """Direct N-d transposed convolution in float64: every input element scatters ``x * w`` (groups=1)."""
    nsp = x.ndim - 2
    ks = w.shape[2:]
    full = [(x.shape[2 + i] - 1) * stride[i] + dil[i] * (ks[i] - 1) + 1 for i in range(nsp)]
    out = np.zeros((x.shape[0], w.shape[1], *full))
    for kk in itertools.product(*[range(k) for k in ks]):
        sl = tuple(slice(kk[i] * dil[i], kk[i] * dil[i] + stride[i] * (x.shape[2 + i] - 1) + 1, stride[i])
                   for i in range(nsp))
        out[(slice(None), slice(None)) + sl] += np.einsum("nc...,co->no...", x, w[(slice(None), slice(None)) + kk])
    crop = tuple(slice(p, full[i] - p) for i, p in enumerate(pad))
    return out[(slice(None), slice(None)) + crop] + b.reshape((1, -1) + (1,) * nsp)


@pytest.mark.parametrize("nsp", [1, 2, 3])
def test_convolutions(low, nsp):
    tdt, npdt = low
    rng = np.random.default_rng(10 + nsp)
    sp = (6, 5, 4)[:nsp]
    x, xb = exact_inputs(rng, (2, 3, *sp))
    w, wb = exact_inputs(rng, (4, 3, *(2,) * nsp))
    b, bb = exact_inputs(rng, (4,))
    wt, wtb = exact_inputs(rng, (3, 4, *(2,) * nsp))
    stride, pad, dil = (2,) * nsp, (1,) * nsp, (1,) * nsp
    conv = (F.conv1d, F.conv2d, F.conv3d)[nsp - 1]
    conv_t = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[nsp - 1]
    with torch.autocast("cpu", dtype=tdt):
        y = conv(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=2, padding=1)
        yt = conv_t(torch.tensor(x), torch.tensor(wt), torch.tensor(b), stride=2, padding=1)
    check_low(y, _conv_ref(xb, wb, bb, stride, pad, dil), f"conv{nsp}d", tdt, npdt)
    check_low(yt, _conv_t_ref(xb, wtb, bb, stride, pad, dil), f"conv_transpose{nsp}d", tdt, npdt)


def test_prelu(low):
    tdt, npdt = low
    rng = np.random.default_rng(3)
    x, xb = exact_inputs(rng, (2, 3, 4))
    a = np.array([0.25, 0.5, 0.125], dtype=np.float32) * np.float32(1 + 2.0 ** -13)
    with torch.autocast("cpu", dtype=tdt):
        out = F.prelu(torch.tensor(x), torch.tensor(a))
    ab = np.array([0.25, 0.5, 0.125]).reshape(1, 3, 1)
    check_low(out, np.where(xb > 0, xb, ab * xb), "prelu", tdt, npdt)


def test_scaled_dot_product_attention(low):
    tdt, npdt = low
    rng = np.random.default_rng(4)
    q, qb = exact_inputs(rng, (2, 2, 5, 8))
    k, kb = exact_inputs(rng, (2, 2, 6, 8))
    v, vb = exact_inputs(rng, (2, 2, 6, 8))
    mask = rng.random((5, 6)) > 0.3
    mask[:, 0] = True
    with torch.autocast("cpu", dtype=tdt):
        out = F.scaled_dot_product_attention(torch.tensor(q), torch.tensor(k), torch.tensor(v),
                                             attn_mask=torch.tensor(mask))
    s = qb @ kb.swapaxes(-1, -2) / np.sqrt(8.0)
    s = np.where(mask, s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    ref = (p / p.sum(-1, keepdims=True)) @ vb
    assert out.dtype is tdt
    got = out.numpy().astype(np.float64)
    want = rounded(ref, npdt).astype(np.float64)
    # computed in float32 (the reference in float64) and rounded once: equal, or one unit in the last place apart
    ulp = np.abs(np.nextafter(want.astype(npdt), np.array(np.inf, npdt)).astype(np.float64) - want)
    assert np.all(np.abs(got - want) <= ulp), np.abs(got - want).max()
    assert np.mean(got == want) > 0.95


def test_ops_outside_the_lists_keep_their_dtype():
    x = torch.randn(4, 4)
    with torch.autocast("cpu"):
        assert torch.mv(x, x[0]).dtype is torch.float32  # mv, dot, addmv, addr: not on PyTorch's CPU list
        assert torch.dot(x[0], x[1]).dtype is torch.float32
        assert torch.relu(x).dtype is torch.float32
        assert F.bilinear(x, x, torch.randn(2, 4, 4)).dtype is torch.float32
        assert torch.einsum("ij,ij->ij", x, x).dtype is torch.float32  # no contraction: PyTorch multiplies
        assert torch.nn.GRU(4, 3)(x[None])[0].dtype is torch.float32  # PyTorch's autocast does not reach GRU
        assert torch.nn.LSTMCell(4, 3)(x)[0].dtype is torch.float32
        assert torch.nn.RNNCell(4, 3)(x).dtype is torch.bfloat16
        assert torch.mm(x.double(), x.double()).dtype is torch.float64  # float64 is never autocast
        assert torch.mm(x.long(), x.long()).dtype is torch.int64
        assert torch.mm(x.half(), x.half()).dtype is torch.bfloat16  # other low dtypes are cast too
    with torch.autocast("cpu"):
        y = torch.nn.LSTM(4, 3)(x[None])
        assert [t.dtype for t in (y[0],) + y[1]] == [torch.bfloat16] * 3


def test_float32_list_ops():
    rng = np.random.default_rng(5)
    logits, lb = exact_inputs(rng, (6, 5))
    target = torch.tensor([0, 4, 2, 1, 3, 0])
    xb16 = torch.tensor(logits).bfloat16()
    with torch.autocast("cpu"):
        ce = F.cross_entropy(xb16, target)
        mse = F.mse_loss(xb16, torch.zeros(6, 5).bfloat16())
        nll = F.nll_loss(xb16, target)
        bce = F.binary_cross_entropy_with_logits(xb16, torch.ones(6, 5).bfloat16())
        prod = torch.prod(xb16[0])
        padded = F.pad(xb16[None], (2, 2), mode="reflect")
        padded3 = F.pad(torch.randn(1, 1, 3, 3, 3).bfloat16(), (1,) * 6, mode="reflect")  # reflection_pad3d: unlisted
        kl = F.kl_div(xb16, xb16, reduction="batchmean", log_target=True)
    for name, t in [("cross_entropy", ce), ("mse_loss", mse), ("nll_loss", nll), ("bce_with_logits", bce),
                    ("prod", prod), ("reflection_pad1d", padded), ("kl_div", kl)]:
        assert t.dtype is torch.float32, name
    assert padded3.dtype is torch.bfloat16
    # the value is the float32 computation on the (exactly representable) bf16 values
    ls = lb - lb.max(1, keepdims=True)
    ref = -(ls[np.arange(6), target.numpy()] - np.log(np.exp(ls).sum(1))).mean()
    np.testing.assert_allclose(ce.item(), ref, rtol=1e-6)
    np.testing.assert_allclose(mse.item(), (lb ** 2).mean(), rtol=1e-6)
    np.testing.assert_allclose(prod.item(), np.prod(lb[0]), rtol=1e-6)


def test_promote_ops():
    x = torch.randn(3, 4)
    with torch.autocast("cpu"):
        assert torch.cat([x.bfloat16(), x]).dtype is torch.float32
        assert torch.stack([x.bfloat16(), x]).dtype is torch.float32
        assert x.index_copy(0, torch.tensor([1]), x[:1].bfloat16()).dtype is torch.float32


def test_gradients_reach_parameters_in_their_dtype():
    rng = np.random.default_rng(6)
    x, xb = exact_inputs(rng, (5, 4))
    w, wb = exact_inputs(rng, (3, 4))
    lin = torch.nn.Linear(4, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(w))
        lin.bias.zero_()
    xt = torch.tensor(x, requires_grad=True)
    g, gb = exact_inputs(rng, (5, 3))
    with torch.autocast("cpu"):
        out = lin(xt)
    assert out.dtype is torch.bfloat16
    out.backward(torch.tensor(g).bfloat16())
    assert lin.weight.grad.dtype is torch.float32 and xt.grad.dtype is torch.float32
    bf = ml_dtypes.bfloat16
    # backward runs in the forward's dtype: bf16 products of the bf16-rounded gradient and inputs
    np.testing.assert_array_equal(lin.weight.grad.numpy(), rounded(gb.T @ xb, bf).astype(np.float32))
    np.testing.assert_array_equal(xt.grad.numpy(), rounded(gb @ wb, bf).astype(np.float32))
    np.testing.assert_array_equal(lin.bias.grad.numpy(), rounded(gb.sum(0), bf).astype(np.float32))
