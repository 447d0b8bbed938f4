"""var, std, var_mean, std_mean (split from reduce.py): Bessel's correction, PyTorch's argument overloads."""
from __future__ import annotations

import builtins
import math

import numpy as np

from .. import _dtype as D
from ..autograd.op import RESULT
from ._helpers import quiet, tensor_arg
from ._reduce_base import _F32, _LOW, _TORCH_NAME, _const, _expand_back, _rdims, _Reduction

__all__ = ["var", "std", "var_mean", "std_mean"]


def _var_args(dim, unbiased, correction):
    if isinstance(dim, bool):  # var(input, unbiased) overload
        dim, unbiased = None, dim
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    elif unbiased is not None:
        raise RuntimeError("var/std: cannot pass both 'unbiased' and 'correction'")
    return dim, correction


def _var_forward(xp, arr, dims: tuple, correction, keepdim: bool, op: str):
    if arr.dtype.kind in "biu":
        raise RuntimeError(f"std and var only support floating point and complex dtypes (got "
                           f"{_TORCH_NAME.get(arr.dtype.name, arr.dtype.name)})")
    work = arr.astype(_F32) if arr.dtype in _LOW else arr
    n = math.prod(arr.shape[d] for d in dims)
    with quiet(xp):
        mu = work.sum(axis=dims, keepdims=True) / n
        dev = work - mu
        sq = (dev * dev.conj()).real if dev.dtype.kind == "c" else dev * dev
        var = sq.sum(axis=dims, keepdims=keepdim) / builtins.max(n - correction, 0)
    real = np.dtype(D.from_numpy_dtype(arr.dtype).to_real().np)
    return var.astype(real, copy=False), n - correction


class VarBackward0(_Reduction):
    op_name = "var"

    def forward(self, xp, arr, dims, keepdim, correction):
        self._keep(arr, dims, keepdim)
        res, self.dof = _var_forward(xp, arr, dims, correction, keepdim, self.op_name)
        self.save(0)
        return res

    def backward(self, g):
        (x,) = self.saved_tensors
        scale = 2.0 / self.dof if self.dof else math.inf
        g = _expand_back(g, self.shape, self.dims, self.keepdim)
        return g * (x - x.mean(self.dims or None, keepdim=True)) * scale


def var(input, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None):
    """Variance over ``dim`` with Bessel's ``correction`` (1 by default; ``unbiased=False`` means 0).

    A correction at least the number of elements gives inf or nan, silently.
    """
    x = tensor_arg(input, "var")
    dim, correction = _var_args(dim, unbiased, correction)
    dims = _rdims(dim, x._data.ndim, "var")
    return VarBackward0.apply(x, dims, keepdim, correction)


class StdBackward0(_Reduction):
    op_name = "std"

    def forward(self, xp, arr, dims, keepdim, correction):
        self._keep(arr, dims, keepdim)
        res, self.dof = _var_forward(xp, arr, dims, correction, keepdim, self.op_name)
        self.save(0, RESULT)
        with quiet(xp):
            return xp.sqrt(res)

    def backward(self, g):
        x, r = self.saved_tensors
        shape, dims, keepdim = self.shape, self.dims, self.keepdim
        scale = 1.0 / self.dof if self.dof else math.inf
        r = _expand_back(r, shape, dims, keepdim)
        zero = r._data == 0
        g = _expand_back(g, shape, dims, keepdim) * _const(x._data.dtype, ~zero)
        return g * (x - x.mean(dims or None, keepdim=True)) / (r + _const(x._data.dtype, zero)) * scale


def std(input, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None):
    """Standard deviation over ``dim`` (see ``var``); the gradient where it is 0 is 0."""
    x = tensor_arg(input, "std")
    dim, correction = _var_args(dim, unbiased, correction)
    dims = _rdims(dim, x._data.ndim, "std")
    return StdBackward0.apply(x, dims, keepdim, correction)


def var_mean(input, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None):
    """``(var, mean)`` over ``dim`` as a plain tuple."""
    from .reduce import mean

    dim, correction = _var_args(dim, unbiased, correction)
    return var(input, dim, keepdim=keepdim, correction=correction), mean(input, dim, keepdim)


def std_mean(input, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None):
    """``(std, mean)`` over ``dim`` as a plain tuple."""
    from .reduce import mean

    dim, correction = _var_args(dim, unbiased, correction)
    return std(input, dim, keepdim=keepdim, correction=correction), mean(input, dim, keepdim)
