"""The gradient of ``prod`` (for ``ops/reduce.py``'s ProdBackward0), exact where the input has zeros.

Without zeros the gradient is ``g * prod / x``; with a zero anywhere in the input it is ``g`` times the product of
all *other* elements of the slice (exclusive products from both sides, by ``cumprod``), for every slice, as in
PyTorch. On NumPy one host test picks the formula. On a device that test would be a host synchronisation, so both
formulas are built and ``where`` picks one by the same test kept on the device. Each formula gets inputs made
harmless where it is not used (ones in the divisor where x is zero, ones in the exclusive products when there
is no zero), so that its discarded values hold no inf or NaN that double backward could multiply into the
gradient; the result equals the host's.
"""
from __future__ import annotations

import numpy as np

from .. import _tensor as T
from .pointwise_binary import where
from .scan import _flip, _shift, cumprod


def _exclusive_products(x, shape: tuple, dims: tuple, dim):
    """For each element, the product of the other elements of its reduced slice (``dim``, or all of ``x``)."""
    flat = dims != (dim,)
    xf = x.reshape(-1) if flat else x
    d = 0 if flat else dim
    excl = cumprod(_shift(xf, d, 1, 1), d) * _flip(cumprod(_flip(_shift(xf, d, -1, 1), d), d), d)
    return excl.reshape(shape) if flat else excl


def prod_grad(x, g, r, dims: tuple, dim):
    """The gradient of ``prod`` of ``x`` (not 0-d) over ``dims``: ``g`` and the result ``r`` already broadcast back
    to ``x``'s shape; ``dim`` is the one reduced dim, or None when every element went into one product."""
    xp, xa = x._xp, x._data
    shape = xa.shape
    iszero = xa == 0
    if xp is np:
        if not iszero.any():
            return g * r / x
        return g * _exclusive_products(x, shape, dims, dim)
    # On the device: both formulas, selected by the host's test kept on the device (a 0-d array).
    has_zero = T._wrap(iszero.any())
    excl = _exclusive_products(where(has_zero, x, 1.0), shape, dims, dim)
    return where(has_zero, g * excl, g * r / where(T._wrap(iszero), 1.0, x))
