"""torch.sparse.sum / softmax / log_softmax against NumPy references on the dense form, and their gradients."""
import numpy as np
import pytest

import disttorch as torch
from disttorch.autograd import gradcheck

RNG = np.random.default_rng(3)


def _coo(sparse_shape, dense_shape=(), nnz=10):
    idx = np.stack([RNG.integers(0, s, nnz) for s in sparse_shape])
    idx[:, -1] = idx[:, 0]  # a duplicate: the ops work on the coalesced form
    vals = RNG.standard_normal((nnz, *dense_shape))
    shape = tuple(sparse_shape) + tuple(dense_shape)
    dense = np.zeros(shape)
    np.add.at(dense, tuple(idx), vals)
    mask = np.zeros(sparse_shape, dtype=bool)
    mask[tuple(idx)] = True
    mask = np.broadcast_to(mask.reshape(mask.shape + (1,) * len(dense_shape)), shape)
    return idx, vals, shape, dense, mask


def _as_dense(t):
    return t.to_dense().numpy() if t.is_sparse else t.numpy()


CASES = [((4, 5), (), None), ((4, 5), (), 0), ((4, 5), (), 1), ((4, 5), (), (0, 1)), ((3, 4, 2), (), (0, 2)),
         ((3, 4, 2), (), 1), ((4, 3), (2,), 0), ((4, 3), (2,), 2), ((4, 3), (2,), (1, 2)), ((4, 3), (2,), (0, 1))]


@pytest.mark.parametrize("sparse_shape, dense_shape, dim", CASES)
def test_sparse_sum_matches_dense(sparse_shape, dense_shape, dim):
    idx, vals, shape, dense, _ = _coo(sparse_shape, dense_shape)
    s = torch.sparse_coo_tensor(idx, vals, shape)
    out = torch.sparse.sum(s) if dim is None else torch.sparse.sum(s, dim)
    ref = dense.sum() if dim is None else dense.sum(axis=dim)
    dims = set(range(len(shape))) if dim is None else set(dim if isinstance(dim, tuple) else (dim,))
    # the result stays sparse while some sparse dim survives, as in PyTorch
    assert out.is_sparse == (not set(range(len(sparse_shape))) <= dims)
    np.testing.assert_allclose(_as_dense(out), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sparse_shape, dense_shape, dim", CASES[:6] + CASES[7:8])
def test_sparse_sum_gradcheck(sparse_shape, dense_shape, dim):
    idx, vals, shape, _, _ = _coo(sparse_shape, dense_shape, nnz=6)

    def f(v):
        s = torch.sparse_coo_tensor(idx, v, shape)
        out = torch.sparse.sum(s) if dim is None else torch.sparse.sum(s, dim)
        return out.to_dense() if out.is_sparse else out

    assert gradcheck(f, (torch.tensor(vals, requires_grad=True),))


def test_sparse_sum_gradient_is_sparse_on_pattern():
    a = torch.sparse_coo_tensor([[0, 1, 1, 0], [2, 0, 2, 2]], [3.0, 4.0, 5.0, 1.0], (2, 3), requires_grad=True)
    torch.sparse.sum(torch.sparse.sum(a, 1)).backward()
    assert a.grad.is_sparse and a.grad._nnz() == 3
    np.testing.assert_array_equal(a.grad.to_dense().numpy(), [[0, 0, 1], [1, 0, 1]])
    with pytest.raises(RuntimeError, match="expected a sparse COO tensor"):
        torch.sparse.sum(torch.ones(2))


def _masked_softmax(dense, mask, dim, log):
    z = np.where(mask, dense, -np.inf)
    m = z.max(axis=dim, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.where(mask, np.exp(z - m), 0)
    sm = e / np.where(e.sum(axis=dim, keepdims=True) > 0, e.sum(axis=dim, keepdims=True), 1)
    with np.errstate(divide="ignore"):
        out = np.log(sm) if log else sm
    return np.where(mask, out, 0)


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("sparse_shape, dense_shape, dim", [((4, 5), (), 0), ((4, 5), (), 1), ((4, 5), (), -1),
                                                           ((3, 4, 2), (), 1), ((4, 3), (2,), 0), ((4, 3), (2,), 2)])
def test_sparse_softmax_over_specified_elements(sparse_shape, dense_shape, dim, log):
    idx, vals, shape, dense, mask = _coo(sparse_shape, dense_shape, nnz=12)
    s = torch.sparse_coo_tensor(idx, vals, shape)
    out = (torch.sparse.log_softmax if log else torch.sparse.softmax)(s, dim)
    assert out.is_sparse and out.is_coalesced() and out._nnz() == s.coalesce()._nnz()
    np.testing.assert_allclose(out.to_dense().numpy(), _masked_softmax(dense, mask, dim, log), rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("sparse_shape, dense_shape, dim", [((4, 5), (), 1), ((3, 4, 2), (), 0), ((4, 3), (2,), 0),
                                                           ((4, 3), (2,), 2)])
def test_sparse_softmax_gradcheck(sparse_shape, dense_shape, dim, log):
    idx, vals, shape, _, _ = _coo(sparse_shape, dense_shape, nnz=7)
    w = torch.tensor(RNG.standard_normal(shape))
    fn = torch.sparse.log_softmax if log else torch.sparse.softmax

    def f(v):
        # through torch.sparse.mm-like consumers the gradient arrives sparse; here through to_dense
        return (fn(torch.sparse_coo_tensor(idx, v, shape), dim).to_dense() * w).sum()

    assert gradcheck(f, (torch.tensor(vals, requires_grad=True),))


def test_softmax_matches_pytorch_example_and_dtype_argument():
    s = torch.sparse_coo_tensor([[0, 1, 1], [2, 0, 2]], [3.0, 4.0, 5.0], (2, 3))
    e4, e5 = np.exp(4.0), np.exp(5.0)
    np.testing.assert_allclose(torch.sparse.softmax(s, 1).coalesce().values().numpy(),
                               [1.0, e4 / (e4 + e5), e5 / (e4 + e5)], rtol=1e-6)
    assert torch.sparse.softmax(s, 1, dtype=torch.float64).dtype is torch.float64
    with pytest.raises(RuntimeError, match="floating-point"):
        torch.sparse.softmax(torch.sparse_coo_tensor([[0]], [1], (2,)), 0)
