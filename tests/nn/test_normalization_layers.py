"""LayerNorm, GroupNorm, RMSNorm, LocalResponseNorm and InstanceNorm1d/2d/3d layers vs NumPy references."""
from collections import OrderedDict

import numpy as np
import pytest

import disttorch as torch
from disttorch.nn.modules.instancenorm import InstanceNorm1d, InstanceNorm2d, InstanceNorm3d
from disttorch.nn.modules.normalization import CrossMapLRN2d, GroupNorm, LayerNorm, LocalResponseNorm, RMSNorm

rng = np.random.default_rng(11)


def _randomize(m):
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.tensor(rng.uniform(0.5, 1.5, p.shape)))
    return m


def _params_np(m):
    return [None if p is None else p.detach().numpy() for p in (getattr(m, "weight", None), getattr(m, "bias", None))]


# ---- LayerNorm -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ns,shape", [(4, (3, 4)), ((2, 3), (2, 2, 3)), ([3], (3,))])
@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, True)])
def test_layernorm_forward_and_grad(ns, shape, affine, bias):
    m = _randomize(LayerNorm(ns, eps=1e-3, elementwise_affine=affine, bias=bias).double())
    x = rng.normal(size=shape)
    k = 1 if isinstance(ns, int) else len(ns)
    ax = tuple(range(len(shape) - k, len(shape)))
    ref = (x - x.mean(ax, keepdims=True)) / np.sqrt(x.var(ax, keepdims=True) + 1e-3)
    w, b = _params_np(m)
    if w is not None:
        ref = ref * w
    if b is not None:
        ref = ref + b
    np.testing.assert_allclose(m(torch.tensor(x)).detach().numpy(), ref, rtol=1e-10, atol=1e-12)
    params = [p for p in m.parameters()]
    xt = torch.tensor(x, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, *ps: m(x), (xt, *params))


def test_layernorm_attributes_state_dict_repr():
    m = LayerNorm([2, 3])
    assert m.normalized_shape == (2, 3) and m.eps == 1e-5 and m.elementwise_affine
    assert m.weight.shape == (2, 3) and m.weight.dtype == torch.float32
    np.testing.assert_array_equal(m.weight.detach().numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(m.bias.detach().numpy(), np.zeros((2, 3)))
    assert list(m.state_dict()) == ["weight", "bias"]
    assert list(LayerNorm(3, bias=False).state_dict()) == ["weight"]
    assert LayerNorm(3, bias=False).bias is None
    assert list(LayerNorm(3, elementwise_affine=False).state_dict()) == []
    assert repr(m) == "LayerNorm((2, 3), eps=1e-05, elementwise_affine=True, bias=True)"
    assert repr(LayerNorm(8, eps=1e-6, elementwise_affine=False)) == \
        "LayerNorm((8,), eps=1e-06, elementwise_affine=False, bias=False)"
    assert LayerNorm(3, dtype=torch.float64).weight.dtype == torch.float64
    src = _randomize(LayerNorm(3))
    dst = LayerNorm(3)
    dst.load_state_dict(src.state_dict())
    np.testing.assert_array_equal(dst.weight.detach().numpy(), src.weight.detach().numpy())


def test_layernorm_bad_shape():
    with pytest.raises(RuntimeError, match="normalized_shape"):
        LayerNorm(4)(torch.randn(2, 3))


# ---- GroupNorm -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("groups,shape", [(2, (2, 4, 3)), (1, (3, 4)), (4, (1, 4, 2, 2))])
@pytest.mark.parametrize("affine", [True, False])
def test_groupnorm_forward_and_grad(groups, shape, affine):
    m = _randomize(GroupNorm(groups, 4, affine=affine).double())
    x = rng.normal(size=shape)
    n = shape[0]
    g = x.reshape(n, groups, -1)
    ref = ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-5)).reshape(shape)
    w, b = _params_np(m)
    if affine:
        cshape = (1, 4) + (1,) * (len(shape) - 2)
        ref = ref * w.reshape(cshape) + b.reshape(cshape)
    np.testing.assert_allclose(m(torch.tensor(x)).detach().numpy(), ref, rtol=1e-10, atol=1e-12)
    xt = torch.tensor(x, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, *ps: m(x), (xt, *m.parameters()))


