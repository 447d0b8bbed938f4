"""Sparse @ dense products: forward against NumPy's dense product, gradients against the dense computation
(float64) and by gradcheck, and PyTorch's layout of each gradient (sparse for torch.sparse.mm, dense for
torch.mm / spmm)."""
import numpy as np
import pytest

import disttorch as torch
from disttorch.autograd import gradcheck

RNG = np.random.default_rng(11)


def _graph(n=7, m=5, nnz=12, dtype=np.float64, integer=False):
    """Indices with a duplicate, values, and the dense matrix they describe."""
    idx = np.stack([RNG.integers(0, n, nnz), RNG.integers(0, m, nnz)])
    idx[:, -1] = idx[:, 0]
    vals = (RNG.integers(-3, 4, nnz) / 2.0 if integer else RNG.standard_normal(nnz)).astype(dtype)
    dense = np.zeros((n, m), dtype=dtype)
    np.add.at(dense, tuple(idx), vals)
    return idx, vals, dense


def _mm64(a, b):
    """The reference product in float64 (NumPy's float32 gemv can raise a spurious 'invalid value' flag)."""
    return a.astype(np.float64) @ b.astype(np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_products_match_dense(dtype):
    idx, vals, dense = _graph(dtype=dtype)
    s = torch.sparse_coo_tensor(idx, vals, dense.shape)
    x = RNG.standard_normal((5, 3)).astype(dtype)
    v = RNG.standard_normal(5).astype(dtype)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for out in (torch.sparse.mm(s, torch.tensor(x)), torch.spmm(s, torch.tensor(x)), torch.mm(s, torch.tensor(x)),
                torch.matmul(s, torch.tensor(x)), s @ torch.tensor(x), s.coalesce() @ torch.tensor(x)):
        assert not out.is_sparse and out.dtype == torch.tensor(x).dtype
        np.testing.assert_allclose(out.numpy(), _mm64(dense, x), **tol)
    np.testing.assert_allclose((s @ torch.tensor(v)).numpy(), _mm64(dense, v), **tol)
    np.testing.assert_allclose(torch.mv(s, torch.tensor(v)).numpy(), _mm64(dense, v), **tol)
    y = RNG.standard_normal((2, 7)).astype(dtype)
    np.testing.assert_allclose(torch.mm(torch.tensor(y), s).numpy(), _mm64(y, dense), **tol)  # dense @ sparse
    b = RNG.standard_normal((7, 3)).astype(dtype)
    np.testing.assert_allclose(torch.addmm(torch.tensor(b), s, torch.tensor(x), beta=0.5, alpha=2).numpy(),
                               0.5 * b + 2 * _mm64(dense, x), **tol)
    np.testing.assert_allclose(torch.sparse.addmm(torch.tensor(b), s, torch.tensor(x)).numpy(), b + dense @ x, **tol)


def test_sparse_times_sparse_is_sparse():
    idx, vals, dense = _graph()
    s = torch.sparse_coo_tensor(idx, vals, dense.shape)
    p = torch.sparse.mm(s, s.t())
    assert p.is_sparse and p.is_coalesced()
    np.testing.assert_allclose(p.to_dense().numpy(), dense @ dense.T, rtol=1e-12, atol=1e-12)
    with pytest.raises(NotImplementedError, match="no backward"):
        torch.sparse.mm(s.clone().requires_grad_(), s.t())


def test_low_precision_and_product_errors():
    idx, vals, dense = _graph(integer=True)
    s = torch.sparse_coo_tensor(idx, vals, dense.shape, dtype=torch.float16)
    out = torch.spmm(s, torch.ones(5, 2, dtype=torch.float16))
    assert out.dtype is torch.float16
    np.testing.assert_allclose(out.numpy().astype(np.float64), dense @ np.ones((5, 2)), rtol=1e-3)
    with pytest.raises(RuntimeError, match="same dtype"):
        torch.mm(torch.sparse_coo_tensor(idx, vals, dense.shape), torch.ones(5, 2, dtype=torch.float32))
    with pytest.raises(RuntimeError, match=r"cannot be multiplied \(5 != 4\)"):
        torch.mm(torch.sparse_coo_tensor(idx, vals, dense.shape), torch.ones(4, 2, dtype=torch.float64))
    hybrid = torch.sparse_coo_tensor([[0, 2]], [[1.0, 2.0], [3.0, 4.0]], (3, 2))
    with pytest.raises(RuntimeError, match="two sparse dims"):
        torch.sparse.mm(hybrid, torch.ones(2, 2))


def test_dense_gradient_through_spmm_equals_dense_computation_exactly():
    # Dyadic values and integers: every partial sum is exact, so any summation order gives the same bits.
    idx, vals, dense = _graph(integer=True)
    adj = torch.sparse_coo_tensor(idx, vals, dense.shape)
    w = torch.tensor(RNG.integers(-2, 3, (3, 4)) / 4.0, requires_grad=True)
    x1 = torch.tensor(RNG.integers(-3, 4, (5, 3)).astype(np.float64), requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    out_sparse = torch.spmm(adj, x1 @ w)
    out_dense = torch.tensor(dense) @ (x2 @ w)
    assert np.array_equal(out_sparse.detach().numpy(), out_dense.detach().numpy())
    g = torch.tensor(RNG.integers(-2, 3, out_dense.shape).astype(np.float64))
    out_sparse.backward(g)
    out_dense.backward(g)
    assert np.array_equal(x1.grad.numpy(), x2.grad.numpy())


def test_sparse_leaf_gradient_layouts():
    idx, vals, dense = _graph()
    x = RNG.standard_normal((5, 3))
    g = RNG.standard_normal((7, 3))
    full = g @ x.T  # gradient of <g, A @ x> w.r.t. a dense A
    mask = np.zeros_like(dense, dtype=bool)
    mask[tuple(idx)] = True
    # torch.sparse.mm: sparse gradient with the operand's pattern, holding the dense gradient there
    a = torch.sparse_coo_tensor(idx, vals, dense.shape, requires_grad=True)
    torch.sparse.mm(a, torch.tensor(x)).backward(torch.tensor(g))
    assert a.grad.is_sparse and a.grad._nnz() == int(mask.sum())
    np.testing.assert_allclose(a.grad.to_dense().numpy(), np.where(mask, full, 0), rtol=1e-12, atol=1e-12)
    # torch.mm / spmm: the dense gradient, as PyTorch gives
    for op in (torch.mm, torch.spmm):
        b = torch.sparse_coo_tensor(idx, vals, dense.shape, requires_grad=True)
        op(b, torch.tensor(x)).backward(torch.tensor(g))
        assert not b.grad.is_sparse
        np.testing.assert_allclose(b.grad.numpy(), full, rtol=1e-12, atol=1e-12)
    # two backward passes accumulate sparse gradients
    a.grad = None
    for _ in range(2):
        torch.sparse.mm(a, torch.tensor(x)).backward(torch.tensor(g))
    np.testing.assert_allclose(a.grad.to_dense().numpy(), 2 * np.where(mask, full, 0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", ["sparse.mm", "spmm", "matmul", "addmm", "mv", "sparse.mm-vec", "dense@sparse"])
def test_gradcheck_values_and_dense_operand(op):
    idx, vals, dense = _graph(n=4, m=3, nnz=6)
    fn = {"sparse.mm": torch.sparse.mm, "spmm": torch.spmm, "matmul": torch.matmul, "mv": torch.mv,
          "sparse.mm-vec": torch.sparse.mm, "dense@sparse": lambda a, b: b.t() @ a,
          "addmm": lambda a, b: torch.sparse.addmm(torch.ones(4, 2, dtype=torch.float64), a, b, beta=0.5, alpha=2)}[op]

    def f(v, x):
        return fn(torch.sparse_coo_tensor(idx, v, dense.shape), x)

    v = torch.tensor(vals, requires_grad=True)
    shape = {"mv": (3,), "sparse.mm-vec": (3,), "dense@sparse": (4, 2)}.get(op, (3, 2))
    x = torch.tensor(RNG.standard_normal(shape), requires_grad=True)
    assert gradcheck(f, (v, x))


def test_values_gradient_matches_dense_reference_on_pattern():
    idx, vals, dense = _graph()
    x = RNG.standard_normal((5, 3))
    v = torch.tensor(vals, requires_grad=True)
    torch.sparse.mm(torch.sparse_coo_tensor(idx, v, dense.shape), torch.tensor(x)).pow(2).sum().backward()
    dd = torch.tensor(dense, requires_grad=True)
    (dd @ torch.tensor(x)).pow(2).sum().backward()
    # each value (duplicates included) gets the dense gradient at its position
    np.testing.assert_allclose(v.grad.numpy(), dd.grad.numpy()[tuple(idx)], rtol=1e-12, atol=1e-12)


def test_matrix_is_built_once_per_tensor():
    idx, vals, dense = _graph()
    s = torch.sparse_coo_tensor(idx, vals, dense.shape)
    torch.spmm(s, torch.ones(5, 2, dtype=torch.float64))
    m = s._data.cache()["matrix"]
    torch.spmm(s, torch.ones(5, 2, dtype=torch.float64))
    assert s._data.cache()["matrix"] is m
