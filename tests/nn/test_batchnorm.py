"""BatchNorm1d/2d/3d: running statistics vs NumPy, eval mode, options, state_dict, gradcheck, errors."""
from collections import OrderedDict

import numpy as np
import pytest

import disttorch as torch
from disttorch.nn.modules.batchnorm import BatchNorm1d, BatchNorm2d, BatchNorm3d, _BatchNorm, _NormBase

rng = np.random.default_rng(7)


def _axes(ndim):
    return (0,) + tuple(range(2, ndim))


def _bn_ref(x, mean, var, w, b, eps):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if w is not None:
        y = y * w.reshape(shape) + b.reshape(shape)
    return y


@pytest.mark.parametrize("cls,shape", [(BatchNorm1d, (6, 3)), (BatchNorm1d, (4, 3, 5)), (BatchNorm2d, (3, 3, 2, 4)),
                                       (BatchNorm3d, (2, 3, 2, 2, 3))])
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_running_stats_over_steps(cls, shape, momentum):
    m = cls(3, momentum=momentum).double()
    with torch.no_grad():
        m.weight.copy_(torch.tensor(rng.uniform(0.5, 2.0, 3)))
        m.bias.copy_(torch.tensor(rng.uniform(-1.0, 1.0, 3)))
    w, b = m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()
    rm, rv = np.zeros(3), np.ones(3)
    batches = []
    for step in range(1, 5):
        x = rng.normal(2.0, 3.0, size=shape)
        batches.append(x)
        y = m(torch.tensor(x))
        ax = _axes(len(shape))
        mean, var = x.mean(ax), x.var(ax)
        n = x.size // 3
        np.testing.assert_allclose(y.detach().numpy(), _bn_ref(x, mean, var, w, b, 1e-5), rtol=1e-10, atol=1e-10)
        f = 1.0 / step if momentum is None else momentum
        rm = (1 - f) * rm + f * mean
        rv = (1 - f) * rv + f * var * n / (n - 1)
        np.testing.assert_allclose(m.running_mean.numpy(), rm, rtol=1e-10)
        np.testing.assert_allclose(m.running_var.numpy(), rv, rtol=1e-10)
        assert int(m.num_batches_tracked) == step
    if momentum is None:
        # Cumulative moving average: plain mean of the per-batch statistics.
        ax = _axes(len(shape))
        np.testing.assert_allclose(m.running_mean.numpy(), np.mean([x.mean(ax) for x in batches], 0), rtol=1e-10)
        n = batches[0].size // 3
        np.testing.assert_allclose(m.running_var.numpy(), np.mean([x.var(ax) * n / (n - 1) for x in batches], 0),
                                   rtol=1e-10)
    # Eval mode normalises with the running statistics and leaves them (and the count) untouched.
    m.eval()
    x = rng.normal(size=shape)
    y = m(torch.tensor(x))
    np.testing.assert_allclose(y.detach().numpy(), _bn_ref(x, rm, rv, w, b, 1e-5), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(m.running_mean.numpy(), rm, rtol=1e-12)
    assert int(m.num_batches_tracked) == 4


def test_defaults_buffers_and_dtypes():
    m = BatchNorm2d(4)
    assert (m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats) == (4, 1e-5, 0.1, True, True)
    np.testing.assert_array_equal(m.weight.detach().numpy(), np.ones(4))
    np.testing.assert_array_equal(m.bias.detach().numpy(), np.zeros(4))
    np.testing.assert_array_equal(m.running_mean.numpy(), np.zeros(4))
    np.testing.assert_array_equal(m.running_var.numpy(), np.ones(4))
    assert m.weight.dtype == torch.float32 and m.running_mean.dtype == torch.float32
    assert m.num_batches_tracked.dtype == torch.int64 and m.num_batches_tracked.shape == ()
    assert isinstance(m.weight, torch.nn.Parameter) and not m.running_mean.requires_grad
    assert isinstance(m, _BatchNorm) and isinstance(m, _NormBase)
    d = BatchNorm1d(2, dtype=torch.float64)
    assert d.weight.dtype == torch.float64 and d.running_var.dtype == torch.float64
    assert d.num_batches_tracked.dtype == torch.int64
    assert d(torch.randn(5, 2, dtype=torch.float64)).dtype == torch.float64


def test_state_dict_keys_and_round_trip():
    m = BatchNorm1d(3)
    for _ in range(3):
        m(torch.randn(5, 3))
    sd = m.state_dict()
    assert list(sd.keys()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert sd._metadata[""]["version"] == 2
    fresh = BatchNorm1d(3)
    fresh.load_state_dict(sd)
    for k in sd:
        np.testing.assert_array_equal(fresh.state_dict()[k].numpy(), sd[k].numpy())
    assert int(fresh.num_batches_tracked) == 3
    assert list(BatchNorm1d(3, affine=False).state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]
    assert list(BatchNorm1d(3, track_running_stats=False).state_dict()) == ["weight", "bias"]


@pytest.mark.parametrize("version", [None, 1])
def test_load_old_state_dict_without_num_batches_tracked(version):
    src = BatchNorm2d(2)
    src(torch.randn(3, 2, 2, 2))
    old = OrderedDict((k, v) for k, v in src.state_dict().items() if k != "num_batches_tracked")
    if version is not None:
        old._metadata = OrderedDict({"": {"version": version}})
    dst = BatchNorm2d(2)
    dst.num_batches_tracked.fill_(5)
    result = dst.load_state_dict(old)  # strict: the missing key is filled in, not reported
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(dst.running_mean.numpy(), src.running_mean.numpy())
    assert int(dst.num_batches_tracked) == 5 and dst.num_batches_tracked.dtype == torch.int64


def test_old_state_dict_nested_and_current_version_missing():
    net = torch.nn.Sequential(BatchNorm1d(2))
    sd = net.state_dict()
    del sd["0.num_batches_tracked"]
    sd._metadata["0"] = {"version": 1}
    net.load_state_dict(sd)
    sd._metadata["0"] = {"version": 2}
    with pytest.raises(RuntimeError, match="Missing key.*num_batches_tracked"):
        net.load_state_dict(sd)


def test_affine_false():
    m = BatchNorm1d(3, affine=False).double()
    assert m.weight is None and m.bias is None
    assert [n for n, _ in m.named_parameters()] == []
    x = rng.normal(size=(4, 3, 2))
    y = m(torch.tensor(x))
    np.testing.assert_allclose(y.detach().numpy(), _bn_ref(x, x.mean((0, 2)), x.var((0, 2)), None, None, 1e-5), rtol=1e-10)


def test_track_running_stats_false_uses_batch_stats_in_eval():
    m = BatchNorm1d(3, track_running_stats=False).double()
    assert m.running_mean is None and m.running_var is None and m.num_batches_tracked is None
    m.eval()
    x = rng.normal(1.0, 2.0, size=(5, 3))
    y = m(torch.tensor(x))
    np.testing.assert_allclose(y.detach().numpy(), _bn_ref(x, x.mean(0), x.var(0), np.ones(3), np.zeros(3), 1e-5),
                               rtol=1e-10, atol=1e-12)


def test_eval_without_buffers_set_to_none_uses_batch_stats():
    m = BatchNorm1d(2).double().eval()
    m.running_mean = None
    m.running_var = None
    x = rng.normal(size=(4, 2))
    np.testing.assert_allclose(m(torch.tensor(x)).detach().numpy(),
                               _bn_ref(x, x.mean(0), x.var(0), np.ones(2), np.zeros(2), 1e-5), rtol=1e-10)


def test_momentum_none_eval_and_custom_eps():
    m = BatchNorm1d(2, eps=0.5, momentum=None).double()
    x = rng.normal(size=(3, 2))
    m(torch.tensor(x))
    np.testing.assert_allclose(m.running_mean.numpy(), x.mean(0), rtol=1e-12)  # first batch: factor 1
    m.eval()
    z = rng.normal(size=(3, 2))
    np.testing.assert_allclose(m(torch.tensor(z)).detach().numpy(),
                               _bn_ref(z, x.mean(0), x.var(0, ddof=1), np.ones(2), np.zeros(2), 0.5), rtol=1e-10)


def test_reset_running_stats_and_parameters():
    m = BatchNorm1d(3)
    for _ in range(2):
        m(torch.randn(4, 3) * 3 + 1)
    with torch.no_grad():
        m.weight.mul_(2)
    m.reset_running_stats()
    np.testing.assert_array_equal(m.running_mean.numpy(), np.zeros(3))
    np.testing.assert_array_equal(m.running_var.numpy(), np.ones(3))
    assert int(m.num_batches_tracked) == 0
    assert float(m.weight.sum()) == 6.0
    m.reset_parameters()
    np.testing.assert_array_equal(m.weight.detach().numpy(), np.ones(3))


@pytest.mark.parametrize("cls,shape", [(BatchNorm1d, (3, 2)), (BatchNorm1d, (2, 2, 3)), (BatchNorm2d, (2, 2, 2, 2))])
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck(cls, shape, training):
    m = cls(2).double()
    with torch.no_grad():
        m.weight.copy_(torch.tensor([0.7, 1.3], dtype=torch.float64))
        m.bias.copy_(torch.tensor([0.1, -0.2], dtype=torch.float64))
        m.running_mean.copy_(torch.tensor([0.3, -0.5], dtype=torch.float64))
        m.running_var.copy_(torch.tensor([1.5, 0.8], dtype=torch.float64))
    m.train(training)
    x = torch.tensor(rng.normal(size=shape), requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: m(x), (x, m.weight, m.bias))


def test_backward_populates_parameter_grads():
    m = BatchNorm2d(3)
    m(torch.randn(2, 3, 2, 2)).pow(2).sum().backward()
    assert m.weight.grad.shape == (3,) and m.bias.grad.shape == (3,)
    assert m.running_mean.grad is None


def test_repr():
    assert repr(BatchNorm2d(16)) == "BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    assert (repr(BatchNorm1d(3, eps=1e-3, momentum=None, affine=False, track_running_stats=False))
            == "BatchNorm1d(3, eps=0.001, momentum=None, affine=False, track_running_stats=False)")


@pytest.mark.parametrize("cls,shape,msg", [
    (BatchNorm1d, (2, 3, 4, 5), "expected 2D or 3D input \\(got 4D input\\)"),
    (BatchNorm1d, (3,), "expected 2D or 3D input \\(got 1D input\\)"),
    (BatchNorm2d, (2, 3, 4), "expected 4D input \\(got 3D input\\)"),
    (BatchNorm3d, (2, 3, 4, 4), "expected 5D input \\(got 4D input\\)"),
])
def test_bad_input_dims(cls, shape, msg):
    with pytest.raises(ValueError, match=msg):
        cls(3)(torch.zeros(shape))


def test_single_value_per_channel_in_training():
    m = BatchNorm1d(3)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        m(torch.randn(1, 3))
    m.eval()
    assert m(torch.randn(1, 3)).shape == (1, 3)


def test_wrong_channel_count():
    with pytest.raises(RuntimeError, match="running_mean should contain 3 elements not 4"):
        BatchNorm1d(4)(torch.randn(5, 3))


def test_to_and_double_convert_buffers_but_not_count():
    m = BatchNorm1d(2).double()
    assert m.running_mean.dtype == torch.float64 and m.num_batches_tracked.dtype == torch.int64
