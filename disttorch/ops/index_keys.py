"""Index keys: a Python/Tensor key turned into the tuple NumPy indexes with, PyTorch's meaning kept.

``_norm_key`` normalises ``x[key]``'s key (ints, slices, None, Ellipsis, bool/integer tensors, nested lists,
NumPy's legacy list-as-tuple rule) and says whether it is advanced; ``_index_error`` words NumPy's indexing
errors as PyTorch does. index.py's primitives and scatter_ops.py build on them.
"""
from __future__ import annotations

import operator
import re
import warnings

import numpy as np

from .. import _tensor as T
from .._device import array_module_of, to_host
from ..cuda import _checks

_BAD_INDEX = ("only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables are valid indices "
              "(got {})")
_BAD_DTYPE = "tensors used as indices must be long, int, byte or bool tensors"


def _seq_as_tuple(seq) -> bool:
    # PyTorch keeps NumPy's legacy rule: a short list holding a sequence, tensor, slice, None or
    # Ellipsis is a tuple of indices (x[[0, [1, 2]]] == x[0, [1, 2]]), otherwise one index list.
    if len(seq) >= 32:
        return False
    for k in seq:
        if k is None or k is Ellipsis or isinstance(k, (T.Tensor, list, tuple, slice, np.ndarray)):
            return True
    return False


def _slice_part(v):
    if v is None or v.__class__ is int:
        return v
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError("slice indices must be integers or None or have an __index__ method") from None


def _norm_slice(s: slice) -> slice:
    start, stop, step = _slice_part(s.start), _slice_part(s.stop), _slice_part(s.step)
    if step is not None and step <= 0:
        raise ValueError("slice step cannot be zero" if step == 0 else "step must be greater than zero")
    return slice(start, stop, step)


def _index_array(xp, k):
    """An integer or bool index array (on ``xp``) from a Tensor, ndarray or nested sequence."""
    if isinstance(k, T.Tensor):
        arr = k._data
        if k._xp is not xp:
            arr = xp.asarray(arr) if xp is not np else to_host(arr)
    else:
        try:
            arr = np.asarray(k)
        except ValueError:
            raise IndexError(f"index lists must be rectangular (got {k!r})") from None
        if arr.dtype.kind == "O":
            raise IndexError(_BAD_INDEX.format(type(k).__name__))
        if arr.size == 0 and arr.dtype.kind == "f":  # [] is an empty list of indices
            arr = arr.astype(np.int64)
        if xp is not np:
            arr = xp.asarray(arr)
    kind = arr.dtype.kind
    if kind == "b":
        return arr
    if kind in "iu":
        if arr.dtype == np.uint8:
            warnings.warn("indexing with dtype torch.uint8 is now deprecated, please use a dtype torch.bool "
                          "instead.", UserWarning, stacklevel=4)
            return arr.astype(bool)
        return arr
    raise IndexError(_BAD_DTYPE)


def _norm_key(x, key) -> tuple:
    """``key`` as a tuple NumPy indexes with PyTorch's meaning; returns ``(key, advanced)``."""
    if key.__class__ is not tuple:
        key = tuple(key) if isinstance(key, list) and _seq_as_tuple(key) else (key,)
    xp = x._xp
    out = []
    adv = False
    for k in key:
        c = k.__class__
        if c is int or k is None or k is Ellipsis:
            out.append(k)
        elif c is slice:
            out.append(_norm_slice(k))
        elif c is bool or c is np.bool_:
            out.append(bool(k))
            adv = True
        elif isinstance(k, T.Tensor):
            d = k._data
            if d.ndim == 0 and d.dtype.kind in "iu":  # a 0-d integer tensor indexes like an int
                out.append(int(d))
            else:
                out.append(_index_array(xp, k))
                adv = True
        elif isinstance(k, np.integer):
            out.append(int(k))
        elif isinstance(k, (list, tuple, np.ndarray, range)):
            if isinstance(k, np.ndarray) and k.ndim == 0 and k.dtype.kind in "iu":
                out.append(int(k))
            else:
                out.append(_index_array(xp, k))
                adv = True
        elif hasattr(k, "__cuda_array_interface__"):
            out.append(_index_array(xp, k))
            adv = True
        else:
            raise IndexError(_BAD_INDEX.format(type(k).__name__))
    if adv and xp is not np:
        _check_bounds_device(x._data.shape, out)
    return tuple(out), adv


def _check_bounds_device(shape, key: list) -> None:
    """CuPy wraps out-of-range advanced indices instead of raising: check them as NumPy would, without a host sync
    (the check reports at the next synchronisation, disttorch.cuda._checks); the index arrays in ``key`` are
    replaced by copies clipped into range meanwhile."""
    dim = 0
    n_ell = len(shape) - sum(1 if (k.__class__ is int or isinstance(k, slice)) else
                             (k.ndim if hasattr(k, "dtype") and k.dtype.kind == "b" else
                              1 if hasattr(k, "dtype") else 0) for k in key if k is not Ellipsis)
    for i, k in enumerate(key):
        if k is Ellipsis:
            dim += max(n_ell, 0)
        elif k is None or k.__class__ is bool:
            continue
        elif hasattr(k, "dtype") and k.dtype.kind == "b":
            dim += k.ndim
        else:
            if hasattr(k, "dtype") and k.size and dim < len(shape):
                n = shape[dim]
                key[i] = _checks.defer_range(array_module_of(k), k, -n, n,
                                             lambda k=k, d=dim, n=n: _bounds_error(k, d, n))
            dim += 1


def _bounds_error(k, dim: int, n: int) -> IndexError:
    lo, hi = int(k.min()), int(k.max())
    return IndexError(f"index {lo if lo < -n else hi} is out of bounds for dimension {dim} with size {n}")


def _index_error(e: Exception, shape) -> IndexError:
    """NumPy's indexing message in PyTorch's words."""
    msg = str(e)
    if "out of bounds for axis" in msg:
        return IndexError(msg.replace("for axis", "for dimension"))
    if msg.startswith("too many indices"):
        return IndexError(f"too many indices for tensor of dimension {len(shape)}")
    m = re.match(r"boolean index did not match indexed array along (?:axis|dimension) (\d+); size of "
                 r"(?:axis|dimension) is (\d+) but size of corresponding boolean (?:axis|dimension) is (\d+)", msg)
    if m:
        return IndexError(f"The shape of the mask [{m[3]}] at index {m[1]} does not match the shape of the indexed "
                          f"tensor [{m[2]}] at index {m[1]}")
    if msg.startswith("shape mismatch"):
        shapes = re.findall(r"\(([\d, ]*)\)", msg)
        lists = ", ".join("[" + ", ".join(p.strip() for p in s.split(",") if p.strip()) + "]" for s in shapes)
        return IndexError(f"shape mismatch: indexing tensors could not be broadcast together with shapes {lists}")
    return IndexError(msg)
