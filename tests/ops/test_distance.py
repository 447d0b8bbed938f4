"""normalize, cosine_similarity, pairwise_distance, pdist against NumPy references."""
import importlib

import numpy as np
import pytest

import disttorch
from tests.helpers import assert_close, check_grad, rand_array

M = importlib.import_module("disttorch.ops.distance")

rng = np.random.default_rng(11)


def T(a, **kw):
    return disttorch.tensor(a, **kw)


def np_norm(x, p, axis, keepdims=False):
    a = np.abs(x)
    if p == np.inf:
        return a.max(axis, keepdims=keepdims)
    if p == 0:
        return (a != 0).sum(axis, keepdims=keepdims).astype(x.dtype)
    return (a ** p).sum(axis, keepdims=keepdims) ** (1.0 / p)


# ---- normalize ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,dim", [((3, 4), 1), ((3, 4), 0), ((2, 3, 4), -1), ((5,), 0)])
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_normalize(shape, dim, p):
    x = rand_array(shape, rng=rng)
    ref = x / np.maximum(np_norm(x, p, dim, keepdims=True), 1e-12)
    assert_close(M.normalize(T(x), p, dim), ref, rtol=1e-10)


def test_normalize_zero_row_eps_and_out():
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert_close(M.normalize(T(x), eps=0.5), np.array([[0.0, 0.0], [0.6, 0.8]]))
    assert_close(M.normalize(T(x)[:1] + 0.1, eps=1.0), np.array([[0.1, 0.1]]))
    out = disttorch.empty(2, 2, dtype=disttorch.float64)
    assert M.normalize(T(x), out=out) is out
    assert_close(out, np.array([[0.0, 0.0], [0.6, 0.8]]))
    assert M.normalize(T(x.astype(np.float32))).dtype is disttorch.float32


def test_normalize_grad():
    check_grad(lambda x: M.normalize(x, 2.0, 1), rand_array((2, 3), rng=rng), gradgrad=True)
    check_grad(lambda x: M.normalize(x, 3.0, 0), rand_array((3, 2), rng=rng))


# ---- cosine_similarity ----------------------------------------------------------------------------------
def ref_cos(a, b, dim, eps=1e-8):
    a, b = np.broadcast_arrays(a, b)
    na = np.maximum(np.sqrt((a * a).sum(dim, keepdims=True)), eps)
    nb = np.maximum(np.sqrt((b * b).sum(dim, keepdims=True)), eps)
    return ((a / na) * (b / nb)).sum(dim)


@pytest.mark.parametrize("sa,sb,dim", [((3, 4), (3, 4), 1), ((3, 4), (4,), 1), ((2, 3, 4), (3, 1), 0),
                                       ((5,), (5,), 0), ((2, 3, 4), (2, 3, 4), -1)])
def test_cosine_similarity(sa, sb, dim):
    a, b = rand_array(sa, rng=rng), rand_array(sb, rng=rng)
    out = M.cosine_similarity(T(a), T(b), dim)
    assert_close(out, ref_cos(a, b, dim), rtol=1e-10, atol=1e-12)


def test_cosine_similarity_zero_vectors_eps_and_dtype():
    a, b = np.zeros((2, 3)), rand_array((2, 3), rng=rng)
    assert_close(M.cosine_similarity(T(a), T(b)), np.zeros(2))
    # a tiny norm is clamped up to eps, which shrinks the similarity (PyTorch's clamp of each norm)
    a = np.full((1, 2), 1e-3)
    assert_close(M.cosine_similarity(T(a), T(a), eps=1.0), np.array([2e-6]), rtol=1e-9)
    x = T(rand_array((2, 3), np.float32, rng=rng))
    assert M.cosine_similarity(x, x).dtype is disttorch.float32
    assert M.cosine_similarity(x, T(rand_array((2, 3), rng=rng))).dtype is disttorch.float64


def test_cosine_similarity_errors():
    with pytest.raises(RuntimeError, match="floating point"):
        M.cosine_similarity(disttorch.ones(2, 3, dtype=disttorch.int64), disttorch.ones(2, 3, dtype=disttorch.int64))
    with pytest.raises(RuntimeError, match="size of tensor"):
        M.cosine_similarity(disttorch.ones(2, 3), disttorch.ones(2, 4))
    with pytest.raises(IndexError):
        M.cosine_similarity(disttorch.ones(3), disttorch.ones(3), dim=1)


def test_cosine_similarity_grad():
    a, b = rand_array((2, 3), rng=rng), rand_array((3,), rng=rng)
    check_grad(lambda a, b: M.cosine_similarity(a, b, 1), a, b, gradgrad=True)
    check_grad(lambda a, b: M.cosine_similarity(a, b, 0), a, rand_array((2, 1), rng=rng))


# ---- pairwise_distance ----------------------------------------------------------------------------------
@pytest.mark.parametrize("sa,sb", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 3, 4), (3, 4)), ((5,), (5,))])
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, np.inf])
@pytest.mark.parametrize("keepdim", [False, True])
def test_pairwise_distance(sa, sb, p, keepdim):
    a, b = rand_array(sa, rng=rng), rand_array(sb, rng=rng)
    ref = np_norm(a - b + 1e-6, p, -1, keepdims=keepdim)
    assert_close(M.pairwise_distance(T(a), T(b), p, keepdim=keepdim), ref, rtol=1e-10)


def test_pairwise_distance_eps_dtype_and_grad():
    a = rand_array((2, 3), np.float32, rng=rng)
    out = M.pairwise_distance(T(a), T(a), eps=0.5)
    assert out.dtype is disttorch.float32
    assert_close(out, np.full(2, np.sqrt(3 * 0.25)), rtol=1e-6)
    a, b = rand_array((2, 3), rng=rng), rand_array((2, 3), rng=rng)
    check_grad(lambda a, b: M.pairwise_distance(a, b), a, b, gradgrad=True)
    check_grad(lambda a, b: M.pairwise_distance(a, b, 1.5), a, b)


# ---- pdist ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,m", [(4, 3), (2, 5), (1, 3), (0, 2)])
@pytest.mark.parametrize("p", [1.0, 2.0, 0.5, np.inf])
def test_pdist(n, m, p):
    x = rand_array((n, m), rng=rng)
    ref = np.array([np_norm(x[i] - x[j], p, 0) for i in range(n) for j in range(i + 1, n)]).reshape(-1)
    assert_close(M.pdist(T(x), p), ref, rtol=1e-10)


def test_pdist_grad_and_errors():
    check_grad(lambda x: M.pdist(x), rand_array((3, 2), rng=rng), gradgrad=True)
    with pytest.raises(RuntimeError, match="2D"):
        M.pdist(disttorch.ones(2, 2, 2))
    with pytest.raises(RuntimeError, match="non-negative"):
        M.pdist(disttorch.ones(2, 2), -1.0)


def test_exports():
    assert set(M.__all__) <= set(M.FUNCTIONAL)
    assert "normalize" not in M.__all__
