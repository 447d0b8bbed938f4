"""nn.utils: gradient clipping, parameter/vector conversion and pad_sequence against NumPy."""
import numpy as np
import pytest

import disttorch
from disttorch.nn.utils import (clip_grad_norm_, clip_grad_value_, get_total_norm, parameters_to_vector,
                                vector_to_parameters)
from disttorch.nn.utils.rnn import pad_sequence
from helpers import check_grad


def _params(grads):
    ps = []
    for g in grads:
        p = disttorch.zeros(g.shape, requires_grad=True, dtype=disttorch.float64)
        p.grad = disttorch.tensor(g)
        ps.append(p)
    return ps


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm(norm_type, max_norm):
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(3, 4)), rng.normal(size=(5,))]
    ps = _params(grads)
    total = clip_grad_norm_(ps, max_norm, norm_type)
    flat = np.concatenate([g.ravel() for g in grads])
    expected = np.abs(flat).max() if norm_type == float("inf") else (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    assert float(total) == pytest.approx(expected)
    coef = min(1.0, max_norm / (expected + 1e-6))
    for p, g in zip(ps, grads):
        np.testing.assert_allclose(p.grad.numpy(), g * coef)


def test_clip_grad_norm_skips_missing_grads_and_nonfinite_error():
    p = disttorch.zeros(2, requires_grad=True)
    assert float(clip_grad_norm_([p], 1.0)) == 0.0
    q = _params([np.array([np.inf, 1.0])])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(q, 1.0, error_if_nonfinite=True)
    assert float(get_total_norm([disttorch.tensor([3.0, 4.0])])) == 5.0


def test_clip_grad_value():
    ps = _params([np.array([-3.0, 0.5, 2.0])])
    clip_grad_value_(ps, 1.0)
    np.testing.assert_array_equal(ps[0].grad.numpy(), [-1.0, 0.5, 1.0])


def test_parameters_vector_round_trip():
    a, b = disttorch.randn(2, 3), disttorch.randn(4)
    v = parameters_to_vector([a, b])
    np.testing.assert_array_equal(v.numpy(), np.concatenate([a.numpy().ravel(), b.numpy()]))
    vector_to_parameters(disttorch.arange(10.0), [a, b])
    np.testing.assert_array_equal(a.numpy(), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(b.numpy(), np.arange(6.0, 10.0))
    with pytest.raises(TypeError, match="expected torch.Tensor"):
        vector_to_parameters([1.0], [a])


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_sequence(batch_first, side):
    seqs = [np.arange(6.0).reshape(3, 2), np.arange(2.0).reshape(1, 2) + 10, np.zeros((0, 2))]
    out = pad_sequence([disttorch.tensor(s) for s in seqs], batch_first=batch_first, padding_value=-1,
                       padding_side=side)
    ref = np.full((3, 3, 2), -1.0)
    for i, s in enumerate(seqs):
        if side == "right":
            ref[i, :len(s)] = s
        else:
            ref[i, 3 - len(s):] = s
    np.testing.assert_array_equal(out.numpy(), ref if batch_first else ref.transpose(1, 0, 2))


def test_pad_sequence_grad():
    rng = np.random.default_rng(1)
    check_grad(lambda a, b: pad_sequence([a, b]), rng.normal(size=(3, 2)), rng.normal(size=(1, 2)))
