"""kl_divergence: closed forms, a Monte Carlo check, gradients, dispatch and registration."""
import math

import numpy as np
import pytest
from helpers import assert_close, check_grad, t64

import disttorch
from disttorch.distributions import (Bernoulli, Categorical, Independent, MultivariateNormal, Normal, Uniform,
                                     kl_divergence, register_kl)

_rng = np.random.default_rng(0)


def _spd(n):
    a = _rng.normal(size=(n, n))
    return a @ a.T + n * np.eye(n)


def _ref_kl_mvn(mp, cp, mq, cq):
    n = mp.shape[-1]
    cq_inv = np.linalg.inv(cq)
    d = mq - mp
    return 0.5 * (np.trace(cq_inv @ cp) + d @ cq_inv @ d - n + np.linalg.slogdet(cq)[1] - np.linalg.slogdet(cp)[1])


def test_normal_normal_closed_form_and_broadcast():
    mp, sp = _rng.normal(size=(2, 3)), _rng.uniform(0.5, 2, size=(2, 3))
    mq, sq = _rng.normal(size=(3,)), _rng.uniform(0.5, 2, size=(3,))
    kl = kl_divergence(Normal(t64(mp, False), t64(sp, False)), Normal(t64(mq, False), t64(sq, False)))
    assert_close(kl, np.log(sq / sp) + (sp ** 2 + (mp - mq) ** 2) / (2 * sq ** 2) - 0.5)


def test_normal_normal_matches_monte_carlo():
    p, q = Normal(0.5, 0.8), Normal(-0.2, 1.3)
    disttorch.manual_seed(0)
    x = p.sample((20000,))
    mc = (p.log_prob(x) - q.log_prob(x)).double().mean().item()
    assert mc == pytest.approx(kl_divergence(p, q).item(), abs=0.02)


def test_categorical_and_bernoulli_closed_forms():
    p, q = _rng.uniform(0.1, 1, size=(2, 4)), _rng.uniform(0.1, 1, size=(2, 4))
    p, q = p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)
    assert_close(kl_divergence(Categorical(probs=t64(p, False)), Categorical(probs=t64(q, False))),
                 (p * np.log(p / q)).sum(-1))
    # zero mass in p contributes 0; zero mass in q where p > 0 gives inf
    kl = kl_divergence(Categorical(probs=disttorch.tensor([0.5, 0.5, 0.0])),
                       Categorical(probs=disttorch.tensor([0.25, 0.25, 0.5])))
    assert kl.item() == pytest.approx(math.log(2.0), rel=1e-6)
    kl = kl_divergence(Categorical(probs=disttorch.tensor([0.5, 0.5])), Categorical(probs=disttorch.tensor([1.0, 0.0])))
    assert kl.item() == math.inf
    a, b = np.array([0.2, 0.6, 0.0]), np.array([0.5, 0.3, 0.4])
    ref = np.array([a[0] * np.log(a[0] / b[0]) + (1 - a[0]) * np.log((1 - a[0]) / (1 - b[0])),
                    a[1] * np.log(a[1] / b[1]) + (1 - a[1]) * np.log((1 - a[1]) / (1 - b[1])),
                    np.log(1 / (1 - b[2]))])
    assert_close(kl_divergence(Bernoulli(t64(a, False)), Bernoulli(t64(b, False))), ref)


def test_uniform_uniform():
    p = Uniform(disttorch.tensor([0.0, 0.0]), disttorch.tensor([1.0, 3.0]))
    q = Uniform(disttorch.tensor([-1.0, 1.0]), disttorch.tensor([2.0, 4.0]))
    kl = kl_divergence(p, q).numpy()
    assert kl[0] == pytest.approx(math.log(3.0)) and kl[1] == math.inf


def test_mvn_closed_form_and_independent():
    mp, mq, cp, cq = _rng.normal(size=3), _rng.normal(size=3), _spd(3), _spd(3)
    p = MultivariateNormal(t64(mp, False), covariance_matrix=t64(cp, False))
    q = MultivariateNormal(t64(mq, False), scale_tril=t64(np.linalg.cholesky(cq), False))
    assert_close(kl_divergence(p, q), _ref_kl_mvn(mp, cp, mq, cq))
    assert kl_divergence(p, p).item() == pytest.approx(0.0, abs=1e-12)
    # Independent(Normal) agrees with a diagonal MVN
    sp, sq = _rng.uniform(0.5, 2, size=3), _rng.uniform(0.5, 2, size=3)
    ip = Independent(Normal(t64(mp, False), t64(sp, False)), 1)
    iq = Independent(Normal(t64(mq, False), t64(sq, False)), 1)
    assert_close(kl_divergence(ip, iq), _ref_kl_mvn(mp, np.diag(sp ** 2), mq, np.diag(sq ** 2)))
    with pytest.raises(ValueError, match="different event shapes"):
        kl_divergence(p, MultivariateNormal(disttorch.zeros(2, dtype=disttorch.float64),
                                            covariance_matrix=disttorch.eye(2, dtype=disttorch.float64)))


def test_gradcheck():
    mp, sp, mq, sq = _rng.normal(size=2), _rng.uniform(0.5, 2, size=2), _rng.normal(size=2), _rng.uniform(0.5, 2, size=2)
    check_grad(lambda a, b, c, d: kl_divergence(Normal(a, b), Normal(c, d)), mp, sp, mq, sq)
    check_grad(lambda a, b: kl_divergence(Categorical(logits=a), Categorical(logits=b)),
               _rng.normal(size=(2, 3)), _rng.normal(size=(2, 3)))
    check_grad(lambda a, b: kl_divergence(Bernoulli(logits=a), Bernoulli(logits=b)), _rng.normal(size=3),
               _rng.normal(size=3))
    Lp, Lq = np.linalg.cholesky(_spd(2)), np.linalg.cholesky(_spd(2))
    check_grad(lambda a, b, c, d: kl_divergence(MultivariateNormal(a, scale_tril=b.tril()),
                                                MultivariateNormal(c, scale_tril=d.tril())), mp, Lp, mq, Lq)


def test_dispatch_registration_and_errors():
    with pytest.raises(NotImplementedError, match="No KL\\(p \\|\\| q\\) is implemented for p type Normal and q type "
                                                  "Uniform"):
        kl_divergence(Normal(0.0, 1.0), Uniform(0.0, 1.0))
    with pytest.raises(TypeError, match="Expected type_p to be a Distribution subclass"):
        register_kl(int, Normal)

    class MyNormal(Normal):
        pass

    # subclasses dispatch to the parent's implementation until they register their own
    assert kl_divergence(MyNormal(0.0, 1.0), Normal(1.0, 1.0)).item() == pytest.approx(0.5)

    @register_kl(MyNormal, Normal)
    def _kl_my(p, q):
        return disttorch.tensor(-1.0)

    assert kl_divergence(MyNormal(0.0, 1.0), Normal(1.0, 1.0)).item() == -1.0
    assert kl_divergence(Normal(0.0, 1.0), Normal(1.0, 1.0)).item() == pytest.approx(0.5)
