"""Sparse COO tensors: ``sparse_coo_tensor``, conversion to and from dense, coalescing, and their methods.

A sparse tensor is a ``Tensor`` whose ``_data`` is a ``SparseCOO`` (see _sparse_data.py). The gradient
with respect to a sparse tensor is itself a sparse tensor holding the gradient at the specified elements
(PyTorch's convention); the gradient with respect to the values of ``sparse_coo_tensor(indices, values)``
is read from it at ``indices``, so duplicates of an uncoalesced tensor each get the full gradient.
Products live in sparse_mm.py, reductions and softmax in sparse_reduce.py.

Sparse backward formulas work on arrays: they support first derivatives (``backward``, ``autograd.grad``),
not double backward through the sparse side. Every differentiable op here is an ``Op`` (autograd/op.py):
``forward`` receives the sparse operand's ``SparseCOO`` and returns one.
"""
from __future__ import annotations

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from .._device import device as _device_cls
from ..autograd.op import Op
from ._sparse_data import SparseCOO, check_indices, dense_from, from_dense, gather_dense, lookup

__all__ = ["sparse_coo_tensor"]


def is_sparse(x) -> bool:
    return x._data.__class__ is SparseCOO


def sparse_tensor(h: SparseCOO) -> "T.Tensor":
    """A Tensor around a SparseCOO (no grad)."""
    return T._wrap(h)


def _need_sparse(x, op: str) -> SparseCOO:
    h = x._data
    if h.__class__ is not SparseCOO:
        raise RuntimeError(f"{op} expected sparse coordinate tensor layout but got Strided")
    return h


def first_order(op: str, g) -> None:
    """Refuse create_graph=True through a sparse backward computed on arrays (it would drop the graph)."""
    if T.needs_grad(g):
        raise NotImplementedError(f"{op}: double backward (create_graph=True) through a sparse operation is not "
                                  "supported")


def values_grad(g, h: SparseCOO):
    """The gradient for ``h.values`` given ``g``, the gradient (sparse or dense Tensor) w.r.t. the tensor."""
    gd = g._data
    if gd.__class__ is SparseCOO:
        if gd.sparse_dim == h.sparse_dim:
            out = lookup(gd, h.indices, h.values.shape[1:])
        else:
            out = gather_dense(dense_from(gd), h.indices)
    else:
        out = gather_dense(gd, h.indices)
    return out if out.dtype == h.values.dtype else out.astype(h.values.dtype)


def masked_grad(g, h: SparseCOO) -> "T.Tensor":
    """``g`` at the (coalesced) specified elements of ``h``, as a sparse Tensor."""
    c = h.coalesced_form()
    return sparse_tensor(SparseCOO(c.indices, values_grad(g, c), c.shape, True))


# ---- construction --------------------------------------------------------------------------------------
class SparseCooTensorWithDimsAndTensorsBackward0(Op):
    op_name = "sparse_coo_tensor"

    def forward(self, xp, values, indices, shape, coalesced):
        h = SparseCOO(indices, values, shape, coalesced)
        if self.next_functions:
            self.h = h
        return h

    def backward(self, g):
        first_order("sparse_coo_tensor", g)
        return T._wrap(values_grad(g, self.h))


