"""nn.init: gains, fan computation and sample statistics against the closed-form targets."""
import math

import numpy as np
import pytest

import disttorch
from disttorch.nn import init


@pytest.mark.parametrize("name,param,expected", [
    ("linear", None, 1.0), ("conv2d", None, 1.0), ("sigmoid", None, 1.0), ("tanh", None, 5 / 3),
    ("relu", None, math.sqrt(2)), ("leaky_relu", None, math.sqrt(2 / (1 + 0.01 ** 2))),
    ("leaky_relu", 0.2, math.sqrt(2 / 1.04)), ("selu", None, 0.75)])
def test_calculate_gain(name, param, expected):
    assert init.calculate_gain(name, param) == pytest.approx(expected)


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", "x")


def test_fans():
    assert init._calculate_fan_in_and_fan_out(disttorch.empty(8, 3, 5, 5)) == (75, 200)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(disttorch.empty(5))


def _stats(t):
    a = t.numpy().astype(np.float64)
    return a.min(), a.max(), a.mean(), a.std()


def test_uniform_normal_constant():
    disttorch.manual_seed(0)
    lo, hi, mean, _ = _stats(init.uniform_(disttorch.empty(200, 200), -3, 5))
    assert -3 <= lo and hi < 5 and mean == pytest.approx(1.0, abs=0.05)
    _, _, mean, std = _stats(init.normal_(disttorch.empty(200, 200), 2.0, 0.5))
    assert mean == pytest.approx(2.0, abs=0.01) and std == pytest.approx(0.5, rel=0.02)
    assert (init.constant_(disttorch.empty(3, 2), 7.5).numpy() == 7.5).all()
    assert (init.ones_(disttorch.empty(2)).numpy() == 1).all() and (init.zeros_(disttorch.empty(2)).numpy() == 0).all()


def test_xavier_and_kaiming_bounds_and_std():
    disttorch.manual_seed(1)
    w = disttorch.empty(300, 400)
    bound = math.sqrt(6 / 700)
    lo, hi, _, std = _stats(init.xavier_uniform_(w))
    assert -bound <= lo and hi <= bound and std == pytest.approx(bound / math.sqrt(3), rel=0.02)
    _, _, _, std = _stats(init.xavier_normal_(w, gain=2.0))
    assert std == pytest.approx(2 * math.sqrt(2 / 700), rel=0.02)
    # nn.Linear's default: kaiming_uniform_(a=sqrt(5)) -> bound 1/sqrt(fan_in)
    lo, hi, _, _ = _stats(init.kaiming_uniform_(w, a=math.sqrt(5)))
    assert -1 / 20 <= lo and hi <= 1 / 20 and hi > 0.049
    _, _, _, std = _stats(init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"))
    assert std == pytest.approx(math.sqrt(2) / math.sqrt(300), rel=0.02)
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_normal_(w, mode="fan_avg")


def test_trunc_normal_range_and_std():
    disttorch.manual_seed(2)
    lo, hi, mean, std = _stats(init.trunc_normal_(disttorch.empty(200, 200), std=1.0, a=-2.0, b=2.0))
    assert lo >= -2 and hi <= 2 and abs(mean) < 0.02
    # std of N(0,1) truncated to [-2, 2]
    phi = math.exp(-2) / math.sqrt(2 * math.pi)
    z = math.erf(2 / math.sqrt(2))
    assert std == pytest.approx(math.sqrt(1 - 4 * phi / z), rel=0.02)


def test_eye_dirac_orthogonal_sparse():
    np.testing.assert_array_equal(init.eye_(disttorch.empty(3, 4)).numpy(), np.eye(3, 4))
    w = init.dirac_(disttorch.empty(4, 2, 3, 3), groups=2)
    x = disttorch.randn(1, 2, 5, 5)
    assert w.numpy()[0, 0, 1, 1] == 1 and w.numpy()[2, 0, 1, 1] == 1 and w.numpy().sum() == 4
    q = init.orthogonal_(disttorch.empty(6, 10), gain=2.0).numpy()
    np.testing.assert_allclose(q @ q.T, 4 * np.eye(6), atol=1e-5)
    s = init.sparse_(disttorch.empty(10, 5), sparsity=0.3).numpy()
    assert ((s == 0).sum(axis=0) >= 3).all()
    del x


def test_init_records_no_graph_and_keeps_identity():
    p = disttorch.empty(3, 3, requires_grad=True)
    out = init.normal_(p)
    assert out is p and p.grad_fn is None and p.is_leaf


def test_deprecated_alias_warns():
    with pytest.warns(FutureWarning, match="xavier_uniform_"):
        init.xavier_uniform(disttorch.empty(2, 2))
