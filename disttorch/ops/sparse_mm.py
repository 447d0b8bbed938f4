"""Products with a sparse COO operand: ``torch.sparse.mm``, ``spmm``, and ``mm``/``matmul``/``mv``/``addmm``.

The sparse operand's CSR matrix (sparse_module: SciPy on the CPU) is built once per tensor and cached,
so ``torch.spmm(adj, x @ W)`` in every forward of a GCN costs one CSR product; the backward uses the
transpose of that matrix (a CSC view, no conversion).

Gradients follow PyTorch: ``torch.sparse.mm``/``sparse.addmm`` give the sparse operand a sparse gradient
on its specified elements (``(g @ b.T)`` sampled at the pattern, O(nnz * k)); ``torch.mm``, ``spmm``,
``matmul``, ``mv`` and ``addmm`` give it the dense gradient ``g @ b.T``, as PyTorch does. The dense
operand gets ``a.T @ g`` either way.
"""
from __future__ import annotations

import numpy as np

from .. import _tensor as T
from ..autograd.op import Op
from ._helpers import tensor_arg
from ._sparse_data import SparseCOO, xp_of
from .sparse import is_sparse, sparse_tensor

__all__ = ["spmm"]

_CHUNK = 1 << 22  # elements of the (nnz, k) gathers the sampled gradient holds at once


def _product(h: SparseCOO, b):
    """``h @ b`` for a 2-D sparse ``h`` and a dense 1-D or 2-D array ``b``, in ``h``'s dtype."""
    m = h.matrix()
    out = m @ (b if b.dtype == m.dtype else b.astype(m.dtype))
    out = xp_of(b).asarray(out)
    return out if out.dtype == h.values.dtype else out.astype(h.values.dtype)


