"""``linear`` and ``bilinear`` (``disttorch.nn.functional``), with one fused node for ``x @ W^T + b``.

The forward is one BLAS call on a 2-D view of the input plus an in-place bias add; the backward is two
matrix products and a sum, written with Tensor ops so double backward works.
"""
from __future__ import annotations

import numpy as np

from .. import _parallel as P
from .. import _tensor as T
from ..amp._state import STATE as _AC
from ..amp._state import cast_lower as _autocast
from ..autograd.op import Op
from ..autograd.grad_mode import STATE as _GRAD
from ._helpers import tensor_arg
from .linalg import matmul

__all__ = ["bilinear"]
FUNCTIONAL = ("linear", "bilinear")

_LOW = ("float16", "bfloat16")
_FAST = (np.dtype(np.float32), np.dtype(np.float64))


class LinearBackward0(Op):
    """``x @ W^T + b``: inputs (x, weight, bias); one BLAS call forward, two products and a sum backward."""

    op_name = "linear"

    def forward(self, xp, xd, wd, bd):
        w2 = wd if wd.ndim == 2 else wd.reshape(1, -1)
        x2 = xd.reshape(-1, xd.shape[-1])
        if xd.dtype.name in _LOW:
            out = xp.matmul(x2.astype("float32"), w2.T.astype("float32"))
        else:
            out = P.matmul(xp, x2, w2.T)
        if bd is not None:
            out += bd
        if out.dtype != xd.dtype:
            out = out.astype(xd.dtype)
        if self.next_functions:
            self.w_shape, self.w_ndim, self.x_shape = w2.shape, wd.ndim, xd.shape
            # x is needed only for the weight's gradient, the weight only for the input's
            nig = self._nig
            self.save(0 if nig[1] else None, 1 if nig[0] else None)
        return out.reshape(xd.shape[:-1] + ((w2.shape[0],) if wd.ndim == 2 else ()))

    def backward(self, g):
        x, w = self.saved_tensors
        if w is not None and self.w_ndim == 1:
            w = w.reshape(1, -1)
        need_x, need_w, need_b = self._nig[:3]
        out_f, in_f = self.w_shape
        g2 = g.reshape(-1, out_f)
        gx = matmul(g2, w).reshape(self.x_shape) if need_x else None
        fast = not _GRAD.enabled and g2._data.dtype in _FAST
        gw = matmul(g2.t(), x.reshape(-1, in_f)) if need_w else None
        if need_b:
            # a column sum as a BLAS product with ones (several times faster than NumPy's reduction)
            gb = T._wrap(P.matmul(g2._xp, g2._xp.ones(g2._data.shape[0], g2._data.dtype), g2._data)) if fast else g2.sum(0)
        else:
            gb = None
        if self.w_ndim == 1:  # weight (in,) : output (...,)
            gw = gw.reshape(self.w_shape[1:]) if gw is not None else None
            gb = gb.reshape(()) if gb is not None else None
        return gx, gw, gb


def _shape_error(x, w) -> RuntimeError:
    xs = "x".join(str(s) for s in x._data.shape) if x._data.ndim else "0-d"
    ws = tuple(w._data.shape)
    return RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({_rows(x)}x{x._data.shape[-1]} and "
                        f"{ws[-1] if len(ws) > 1 else ws[0]}x{ws[0] if len(ws) > 1 else 1}) [input {xs}, weight "
                        f"{'x'.join(map(str, ws))}]")


# PyTorch's dtype mismatch message names the C++ element types.
_CXX_NAMES = {"float32": "float", "float64": "double", "float16": "c10::Half", "bfloat16": "c10::BFloat16",
              "complex64": "c10::complex<float>", "complex128": "c10::complex<double>", "int64": "long int",
              "int32": "int", "int16": "short int", "int8": "signed char", "uint8": "unsigned char", "bool": "bool"}


def _cxx_name(np_dtype) -> str:
    return _CXX_NAMES.get(np_dtype.name, np_dtype.name)


def _rows(x) -> int:
    n = 1
    for s in x._data.shape[:-1]:
        n *= s
    return n


def linear(input, weight, bias=None):
    """``input @ weight.T + bias``, as ``torch.nn.functional.linear``.

    Args:
        input: (*, in_features).
        weight: (out_features, in_features) or (in_features,).
        bias: (out_features,) or () or None.

    Example:
        >>> F.linear(disttorch.ones(4, 3), disttorch.ones(2, 3), disttorch.zeros(2)).shape
        disttorch.Size([4, 2])
    """
    x = input if input.__class__ is T.Tensor else tensor_arg(input, "linear")
    w = weight if weight.__class__ is T.Tensor else tensor_arg(weight, "linear", "weight")
    if _AC.active:
        x, w, bias = _autocast(x, w, bias)
    xd, wd = x._data, w._data
    if xd.ndim == 0:
        raise RuntimeError(f"both arguments to linear need to be at least 1D, but they are 0D and {wd.ndim}D")
    if xd.dtype != wd.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {_cxx_name(xd.dtype)} != "
                           f"{_cxx_name(wd.dtype)}")
    if wd.ndim not in (1, 2) or xd.shape[-1] != (wd.shape[1] if wd.ndim == 2 else wd.shape[0]):
        raise _shape_error(x, w)
    if bias is not None and bias.__class__ is not T.Tensor:
        bias = tensor_arg(bias, "linear", "bias")
    return LinearBackward0.apply(x, w, bias)


def bilinear(input1, input2, weight, bias=None):
    """``y_k = x1^T W_k x2 + b_k``, as ``torch.nn.functional.bilinear`` (weight (out, in1, in2))."""
    x1, x2 = tensor_arg(input1, "bilinear", "input1"), tensor_arg(input2, "bilinear", "input2")
    w = tensor_arg(weight, "bilinear", "weight")
    if w._data.ndim != 3:
        raise RuntimeError(f"bilinear: expected a 3-D weight (out_features, in1_features, in2_features), got "
                           f"{w._data.ndim}-D")
    if x1.shape[:-1] != x2.shape[:-1]:
        if x1.ndim != x2.ndim:
            raise RuntimeError(f"bilinear(): input dimensions do not match: got {x1.ndim} and {x2.ndim}")
        d = next(i for i, (m, n) in enumerate(zip(x1.shape[:-1], x2.shape[:-1])) if m != n)
        raise RuntimeError(f"bilinear(): input batch dimensions do not match at dim {d}: got {x1.shape[d]} and "
                           f"{x2.shape[d]}")
    if x1.shape[-1] != w.shape[1]:
        raise RuntimeError(f"bilinear(): input1 size does not match weight size: got {x1.shape[-1]} but expected "
                           f"{w.shape[1]}")
    if x2.shape[-1] != w.shape[2]:
        raise RuntimeError(f"bilinear(): input2 size does not match weight size: got {x2.shape[-1]} but expected "
                           f"{w.shape[2]}")
    from ._einsum import einsum

    if _AC.active:  # PyTorch's CPU autocast does not reach bilinear (its _trilinear kernel): no einsum cast
        from ..amp._state import suspended

        with suspended():
            y = einsum("...i,kij,...j->...k", x1, w, x2)
    else:
        y = einsum("...i,kij,...j->...k", x1, w, x2)
    return y + bias if bias is not None else y


class LinearMethods:
    __slots__ = ()
