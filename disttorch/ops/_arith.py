"""Shared plumbing of the arithmetic ops (elementwise.py, division.py, power.py, pointwise_binary.py, compare.py):
gradient reduction over broadcast dims, conjugation, the quiet ufunc call and operand coercion.
"""
from __future__ import annotations

import numpy as np  # the ndarray type, to accept arrays as operator operands

from .. import _dtype as D
from .. import _tensor as T
from ..autograd.op import write_out
from ._helpers import QUIET_RUN, broadcast_error, context_busy, quiet_slow, sum_to


def reduce_grad(g, meta):
    """``g`` summed over the dims broadcasting added and cast to the input's dtype (``meta``: (shape, NumPy dtype)
    of the input, from ``_helpers.meta``)."""
    g = sum_to(g, meta[0])
    if g._data.dtype != meta[1]:
        if g._data.dtype.kind == "c" and meta[1].kind != "c":  # a real input of a complex op: the real part
            from .complex_ops import real

            g = real(g)
        if g._data.dtype != meta[1]:
            g = g.to(D._FROM_NP[meta[1]])
    return g


def _cj(v):
    """``v`` conjugated when it is complex: PyTorch's gradients of products and quotients conjugate the other
    operand (a real loss ``L`` of ``z`` gets ``dL/dx + i dL/dy``)."""
    if v.__class__ is T.Tensor or isinstance(v, T.Tensor):
        if v._data.dtype.kind != "c":
            return v
        from .complex_ops import conj

        return conj(v)
    return v.conjugate() if isinstance(v, complex) else v


def zeros_grad(g, meta):
    """A zero gradient for an input described by ``meta`` (ops that are piecewise constant)."""
    return T._wrap(g._xp.zeros(meta[0], dtype=meta[1]))


def _ufunc2(fn, op: str, x, y):
    """``fn(x, y)`` on the entry point's promoted arrays with NumPy's floating-point warnings off (overflow gives
    inf silently, as in PyTorch), turning NumPy's broadcast failure into PyTorch's RuntimeError."""
    try:
        return QUIET_RUN(fn, x, y)
    except ValueError:
        raise broadcast_error(op, x.shape, y.shape) from None
    except RuntimeError as e:
        if not context_busy(e):
            raise
        try:  # the quiet context is busy (another thread, or re-entry): set the error state for this call
            return quiet_slow(fn, x, y)
        except ValueError:
            raise broadcast_error(op, x.shape, y.shape) from None


def _to_float(x, y):
    """Promote integer/bool operand arrays to the default float dtype (true division and friends)."""
    if x.dtype.kind in "biu":
        fd = D.get_default_dtype().np
        return x.astype(fd), y.astype(fd)
    return x, y


def _out(r, out):
    """Honour an ``out=`` argument for results built from several ops (a single op passes ``out=`` to apply)."""
    if out is None:
        return r
    return write_out(r, out, "out")


def _operand(x):
    """An operator's other operand: NumPy arrays become tensors (``np_array + t`` gives a tensor, as in PyTorch)."""
    if x.__class__ is np.ndarray:
        D.from_numpy_dtype(x.dtype)  # TypeError for dtypes disttorch lacks
        return T._wrap(x)
    return x


def _is_bool(x) -> bool:
    return x.__class__ is bool or (isinstance(x, T.Tensor) and x._data.dtype.kind == "b")
