"""Normal: closed-form log_prob/entropy/cdf/icdf, sample statistics, shapes, gradients, validation."""
import math

import numpy as np
import pytest
from helpers import assert_close, check_grad, t64

import disttorch
from disttorch.distributions import Normal

_erf = np.vectorize(math.erf)


def _ref_log_prob(x, mu, s):
    return -((x - mu) ** 2) / (2 * s * s) - np.log(s) - 0.5 * math.log(2 * math.pi)


@pytest.mark.parametrize("shape", [(), (3,), (2, 3)])
def test_log_prob_entropy_cdf_match_closed_form(shape):
    rng = np.random.default_rng(0)
    mu, s, x = rng.normal(size=shape), rng.uniform(0.5, 2, size=shape), rng.normal(size=shape)
    d = Normal(t64(mu, False), t64(s, False))
    assert_close(d.log_prob(t64(x, False)), _ref_log_prob(x, mu, s))
    assert_close(d.entropy(), 0.5 + 0.5 * math.log(2 * math.pi) + np.log(s))
    assert_close(d.cdf(t64(x, False)), 0.5 * (1 + _erf((x - mu) / (s * math.sqrt(2)))))
    assert_close(d.mean, mu)
    assert_close(d.variance, s ** 2)
    assert_close(d.stddev, s)
    assert_close(d.mode, mu)
    p = rng.uniform(0.05, 0.95, size=shape)
    assert_close(d.cdf(d.icdf(t64(p, False))), p, rtol=1e-6)


def test_scalar_parameters_give_empty_batch_shape_and_default_dtype():
    d = Normal(0.0, 1.0)
    assert d.batch_shape == disttorch.Size([]) and d.event_shape == disttorch.Size([])
    assert d.loc.dtype == disttorch.float32
    assert d.sample().shape == disttorch.Size([])
    assert repr(d) == "Normal(loc: 0.0, scale: 1.0)"


@pytest.mark.parametrize("loc_shape,scale_shape,sample_shape", [((3,), (), (4,)), ((2, 1), (3,), (5, 2)),
                                                                 ((), (), ())])
def test_broadcasting_and_sample_shapes(loc_shape, scale_shape, sample_shape):
    d = Normal(disttorch.zeros(loc_shape), disttorch.ones(scale_shape))
    batch = np.broadcast_shapes(loc_shape, scale_shape)
    assert d.batch_shape == disttorch.Size(batch)
    assert d.sample(sample_shape).shape == disttorch.Size(sample_shape + batch)
    assert d.rsample(sample_shape).shape == disttorch.Size(sample_shape + batch)
    assert d.log_prob(d.sample(sample_shape)).shape == disttorch.Size(sample_shape + batch)
    e = d.expand((4,) + batch)
    assert e.batch_shape == disttorch.Size((4,) + batch) and e.sample().shape == e.batch_shape


def test_sample_statistics_and_reproducibility():
    d = Normal(disttorch.tensor([1.0, -2.0]), disttorch.tensor([0.5, 2.0]))
    disttorch.manual_seed(3)
    x = d.sample((20000,))
    disttorch.manual_seed(3)
    assert np.array_equal(x.numpy(), d.sample((20000,)).numpy())
    a = x.numpy().astype(np.float64)
    np.testing.assert_allclose(a.mean(0), [1.0, -2.0], atol=0.05)
    np.testing.assert_allclose(a.var(0), [0.25, 4.0], rtol=0.05)
    assert x.dtype == disttorch.float32 and not x.requires_grad


def test_gradcheck_log_prob_entropy_cdf():
    rng = np.random.default_rng(1)
    mu, s, x = rng.normal(size=(3,)), rng.uniform(0.5, 2, size=(3,)), rng.normal(size=(2, 3))
    check_grad(lambda m, sc, v: Normal(m, sc).log_prob(v), mu, s, x)
    check_grad(lambda sc: Normal(0.0, sc).entropy(), s)
    check_grad(lambda m, sc, v: Normal(m, sc).cdf(v), mu, s, x)


def test_gradcheck_rsample_with_fixed_seed():
    rng = np.random.default_rng(2)
    mu, s = rng.normal(size=(2, 2)), rng.uniform(0.5, 2, size=(2,))

    def fn(m, sc):
        disttorch.manual_seed(0)
        return Normal(m, sc).rsample((3,))

    check_grad(fn, mu, s)


def test_sample_has_no_grad_but_rsample_has():
    loc = disttorch.zeros(2, requires_grad=True)
    d = Normal(loc, 1.0)
    assert not d.sample().requires_grad
    d.rsample().sum().backward()
    assert_close(loc.grad, np.ones(2))


def test_validation_errors():
    with pytest.raises(ValueError, match=r"Expected parameter scale \(Tensor of shape \(2,\)\) of distribution "
                                         r"Normal\(loc: .*Size\(\[2\]\), scale: .*Size\(\[2\]\)\) to satisfy the "
                                         r"constraint GreaterThan\(lower_bound=0.0\), but found invalid values"):
        Normal(disttorch.zeros(2), disttorch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"constraint Real\(\)"):
        Normal(disttorch.tensor([math.nan]), disttorch.ones(1))
    d = Normal(disttorch.zeros(2), disttorch.ones(2))
    with pytest.raises(ValueError, match="The value argument to log_prob must be a Tensor"):
        d.log_prob(0.5)
    with pytest.raises(ValueError, match="Value is not broadcastable with batch_shape"):
        d.log_prob(disttorch.zeros(3))
    # validate_args=False skips the checks
    assert Normal(0.0, -1.0, validate_args=False).scale.item() == -1.0


def test_exponential_family_entropy_matches_closed_form():
    from disttorch.distributions import ExponentialFamily

    s = np.array([0.5, 2.0])
    d = Normal(t64(np.zeros(2), False), t64(s, False))
    assert_close(ExponentialFamily.entropy(d), 0.5 + 0.5 * math.log(2 * math.pi) + np.log(s))
