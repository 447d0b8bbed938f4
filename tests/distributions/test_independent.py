"""Independent: shapes, summed log_prob/entropy, support, errors."""
import numpy as np
import pytest
from helpers import assert_close, check_grad, t64

import disttorch
from disttorch.distributions import Bernoulli, Independent, Normal


def test_shapes_and_sums():
    rng = np.random.default_rng(0)
    mu, s = rng.normal(size=(2, 3)), rng.uniform(0.5, 2, size=(2, 3))
    base = Normal(t64(mu, False), t64(s, False))
    d = Independent(base, 1)
    assert d.batch_shape == disttorch.Size([2]) and d.event_shape == disttorch.Size([3])
    assert d.has_rsample and not d.has_enumerate_support
    x = t64(rng.normal(size=(4, 2, 3)), False)
    assert_close(d.log_prob(x), base.log_prob(x).numpy().sum(-1))
    assert_close(d.entropy(), base.entropy().numpy().sum(-1))
    assert d.sample((5,)).shape == disttorch.Size([5, 2, 3])
    assert_close(d.mean, mu)
    d2 = Independent(base, 2)
    assert d2.batch_shape == disttorch.Size([]) and d2.log_prob(x).shape == disttorch.Size([4])
    assert repr(d2.support) == "IndependentConstraint(Real(), 2)"
    assert d.expand((5, 2)).batch_shape == disttorch.Size([5, 2])
    assert repr(d).startswith("Independent(Normal(loc: ")
    check_grad(lambda m: Independent(Normal(m, 1.0), 1).log_prob(x), mu)


def test_errors():
    with pytest.raises(ValueError, match="Expected reinterpreted_batch_ndims <= len"):
        Independent(Normal(disttorch.zeros(3), 1.0), 2)
    with pytest.raises(NotImplementedError, match="Enumeration over cartesian product"):
        Independent(Bernoulli(disttorch.full((3,), 0.5)), 1).enumerate_support()
    with pytest.raises(ValueError, match="Value is not broadcastable with batch_shape"):
        Independent(Normal(disttorch.zeros(3), 1.0), 1, validate_args=True).log_prob(disttorch.zeros(2))
