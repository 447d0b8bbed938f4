"""What the reductions share (reduce.py, reduce_var.py): dim handling, broadcasting a reduced gradient back, the
reduction node base class."""
from __future__ import annotations

import builtins

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from ..autograd.op import Op
from ._helpers import dims_arg

_LOW = (D.float16.np, D.bfloat16.np)
_F32 = np.dtype(np.float32)
# PyTorch's names for dtypes in error messages ("Got: Long").
_TORCH_NAME = {"int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool",
               "float32": "Float", "float64": "Double", "float16": "Half", "bfloat16": "BFloat16",
               "complex64": "ComplexFloat", "complex128": "ComplexDouble"}


def _rdims(dim, ndim: int, op: str) -> tuple:
    """Reduction dims as NumPy axes: None and [] mean all; a 0-d input reduces over ``()``."""
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return tuple(range(ndim))
    dims = dims_arg(dim, ndim, op)
    return dims if ndim else ()


def _keep_shape(shape: tuple, dims: tuple) -> tuple:
    return tuple(1 if i in dims else s for i, s in enumerate(shape))


def _broadcast_view(xp, arr, shape: tuple):
    """``xp.broadcast_to(arr, shape)`` for ``arr`` of the same rank (or 0-d): a read-only view with zero strides
    where ``arr`` has size 1. Built directly for NumPy, since broadcast_to costs a few microseconds, which is
    most of a small reduction's backward."""
    if xp is np and arr.flags.c_contiguous and 0 not in shape:
        if arr.ndim == 0:
            strides = (0,) * len(shape)
        elif arr.ndim == len(shape) and builtins.all(a == s or a == 1 for a, s in zip(arr.shape, shape)):
            strides = tuple(0 if a != s else st for a, s, st in zip(arr.shape, shape, arr.strides))
        else:
            return xp.broadcast_to(arr, shape)
        try:
            view = np.ndarray(shape, arr.dtype, arr, 0, strides)
        except (TypeError, ValueError, BufferError):  # a dtype without buffer support (e.g. bfloat16)
            return xp.broadcast_to(arr, shape)
        view.flags.writeable = False
        return view
    return xp.broadcast_to(arr, shape)


def _expand_back(g, shape: tuple, dims: tuple, keepdim: bool):
    """Broadcast a reduced gradient back to the input's shape (differentiable)."""
    if not T.needs_grad(g):  # plain backward: no graph to build, so skip the op machinery
        arr = g._data
        if not keepdim and dims:
            arr = arr.reshape(_keep_shape(shape, dims))
        return T._wrap(_broadcast_view(g._xp, arr, shape))
    if not keepdim and dims:
        g = g.reshape(_keep_shape(shape, dims))
    return g.expand(shape)


def _const(like_dtype, arr):
    """A constant tensor (no grad) with ``like_dtype``'s NumPy dtype."""
    return T._wrap(arr.astype(like_dtype, copy=False))


def _torch_name(x) -> str:
    return _TORCH_NAME.get(x.dtype.name, x.dtype.name)


def _sum_dtype(arr, dtype):
    if dtype is not None:
        return D.to_dtype(dtype).np
    return D.int64.np if arr.dtype.kind in "biu" else arr.dtype


class _Reduction(Op):
    """A reduction over ``dims`` of its input: backward broadcasts the gradient back to the input's shape."""

    tensor_args = 1

    def _keep(self, arr, dims: tuple, keepdim: bool) -> None:
        if self.next_functions:
            self.shape, self.dims, self.keepdim = arr.shape, dims, keepdim