def _indices_array(indices, xp):
    if isinstance(indices, T.Tensor):
        if is_sparse(indices):
            raise RuntimeError("sparse_coo_tensor: indices must be a dense tensor, got a sparse one")
        arr = indices._data
    else:
        arr = np.asarray(indices)
        if arr.dtype == object:
            raise TypeError(f"sparse_coo_tensor: indices must be integers, got {type(indices).__name__} "
                            "holding non-numbers")
    if arr.dtype.kind == "f":
        if arr.size and not bool((arr == np.floor(arr)).all()):
            raise RuntimeError("sparse_coo_tensor: indices must be integers, got non-integral floats")
    elif arr.dtype.kind not in "iu":
        raise RuntimeError(f"sparse_coo_tensor: indices must be an integer tensor, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise RuntimeError(f"indices must be sparse_dim x nnz, but got: {list(arr.shape)}")
    arr = arr.astype(np.int64, copy=False)
    return arr if xp is np else xp.asarray(arr)


def _empty(size, dtype, device, requires_grad: bool):
    from .creation import _size_args

    shape = tuple(_size_args((size,), "sparse_coo_tensor"))
    dt = D.to_dtype(dtype) if dtype is not None else D.get_default_dtype()
    h = SparseCOO(np.zeros((len(shape), 0), dtype=np.int64), np.zeros((0,), dtype=dt.np), shape, True)
    r = sparse_tensor(h)
    return r.requires_grad_(True) if requires_grad else r


def sparse_coo_tensor(indices, values=None, size=None, *, dtype=None, device=None, pin_memory: bool = False,
                      requires_grad: bool = False, check_invariants=None, is_coalesced=None):
    """A sparse COO tensor with ``values`` at ``indices``, as ``torch.sparse_coo_tensor``.

    Args:
        indices: integer array-like of shape ``(sparse_dim, nnz)``; column ``k`` is the position of value ``k``.
        values: array-like of shape ``(nnz, *dense_dims)``; a Tensor that requires grad receives gradients.
        size: the full shape; inferred as ``max(indices) + 1`` per sparse dim, then ``values.shape[1:]``.
        dtype, device: of the values (inferred from ``values`` when None).
        requires_grad: make the result a leaf that requires grad.
        check_invariants: also verify ``is_coalesced=True`` claims. Indices are always checked against
            ``size`` (negative or out-of-range indices raise), whatever this flag says.
        is_coalesced: declare the indices sorted and free of duplicates.

    Returns:
        A Tensor with ``layout == disttorch.sparse_coo``; uncoalesced unless ``nnz <= 1`` or declared.

    Example:
        >>> s = sparse_coo_tensor([[0, 1, 1], [2, 0, 2]], [3., 4., 5.], (2, 3))
        >>> s.to_dense()
        tensor([[0., 0., 3.],
                [4., 0., 5.]])
    """
    if values is None:  # sparse_coo_tensor(size): an empty tensor of that shape
        return _empty(indices, dtype, device, requires_grad)
    from .creation import as_tensor

    if isinstance(values, T.Tensor):
        v = values if dtype is None else values.to(D.to_dtype(dtype))
        if device is not None and v.device != _device_cls(device):
            v = v.to(_device_cls(device))
    else:
        v = as_tensor(values, dtype=dtype, device=device)
    if is_sparse(v):
        raise RuntimeError("expected values to be a dense tensor, but got values of layout Sparse")
    if v._data.ndim == 0:
        raise RuntimeError("sparse_coo_tensor: values must have at least one dimension (nnz, *dense_dims), "
                           "got a 0-d tensor")
    idx = _indices_array(indices, v._xp)
    sd, nnz = idx.shape
    if nnz != v._data.shape[0]:
        raise RuntimeError(f"indices and values must have same nnz, but got nnz from indices: {nnz}, nnz from "
                           f"values: {v._data.shape[0]}")
    dense_shape = tuple(v._data.shape[1:])
    if size is None:
        hi = idx.max(axis=1) if nnz else np.zeros(sd, dtype=np.int64)
        shape = tuple(int(m) + 1 if nnz else 0 for m in hi) + dense_shape
    else:
        from .creation import _size_args

        shape = tuple(_size_args((size,), "sparse_coo_tensor"))
        if len(shape) != sd + len(dense_shape):
            raise RuntimeError(f"'len(size) == sparse_dim + dense_dim' is not satisfied: len(size) = {len(shape)}, "
                               f"sparse_dim = {sd}, dense_dim = {len(dense_shape)}")
        if shape[sd:] != dense_shape:
            raise RuntimeError(f"values has incorrect size, expected {[nnz, *shape[sd:]]}, got "
                               f"{list(v._data.shape)}")
    check_indices(idx, shape, sd)
    if is_coalesced and check_invariants and nnz > 1:
        c = SparseCOO(idx, v._data, shape, False).coalesced_form()
        if c.nnz != nnz or not bool((c.indices == idx).all()):
            raise RuntimeError("cannot set is_coalesced to true if indices correspond to uncoalesced COO tensor")
    r = SparseCooTensorWithDimsAndTensorsBackward0.apply(v, idx, shape, bool(is_coalesced))
    # The tensor shares the values' memory (as PyTorch's): in-place writes to ``values`` reach it and void
    # its cached forms.
    r._vc = v._vc
    r._data.watch(v._vc)
    if requires_grad and not r._requires_grad:
        r.requires_grad_(True)
    return r


# ---- conversion ----------------------------------------------------------------------------------------
class ToSparseBackward0(Op):
    op_name = "to_sparse"

    def forward(self, xp, x, sparse_dim):
        return from_dense(x, sparse_dim)

    def backward(self, g):
        if is_sparse(g):
            first_order("to_sparse", g)
        return T._wrap(dense_from(g._data)) if is_sparse(g) else g


class ToSparseBackward1(ToSparseBackward0):
    """``to_sparse()`` without a sparse_dim (PyTorch's name for that overload)."""


class ToDenseBackward0(Op):
    op_name = "to_dense"

    def forward(self, xp, h, dtype, masked):
        arr = dense_from(h)
        if dtype is not None and arr.dtype != dtype:
            arr = arr.astype(dtype)
        if self.next_functions:
            self.h, self.masked = h, masked
        return arr

    def backward(self, g):
        if self.masked:
            first_order("to_dense", g)
        return masked_grad(g, self.h) if self.masked else g


class CoalesceBackward0(Op):
    op_name = "coalesce"

    def forward(self, xp, h):
        c = h.coalesced_form()
        return SparseCOO(c.indices, c.values, c.shape, True)

    def backward(self, g):
        return g


class ValuesBackward0(Op):
    op_name = "values"

    def forward(self, xp, h):
        if self.next_functions:
            self.h = h
        return h.values

    def backward(self, g):
        first_order("values", g)
        h = self.h
        return sparse_tensor(SparseCOO(h.indices, g._data, h.shape, h.coalesced))


def to_sparse(self, sparse_dim=None, *, layout=None, blocksize=None, dense_dim=None):
    """This tensor in sparse COO layout (coalesced), keeping its first ``sparse_dim`` dims sparse.

    Args:
        sparse_dim: how many leading dims are sparse (all by default); the rest are dense blocks.
        layout: only ``disttorch.sparse_coo`` (or None) is supported.
        dense_dim: the number of trailing dense dims, as an alternative to ``sparse_dim``.
    """
    from .._layout import sparse_coo

    if layout is not None and layout is not sparse_coo:
        raise NotImplementedError(f"to_sparse(layout={layout}): only disttorch.sparse_coo is supported")
    if blocksize is not None:
        raise NotImplementedError("to_sparse(blocksize=...): block sparse layouts are not supported")
    nd = self._data.ndim
    if dense_dim is not None:
        if sparse_dim is not None:
            raise RuntimeError("to_sparse: give sparse_dim or dense_dim, not both")
        sparse_dim = nd - dense_dim
    if is_sparse(self):
        if sparse_dim is None or sparse_dim == self._data.sparse_dim:
            return self
        raise RuntimeError("to_sparse: conversion from Sparse to Sparse with sparse_dim argument !=self.sparse_dim() "
                           f"is not supported (sparse_dim {self._data.sparse_dim}, asked for {sparse_dim})")
    sd = nd if sparse_dim is None else int(sparse_dim)
    if not 0 <= sd <= nd:
        raise RuntimeError(f"dense_to_sparse: sparse_dim argument must be in [0,{nd}] range, but {sd} is given")
    return (ToSparseBackward1 if sparse_dim is None else ToSparseBackward0).apply(self, sd)


def to_sparse_coo(self):
    """``to_sparse()``: this tensor in sparse COO layout."""
    return to_sparse(self)


def to_dense(self, dtype=None, *, masked_grad: bool = True):
    """The dense (strided) form; a dense tensor returns itself.

    Args:
        dtype: the result's dtype (the tensor's own by default).
        masked_grad: the gradient w.r.t. a sparse input keeps only its specified elements (sparse),
            as PyTorch's default; False gives the full dense gradient.
    """
    h = self._data
    if h.__class__ is not SparseCOO:
        return self if dtype is None else self.to(D.to_dtype(dtype))
    return ToDenseBackward0.apply(self, None if dtype is None else D.to_dtype(dtype).np, masked_grad)


def coalesce(self):
    """Sum duplicate elements and sort the indices; a coalesced tensor returns itself."""
    h = _need_sparse(self, "coalesce")
    if h.coalesced:
        return self
    return CoalesceBackward0.apply(self)


def is_coalesced(self) -> bool:
    """True when the indices are sorted and hold no duplicates (as far as this tensor knows)."""
    return _need_sparse(self, "is_coalesced").coalesced


def _alias(self, arr):
    r = T._wrap(arr)
    # A write through the alias is a write to the sparse tensor: same version counter, and it voids the
    # tensor's cached coalesced form and CSR matrix.
    r._vc = self._vc
    self._data.watch(self._vc)
    return r


def indices(self):
    """The ``(sparse_dim, nnz)`` int64 indices of a coalesced tensor (shares memory)."""
    h = _need_sparse(self, "indices")
    if not h.coalesced:
        raise RuntimeError("Cannot get indices on an uncoalesced tensor, please call .coalesce() first")
    return _alias(self, h.indices)


def values(self):
    """The ``(nnz, *dense_dims)`` values of a coalesced tensor (shares memory; differentiable)."""
    h = _need_sparse(self, "values")
    if not h.coalesced:
        raise RuntimeError("Cannot get values on an uncoalesced tensor, please call .coalesce() first")
    r = ValuesBackward0.apply(self)
    # An alias of the values (see ``_alias``): the version counter is shared after the op made the result.
    r._vc = self._vc
    h.watch(self._vc)
    return r


def _indices(self):
    """The indices, coalesced or not (shares memory)."""
    return _alias(self, _need_sparse(self, "_indices").indices)


def _values(self):
    """The values, coalesced or not (shares memory; not differentiable, as in PyTorch)."""
    return _alias(self, _need_sparse(self, "_values").values)


def sparse_dim(self) -> int:
    """The number of sparse dims (0 for a dense tensor)."""
    h = self._data
    return h.sparse_dim if h.__class__ is SparseCOO else 0


def dense_dim(self) -> int:
    """The number of dense dims (all of them for a dense tensor)."""
    h = self._data
    return h.dense_dim if h.__class__ is SparseCOO else h.ndim


def _nnz(self) -> int:
    """The number of specified elements (duplicates included until coalesced)."""
    h = self._data
    if h.__class__ is not SparseCOO:
        raise NotImplementedError("_nnz: not supported for dense tensors (layout=disttorch.strided)")
    return h.nnz


def sparse_repr(t) -> str:
    """``repr`` of a sparse tensor in PyTorch's format (indices, values, size, nnz, dtype, layout)."""
    from .._tensor_str import _add_suffixes, _tensor_str

    h = t._data
    indent = len("tensor(")
    suffixes = []
    if t.device.type != "cpu":
        suffixes.append(f"device='{t.device}'")
    suffixes += [f"size={tuple(h.shape)}", f"nnz={h.nnz}"]
    default = D.get_default_dtype()
    if t.dtype not in (default, default.to_complex(), D.int64, D.bool):
        suffixes.append(f"dtype={t.dtype}")
    suffixes.append("layout=disttorch.sparse_coo")

    def part(prefix: str, arr) -> str:
        body = _tensor_str(T._wrap(arr), arr, indent + len(prefix))
        if arr.size == 0:
            body += f", size={tuple(arr.shape)}"
        return prefix + body + ")"

    body = part("indices=tensor(", h.indices) + ",\n" + " " * indent + part("values=tensor(", h.values)
    if t.grad_fn is not None:
        suffixes.append(f"grad_fn=<{type(t.grad_fn).__name__}>")
    elif t._requires_grad:
        suffixes.append("requires_grad=True")
    # PyTorch starts the suffixes of a sparse tensor on a new line.
    return _add_suffixes("tensor(" + body + ",\n" + " " * indent + suffixes[0], suffixes[1:], indent)


class SparseMethods:
    """Tensor methods of the sparse family (conversion and inspection)."""

    __slots__ = ()

    to_sparse = to_sparse
    to_sparse_coo = to_sparse_coo
    to_dense = to_dense
    coalesce = coalesce
    is_coalesced = is_coalesced
    indices = indices
    values = values
    _indices = _indices
    _values = _values
    sparse_dim = sparse_dim
    dense_dim = dense_dim
    _nnz = _nnz
