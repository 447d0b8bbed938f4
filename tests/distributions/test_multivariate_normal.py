"""MultivariateNormal and its private Cholesky / triangular solve: closed forms, samples, gradients, errors."""
import math

import numpy as np
import pytest
from helpers import assert_close, check_grad, t64

import disttorch
from disttorch.distributions import MultivariateNormal
from disttorch.distributions._linalg import cholesky, solve_triangular

_rng = np.random.default_rng(0)


def _spd(n, batch=()):
    a = _rng.normal(size=batch + (n, n))
    return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)


def _ref_log_prob(x, mu, cov):
    n = mu.shape[-1]
    d = x - mu
    sol = np.linalg.solve(cov, d[..., None])[..., 0]
    return -0.5 * (n * math.log(2 * math.pi) + np.linalg.slogdet(cov)[1] + (d * sol).sum(-1))


@pytest.mark.parametrize("param", ["covariance_matrix", "precision_matrix", "scale_tril"])
def test_parameterisations_agree_with_closed_form(param):
    mu, cov = _rng.normal(size=(2, 3)), _spd(3, (2,))
    arg = {"covariance_matrix": cov, "precision_matrix": np.linalg.inv(cov),
           "scale_tril": np.linalg.cholesky(cov)}[param]
    d = MultivariateNormal(t64(mu, False), **{param: t64(arg, False)})
    assert d.batch_shape == disttorch.Size([2]) and d.event_shape == disttorch.Size([3])
    x = _rng.normal(size=(4, 2, 3))
    assert_close(d.log_prob(t64(x, False)), _ref_log_prob(x, mu, cov))
    assert_close(d.entropy(), 0.5 * (3 * (1 + math.log(2 * math.pi)) + np.linalg.slogdet(cov)[1]))
    assert_close(d.covariance_matrix, cov)
    assert_close(d.precision_matrix, np.linalg.inv(cov))
    assert_close(d.scale_tril, np.linalg.cholesky(cov))
    assert_close(d.variance, np.diagonal(cov, axis1=-2, axis2=-1))
    assert_close(d.mean, mu)


def test_loc_broadcasts_against_matrix_batch():
    d = MultivariateNormal(disttorch.zeros(2), covariance_matrix=t64(_spd(2, (3,)), False).float())
    assert d.batch_shape == disttorch.Size([3]) and d.loc.shape == disttorch.Size([3, 2])
    assert d.rsample((4,)).shape == disttorch.Size([4, 3, 2])
    assert d.log_prob(disttorch.zeros(5, 1, 2)).shape == disttorch.Size([5, 3])
    assert d.expand((6, 3)).sample().shape == disttorch.Size([6, 3, 2])


def test_sample_mean_and_covariance():
    cov = np.array([[2.0, 0.8], [0.8, 1.0]])
    d = MultivariateNormal(disttorch.tensor([1.0, -1.0]), covariance_matrix=disttorch.tensor(cov.tolist()))
    disttorch.manual_seed(4)
    s = d.sample((20000,)).numpy().astype(np.float64)
    np.testing.assert_allclose(s.mean(0), [1.0, -1.0], atol=0.05)
    np.testing.assert_allclose(np.cov(s.T), cov, atol=0.06)
    disttorch.manual_seed(4)
    assert np.array_equal(s, d.sample((20000,)).numpy().astype(np.float64))


def test_gradcheck_log_prob_and_rsample():
    mu, L = _rng.normal(size=(3,)), np.linalg.cholesky(_spd(3))
    x = t64(_rng.normal(size=(2, 3)), False)
    check_grad(lambda m, st: MultivariateNormal(m, scale_tril=st.tril()).log_prob(x), mu, L)
    check_grad(lambda m, c: MultivariateNormal(m, covariance_matrix=(c + c.mT) / 2).log_prob(x), mu, _spd(3))
    check_grad(lambda p: MultivariateNormal(t64(mu, False), precision_matrix=(p + p.mT) / 2).log_prob(x), _spd(3))
    check_grad(lambda st: MultivariateNormal(t64(mu, False), scale_tril=st.tril()).entropy(), L)

    def fn(m, st):
        disttorch.manual_seed(0)
        return MultivariateNormal(m, scale_tril=st.tril()).rsample((2,))

    check_grad(fn, mu, L)


def test_private_linalg_gradcheck():
    a = _spd(3, (2,))
    check_grad(lambda x: cholesky((x + x.mT) / 2), a)
    L, b = np.linalg.cholesky(_spd(3)), _rng.normal(size=(2, 3, 2))
    check_grad(lambda A, B: solve_triangular(A, B, upper=False), L, b)
    check_grad(lambda A, B: solve_triangular(A, B, upper=True, left=False), L.T, _rng.normal(size=(2, 3)))
    assert_close(solve_triangular(t64(L, False), t64(b, False), upper=False), np.linalg.solve(L, b))
    with pytest.raises(RuntimeError, match="not positive-definite"):
        cholesky(disttorch.tensor([[1.0, 2.0], [2.0, 1.0]]))


def test_errors():
    loc = disttorch.zeros(2)
    with pytest.raises(ValueError, match="Exactly one of covariance_matrix or precision_matrix or scale_tril"):
        MultivariateNormal(loc)
    with pytest.raises(ValueError, match="loc must be at least one-dimensional"):
        MultivariateNormal(disttorch.tensor(0.0), covariance_matrix=disttorch.eye(1))
    with pytest.raises(ValueError, match=r"covariance_matrix .* constraint PositiveDefinite\(\)"):
        MultivariateNormal(loc, covariance_matrix=disttorch.tensor([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match=r"scale_tril .* constraint LowerCholesky\(\)"):
        MultivariateNormal(loc, scale_tril=disttorch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="scale_tril matrix must be at least two-dimensional"):
        MultivariateNormal(loc, scale_tril=disttorch.ones(2))
