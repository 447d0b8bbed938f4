"""Flatten/Unflatten, Upsample*, padding layers, PixelShuffle, distance layers, Fold/Unfold, ChannelShuffle."""
import numpy as np
import pytest

import disttorch as torch
from disttorch.nn.modules.channelshuffle import ChannelShuffle
from disttorch.nn.modules.distance import CosineSimilarity, PairwiseDistance
from disttorch.nn.modules.flatten import Flatten, Unflatten
from disttorch.nn.modules.fold import Fold, Unfold
from disttorch.nn.modules.padding import (CircularPad1d, CircularPad2d, CircularPad3d, ConstantPad1d, ConstantPad2d,
                                          ConstantPad3d, ReflectionPad1d, ReflectionPad2d, ReplicationPad1d,
                                          ReplicationPad2d, ReplicationPad3d, ZeroPad1d, ZeroPad2d, _ConstantPadNd,
                                          _ReflectionPadNd, _ReplicationPadNd)
from disttorch.nn.modules.pixelshuffle import PixelShuffle, PixelUnshuffle
from disttorch.nn.modules.upsampling import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d
from tests.helpers import assert_close, rand_array


def grad_ok(layer, *xs):
    return torch.autograd.gradcheck(layer, tuple(torch.tensor(x, requires_grad=True) for x in xs))


# ---- Flatten / Unflatten ------------------------------------------------------------------------
@pytest.mark.parametrize("args,shape", [((), (32, 25)), ((0, -1), (800,)), ((2, 3), (32, 1, 25)), ((1, 2), (32, 5, 5))])
def test_flatten(args, shape):
    x = rand_array((32, 1, 5, 5))
    out = Flatten(*args)(torch.tensor(x))
    assert_close(out, x.reshape(shape))


def test_flatten_unflatten_repr_and_grad():
    assert repr(Flatten()) == "Flatten(start_dim=1, end_dim=-1)"
    assert repr(Unflatten(1, (2, 5, 5))) == "Unflatten(dim=1, unflattened_size=(2, 5, 5))"
    assert grad_ok(Flatten(0), rand_array((2, 3)))
    assert grad_ok(Unflatten(-1, [2, -1]), rand_array((3, 4)))


@pytest.mark.parametrize("dim,size,shape", [(1, (2, 5, 5), (2, 2, 5, 5)), (1, [5, -1], (2, 5, 10)),
                                            (-1, (25, 2), (2, 25, 2))])
def test_unflatten(dim, size, shape):
    x = rand_array((2, 50))
    assert_close(Unflatten(dim, size)(torch.tensor(x)), x.reshape(shape))


def test_unflatten_errors():
    with pytest.raises(TypeError, match="unflattened_size must be tuple of ints, but found element of type float at "
                                        "pos 1"):
        Unflatten(1, (2, 2.0))
    with pytest.raises(TypeError, match="unflattened_size must be a tuple of ints, but found type int"):
        Unflatten(1, 4)
    with pytest.raises(TypeError, match="invalid argument type for dim parameter"):
        Unflatten(1.0, (2, 2))
    with pytest.raises(TypeError, match="unflattened_size must be tuple of tuples, but found element of type int"):
        Unflatten("features", (2, 2))
    with pytest.raises(TypeError, match="unflattened_size must be a tuple of tuples, but found type list"):
        Unflatten("features", [("a", 2)])
    with pytest.raises(RuntimeError):
        Unflatten(1, (3, 3))(torch.randn(2, 10))


# ---- Upsample -----------------------------------------------------------------------------------
def bilinear_align_ref(x, oh, ow):
    """align_corners=True bilinear resize of (N, C, H, W), written out per axis."""
    def axis(n_in, n_out):
        pos = np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, pos - lo
    r0, r1, fr = axis(x.shape[2], oh)
    c0, c1, fc = axis(x.shape[3], ow)
    rows = x[:, :, r0] * (1 - fr)[:, None] + x[:, :, r1] * fr[:, None]
    return rows[..., c0] * (1 - fc) + rows[..., c1] * fc


