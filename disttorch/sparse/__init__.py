"""Sparse COO tensors (``disttorch.sparse``), as ``torch.sparse``.

Build one with ``disttorch.sparse_coo_tensor(indices, values, size)`` or ``dense.to_sparse()``; multiply
it with ``disttorch.sparse.mm`` (sparse gradient for the sparse operand) or ``disttorch.spmm`` /
``mm`` / ``matmul`` / ``@`` (dense gradient, as PyTorch); reduce it with ``sum``, ``softmax`` and
``log_softmax`` here. On the CPU the products run on SciPy's CSR matrices, built once per tensor.

What takes sparse COO tensors (everything else raises ``NotImplementedError`` naming the op and the layout):

- construction and inspection: ``sparse_coo_tensor``, ``Tensor.to_sparse``/``to_sparse_coo``/``to_dense``,
  ``coalesce``, ``is_coalesced``, ``indices``/``values`` (coalesced tensors), ``_indices``/``_values``,
  ``sparse_dim``, ``dense_dim``, ``_nnz``, ``shape``/``dtype``/``device``/``layout``/``is_sparse``;
- ``clone``, ``detach``, ``requires_grad_``, ``to(dtype)``/``double()``..., ``t``/``transpose`` (two sparse or
  two dense dims);
- sparse + sparse, sparse - sparse, dense + sparse (dense result), sparse * scalar, sparse * dense (sparse
  result), sparse / scalar, ``neg``;
- products: ``disttorch.sparse.mm``/``addmm``, ``spmm``, ``mm``, ``matmul``/``@``, ``mv``, ``addmm`` with a 2-D
  sparse operand (dense @ sparse too), sparse @ sparse through ``sparse.mm`` (no backward, as PyTorch);
- ``disttorch.sparse.sum``, ``softmax``, ``log_softmax``.

Gradients flow to the values of ``sparse_coo_tensor(indices, values)`` and to sparse leaves (sparse
gradients on the pattern, except ``mm``/``spmm``/``matmul``/``addmm``/``mv`` whose gradient for the sparse
operand is dense, as PyTorch's). Double backward through the sparse side is not supported.

Example:
    >>> import disttorch as torch
    >>> adj = torch.sparse_coo_tensor([[0, 1, 1], [1, 0, 1]], [1., 1., 2.], (2, 2))
    >>> torch.sparse.mm(adj, torch.ones(2, 3))
    tensor([[1., 1., 1.],
            [3., 3., 3.]])
"""
from __future__ import annotations

from .._legacy_types import SPARSE_TYPES as _TYPES
from .._missing import not_implemented_getattr
from ..ops.sparse_mm import sparse_addmm as addmm, sparse_mm as mm
from ..ops.sparse_reduce import sparse_log_softmax as log_softmax, sparse_softmax as softmax, sparse_sum as sum  # noqa: A004

__all__ = ["addmm", "check_sparse_tensor_invariants", "mm", "sum", "softmax", "log_softmax"]

# Legacy constructors: disttorch.sparse.FloatTensor(indices, values, size) ...
FloatTensor = _TYPES["FloatTensor"]
DoubleTensor = _TYPES["DoubleTensor"]
HalfTensor = _TYPES["HalfTensor"]
BFloat16Tensor = _TYPES["BFloat16Tensor"]
LongTensor = _TYPES["LongTensor"]
IntTensor = _TYPES["IntTensor"]
ShortTensor = _TYPES["ShortTensor"]
CharTensor = _TYPES["CharTensor"]
ByteTensor = _TYPES["ByteTensor"]
BoolTensor = _TYPES["BoolTensor"]


class check_sparse_tensor_invariants:
    """PyTorch's switch for validating sparse tensors on construction (a context manager or decorator).

    disttorch always checks that indices lie inside the tensor's size (an out-of-range index would
    otherwise write outside the array), so enabling or disabling this changes nothing but what
    ``is_enabled()`` reports.
    """

    _enabled = False

    def __init__(self, enable: bool = True) -> None:
        self.state = enable
        self.saved_state = None

    @staticmethod
    def is_enabled() -> bool:
        return check_sparse_tensor_invariants._enabled

    @staticmethod
    def enable() -> None:
        check_sparse_tensor_invariants._enabled = True

    @staticmethod
    def disable() -> None:
        check_sparse_tensor_invariants._enabled = False

    def __enter__(self):
        self.saved_state = check_sparse_tensor_invariants._enabled
        check_sparse_tensor_invariants._enabled = self.state
        return self

    def __exit__(self, *exc) -> None:
        check_sparse_tensor_invariants._enabled = self.saved_state

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with check_sparse_tensor_invariants(self.state):
                return fn(*args, **kwargs)
        return wrapper


__getattr__ = not_implemented_getattr("disttorch.sparse")
