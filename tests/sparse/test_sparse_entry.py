"""Sparse ops run through the one entry point (``Op.apply``, issue 12): observers see each of them, the
graph nodes keep PyTorch's names, and tensors the product saves are version-checked."""
import numpy as np
import pytest

import disttorch as torch
from disttorch.autograd.op import add_observer


def test_every_sparse_op_is_observed_with_its_node_name():
    names = []
    handle = add_observer(lambda name, *rest: names.append(name))
    try:
        v = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
        s = torch.sparse_coo_tensor([[0, 1, 1], [2, 0, 2]], v, (2, 3))
        c = s.coalesce()
        nodes = [s, c, c.values(), s.to_dense(), s.to_dense().to_sparse(), torch.sparse.sum(c, 1),
                 torch.sparse.softmax(c, 1), torch.sparse.log_softmax(c, 0),
                 torch.sparse.mm(c, torch.ones(3, 2, requires_grad=True))]
    finally:
        handle.remove()
    for op in ("sparse_coo_tensor", "coalesce", "values", "to_dense", "to_sparse", "_sparse_sum", "_sparse_softmax",
               "_sparse_log_softmax", "_sparse_addmm"):
        assert op in names, (op, names)
    assert [type(n.grad_fn).__name__ for n in nodes] == [
        "SparseCooTensorWithDimsAndTensorsBackward0", "CoalesceBackward0", "ValuesBackward0", "ToDenseBackward0",
        "ToSparseBackward1", "SparseSumBackward0", "SparseSoftmaxBackward0", "SparseLogSoftmaxBackward0",
        "SparseAddmmBackward0"]


def test_no_graph_without_grad_and_gradient_against_dense_reference():
    idx = np.array([[0, 1, 1], [2, 0, 2]])
    w = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    s = torch.sparse_coo_tensor(idx, [1.0, 2.0, 3.0], (2, 3), dtype=torch.float64)
    assert torch.sparse.mm(s, torch.tensor(w)).grad_fn is None
    v = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    out = torch.sparse.mm(torch.sparse_coo_tensor(idx, v, (2, 3)), torch.tensor(w))
    out.sum().backward()
    # d/dv_k of sum(A @ w) with A[i, j] = v_k at (i, j) = idx[:, k]: the row sum of w at column j.
    np.testing.assert_allclose(v.grad.numpy(), w.sum(1)[idx[1]])


def test_product_saves_its_operands_with_version_checks():
    s = torch.sparse_coo_tensor([[0, 1], [1, 0]], torch.tensor([1.0, 2.0], requires_grad=True), (2, 2))
    b = torch.ones(2, 2, requires_grad=True)
    b2 = b * 1
    out = torch.sparse.mm(s.coalesce(), b2)
    b2.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()