def test_groupnorm_attributes_repr_errors():
    m = GroupNorm(3, 6)
    assert (m.num_groups, m.num_channels, m.eps, m.affine) == (3, 6, 1e-5, True)
    np.testing.assert_array_equal(m.weight.detach().numpy(), np.ones(6))
    np.testing.assert_array_equal(m.bias.detach().numpy(), np.zeros(6))
    assert list(m.state_dict()) == ["weight", "bias"]
    assert list(GroupNorm(3, 6, affine=False).state_dict()) == []
    assert repr(m) == "GroupNorm(3, 6, eps=1e-05, affine=True, bias=True)"
    assert repr(GroupNorm(2, 4, bias=False)) == "GroupNorm(2, 4, eps=1e-05, affine=True, bias=False)"
    assert GroupNorm(2, 4, bias=False).bias is None
    with pytest.raises(ValueError, match=r"num_channels \(6\) must be divisible by num_groups \(4\)"):
        GroupNorm(4, 6)
    with pytest.raises(RuntimeError, match="divisible by num_groups"):
        GroupNorm(2, 4)(torch.randn(2, 3, 5))


# ---- RMSNorm ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ns,shape,eps", [(3, (2, 3), 1e-4), ((2, 2), (3, 2, 2), None)])
@pytest.mark.parametrize("affine", [True, False])
def test_rmsnorm_forward_and_grad(ns, shape, eps, affine):
    m = _randomize(RMSNorm(ns, eps=eps, elementwise_affine=affine).double())
    x = rng.normal(size=shape)
    k = 1 if isinstance(ns, int) else len(ns)
    ax = tuple(range(len(shape) - k, len(shape)))
    e = np.finfo(np.float64).eps if eps is None else eps
    ref = x / np.sqrt((x * x).mean(ax, keepdims=True) + e)
    if affine:
        ref = ref * m.weight.detach().numpy()
    np.testing.assert_allclose(m(torch.tensor(x)).detach().numpy(), ref, rtol=1e-10)
    xt = torch.tensor(x, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, *ps: m(x), (xt, *m.parameters()))


def test_rmsnorm_attributes_repr():
    m = RMSNorm([2, 3])
    assert m.normalized_shape == (2, 3) and m.eps is None
    np.testing.assert_array_equal(m.weight.detach().numpy(), np.ones((2, 3)))
    assert list(m.state_dict()) == ["weight"]
    assert repr(m) == "RMSNorm((2, 3), eps=None, elementwise_affine=True)"
    assert repr(RMSNorm(4, eps=1e-6, elementwise_affine=False)) == "RMSNorm((4,), eps=1e-06, elementwise_affine=False)"
    assert RMSNorm(4, elementwise_affine=False).weight is None