def test_upsample_nearest_scale_and_size():
    x = rand_array((1, 2, 2, 3))
    assert_close(Upsample(scale_factor=2)(torch.tensor(x)), x.repeat(2, axis=2).repeat(2, axis=3))
    assert_close(UpsamplingNearest2d(scale_factor=2)(torch.tensor(x)), x.repeat(2, axis=2).repeat(2, axis=3))
    assert_close(Upsample(size=(4, 9))(torch.tensor(x)), x.repeat(2, axis=2).repeat(3, axis=3))
    assert_close(Upsample(scale_factor=(1, 2))(torch.tensor(x)), x.repeat(2, axis=3))
    x1 = rand_array((2, 1, 3))
    assert_close(Upsample(scale_factor=3)(torch.tensor(x1)), x1.repeat(3, axis=2))


def test_upsample_bilinear_align_corners():
    x = rand_array((1, 2, 3, 4))
    ref = bilinear_align_ref(x, 6, 8)
    assert_close(UpsamplingBilinear2d(scale_factor=2)(torch.tensor(x)), ref, rtol=1e-10, atol=1e-12)
    assert_close(Upsample(size=(6, 8), mode="bilinear", align_corners=True)(torch.tensor(x)), ref, rtol=1e-10,
                 atol=1e-12)
    assert grad_ok(UpsamplingBilinear2d(size=(3, 3)), rand_array((1, 1, 2, 2)))


def test_upsample_attributes_and_repr():
    m = Upsample(scale_factor=2, mode="nearest")
    assert m.scale_factor == 2.0 and isinstance(m.scale_factor, float) and m.name == "Upsample"
    assert repr(m) == "Upsample(scale_factor=2.0, mode='nearest')"
    assert repr(Upsample(size=(4, 5), mode="bilinear")) == "Upsample(size=(4, 5), mode='bilinear')"
    assert Upsample(scale_factor=(2, 3)).scale_factor == (2.0, 3.0)
    assert repr(UpsamplingBilinear2d(scale_factor=2)) == "UpsamplingBilinear2d(scale_factor=2.0, mode='bilinear')"
    b = UpsamplingBilinear2d(size=3)
    assert b.align_corners is True and b.mode == "bilinear" and b.scale_factor is None
    assert repr(UpsamplingNearest2d(size=3)) == "UpsamplingNearest2d(size=3, mode='nearest')"


def test_upsample_errors():
    with pytest.raises(ValueError, match="align_corners"):
        Upsample(scale_factor=2, mode="nearest", align_corners=True)(torch.randn(1, 1, 2, 2))
    with pytest.raises(NotImplementedError, match="Only 3D, 4D and 5D"):
        Upsample(scale_factor=2)(torch.randn(2, 2))


# ---- padding ------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer,np_pad,mode,kw", [
    (ZeroPad2d((1, 1, 2, 0)), [(2, 0), (1, 1)], "constant", {}),
    (ZeroPad2d(2), [(2, 2), (2, 2)], "constant", {}),
    (ZeroPad1d((0, 3)), [(0, 3)], "constant", {}),
    (ConstantPad1d(2, 3.5), [(2, 2)], "constant", dict(constant_values=3.5)),
    (ConstantPad2d((3, 0, 2, 1), -1.0), [(2, 1), (3, 0)], "constant", dict(constant_values=-1.0)),
    (ReflectionPad1d(2), [(2, 2)], "reflect", {}),
    (ReflectionPad2d((1, 1, 2, 0)), [(2, 0), (1, 1)], "reflect", {}),
    (ReplicationPad1d((3, 1)), [(3, 1)], "edge", {}),
    (ReplicationPad2d(2), [(2, 2), (2, 2)], "edge", {}),
    (CircularPad1d((1, 2)), [(1, 2)], "wrap", {}),
    (CircularPad2d(1), [(1, 1), (1, 1)], "wrap", {}),
])
def test_padding_layers_match_numpy(layer, np_pad, mode, kw):
    x = rand_array((2, 3, 4, 5)[:2 + len(np_pad)])
    ref = np.pad(x, [(0, 0), (0, 0)] + np_pad, mode=mode, **kw)
    assert_close(layer(torch.tensor(x)), ref)
    assert layer(torch.tensor(x.astype(np.float32))).dtype == torch.float32


