"""Conv1d/2d/3d and ConvTranspose1d/2d/3d layers (disttorch.nn.modules.conv)."""
import itertools
import math

import numpy as np
import pytest

import disttorch as torch
from disttorch.nn.modules.conv import (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d,
                                       _ConvNd, _ConvTransposeNd)
from tests.helpers import assert_close, rand_array


def gradcheck_layer(layer, *xs):
    inputs = tuple(torch.tensor(x, requires_grad=True) for x in xs)
    params = tuple(layer.parameters())
    n = len(inputs)
    assert torch.autograd.gradcheck(lambda *a: layer(*a[:n]), inputs + params)


def np_(t):
    return None if t is None else t.detach().numpy()


def ref_conv(x, w, b, stride, pads, dil, groups):
    """Direct N-d cross-correlation: x (N, C, *S) already padded by ``pads`` [(lo, hi), ...] with zeros."""
    x = np.pad(x, [(0, 0), (0, 0)] + list(pads))
    nsp = x.ndim - 2
    ks = w.shape[2:]
    osz = [(x.shape[2 + i] - dil[i] * (ks[i] - 1) - 1) // stride[i] + 1 for i in range(nsp)]
    cin_g, cout_g = w.shape[1], w.shape[0] // groups
    out = np.zeros((x.shape[0], w.shape[0], *osz))
    for off in itertools.product(*[range(k) for k in ks]):
        sl = tuple(slice(o * d, o * d + (n - 1) * s + 1, s) for o, d, n, s in zip(off, dil, osz, stride))
        patch = x[(slice(None), slice(None)) + sl]
        for g in range(groups):
            out[:, g * cout_g:(g + 1) * cout_g] += np.einsum(
                "nc...,oc->no...", patch[:, g * cin_g:(g + 1) * cin_g], w[(slice(g * cout_g, (g + 1) * cout_g),
                                                                          slice(None)) + off])
    if b is not None:
        out += b.reshape((1, -1) + (1,) * nsp)
    return out


def ref_conv_transpose(x, w, b, stride, padding, opad, dil, groups):
    """Scatter-add definition of the transposed convolution; w is (C_in, C_out/groups, *k)."""
    nsp = x.ndim - 2
    ks, isz = w.shape[2:], x.shape[2:]
    full = [(i - 1) * s + d * (k - 1) + 1 + q for i, s, d, k, q in zip(isz, stride, dil, ks, opad)]
    cin_g, cout_g = x.shape[1] // groups, w.shape[1]
    out = np.zeros((x.shape[0], cout_g * groups, *full))
    for off in itertools.product(*[range(k) for k in ks]):
        sl = tuple(slice(o * d, o * d + (n - 1) * s + 1, s) for o, d, n, s in zip(off, dil, isz, stride))
        for g in range(groups):
            contrib = np.einsum("nc...,co->no...", x[:, g * cin_g:(g + 1) * cin_g],
                                w[(slice(g * cin_g, (g + 1) * cin_g), slice(None)) + off])
            out[(slice(None), slice(g * cout_g, (g + 1) * cout_g)) + sl] += contrib
    osz = [f - 2 * p for f, p in zip(full, padding)]
    out = out[(slice(None), slice(None)) + tuple(slice(p, p + o) for p, o in zip(padding, osz))]
    if b is not None:
        out = out + b.reshape((1, -1) + (1,) * nsp)
    return out


# ---- forward vs reference -----------------------------------------------------------------------
@pytest.mark.parametrize("kw", [
    dict(),
    dict(stride=2),
    dict(padding=1),
    dict(padding=(1, 2), stride=(2, 1)),
    dict(dilation=2, padding=2),
    dict(groups=2),
    dict(padding="valid"),
    dict(padding="same"),
    dict(padding="same", dilation=(1, 2)),
    dict(bias=False),
])
def test_conv2d_forward_matches_reference(kw):
    m = Conv2d(4, 6, 3, **kw)
    x = rand_array((2, 4, 7, 6), np.float32)
    pad = m.padding
    if pad == "same":
        pads = [(t // 2, t - t // 2) for t in (d * (k - 1) for d, k in zip(m.dilation, m.kernel_size))]
    elif pad == "valid":
        pads = [(0, 0), (0, 0)]
    else:
        pads = [(p, p) for p in pad]
    ref = ref_conv(x, np_(m.weight), np_(m.bias), m.stride, pads, m.dilation, m.groups)
    out = m(torch.tensor(x))
    assert_close(out, ref, rtol=1e-4, atol=1e-5, check_dtype=torch.float32)
    if pad == "same":
        assert tuple(out.shape[2:]) == (7, 6)


def test_conv2d_same_even_kernel_asymmetric():
    m = Conv2d(1, 1, 4, padding="same", bias=False)
    assert m._reversed_padding_repeated_twice == [1, 2, 1, 2]
    x = rand_array((1, 1, 5, 5), np.float32)
    ref = ref_conv(x, np_(m.weight), None, (1, 1), [(1, 2), (1, 2)], (1, 1), 1)
    with pytest.warns(UserWarning):
        assert_close(m(torch.tensor(x)), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode,np_mode", [("reflect", "reflect"), ("replicate", "edge"), ("circular", "wrap")])
def test_conv2d_padding_modes(mode, np_mode):
    m = Conv2d(2, 3, 3, padding=(1, 2), padding_mode=mode)
    assert m._reversed_padding_repeated_twice == (2, 2, 1, 1)
    x = rand_array((2, 2, 5, 6), np.float32)
    xp = np.pad(x, [(0, 0), (0, 0), (1, 1), (2, 2)], mode=np_mode)
    ref = ref_conv(xp, np_(m.weight), np_(m.bias), (1, 1), [(0, 0), (0, 0)], (1, 1), 1)
    assert_close(m(torch.tensor(x)), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1), dict(dilation=2, groups=3),
                                dict(padding="same"), dict(padding=2, padding_mode="circular")])
def test_conv1d_forward_matches_reference(kw):
    m = Conv1d(3, 6, 3, **kw)
    x = rand_array((2, 3, 9), np.float32)
    p = m.padding
    if p == "same":
        pads = [(1, 1)]
    else:
        pads = [(p[0], p[0])]
    if m.padding_mode == "circular":
        x_in, pads = np.pad(x, [(0, 0), (0, 0), pads[0]], mode="wrap"), [(0, 0)]
    else:
        x_in = x
    ref = ref_conv(x_in, np_(m.weight), np_(m.bias), m.stride, pads, m.dilation, m.groups)
    assert_close(m(torch.tensor(x)), ref, rtol=1e-4, atol=1e-5)


def test_conv3d_forward_matches_reference():
    m = Conv3d(2, 4, (2, 3, 2), stride=(1, 2, 1), padding=1, groups=2)
    x = rand_array((1, 2, 4, 5, 3), np.float32)
    ref = ref_conv(x, np_(m.weight), np_(m.bias), m.stride, [(1, 1)] * 3, m.dilation, 2)
    assert_close(m(torch.tensor(x)), ref, rtol=1e-4, atol=1e-5)
    m2 = Conv3d(2, 2, 2, padding=1, padding_mode="replicate")
    xp = np.pad(x, [(0, 0), (0, 0)] + [(1, 1)] * 3, mode="edge")
    assert_close(m2(torch.tensor(x)), ref_conv(xp, np_(m2.weight), np_(m2.bias), (1,) * 3, [(0, 0)] * 3, (1,) * 3, 1),
                 rtol=1e-4, atol=1e-5)


def test_conv_unbatched_input():
    m = Conv2d(2, 3, 3, padding=1)
    x = torch.randn(2, 5, 5)
    out = m(x)
    assert tuple(out.shape) == (3, 5, 5)
    assert_close(out, np_(m(x.unsqueeze(0)))[0], rtol=1e-6)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2), dict(stride=2, padding=1, output_padding=1),
                                dict(dilation=2, padding=1), dict(groups=2, stride=3, output_padding=2),
                                dict(bias=False, stride=(2, 1), padding=(0, 1))])