# ---- LocalResponseNorm -----------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 2, 3])
def test_local_response_norm(size):
    m = LocalResponseNorm(size, alpha=0.3, beta=0.6, k=2.0)
    x = rng.normal(size=(2, 4, 3))
    sq = x * x
    c = x.shape[1]
    acc = np.zeros_like(x)
    for i in range(c):
        lo, hi = max(0, i - size // 2), min(c, i + (size - 1) // 2 + 1)
        acc[:, i] = sq[:, lo:hi].sum(1)
    ref = x / (2.0 + 0.3 * acc / size) ** 0.6
    np.testing.assert_allclose(m(torch.tensor(x)).numpy(), ref, rtol=1e-10)
    xt = torch.tensor(x[:1, :, :2].copy(), requires_grad=True)
    assert torch.autograd.gradcheck(m, (xt,))
    assert list(m.state_dict()) == []


def test_local_response_norm_repr():
    assert repr(LocalResponseNorm(2)) == "LocalResponseNorm(2, alpha=0.0001, beta=0.75, k=1.0)"


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_cross_map_lrn2d_vs_legacy_running_sum(size):
    x = rng.normal(size=(2, 5, 2, 2))
    c = x.shape[1]
    sq = x * x
    # The legacy algorithm: a running sum over channels, adding c + pre_pad - 1 and dropping c - pre_pad.
    pre_pad = int((size - 1) / 2 + 1)
    scale = np.zeros_like(x)
    scale[:, 0] = sq[:, :min(pre_pad, c)].sum(1)
    for i in range(1, c):
        scale[:, i] = scale[:, i - 1]
        if i + pre_pad - 1 < c:
            scale[:, i] += sq[:, i + pre_pad - 1]
        if i - pre_pad >= 0:
            scale[:, i] -= sq[:, i - pre_pad]
    ref = x * (1.5 + 0.2 / size * scale) ** -0.7
    m = CrossMapLRN2d(size, alpha=0.2, beta=0.7, k=1.5)
    np.testing.assert_allclose(m(torch.tensor(x)).numpy(), ref, rtol=1e-10)
    assert repr(CrossMapLRN2d(3)) == "CrossMapLRN2d(3, alpha=0.0001, beta=0.75, k=1)"
    with pytest.raises(ValueError, match="CrossMapLRN2d: Expected input to be 4D, got 3D instead."):
        m(torch.zeros(1, 2, 3))


# ---- InstanceNorm ----------------------------------------------------------------------------------------
def _in_ref(x, w=None, b=None, eps=1e-5):
    ax = tuple(range(2, x.ndim))
    y = (x - x.mean(ax, keepdims=True)) / np.sqrt(x.var(ax, keepdims=True) + eps)
    if w is not None:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        y = y * w.reshape(shape) + b.reshape(shape)
    return y


@pytest.mark.parametrize("cls,shape", [(InstanceNorm1d, (2, 3, 4)), (InstanceNorm2d, (2, 3, 2, 3)),
                                       (InstanceNorm3d, (1, 3, 2, 2, 2))])
@pytest.mark.parametrize("affine", [False, True])
def test_instancenorm_forward_and_grad(cls, shape, affine):
    m = _randomize(cls(3, affine=affine).double())
    x = rng.normal(size=shape)
    w, b = _params_np(m)
    np.testing.assert_allclose(m(torch.tensor(x)).detach().numpy(), _in_ref(x, w, b), rtol=1e-10, atol=1e-12)
    # The batch-less form normalises one sample.
    np.testing.assert_allclose(m(torch.tensor(x[0])).detach().numpy(), _in_ref(x[:1], w, b)[0], rtol=1e-10,
                               atol=1e-12)
    xt = torch.tensor(x[:1], requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, *ps: m(x), (xt, *m.parameters()))


def test_instancenorm_running_stats():
    m = InstanceNorm1d(2, momentum=0.5, track_running_stats=True).double()
    x = rng.normal(1.0, 2.0, size=(3, 2, 5))
    m(torch.tensor(x))
    rm = 0.5 * np.zeros(2) + 0.5 * x.mean(2).mean(0)
    rv = 0.5 * np.ones(2) + 0.5 * x.var(2, ddof=1).mean(0)
    np.testing.assert_allclose(m.running_mean.numpy(), rm, rtol=1e-10)
    np.testing.assert_allclose(m.running_var.numpy(), rv, rtol=1e-10)
    m.eval()
    z = rng.normal(size=(2, 2, 5))
    ref = (z - rm.reshape(1, 2, 1)) / np.sqrt(rv.reshape(1, 2, 1) + 1e-5)
    np.testing.assert_allclose(m(torch.tensor(z)).numpy(), ref, rtol=1e-10)
    assert list(m.state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]


def test_instancenorm_defaults_repr_state_dict():
    m = InstanceNorm2d(4)
    assert not m.affine and not m.track_running_stats and m.weight is None and m.running_mean is None
    assert list(m.state_dict()) == []
    assert repr(m) == "InstanceNorm2d(4, eps=1e-05, momentum=0.1, affine=False, track_running_stats=False)"
    assert list(InstanceNorm1d(2, affine=True).state_dict()) == ["weight", "bias"]


def test_instancenorm_pre_04_checkpoint_running_stats():
    m = InstanceNorm1d(2)
    old = OrderedDict(running_mean=torch.zeros(2), running_var=torch.ones(2))
    with pytest.raises(RuntimeError, match='Unexpected running stats buffer\\(s\\) "running_mean" and "running_var" '
                                           "for InstanceNorm1d with track_running_stats=False"):
        m.load_state_dict(old)


@pytest.mark.parametrize("cls,shape,msg", [(InstanceNorm1d, (2, 3, 4, 5), "expected 2D or 3D input \\(got 4D input\\)"),
                                           (InstanceNorm2d, (3, 4), "expected 3D or 4D input \\(got 2D input\\)"),
                                           (InstanceNorm3d, (3, 4, 4), "expected 4D or 5D input \\(got 3D input\\)")])
def test_instancenorm_bad_dims(cls, shape, msg):
    with pytest.raises(ValueError, match=msg):
        cls(3)(torch.zeros(shape))


def test_instancenorm_channel_mismatch():
    with pytest.raises(ValueError, match="expected input's size at dim=1 to match num_features \\(3\\), but got: 2"):
        InstanceNorm1d(3, affine=True)(torch.randn(2, 2, 4))
    with pytest.warns(UserWarning, match="input's size at dim=1 does not match num_features"):
        InstanceNorm1d(3)(torch.randn(2, 2, 4))
