"""Sparse COO tensors: construction, coalescing, conversion, elementwise ops, errors and repr.

References are NumPy arrays built by scattering the values by hand (``np.add.at``).
"""
import numpy as np
import pytest

import disttorch as torch
from disttorch.autograd import gradcheck

RNG = np.random.default_rng(5)


def _dense_ref(indices, values, shape):
    out = np.zeros(shape, dtype=np.asarray(values).dtype)
    np.add.at(out, tuple(np.asarray(indices)), np.asarray(values))
    return out


def _random_coo(shape, nnz, dense_shape=(), dup=True, dtype=np.float64):
    idx = np.stack([RNG.integers(0, s, nnz) for s in shape])
    if dup and nnz > 2:
        idx[:, -1] = idx[:, 0]  # at least one duplicate
    vals = RNG.standard_normal((nnz, *dense_shape)).astype(dtype)
    return idx, vals


# ---- construction -----------------------------------------------------------------------------------
def test_construct_and_metadata():
    s = torch.sparse_coo_tensor([[0, 1, 1], [2, 0, 2]], [3.0, 4.0, 5.0], (2, 3))
    assert s.is_sparse and not torch.zeros(1).is_sparse
    assert s.layout is torch.sparse_coo and torch.zeros(1).layout is torch.strided
    assert s.shape == (2, 3) and s.size(1) == 3 and s.dtype is torch.float32 and s.device.type == "cpu"
    assert (s.sparse_dim(), s.dense_dim(), s._nnz(), s.numel(), s.dim()) == (2, 0, 3, 6, 2)
    assert not s.is_coalesced()
    assert isinstance(s, torch.Tensor) and torch.is_tensor(s)
    np.testing.assert_array_equal(s.to_dense().numpy(), [[0, 0, 3], [4, 0, 5]])


def test_size_inference_dtype_and_hybrid():
    s = torch.sparse_coo_tensor([[0, 4], [1, 1]], [1.0, 2.0])
    assert s.shape == (5, 2)
    h = torch.sparse_coo_tensor([[0, 2]], [[1.0, 2.0], [3.0, 4.0]])
    assert h.shape == (3, 2) and h.sparse_dim() == 1 and h.dense_dim() == 1
    d = torch.sparse_coo_tensor([[0, 1]], [1, 2], (3,), dtype=torch.float64)
    assert d.dtype is torch.float64
    assert torch.sparse_coo_tensor([[0]], [1], (2,)).dtype is torch.int64
    e = torch.sparse_coo_tensor((2, 3))
    assert e.shape == (2, 3) and e._nnz() == 0 and e.to_dense().abs().sum().item() == 0
    assert torch.sparse_coo_tensor([[0]], [1.0], (2,)).is_coalesced()  # nnz <= 1: coalesced, as PyTorch


def test_requires_grad_leaf_and_values_graph():
    s = torch.sparse_coo_tensor([[0]], [1.0], (2,), requires_grad=True)
    assert s.requires_grad and s.is_leaf
    v = torch.tensor([1.0, 2.0], requires_grad=True)
    t = torch.sparse_coo_tensor([[0, 1]], v, (2,))
    assert type(t.grad_fn).__name__ == "SparseCooTensorWithDimsAndTensorsBackward0"
    with pytest.raises(RuntimeError, match="floating point"):
        torch.sparse_coo_tensor([[0]], [1], (2,), requires_grad=True)


@pytest.mark.parametrize("indices, values, size, match", [
    ([[0, 2]], [1.0, 2.0, 3.0], (3,), "same nnz"),
    ([[0, 2]], [1.0, 2.0], (3, 4, 5), "len\\(size\\) == sparse_dim \\+ dense_dim"),
    ([[0, 5]], [1.0, 2.0], (3,), "for dim 0, size is 3 but found index 5"),
    ([[0, -1]], [1.0, 2.0], (3,), "negative index -1 for dim 0"),
    ([0, 1], [1.0, 2.0], (3,), "sparse_dim x nnz"),
    ([[0.5, 1.0]], [1.0, 2.0], (3,), "integers"),
    ([[0, 1]], [[1.0, 2.0], [3.0, 4.0]], (3, 3), "values has incorrect size"),
])
def test_invalid_construction_raises(indices, values, size, match):
    with pytest.raises(RuntimeError, match=match):
        torch.sparse_coo_tensor(indices, values, size)