def test_conv_transpose2d_forward_matches_reference(kw):
    m = ConvTranspose2d(4, 6, 3, **kw)
    assert tuple(m.weight.shape) == (4, 6 // m.groups, 3, 3)
    x = rand_array((2, 4, 4, 3), np.float32)
    ref = ref_conv_transpose(x, np_(m.weight), np_(m.bias), m.stride, m.padding, m.output_padding, m.dilation,
                             m.groups)
    assert_close(m(torch.tensor(x)), ref, rtol=1e-4, atol=1e-5)


def test_conv_transpose1d_and_3d_forward():
    m = ConvTranspose1d(3, 2, 3, stride=2, padding=1, output_padding=1)
    x = rand_array((2, 3, 5), np.float32)
    ref = ref_conv_transpose(x, np_(m.weight), np_(m.bias), (2,), (1,), (1,), (1,), 1)
    assert_close(m(torch.tensor(x)), ref, rtol=1e-4, atol=1e-5)
    assert tuple(m(torch.tensor(x[0])).shape) == (2, 10)
    m3 = ConvTranspose3d(2, 2, 2, stride=2)
    x3 = rand_array((1, 2, 2, 3, 2), np.float32)
    ref3 = ref_conv_transpose(x3, np_(m3.weight), np_(m3.bias), (2,) * 3, (0,) * 3, (0,) * 3, (1,) * 3, 1)
    assert_close(m3(torch.tensor(x3)), ref3, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size", [[11, 11], [12, 12], [1, 16, 12, 11], (12, 11)])
def test_conv_transpose2d_output_size(size):
    m = ConvTranspose2d(16, 16, 3, stride=2, padding=1)
    x = rand_array((1, 16, 6, 6), np.float32)
    out = m(torch.tensor(x), output_size=size)
    assert list(out.shape[-2:]) == list(size[-2:])
    opad = [s - 11 for s in list(size)[-2:]]
    ref = ref_conv_transpose(x, np_(m.weight), np_(m.bias), (2, 2), (1, 1), opad, (1, 1), 1)
    assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_conv_transpose_output_size_errors():
    m = ConvTranspose2d(2, 2, 3, stride=2, padding=1)
    x = torch.randn(1, 2, 6, 6)
    with pytest.raises(ValueError, match=r"requested an output size of \[13, 13\], but valid sizes range from "
                                         r"\[11, 11\] to \[12, 12\]"):
        m(x, output_size=[13, 13])
    with pytest.raises(ValueError, match="ConvTranspose2D: for 4D input, output_size must have 2 or 4 elements "
                                         r"\(got 3\)"):
        m(x, output_size=[2, 12, 12])
    m1 = ConvTranspose1d(2, 2, 3, stride=3)
    out = m1(torch.randn(2, 4), output_size=[12])  # unbatched: (C, L) plus (C, L) sizes also accepted
    assert tuple(out.shape) == (2, 12)
    assert tuple(m1(torch.randn(2, 4), output_size=[2, 14]).shape) == (2, 14)


# ---- gradients ----------------------------------------------------------------------------------
def test_conv2d_gradcheck():
    m = Conv2d(2, 2, 2, stride=(1, 2), padding=1, groups=2).double()
    gradcheck_layer(m, rand_array((1, 2, 3, 4)))


def test_conv1d_gradcheck_padding_mode():
    m = Conv1d(2, 2, 3, padding=1, padding_mode="reflect").double()
    gradcheck_layer(m, rand_array((2, 2, 4)))


def test_conv_transpose2d_gradcheck():
    m = ConvTranspose2d(2, 2, 2, stride=2, padding=1, output_padding=1).double()
    gradcheck_layer(m, rand_array((1, 2, 2, 3)))


def test_conv_transpose1d_gradcheck_output_size():
    m = ConvTranspose1d(2, 1, 3, stride=2).double()
    x = torch.tensor(rand_array((1, 2, 3)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, w, b: m(a, output_size=[8]), (x, m.weight, m.bias))


# ---- init, state, repr, attributes -------------------------------------------------------------
@pytest.mark.parametrize("cls,ks,fan_in", [(Conv2d, 3, 16 * 9), (Conv1d, 5, 16 * 5), (ConvTranspose2d, 3, 32 * 9)])
def test_conv_default_init_statistics(cls, ks, fan_in):
    torch.manual_seed(0)
    m = cls(16, 32, ks)
    # Transposed weights are (in, out, k...): PyTorch's fan_in is then out_channels * prod(k).
    bound = 1 / math.sqrt(fan_in)
    w, b = np_(m.weight), np_(m.bias)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.03 * bound
    assert np.abs(b).max() <= bound


def test_conv_attributes_and_factory_kwargs():
    m = Conv2d(4, 8, (3, 5), stride=2, padding=(1, 2), dilation=1, groups=2, dtype=torch.float64, device="cpu")
    assert (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups) == \
        (4, 8, (3, 5), (2, 2), (1, 2), (1, 1), 2)
    assert m.transposed is False and m.output_padding == (0, 0) and m.padding_mode == "zeros"
    assert tuple(m.weight.shape) == (8, 2, 3, 5) and m.weight.dtype == torch.float64
    assert isinstance(m, _ConvNd)
    t = ConvTranspose2d(4, 8, 3, groups=2)
    assert isinstance(t, _ConvTransposeNd) and t.transposed is True and tuple(t.weight.shape) == (4, 4, 3, 3)


def test_conv_state_dict_round_trip():
    a, b = Conv2d(2, 3, 3), Conv2d(2, 3, 3)
    assert list(a.state_dict()) == ["weight", "bias"]
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 2, 5, 5)
    np.testing.assert_array_equal(np_(a(x)), np_(b(x)))
    assert list(Conv1d(2, 3, 3, bias=False).state_dict()) == ["weight"]
    assert list(ConvTranspose2d(2, 3, 3).state_dict()) == ["weight", "bias"]


@pytest.mark.parametrize("m,text", [
    (lambda: Conv2d(1, 16, 3, padding=1), "Conv2d(1, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"),
    (lambda: Conv2d(3, 6, 3), "Conv2d(3, 6, kernel_size=(3, 3), stride=(1, 1))"),
    (lambda: Conv1d(16, 33, 3, stride=2), "Conv1d(16, 33, kernel_size=(3,), stride=(2,))"),
    (lambda: Conv2d(4, 4, 3, padding="same", dilation=2, groups=2, bias=False, padding_mode="reflect"),
     "Conv2d(4, 4, kernel_size=(3, 3), stride=(1, 1), padding=same, dilation=(2, 2), groups=2, bias=False, "
     "padding_mode=reflect)"),
    (lambda: Conv3d(1, 2, (1, 2, 3)), "Conv3d(1, 2, kernel_size=(1, 2, 3), stride=(1, 1, 1))"),
    (lambda: ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1),
     "ConvTranspose2d(4, 2, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), output_padding=(1, 1))"),
    (lambda: ConvTranspose1d(4, 2, 3), "ConvTranspose1d(4, 2, kernel_size=(3,), stride=(1,))"),
])
def test_conv_repr(m, text):
    assert repr(m()) == text


def test_conv_train_eval_same_output():
    m = Conv2d(1, 2, 3)
    x = torch.randn(1, 1, 4, 4)
    y = np_(m(x))
    np.testing.assert_array_equal(y, np_(m.eval()(x)))


# ---- errors -------------------------------------------------------------------------------------
def test_conv_constructor_errors():
    with pytest.raises(ValueError, match="^in_channels must be divisible by groups$"):
        Conv2d(3, 6, 3, groups=2)
    with pytest.raises(ValueError, match="^out_channels must be divisible by groups$"):
        Conv2d(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match="groups must be a positive integer"):
        Conv1d(4, 4, 3, groups=0)
    with pytest.raises(ValueError, match="Invalid padding string 'full'"):
        Conv2d(1, 1, 3, padding="full")
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        Conv2d(1, 1, 3, padding="same", stride=2)
    with pytest.raises(ValueError, match="padding_mode must be one of .* but got padding_mode='mirror'"):
        Conv2d(1, 1, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match='Only "zeros" padding mode is supported for ConvTranspose2d'):
        ConvTranspose2d(1, 1, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        ConvTranspose1d(3, 4, 3, groups=2)


def test_conv_bad_input_errors():
    m = Conv2d(3, 4, 3)
    with pytest.raises(RuntimeError, match=r"expected input\[1, 2, 5, 5\] to have 3 channels, but got 2"):
        m(torch.randn(1, 2, 5, 5))
    with pytest.raises(RuntimeError, match=r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d"):
        m(torch.randn(5, 5))
    with pytest.raises(RuntimeError, match="Kernel size can't be greater than actual input size"):
        m(torch.randn(1, 3, 2, 2))
    with pytest.raises(RuntimeError, match="expected scalar type"):
        m(torch.randn(1, 3, 5, 5, dtype=torch.float64))
