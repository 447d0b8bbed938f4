"""Categorical: normalisation, log_prob/entropy against NumPy, sampling, shapes, gradients, validation."""
import numpy as np
import pytest
from helpers import assert_close, check_grad, t64

import disttorch
from disttorch.distributions import Categorical


def _log_softmax(x):
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


@pytest.mark.parametrize("shape", [(4,), (2, 3), (2, 1, 5)])
def test_logits_and_probs_are_normalised(shape):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=shape)
    d = Categorical(logits=t64(logits, False))
    assert_close(d.logits, _log_softmax(logits))
    assert_close(d.probs, np.exp(_log_softmax(logits)))
    assert d.batch_shape == disttorch.Size(shape[:-1]) and d.event_shape == disttorch.Size([])
    p = rng.uniform(0.1, 1, size=shape)
    d = Categorical(probs=t64(p, False))
    assert_close(d.probs, p / p.sum(-1, keepdims=True))
    assert_close(d.logits, np.log(p / p.sum(-1, keepdims=True)))
    assert d.param_shape == disttorch.Size(shape)


def test_log_prob_entropy_mode_match_numpy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 4))
    d = Categorical(logits=t64(logits, False))
    lp = _log_softmax(logits)
    v = np.array([0, 3, 2])
    assert_close(d.log_prob(disttorch.tensor(v)), lp[np.arange(3), v])
    assert_close(d.entropy(), -(np.exp(lp) * lp).sum(-1))
    assert_close(d.mode, lp.argmax(-1))
    assert d.mode.dtype == disttorch.int64
    assert np.isnan(d.mean.numpy()).all() and d.mean.shape == disttorch.Size([3])
    # value broadcasts against the batch shape: shape (2, 1) -> (2, 3)
    vb = np.array([[1], [2]])
    assert_close(d.log_prob(disttorch.tensor(vb)), lp[np.arange(3), np.broadcast_to(vb, (2, 3))])


def test_entropy_with_zero_probability_is_finite():
    d = Categorical(probs=disttorch.tensor([0.5, 0.5, 0.0]))
    assert_close(d.entropy(), np.log(2.0), rtol=1e-6)


def test_sample_statistics_shapes_and_reproducibility():
    p = np.array([[0.1, 0.2, 0.7], [0.5, 0.0, 0.5]])
    d = Categorical(probs=disttorch.tensor(p))
    disttorch.manual_seed(5)
    s = d.sample((20000,))
    assert s.shape == disttorch.Size([20000, 2]) and s.dtype == disttorch.int64
    freq = np.stack([np.bincount(s.numpy()[:, i], minlength=3) / 20000 for i in range(2)])
    np.testing.assert_allclose(freq, p, atol=0.015)
    assert freq[1, 1] == 0
    disttorch.manual_seed(5)
    assert np.array_equal(s.numpy(), d.sample((20000,)).numpy())
    single = Categorical(logits=disttorch.tensor([0.0, 1.0, 2.0]))
    assert single.sample().shape == disttorch.Size([]) and single.sample((2, 3)).shape == disttorch.Size([2, 3])
    q = np.exp(_log_softmax(np.array([0.0, 1.0, 2.0])))
    disttorch.manual_seed(6)
    np.testing.assert_allclose(np.bincount(single.sample((20000,)).numpy(), minlength=3) / 20000, q, atol=0.015)


def test_enumerate_support_and_expand():
    d = Categorical(logits=disttorch.zeros(2, 3))
    assert_close(d.enumerate_support(), np.broadcast_to(np.arange(3)[:, None], (3, 2)))
    assert d.enumerate_support(expand=False).shape == disttorch.Size([3, 1])
    e = d.expand((4, 2))
    assert e.batch_shape == disttorch.Size([4, 2]) and e.sample().shape == disttorch.Size([4, 2])


def test_gradcheck_log_prob_and_entropy():
    rng = np.random.default_rng(2)
    logits, probs = rng.normal(size=(2, 3)), rng.uniform(0.2, 1, size=(2, 3))
    v = disttorch.tensor([2, 0])
    check_grad(lambda x: Categorical(logits=x).log_prob(v), logits)
    check_grad(lambda x: Categorical(logits=x).entropy(), logits)
    check_grad(lambda x: Categorical(probs=x).log_prob(v), probs)
    check_grad(lambda x: Categorical(probs=x).entropy(), probs)


def test_reinforce_gradient_wrt_logits():
    logits = disttorch.tensor([0.0, 1.0, -1.0], requires_grad=True)
    d = Categorical(logits=logits)
    d.log_prob(disttorch.tensor(1)).backward()
    p = np.exp(_log_softmax(np.array([0.0, 1.0, -1.0])))
    assert_close(logits.grad, np.eye(3)[1] - p, rtol=1e-5, atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="Either `probs` or `logits` must be specified, but not both"):
        Categorical()
    with pytest.raises(ValueError, match="Either `probs` or `logits`"):
        Categorical(probs=disttorch.ones(2), logits=disttorch.ones(2))
    with pytest.raises(ValueError, match="`logits` parameter must be at least one-dimensional"):
        Categorical(logits=disttorch.tensor(1.0))
    with pytest.raises(ValueError, match=r"constraint Simplex\(\)"):
        Categorical(probs=disttorch.tensor([0.5, -0.2]))
    d = Categorical(logits=disttorch.zeros(3))
    with pytest.raises(ValueError, match=r"within the support \(IntegerInterval\(lower_bound=0, upper_bound=2\)\)"):
        d.log_prob(disttorch.tensor(3))