def test_is_coalesced_claim_is_checked_on_request():
    with pytest.raises(RuntimeError,
                       match="^cannot set is_coalesced to true if indices correspond to uncoalesced COO tensor$"):
        torch.sparse_coo_tensor([[1, 0]], [1.0, 2.0], (2,), is_coalesced=True, check_invariants=True)
    t = torch.sparse_coo_tensor([[0, 1]], [1.0, 2.0], (2,), is_coalesced=True, check_invariants=True)
    assert t.is_coalesced() and t.indices().tolist() == [[0, 1]]


# ---- coalesce / indices / values ----------------------------------------------------------------------
@pytest.mark.parametrize("shape, dense_shape", [((4, 5), ()), ((3, 2, 4), ()), ((6,), (2,)), ((3, 3), (2, 2))])
def test_coalesce_sums_duplicates_and_sorts(shape, dense_shape):
    idx, vals = _random_coo(shape, 12, dense_shape)
    s = torch.sparse_coo_tensor(idx, vals, shape + dense_shape)
    c = s.coalesce()
    assert c.is_coalesced() and c.coalesce() is c
    ci = c.indices().numpy()
    keys = np.ravel_multi_index(tuple(ci), shape)
    assert np.all(np.diff(keys) > 0)  # sorted, no duplicates
    np.testing.assert_allclose(c.to_dense().numpy(), _dense_ref(idx, vals, shape + dense_shape), rtol=1e-12)
    np.testing.assert_allclose(s.to_dense().numpy(), _dense_ref(idx, vals, shape + dense_shape), rtol=1e-12)
    assert c._nnz() == len(set(map(tuple, idx.T)))


def test_indices_values_need_coalesced_tensor():
    s = torch.sparse_coo_tensor([[1, 0]], [1.0, 2.0], (2,))
    with pytest.raises(RuntimeError, match="Cannot get indices on an uncoalesced tensor, please call "
                                           r"\.coalesce\(\) first"):
        s.indices()
    with pytest.raises(RuntimeError, match="Cannot get values on an uncoalesced tensor"):
        s.values()
    assert s._indices().tolist() == [[1, 0]] and s._values().tolist() == [1.0, 2.0]
    with pytest.raises(RuntimeError, match="expected sparse coordinate tensor layout but got Strided"):
        torch.zeros(2).indices()
    with pytest.raises(RuntimeError, match="expected sparse coordinate tensor layout but got Strided"):
        torch.zeros(2).coalesce()
    assert torch.zeros(2, 3).sparse_dim() == 0 and torch.zeros(2, 3).dense_dim() == 2


def test_in_place_write_to_values_reaches_products():
    v = torch.tensor([1.0, 2.0, 3.0])
    s = torch.sparse_coo_tensor([[0, 1, 1], [1, 0, 0]], v, (2, 2))  # uncoalesced: (1, 0) twice
    x = torch.ones(2, 1)
    assert torch.spmm(s, x).flatten().tolist() == [1.0, 5.0]
    v.mul_(10)  # the sparse tensor shares the values' memory, as in PyTorch
    assert torch.spmm(s, x).flatten().tolist() == [10.0, 50.0]
    assert s.to_dense().tolist() == [[0.0, 10.0], [50.0, 0.0]]