def test_padding_3d_and_unbatched():
    x = rand_array((1, 2, 3, 3, 4))
    assert_close(ConstantPad3d(1, 2.0)(torch.tensor(x)), np.pad(x, [(0, 0)] * 2 + [(1, 1)] * 3, constant_values=2.0))
    assert_close(ReplicationPad3d((1, 0, 0, 1, 2, 0))(torch.tensor(x)),
                 np.pad(x, [(0, 0), (0, 0), (2, 0), (0, 1), (1, 0)], mode="edge"))
    assert_close(CircularPad3d(1)(torch.tensor(x)), np.pad(x, [(0, 0)] * 2 + [(1, 1)] * 3, mode="wrap"))
    x2 = rand_array((3, 5))
    assert_close(ReflectionPad1d(2)(torch.tensor(x2)), np.pad(x2, [(0, 0), (2, 2)], mode="reflect"))


def test_padding_gradcheck():
    assert grad_ok(ReflectionPad2d((1, 2, 0, 1)), rand_array((1, 1, 3, 3)))
    assert grad_ok(ReplicationPad1d(2), rand_array((1, 2, 3)))
    assert grad_ok(CircularPad2d(1), rand_array((1, 2, 2)))
    assert grad_ok(ConstantPad1d(1, 2.0), rand_array((2, 3)))


@pytest.mark.parametrize("m,text", [
    (ZeroPad2d((1, 1, 2, 0)), "ZeroPad2d((1, 1, 2, 0))"),
    (ZeroPad1d(2), "ZeroPad1d((2, 2))"),
    (ConstantPad1d(2, 3.5), "ConstantPad1d(padding=(2, 2), value=3.5)"),
    (ConstantPad2d(1, 0), "ConstantPad2d(padding=(1, 1, 1, 1), value=0)"),
    (ReflectionPad1d(2), "ReflectionPad1d((2, 2))"),
    (ReplicationPad2d((1, 0, 2, 3)), "ReplicationPad2d((1, 0, 2, 3))"),
    (CircularPad1d(1), "CircularPad1d((1, 1))"),
])
def test_padding_repr(m, text):
    assert repr(m) == text


def test_padding_bases_and_errors():
    assert isinstance(ZeroPad2d(1), ConstantPad2d) and isinstance(ZeroPad2d(1), _ConstantPadNd)
    assert isinstance(ReflectionPad2d(1), _ReflectionPadNd) and isinstance(ReplicationPad1d(1), _ReplicationPadNd)
    assert ZeroPad2d(1).value == 0.0 and ZeroPad2d(1).padding == (1, 1, 1, 1)
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        CircularPad1d(1)(torch.randn(1, 1, 1, 3))
    with pytest.raises(ValueError, match=r"expected 3D or 4D input \(got 2D input\)"):
        CircularPad2d(1)(torch.randn(3, 3))
    with pytest.raises(RuntimeError):
        ReflectionPad1d(3)(torch.randn(1, 1, 3))  # reflection padding must be smaller than the input


# ---- pixel shuffle ------------------------------------------------------------------------------
def test_pixel_shuffle_and_unshuffle():
    r = 2
    x = rand_array((2, 8, 3, 4))
    ref = x.reshape(2, 2, r, r, 3, 4).transpose(0, 1, 4, 2, 5, 3).reshape(2, 2, 6, 8)
    out = PixelShuffle(r)(torch.tensor(x))
    assert_close(out, ref)
    assert_close(PixelUnshuffle(r)(out), x)
    assert repr(PixelShuffle(3)) == "PixelShuffle(upscale_factor=3)"
    assert repr(PixelUnshuffle(3)) == "PixelUnshuffle(downscale_factor=3)"
    assert grad_ok(PixelShuffle(2), rand_array((1, 4, 2, 1)))
    with pytest.raises(RuntimeError, match="divisible"):
        PixelShuffle(2)(torch.randn(1, 3, 2, 2))


