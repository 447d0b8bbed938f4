"""Bernoulli: probs/logits, stable log_prob, entropy, sampling, gradients, validation."""
import numpy as np
import pytest
from helpers import assert_close, check_grad, t64

import disttorch
from disttorch.distributions import Bernoulli


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_log_prob_entropy_moments_match_closed_form():
    p = np.array([0.1, 0.5, 0.9])
    x = np.array([1.0, 0.0, 0.0])
    d = Bernoulli(probs=t64(p, False))
    assert_close(d.log_prob(t64(x, False)), x * np.log(p) + (1 - x) * np.log1p(-p))
    assert_close(d.entropy(), -(p * np.log(p) + (1 - p) * np.log1p(-p)))
    assert_close(d.mean, p)
    assert_close(d.variance, p * (1 - p))
    assert_close(d.logits, np.log(p / (1 - p)))
    mode = d.mode.numpy()
    assert mode[0] == 0 and np.isnan(mode[1]) and mode[2] == 1


def test_logits_parameterisation_is_stable_for_large_logits():
    logits = np.array([-50.0, 0.0, 30.0])
    d = Bernoulli(logits=t64(logits, False))
    assert_close(d.probs, _sigmoid(logits))
    lp1 = d.log_prob(disttorch.ones(3, dtype=disttorch.float64)).numpy()
    assert np.all(np.isfinite(lp1))
    np.testing.assert_allclose(lp1, -np.logaddexp(0, -logits), rtol=1e-10)


def test_shapes_scalar_and_broadcast():
    d = Bernoulli(0.3)
    assert d.batch_shape == disttorch.Size([]) and d.sample((4,)).shape == disttorch.Size([4])
    d = Bernoulli(probs=disttorch.full((2, 3), 0.3))
    assert d.sample((5,)).shape == disttorch.Size([5, 2, 3])
    assert d.log_prob(disttorch.tensor([1.0, 0.0, 1.0])).shape == disttorch.Size([2, 3])
    assert d.enumerate_support().shape == disttorch.Size([2, 2, 3])
    assert d.expand((4, 2, 3)).sample().shape == disttorch.Size([4, 2, 3])


def test_sample_statistics_and_reproducibility():
    d = Bernoulli(probs=disttorch.tensor([0.2, 0.7]))
    disttorch.manual_seed(1)
    s = d.sample((20000,))
    assert s.dtype == disttorch.float32 and set(np.unique(s.numpy())) <= {0.0, 1.0}
    np.testing.assert_allclose(s.numpy().mean(0), [0.2, 0.7], atol=0.015)
    disttorch.manual_seed(1)
    assert np.array_equal(s.numpy(), d.sample((20000,)).numpy())


def test_gradcheck():
    rng = np.random.default_rng(0)
    p, logits = rng.uniform(0.1, 0.9, size=(3,)), np.array([-1.0, 0.0, 2.0])
    x = t64(np.array([1.0, 0.0, 1.0]), False)
    check_grad(lambda q: Bernoulli(probs=q).log_prob(x), p)
    check_grad(lambda q: Bernoulli(probs=q).entropy(), p)
    check_grad(lambda lg: Bernoulli(logits=lg).log_prob(x), logits)
    check_grad(lambda lg: Bernoulli(logits=lg).entropy(), logits)


def test_errors():
    with pytest.raises(ValueError, match="Either `probs` or `logits` must be specified"):
        Bernoulli()
    with pytest.raises(ValueError, match=r"constraint Interval\(lower_bound=0.0, upper_bound=1.0\)"):
        Bernoulli(probs=disttorch.tensor([1.5]))
    with pytest.raises(ValueError, match=r"support \(Boolean\(\)\)"):
        Bernoulli(0.5).log_prob(disttorch.tensor(0.5))