# ---- conversion -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, sparse_dim", [((3, 4), None), ((3, 4), 1), ((2, 3, 4), 2), ((5,), None), ((), None)])
def test_to_sparse_round_trip(shape, sparse_dim):
    arr = RNG.standard_normal(shape) * (RNG.random(shape) < 0.4)
    x = torch.tensor(arr)
    s = x.to_sparse() if sparse_dim is None else x.to_sparse(sparse_dim)
    assert s.is_sparse and s.is_coalesced()
    assert s.sparse_dim() == (len(shape) if sparse_dim is None else sparse_dim)
    np.testing.assert_array_equal(s.to_dense().numpy(), arr)
    # nnz counts the (sub-)blocks that are not all zero
    sd = s.sparse_dim()
    blocks = (arr != 0).reshape(arr.shape[:sd] + (-1,)).any(-1) if sd < arr.ndim else arr != 0
    assert s._nnz() == (int(np.count_nonzero(blocks)) if sd else 1)
    assert s.to_sparse() is s and x.to_dense() is x
    assert x.to_sparse_coo().is_sparse


def test_conversion_gradients():
    z = torch.tensor([[0.0, 1.0], [2.0, 0.0]], requires_grad=True)
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    (z.to_sparse().to_dense() * w).sum().backward()
    # to_dense's gradient keeps only the specified elements (masked, PyTorch's default)
    np.testing.assert_array_equal(z.grad.numpy(), [[0.0, 2.0], [3.0, 0.0]])
    a = torch.sparse_coo_tensor([[0, 1, 1, 0], [2, 0, 2, 2]], [3.0, 4.0, 5.0, 1.0], (2, 3), requires_grad=True)
    (a.to_dense() * torch.arange(6.0).view(2, 3)).sum().backward()
    assert a.grad.is_sparse
    np.testing.assert_array_equal(a.grad.to_dense().numpy(), [[0, 0, 2], [3, 0, 5]])
    v = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64, requires_grad=True)
    f = lambda v: torch.sparse_coo_tensor([[0, 1, 1, 0], [2, 0, 2, 2]], v, (2, 3)).coalesce().to_dense() ** 2  # noqa: E731
    assert gradcheck(f, (v,))


def test_values_backward_gives_sparse_gradient():
    a = torch.sparse_coo_tensor([[0, 1], [1, 0]], [1.0, 2.0], (2, 2), requires_grad=True)
    (a.coalesce().values() * torch.tensor([3.0, 4.0])).sum().backward()
    assert a.grad.is_sparse
    np.testing.assert_array_equal(a.grad.to_dense().numpy(), [[0, 3], [4, 0]])
    assert a._values().grad_fn is None and not a._values().requires_grad


# ---- elementwise ops that keep the layout ---------------------------------------------------------------
def test_scalar_mul_div_neg_add_sub():
    idx, vals = _random_coo((3, 4), 6)
    s = torch.sparse_coo_tensor(idx, vals, (3, 4))
    ref = _dense_ref(idx, vals, (3, 4))
    for out, expected in [(s * 2.5, ref * 2.5), (3 * s, 3 * ref), (s / 4, ref / 4), (-s, -ref), (s + s, 2 * ref),
                          (s - s * 2, -ref)]:
        assert out.is_sparse
        np.testing.assert_allclose(out.to_dense().numpy(), expected, rtol=1e-12, atol=1e-12)
    d = RNG.standard_normal((3, 4))
    np.testing.assert_allclose((torch.tensor(d) + s).numpy(), d + ref, rtol=1e-12)
    prod = s * torch.tensor(d)  # sparse * dense stays sparse
    assert prod.is_sparse
    np.testing.assert_allclose(prod.to_dense().numpy(), ref * d, rtol=1e-12)


def test_elementwise_gradients_are_sparse():
    a = torch.sparse_coo_tensor([[0, 1, 1], [2, 0, 2]], [3.0, 4.0, 5.0], (2, 3), requires_grad=True)
    ((a * 2 + a) - (-a)).to_dense().sum().backward()
    assert a.grad.is_sparse
    np.testing.assert_array_equal(a.grad.to_dense().numpy(), [[0, 0, 4], [4, 0, 4]])
    # two sparse leaves receiving one gradient tensor each get their own copy (PyTorch's values)
    p = torch.sparse_coo_tensor([[0, 1]], [1.0, 2.0], (3,), requires_grad=True)
    q = torch.sparse_coo_tensor([[2, 1]], [1.0, 2.0], (3,), requires_grad=True)
    (p + q).to_dense().sum().backward()
    assert p.grad._data is not q.grad._data
    assert p.grad.to_dense().tolist() == [1.0, 1.0, 1.0] == q.grad.to_dense().tolist()


