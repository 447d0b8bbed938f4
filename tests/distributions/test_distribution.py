"""Distribution base class, constraints, lazy import, validation defaults and the VAE/REINFORCE patterns."""
import math
import subprocess
import sys

import numpy as np
import pytest
from helpers import assert_close

import disttorch
from disttorch.distributions import Categorical, Distribution, Independent, Normal, constraints, kl_divergence


def test_lazy_import():
    code = ("import sys, disttorch; assert 'disttorch.distributions' not in sys.modules; "
            "d = disttorch.distributions.Normal(0., 1.); from disttorch.distributions import Categorical; "
            "print(type(d).__name__, Categorical.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Normal", "Categorical"]


@pytest.mark.parametrize("constraint,value,expected", [
    (constraints.real, [0.0, math.inf, math.nan], [True, True, False]),
    (constraints.positive, [1.0, 0.0, -1.0], [True, False, False]),
    (constraints.nonnegative, [1.0, 0.0, -1.0], [True, True, False]),
    (constraints.unit_interval, [0.0, 1.0, 1.5], [True, True, False]),
    (constraints.boolean, [0.0, 1.0, 0.5], [True, True, False]),
    (constraints.nonnegative_integer, [0.0, 3.0, 1.5], [True, True, False]),
    (constraints.integer_interval(0, 2), [0.0, 2.0, 3.0], [True, True, False]),
    (constraints.greater_than(1.0), [2.0, 1.0, 0.0], [True, False, False]),
    (constraints.half_open_interval(0.0, 1.0), [0.0, 0.5, 1.0], [True, True, False]),
])
def test_scalar_constraints(constraint, value, expected):
    assert constraint.check(disttorch.tensor(value)).tolist() == expected


def test_event_constraints_and_reprs():
    assert constraints.simplex.check(disttorch.tensor([[0.2, 0.8], [0.5, 0.6]])).tolist() == [True, False]
    assert constraints.real_vector.check(disttorch.tensor([[0.0, 1.0], [math.nan, 0.0]])).tolist() == [True, False]
    m = disttorch.tensor([[[1.0, 0.0], [0.5, 2.0]], [[1.0, 0.3], [0.0, 1.0]], [[-1.0, 0.0], [0.0, 1.0]]])
    assert constraints.lower_cholesky.check(m).tolist() == [True, False, False]
    assert constraints.lower_triangular.check(m).tolist() == [True, False, True]
    spd = disttorch.tensor([[[2.0, 0.5], [0.5, 1.0]], [[1.0, 2.0], [2.0, 1.0]]])
    assert constraints.positive_definite.check(spd).tolist() == [True, False]
    assert constraints.one_hot.check(disttorch.tensor([[0.0, 1.0], [1.0, 1.0]])).tolist() == [True, False]
    assert repr(constraints.real) == "Real()"
    assert repr(constraints.positive) == "GreaterThan(lower_bound=0.0)"
    assert repr(constraints.unit_interval) == "Interval(lower_bound=0.0, upper_bound=1.0)"
    assert repr(constraints.real_vector) == "IndependentConstraint(Real(), 1)"
    assert constraints.real_vector.event_dim == 1 and constraints.lower_cholesky.event_dim == 2
    assert constraints.boolean.is_discrete and not constraints.real.is_discrete
    assert constraints.is_dependent(constraints.dependent) and not constraints.is_dependent(constraints.real)
    with pytest.raises(ValueError, match="Cannot determine validity of dependent constraint"):
        constraints.dependent.check(disttorch.zeros(1))


def test_set_default_validate_args():
    try:
        Distribution.set_default_validate_args(False)
        assert Normal(0.0, -1.0).scale.item() == -1.0
        Distribution.set_default_validate_args(True)
        with pytest.raises(ValueError, match="Expected parameter scale"):
            Normal(0.0, -1.0)
        with pytest.raises(ValueError):
            Distribution.set_default_validate_args(2)
    finally:
        Distribution.set_default_validate_args(True)


def test_base_class_defaults():
    d = Distribution(disttorch.Size([2]), validate_args=False)
    assert d.batch_shape == disttorch.Size([2]) and d.event_shape == disttorch.Size([])
    for attr in ("mean", "variance", "mode"):
        with pytest.raises(NotImplementedError):
            getattr(d, attr)
    with pytest.raises(NotImplementedError):
        d.rsample()
    with pytest.raises(NotImplementedError):
        d.log_prob(disttorch.zeros(2))
    assert not Categorical.has_rsample and Normal.has_rsample
    assert Normal(0.0, 2.0).perplexity().item() == pytest.approx(math.exp(Normal(0.0, 2.0).entropy().item()))


def test_vae_pattern_gradients_flow_through_rsample_and_kl():
    mu = disttorch.tensor([[0.3, -0.2]], requires_grad=True)
    log_std = disttorch.tensor([[0.1, -0.4]], requires_grad=True)
    q = Independent(Normal(mu, log_std.exp()), 1)
    p = Independent(Normal(disttorch.zeros(1, 2), disttorch.ones(1, 2)), 1)
    disttorch.manual_seed(0)
    z = q.rsample()
    loss = (z ** 2).sum() + kl_divergence(q, p).sum()
    loss.backward()
    assert mu.grad is not None and log_std.grad is not None
    assert np.all(np.isfinite(mu.grad.numpy())) and np.all(np.isfinite(log_std.grad.numpy()))


def test_reinforce_pattern_batch_policy():
    w = disttorch.tensor(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32), requires_grad=True)
    x = disttorch.ones(5, 4)
    dist = Categorical(logits=x @ w)
    actions = dist.sample()
    assert actions.shape == disttorch.Size([5])
    (-dist.log_prob(actions).sum()).backward()
    assert w.grad.shape == disttorch.Size([4, 3])
    # gradient of sum log pi(a) w.r.t. logits is onehot(a) - softmax, summed over the batch through x @ w
    logits = x.numpy() @ w.detach().numpy()
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    g_logits = np.eye(3)[actions.numpy()] - p
    assert_close(w.grad, -(x.numpy().T @ g_logits), rtol=1e-4, atol=1e-5)