def _sampled(g, b, h: SparseCOO):
    """``(g @ b.T)`` at the coalesced specified elements of ``h``, as a sparse Tensor."""
    c = h.coalesced_form()
    rows, cols = c.indices
    xp = xp_of(g)
    if b.ndim == 1:
        vals = g[rows] * b[cols]
    else:
        vals = xp.empty(c.nnz, dtype=np.result_type(g.dtype, b.dtype))
        step = max(1, _CHUNK // max(1, b.shape[1]))
        for s in range(0, c.nnz, step):
            vals[s:s + step] = xp.einsum("ij,ij->i", g[rows[s:s + step]], b[cols[s:s + step]])
    return sparse_tensor(SparseCOO(c.indices, vals.astype(h.values.dtype, copy=False), c.shape, True))


class SparseAddmmBackward0(Op):
    """A sparse @ dense product; ``masked`` selects torch.sparse.mm's sparse gradient."""

    op_name = "_sparse_addmm"

    def forward(self, xp, h, bd, masked):
        if self.next_functions:
            self.masked = masked
            self.save(0, 1)
        return _product(h, bd)

    def backward(self, g):
        a, b = self.saved_tensors
        ga = gb = None
        if self._nig[1]:
            gb = mm_sparse(a.t(), g, masked=self.masked)
        if self._nig[0]:
            if self.masked:
                if T.needs_grad(g, b):
                    raise NotImplementedError("sparse.mm: double backward (create_graph=True) through the sparse "
                                              "operand's gradient is not supported")
                ga = _sampled(g._data, b._data, a._data)
            else:
                ga = g.unsqueeze(1) * b.unsqueeze(0) if b.ndim == 1 else g.matmul(b.t())
        return ga, gb


def mm_sparse(a, b, *, masked: bool, op: str = "mm"):
    """``a @ b`` for a 2-D sparse ``a`` and a dense ``b`` (1-D or 2-D), recording the graph."""
    h, bd = a._data, b._data
    if h.ndim != 2 or h.sparse_dim != 2:
        raise RuntimeError(f"{op}: the sparse operand must be a 2-D matrix with two sparse dims, got shape "
                           f"{list(h.shape)} with sparse_dim {h.sparse_dim}")
    if bd.ndim not in (1, 2):
        raise RuntimeError(f"{op}: the dense operand must be 1-D or 2-D, got shape {list(bd.shape)}")
    if bd.shape[0] != h.shape[1]:
        raise RuntimeError(f"{op}: shapes {tuple(h.shape)} and {tuple(bd.shape)} cannot be multiplied "
                           f"({h.shape[1]} != {bd.shape[0]})")
    if h.dtype != bd.dtype:
        raise RuntimeError(f"{op}: expected the sparse and dense operands to have the same dtype, got "
                           f"{a.dtype} and {b.dtype}")
    return SparseAddmmBackward0.apply(a, b, masked)


def _sparse_sparse(a, b, op: str):
    """Sparse @ sparse: a sparse (coalesced) result; no gradient, as in PyTorch."""
    if T.needs_grad(a, b):
        raise NotImplementedError(f"{op}: the product of two sparse tensors has no backward (as in PyTorch); "
                                  "detach the operands or convert one with .to_dense()")
    ha, hb = a._data, b._data
    if ha.ndim != 2 or hb.ndim != 2 or ha.shape[1] != hb.shape[0]:
        raise RuntimeError(f"{op}: shapes {tuple(ha.shape)} and {tuple(hb.shape)} cannot be multiplied")
    if ha.dtype != hb.dtype:
        raise RuntimeError(f"{op}: expected both sparse operands to have the same dtype, got {a.dtype} and "
                           f"{b.dtype}")
    m = (ha.matrix() @ hb.matrix()).tocoo()
    xp = ha.xp
    m.sum_duplicates()  # also sorts row-major
    idx = xp.stack([xp.asarray(m.row, dtype=np.int64), xp.asarray(m.col, dtype=np.int64)])
    vals = xp.asarray(m.data).astype(ha.values.dtype, copy=False)
    return sparse_tensor(SparseCOO(idx, vals, (ha.shape[0], hb.shape[1]), True))


def matmul_with_sparse(a, b, op: str = "matmul", masked: bool = False):
    """``a @ b`` where either operand is sparse (dense @ sparse goes through the transposes)."""
    sa, sb = is_sparse(a), is_sparse(b)
    if sa and sb:
        return _sparse_sparse(a, b, op)
    if sa:
        return mm_sparse(a, b, masked=masked, op=op)
    if b._data.ndim != 2 or a._data.ndim not in (1, 2):
        raise RuntimeError(f"{op}: a dense @ sparse product needs a 1-D or 2-D dense operand and a 2-D sparse "
                           f"one, got shapes {list(a.shape)} and {list(b.shape)}")
    if a._data.ndim == 1:
        return mm_sparse(b.t(), a, masked=masked, op=op)
    return mm_sparse(b.t(), a.t(), masked=masked, op=op).t()


def spmm(input, mat2):
    """Sparse @ dense matrix product (``torch.spmm``); the sparse operand gets a dense gradient."""
    a, b = tensor_arg(input, "spmm"), tensor_arg(mat2, "spmm", "mat2")
    if not is_sparse(a) and not is_sparse(b):
        from .linalg import mm

        return mm(a, b)
    return matmul_with_sparse(a, b, "spmm")


def sparse_mm(mat1, mat2, reduce: str = "sum"):
    """``torch.sparse.mm``: sparse @ dense (or sparse @ sparse); the sparse operand gets a sparse gradient.

    Args:
        mat1: a 2-D sparse COO tensor.
        mat2: a dense matrix (1-D or 2-D), or a 2-D sparse tensor (result sparse, no backward).
        reduce: only ``"sum"`` (other reductions are CSR-only in PyTorch).
    """
    if reduce != "sum":
        raise NotImplementedError(f"torch.sparse.mm(reduce={reduce!r}): only 'sum' is supported for COO tensors")
    a, b = tensor_arg(mat1, "sparse.mm", "mat1"), tensor_arg(mat2, "sparse.mm", "mat2")
    if not is_sparse(a):
        raise RuntimeError(f"torch.sparse.mm: mat1 must be a sparse COO tensor, got a dense tensor of shape "
                           f"{list(a.shape)}")
    return matmul_with_sparse(a, b, "sparse.mm", masked=True)


def addmm_with_sparse(input, mat1, mat2, beta=1, alpha=1, *, masked: bool, op: str = "addmm"):
    """``beta * input + alpha * (mat1 @ mat2)`` with a sparse ``mat1`` (composed, so it differentiates itself)."""
    prod = matmul_with_sparse(mat1, mat2, op, masked=masked)
    if is_sparse(prod):
        raise NotImplementedError(f"{op}: a sparse @ sparse product inside addmm is not supported")
    if alpha != 1:
        prod = prod * alpha
    if beta == 0:
        return prod
    inp = tensor_arg(input, op, "input")
    if is_sparse(inp):
        inp = inp.to_dense()
    return prod + (inp if beta == 1 else inp * beta)


def sparse_addmm(mat, mat1, mat2, *, beta=1.0, alpha=1.0):
    """``torch.sparse.addmm``: ``beta * mat + alpha * (mat1 @ mat2)`` with sparse ``mat1`` (sparse gradient)."""
    return addmm_with_sparse(mat, mat1, mat2, beta, alpha, masked=True, op="sparse.addmm")