def test_transpose_clone_detach_to():
    s = torch.sparse_coo_tensor([[0, 1, 1], [2, 0, 2]], [3.0, 4.0, 5.0], (2, 3))
    ref = s.to_dense().numpy()
    np.testing.assert_array_equal(s.t().to_dense().numpy(), ref.T)
    np.testing.assert_array_equal(s.transpose(0, 1).to_dense().numpy(), ref.T)
    c = s.clone()
    assert c.is_sparse and c is not s and np.array_equal(c.to_dense().numpy(), ref)
    assert s.detach().is_sparse and not s.detach().requires_grad
    d = s.to(torch.float64)
    assert d.is_sparse and d.dtype is torch.float64 and s.double().dtype is torch.float64
    r = s.clone().requires_grad_()
    assert r.requires_grad and r.is_leaf
    h = torch.sparse_coo_tensor([[0, 2]], [[1.0, 2.0], [3.0, 4.0]], (3, 2))
    with pytest.raises(RuntimeError,
                       match="^sparse transpose: transposed dimensions must be sparse Got sparse_dim: 1, d0: 0, d1: 1$"):
        h.t()


# ---- unsupported ops name themselves -----------------------------------------------------------------------
@pytest.mark.parametrize("op, name", [
    (lambda s: torch.exp(s), "exp"),
    (lambda s: s.sum(), "sum"),
    (lambda s: torch.nn.functional.relu(s), "relu"),
    (lambda s: s.view(-1), "view|reshape"),
    (lambda s: s[0], "__getitem__"),
    (lambda s: s > 0, "gt"),
    (lambda s: s + 1, "add"),
    (lambda s: torch.nn.functional.linear(s, torch.ones(2, 3)), "linear"),
    (lambda s: torch.bmm(s.unsqueeze(0), s.unsqueeze(0)), "unsqueeze|bmm"),
])
def test_unsupported_ops_raise_naming_op_and_layout(op, name):
    s = torch.sparse_coo_tensor([[0, 1], [1, 0]], [1.0, 2.0], (2, 3))
    with pytest.raises(NotImplementedError, match=rf"^({name}): not supported for sparse COO tensors "
                                                  r"\(layout=disttorch\.sparse_coo\)"):
        op(s)


def test_numpy_conversion_refused():
    s = torch.sparse_coo_tensor([[0]], [1.0], (2,))
    with pytest.raises(TypeError, match="can't convert Sparse layout tensor to numpy. Use Tensor.to_dense"):
        s.numpy()
    with pytest.raises(TypeError, match="to_dense"):
        np.asarray(s)


# ---- repr ---------------------------------------------------------------------------------------------------
def test_repr_matches_pytorch_layout():
    s = torch.sparse_coo_tensor([[0, 1, 1], [2, 0, 2]], [3.0, 4.0, 5.0], (2, 3))
    assert repr(s) == ("tensor(indices=tensor([[0, 1, 1],\n"
                       "                       [2, 0, 2]]),\n"
                       "       values=tensor([3., 4., 5.]),\n"
                       "       size=(2, 3), nnz=3, layout=disttorch.sparse_coo)")
    e = torch.sparse_coo_tensor((2, 3))
    assert repr(e) == ("tensor(indices=tensor([], size=(2, 0)),\n"
                       "       values=tensor([], size=(0,)),\n"
                       "       size=(2, 3), nnz=0, layout=disttorch.sparse_coo)")
    r = torch.sparse_coo_tensor([[0]], [1.0], (2,), dtype=torch.float64, requires_grad=True)
    assert repr(r).endswith("size=(2,), nnz=1, dtype=disttorch.float64, layout=disttorch.sparse_coo,\n"
                            "       requires_grad=True)")
