"""Uniform: closed forms, rsample gradients, sample statistics, support and validation."""
import math

import numpy as np
import pytest
from helpers import assert_close, check_grad, t64

import disttorch
from disttorch.distributions import Uniform


def test_closed_forms():
    lo, hi = np.array([0.0, -1.0]), np.array([2.0, 3.0])
    d = Uniform(t64(lo, False), t64(hi, False), validate_args=False)  # 3.5 lies outside the support
    x = np.array([1.0, 3.5])
    lp = d.log_prob(t64(x, False)).numpy()
    assert lp[0] == pytest.approx(-math.log(2.0)) and lp[1] == -np.inf
    assert_close(d.entropy(), np.log(hi - lo))
    assert_close(d.mean, (lo + hi) / 2)
    assert_close(d.variance, (hi - lo) ** 2 / 12)
    assert_close(d.stddev, (hi - lo) / math.sqrt(12))
    assert_close(d.cdf(t64(np.array([1.0, 5.0]), False)), [0.5, 1.0])
    assert_close(d.icdf(t64(np.array([0.25, 0.5]), False)), [0.5, 1.0])
    assert np.isnan(d.mode.numpy()).all()


def test_support_is_dependent_and_checked():
    from disttorch.distributions import constraints

    assert constraints.is_dependent(Uniform.support)
    d = Uniform(0.0, 1.0)
    assert repr(d.support) == "Interval(lower_bound=0.0, upper_bound=1.0)"
    with pytest.raises(ValueError, match="to be within the support"):
        d.log_prob(disttorch.tensor(2.0))
    with pytest.raises(ValueError, match="Uniform is not defined when low>= high"):
        Uniform(1.0, 0.0)


def test_samples_and_rsample_gradients():
    d = Uniform(disttorch.tensor([0.0, 5.0]), disttorch.tensor([1.0, 9.0]))
    disttorch.manual_seed(2)
    s = d.sample((20000,)).numpy().astype(np.float64)
    assert s.shape == (20000, 2)
    assert (s[:, 0] >= 0).all() and (s[:, 0] < 1).all() and (s[:, 1] >= 5).all() and (s[:, 1] < 9).all()
    np.testing.assert_allclose(s.mean(0), [0.5, 7.0], atol=0.03)
    np.testing.assert_allclose(s.var(0), [1 / 12, 16 / 12], rtol=0.05)

    def fn(lo, hi):
        disttorch.manual_seed(0)
        return Uniform(lo, hi).rsample((3,))

    check_grad(fn, np.array([0.0, 1.0]), np.array([2.0, 4.0]))
    check_grad(lambda lo, hi: Uniform(lo, hi).log_prob(t64(np.array([1.0, 2.0]), False)),
               np.array([0.0, 1.0]), np.array([2.0, 4.0]))
