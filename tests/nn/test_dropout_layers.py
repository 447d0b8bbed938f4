"""Dropout, Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout (disttorch.nn.modules.dropout)."""
import numpy as np
import pytest

import disttorch as torch
from disttorch.nn.modules.dropout import (AlphaDropout, Dropout, Dropout1d, Dropout2d, Dropout3d, FeatureAlphaDropout,
                                          _DropoutNd)

ALL = [Dropout, Dropout1d, Dropout2d, Dropout3d, AlphaDropout, FeatureAlphaDropout]
SHAPES = {Dropout: (4, 5), Dropout1d: (2, 3, 4), Dropout2d: (2, 3, 4, 4), Dropout3d: (2, 3, 2, 2, 2),
          AlphaDropout: (4, 5), FeatureAlphaDropout: (2, 3, 4, 4)}


@pytest.mark.parametrize("cls", ALL)
def test_eval_is_identity_and_repr(cls):
    m = cls(0.3)
    assert isinstance(m, _DropoutNd) and m.p == 0.3 and m.inplace is False
    assert repr(m) == f"{cls.__name__}(p=0.3, inplace=False)"
    assert m.state_dict() == {}
    x = torch.randn(*SHAPES[cls])
    m.eval()
    np.testing.assert_array_equal(m(x).numpy(), x.numpy())


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_bad_probability(cls, p):
    with pytest.raises(ValueError, match=f"dropout probability has to be between 0 and 1, but got {p}"):
        cls(p)


def test_dropout_train_zeroes_and_rescales():
    torch.manual_seed(0)
    m = Dropout(0.25)
    x = torch.ones(200, 200)
    y = m(x).numpy()
    kept = y != 0
    assert abs(1 - kept.mean() - 0.25) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    assert y.dtype == np.float32
    assert repr(Dropout()) == "Dropout(p=0.5, inplace=False)"


def test_dropout_gradient_is_the_mask():
    torch.manual_seed(1)
    m = Dropout(0.5).double()
    x = torch.randn(6, 7, dtype=torch.float64, requires_grad=True)
    y = m(x)
    y.sum().backward()
    mask = y.detach().numpy() != 0
    np.testing.assert_allclose(x.grad.numpy(), mask * 2.0)


def test_dropout_p0_p1_and_inplace():
    x = torch.randn(3, 4)
    np.testing.assert_array_equal(Dropout(0.0)(x).numpy(), x.numpy())
    np.testing.assert_array_equal(Dropout(1.0)(x).numpy(), np.zeros((3, 4), np.float32))
    z = torch.ones(50, 50)
    out = Dropout(0.5, inplace=True)(z)
    assert out is z or np.shares_memory(out.numpy(), z.numpy())
    assert (z.numpy() == 0).any()
    assert repr(Dropout(0.5, inplace=True)) == "Dropout(p=0.5, inplace=True)"


@pytest.mark.parametrize("cls,shape", [(Dropout1d, (8, 40, 5)), (Dropout2d, (8, 40, 3, 3)),
                                       (Dropout3d, (8, 40, 2, 2, 2)), (Dropout1d, (40, 5))])
def test_channel_dropout_zeroes_whole_channels(cls, shape):
    torch.manual_seed(2)
    y = cls(0.5)(torch.ones(*shape)).numpy()
    nsp = {Dropout1d: 1, Dropout2d: 2, Dropout3d: 3}[cls]
    per_channel = y.reshape(shape[:-nsp] + (-1,))
    assert np.all(per_channel.min(-1) == per_channel.max(-1))  # each channel all kept or all dropped
    assert set(np.unique(per_channel)) <= {0.0, 2.0}
    assert 0.3 < (per_channel[..., 0] == 0).mean() < 0.7


def test_alpha_dropout_keeps_mean_and_variance():
    torch.manual_seed(3)
    x = torch.randn(400, 400)
    y = AlphaDropout(0.2)(x).numpy()
    assert abs(y.mean()) < 0.02 and abs(y.std() - 1.0) < 0.02
    assert not np.array_equal(y, x.numpy())


def test_feature_alpha_dropout_whole_channels():
    torch.manual_seed(4)
    y = FeatureAlphaDropout(0.5)(torch.zeros(4, 30, 3, 3)).numpy().reshape(4, 30, -1)
    assert np.all(y.min(-1) == y.max(-1))
    assert len(np.unique(y)) == 2  # the kept and the dropped value


def test_train_eval_toggle():
    m = Dropout(0.9)
    x = torch.ones(100)
    m.eval()
    assert m.training is False and float(m(x).sum()) == 100.0
    m.train()
    torch.manual_seed(5)
    assert float((m(x) == 0).sum()) > 50