# ---- distances ----------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [2.0, 1.0, 3.0])
def test_pairwise_distance(p):
    a, b = rand_array((4, 5)), rand_array((4, 5))
    ref = (np.abs(a - b + 1e-6) ** p).sum(-1) ** (1 / p)
    m = PairwiseDistance(p=p)
    assert m.norm == p and m.eps == 1e-6 and m.keepdim is False
    assert_close(m(torch.tensor(a), torch.tensor(b)), ref)
    assert_close(PairwiseDistance(p=p, keepdim=True)(torch.tensor(a), torch.tensor(b)), ref[:, None])
    assert grad_ok(m, a[:2, :3], b[:2, :3])


def test_cosine_similarity():
    a, b = rand_array((3, 4, 2)), rand_array((3, 4, 2))
    for dim in (1, 0, -1):
        ref = (a * b).sum(dim) / np.maximum(np.linalg.norm(a, axis=dim) * np.linalg.norm(b, axis=dim), 1e-8)
        assert_close(CosineSimilarity(dim=dim)(torch.tensor(a), torch.tensor(b)), ref)
    assert grad_ok(CosineSimilarity(), a[:2], b[:2])
    assert repr(CosineSimilarity()) == "CosineSimilarity()" and repr(PairwiseDistance()) == "PairwiseDistance()"


# ---- fold / unfold ------------------------------------------------------------------------------
def unfold_ref(x, k, pad, stride):
    xp = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    n, c, h, w = xp.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    cols = np.zeros((n, c, k, k, oh, ow))
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = xp[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
    return cols.reshape(n, c * k * k, oh * ow)


def test_unfold_and_fold():
    x = rand_array((2, 3, 4, 5))
    cols = Unfold(kernel_size=2, padding=1, stride=2)(torch.tensor(x))
    assert_close(cols, unfold_ref(x, 2, 1, 2))
    # fold is the adjoint of unfold: <unfold(x), y> == <x, fold(y)>.
    y = rand_array(tuple(cols.shape))
    folded = Fold(output_size=(4, 5), kernel_size=2, padding=1, stride=2)(torch.tensor(y))
    assert tuple(folded.shape) == (2, 3, 4, 5)
    np.testing.assert_allclose((cols.numpy() * y).sum(), (x * folded.numpy()).sum(), rtol=1e-10)
    # Non-overlapping blocks: fold(unfold(x)) == x.
    assert_close(Fold((4, 4), 2, stride=2)(Unfold(2, stride=2)(torch.tensor(x[..., :4]))), x[..., :4])
    assert grad_ok(Unfold(2), rand_array((1, 1, 3, 3)))
    assert grad_ok(Fold((3, 3), 2), rand_array((1, 4, 4)))


def test_fold_unfold_repr_and_errors():
    assert repr(Fold(output_size=(4, 5), kernel_size=(2, 2))) == \
        "Fold(output_size=(4, 5), kernel_size=(2, 2), dilation=1, padding=0, stride=1)"
    assert repr(Unfold(kernel_size=(2, 3))) == "Unfold(kernel_size=(2, 3), dilation=1, padding=0, stride=1)"
    with pytest.raises(RuntimeError, match="Expected 3D or 4D"):
        Unfold(2)(torch.randn(4, 4))
    with pytest.raises(RuntimeError, match="divisible by the product of kernel_size"):
        Fold((4, 4), 2)(torch.randn(1, 3, 9))


# ---- channel shuffle ----------------------------------------------------------------------------
def test_channel_shuffle():
    x = rand_array((2, 6, 2, 2))
    ref = x.reshape(2, 3, 2, 2, 2).transpose(0, 2, 1, 3, 4).reshape(2, 6, 2, 2)
    assert_close(ChannelShuffle(3)(torch.tensor(x)), ref)
    assert repr(ChannelShuffle(3)) == "ChannelShuffle(groups=3)"
    assert grad_ok(ChannelShuffle(2), rand_array((1, 4, 2)))
    with pytest.raises(RuntimeError, match="Number of channels must be divisible by groups"):
        ChannelShuffle(4)(torch.randn(1, 6, 2))
