"""The array behind a sparse COO tensor, and the array kernels that work on it.

A sparse tensor is an ordinary ``Tensor`` whose ``_data`` is a ``SparseCOO`` (indices, values, shape)
instead of an ndarray. ``SparseCOO`` offers the small part of the ndarray surface that generic code
reads (shape, dtype, ndim, size, astype, copy, swapaxes) and implements the few ufuncs that keep a
tensor sparse (negation, sparse +/- sparse, sparse * scalar or dense, sparse / scalar). So the
existing ops (add, mul, neg, t, transpose, clone, to, detach) and their backward formulas work on
sparse tensors unchanged, and the autograd engine can add sparse gradients.

Everything else NumPy tries on it (any other ufunc, array function, method, indexing, conversion to
an ndarray) raises ``NotImplementedError`` naming the disttorch op and the layout, instead of
densifying silently or failing with an attribute error.

The sparse-matrix library is picked in one place, ``sparse_module``: SciPy's for NumPy arrays
(CuPy's ``cupyx.scipy.sparse`` for CUDA arrays once the GPU backend lands). Neither is imported
until a sparse product first needs it, so ``import disttorch`` stays cheap.
"""
from __future__ import annotations

import math
import sys
from types import SimpleNamespace

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from .._device import array_module, device_of

__all__ = ["SparseCOO", "sparse_module", "unsupported", "coalesce_arrays", "dense_from", "gather_dense",
           "lookup", "from_dense", "check_indices"]

_SPARSE_MODULES: dict = {}


def sparse_module(xp):
    """The sparse-matrix module for arrays of module ``xp``: scipy.sparse (NumPy) or cupyx.scipy.sparse (CuPy)."""
    mod = _SPARSE_MODULES.get(xp)
    if mod is None:
        if xp is np:
            import scipy.sparse as mod
        else:  # pragma: no cover - needs a GPU
            import cupyx.scipy.sparse as mod
        _SPARSE_MODULES[xp] = mod
    return mod


def xp_of(arr):
    """The array module (numpy or cupy) of an ndarray."""
    return np if arr.__class__ is np.ndarray else array_module(device_of(arr))


# ---- errors that name the op ----------------------------------------------------------------------------
_DUNDER_OPS = {"add": "add", "radd": "add", "iadd": "add_", "sub": "sub", "rsub": "sub", "isub": "sub_",
               "mul": "mul", "rmul": "mul", "imul": "mul_", "truediv": "div", "rtruediv": "div",
               "itruediv": "div_", "matmul": "matmul", "rmatmul": "matmul", "pow": "pow", "rpow": "pow",
               "getitem": "__getitem__", "setitem": "__setitem__", "floordiv": "floor_divide",
               "mod": "remainder", "eq": "eq", "ne": "ne", "lt": "lt", "le": "le", "gt": "gt", "ge": "ge",
               "abs": "abs", "neg": "neg", "invert": "bitwise_not", "and": "logical_and", "or": "logical_or",
               "array": "numpy", "float": "float", "int": "int", "bool": "bool"}


def _is_public_op(name: str) -> bool:
    """True for names users call: Tensor methods and ``disttorch`` / ``nn.functional`` functions."""
    from .. import _tensor

    if hasattr(_tensor.Tensor, name) or hasattr(sys.modules["disttorch"], name):
        return True
    fn = sys.modules.get("disttorch.nn.functional")
    return fn is not None and hasattr(fn, name)


def _calling_op(fallback: str) -> str:
    """The innermost public disttorch op on the stack (the one the user called), else ``fallback``."""
    f = sys._getframe(2)
    while f is not None:
        mod = f.f_globals.get("__name__", "")
        name = f.f_code.co_name
        if mod.startswith("disttorch.") and mod != __name__:
            if name.startswith("__") and name.endswith("__"):
                op = _DUNDER_OPS.get(name.strip("_"))
                if op is not None:
                    return op
            elif not name.startswith(("_", "<")) and _is_public_op(name):
                return name
        f = f.f_back
    return fallback


def unsupported(what: str, detail: str = "") -> NotImplementedError:
    """The error for an operation a sparse COO tensor does not support, naming the calling op."""
    op = _calling_op(what)
    return NotImplementedError(f"{op}: not supported for sparse COO tensors (layout=disttorch.sparse_coo){detail}; "
                               "convert with .to_dense() first (disttorch.sparse's documentation lists the ops "
                               "that take sparse tensors)")


_FLAGS = SimpleNamespace(c_contiguous=True, f_contiguous=False, owndata=True, writeable=True)


def _is_scalar(x) -> bool:
    return isinstance(x, (int, float, complex, bool, np.generic)) or (x.__class__ is np.ndarray and x.ndim == 0)


class SparseCOO(NDArrayOperatorsMixin):
    """Indices ``(sparse_dim, nnz)`` int64, values ``(nnz, *dense_shape)`` and the full shape.

    Ops build new instances; the in-place forms (``out=``, used by the autograd engine to accumulate
    gradients) swap all fields at once (``_assign``). The cached coalesced form and CSR matrix are also
    dropped when the version counter given to ``watch`` moves (a write through ``values()``/``_values()``
    or to the values tensor a ``sparse_coo_tensor`` shares).
    """

    __slots__ = ("indices", "values", "shape", "coalesced", "_cache", "_vsrc", "_ver")
    __array_priority__ = 2000
    base = None  # the engine's ownership check on gradients reads these two ndarray fields
    flags = _FLAGS

    def __init__(self, indices, values, shape, coalesced: bool = False) -> None:
        self.indices = indices
        self.values = values
        self.shape = tuple(int(s) for s in shape)
        self.coalesced = bool(coalesced) or indices.shape[1] <= 1
        self._cache = {}
        self._vsrc = None  # a version counter whose change (an in-place write to the arrays) voids the cache
        self._ver = 0

    # ---- the ndarray fields generic code reads -----------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def dtype(self):
        return self.values.dtype

    @property
    def itemsize(self) -> int:
        return self.values.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return int(self.indices.nbytes + self.values.nbytes)

    @property
    def device(self):
        return getattr(self.values, "device", None)

    @property
    def sparse_dim(self) -> int:
        return self.indices.shape[0]

    @property
    def dense_dim(self) -> int:
        return self.values.ndim - 1

    @property
    def nnz(self) -> int:
        return self.indices.shape[1]

    @property
    def xp(self):
        return xp_of(self.values)

    def astype(self, dtype, copy: bool = True):
        return SparseCOO(self.indices, self.values.astype(dtype), self.shape, self.coalesced)

    def copy(self, order: str = "C"):
        return SparseCOO(self.indices.copy(), self.values.copy(), self.shape, self.coalesced)

    def swapaxes(self, d0: int, d1: int):
        """The transpose of two sparse dims (indices rows swapped) or of two dense dims (values axes)."""
        sd = self.sparse_dim
        if d0 == d1:
            return SparseCOO(self.indices, self.values, self.shape, self.coalesced)
        shape = list(self.shape)
        shape[d0], shape[d1] = shape[d1], shape[d0]
        if d0 < sd and d1 < sd:
            perm = list(range(sd))
            perm[d0], perm[d1] = d1, d0
            out = SparseCOO(self.indices[perm], self.values, shape, False)
            cache = self.cache()
            m = cache.get("matrix")
            if m is not None and self.ndim == 2:
                # The transpose's matrix is a CSC view of this one (made once): backward needs no conversion.
                mt = cache.get("matrix_t")
                if mt is None:
                    mt = cache["matrix_t"] = m.T
                out._cache["matrix"] = mt
            return out
        if d0 >= sd and d1 >= sd:
            return SparseCOO(self.indices, self.values.swapaxes(d0 - sd + 1, d1 - sd + 1), shape, self.coalesced)
        raise RuntimeError(f"sparse transpose: transposed dimensions must be sparse Got sparse_dim: {sd}, d0: {d0}, "
                           f"d1: {d1}")

    # ---- the cached forms ----------------------------------------------------------------------------
    def coalesced_form(self) -> "SparseCOO":
        """This tensor with duplicates summed and indices sorted (itself when already coalesced; cached)."""
        if self.coalesced:
            return self
        cache = self.cache()
        c = cache.get("coalesced")
        if c is None:
            idx, vals = coalesce_arrays(self.indices, self.values, self.shape[:self.sparse_dim])
            c = cache["coalesced"] = SparseCOO(idx, vals, self.shape, True)
        return c

    def matrix(self):
        """This 2-D tensor as a CSR matrix of ``sparse_module`` (duplicates summed), built once and cached.

        float16/bfloat16 values are held in float32 (the sparse libraries lack them); products cast back.
        """
        cache = self.cache()
        m = cache.get("matrix")
        if m is None:
            if self.sparse_dim != 2 or self.dense_dim != 0:
                raise RuntimeError(f"sparse matrix product: expected a 2-D sparse tensor with no dense dims, got "
                                   f"shape {list(self.shape)} with sparse_dim {self.sparse_dim} and dense_dim "
                                   f"{self.dense_dim}")
            xp = self.xp
            sp = sparse_module(xp)
            c = self.coalesced_form()
            vals = c.values
            kind = vals.dtype.kind
            if kind == "b":
                raise RuntimeError("sparse matrix product: \"addmm_sparse_dense\" not implemented for 'Bool'")
            if kind == "V" or (kind == "f" and vals.dtype.itemsize < 4):
                vals = vals.astype(np.float32)
            rows = c.indices[0]
            indptr = xp.zeros(self.shape[0] + 1, dtype=np.int64)
            xp.cumsum(xp.bincount(rows, minlength=self.shape[0]), out=indptr[1:])
            m = cache["matrix"] = sp.csr_matrix((vals, c.indices[1], indptr), shape=self.shape)
        return m

    def _assign(self, other: "SparseCOO") -> None:
        self.indices, self.values, self.shape = other.indices, other.values, other.shape
        self.coalesced, self._cache, self._vsrc = other.coalesced, other._cache, None

    def watch(self, vc: list) -> None:
        """Tie the cached forms to version counter ``vc``: the tensors sharing these arrays bump it on writes."""
        if self._vsrc is not vc:
            self._vsrc, self._ver = vc, vc[0]

    def cache(self) -> dict:
        """The cached forms (coalesced, CSR matrix), emptied first if the arrays were written in place."""
        vs = self._vsrc
        if vs is not None and vs[0] != self._ver:
            self._cache = {}
            self._ver = vs[0]
        return self._cache

    # ---- ufuncs ----------------------------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        name = ufunc.__name__
        impl = _UFUNCS.get(name)
        if method != "__call__" or impl is None or kwargs.get("where", True) is not True:
            raise unsupported(name)
        res = impl(*inputs)
        if out is None:
            return res
        (dst,) = out
        if dst.__class__ is SparseCOO and res.__class__ is SparseCOO:
            dst._assign(res)
        elif dst.__class__ is not SparseCOO and res.__class__ is not SparseCOO:
            dst[...] = res
        else:
            raise unsupported(name, " (an in-place result would change layout between sparse and dense)")
        return dst

    def __array_function__(self, func, types, args, kwargs):
        raise unsupported(func.__name__)

    def __array__(self, dtype=None, copy=None):
        raise unsupported("numpy")

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise unsupported(name)

    def __getitem__(self, key):
        raise unsupported("__getitem__", " (indexing)")

    def __setitem__(self, key, value):
        raise unsupported("__setitem__", " (indexing)")

    def __iter__(self):
        raise unsupported("__iter__")

    def __len__(self) -> int:
        return self.shape[0]

    def __reduce__(self):
        return (SparseCOO, (self.indices, self.values, self.shape, self.coalesced))

    def __repr__(self) -> str:
        return f"SparseCOO(shape={self.shape}, nnz={self.nnz}, dtype={self.dtype}, coalesced={self.coalesced})"


# ---- the ufuncs that keep a tensor sparse -------------------------------------------------------------
def _same_shape(op: str, a, b) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise RuntimeError(f"{_calling_op(op)}: expected sizes of 'self' and 'other' to match, but "
                           f"{list(a.shape)} != {list(b.shape)} (sparse tensors do not broadcast)")


def _add_sparse(a: SparseCOO, b: SparseCOO, sign: int) -> SparseCOO:
    _same_shape("add", a, b)
    if a.sparse_dim != b.sparse_dim:
        raise RuntimeError(f"{_calling_op('add')}: expected 'self' and 'other' to have same density, but 'self' "
                           f"has {a.sparse_dim} sparse dimensions while 'other' has {b.sparse_dim} sparse dimensions")
    xp = a.xp
    bv = b.values if sign > 0 else -b.values
    vals = xp.concatenate([a.values, bv.astype(a.values.dtype, copy=False)])
    out = SparseCOO(xp.concatenate([a.indices, b.indices], axis=1), vals, a.shape, False)
    # Two coalesced operands give a coalesced sum, as PyTorch merges them.
    return out.coalesced_form() if a.coalesced and b.coalesced else out


def _add_dense(dense, s: SparseCOO, sign_dense: int, sign_sparse: int):
    """``sign_dense * dense + sign_sparse * s`` as a dense array (PyTorch's dense + sparse)."""
    _same_shape("add", dense, s)
    out = dense.copy() if sign_dense > 0 else -dense
    c = s.coalesced_form()
    if c.nnz:
        pos = tuple(c.indices)
        out[pos] = out[pos] + (c.values if sign_sparse > 0 else -c.values)
    return out


def _add(a, b):
    if a.__class__ is SparseCOO and b.__class__ is SparseCOO:
        return _add_sparse(a, b, 1)
    if _is_scalar(a) or _is_scalar(b):
        raise unsupported("add", " with a scalar operand (it would make every element non-zero)")
    return _add_dense(b, a, 1, 1) if a.__class__ is SparseCOO else _add_dense(a, b, 1, 1)


def _subtract(a, b):
    if a.__class__ is SparseCOO and b.__class__ is SparseCOO:
        return _add_sparse(a, b, -1)
    if _is_scalar(a) or _is_scalar(b):
        raise unsupported("sub", " with a scalar operand (it would make every element non-zero)")
    return _add_dense(b, a, -1, 1) if a.__class__ is SparseCOO else _add_dense(a, b, 1, -1)


def _multiply(a, b):
    s, other = (a, b) if a.__class__ is SparseCOO else (b, a)
    if other.__class__ is SparseCOO:
        raise unsupported("mul", " with two sparse operands")
    if _is_scalar(other):
        return SparseCOO(s.indices, s.values * other, s.shape, s.coalesced)
    _same_shape("mul", s, other)
    # sparse * dense stays sparse: only the specified elements can be non-zero.
    c = s.coalesced_form()
    return SparseCOO(c.indices, c.values * other[tuple(c.indices)], c.shape, True)


def _true_divide(a, b):
    if a.__class__ is SparseCOO and _is_scalar(b):
        return SparseCOO(a.indices, a.values / b, a.shape, a.coalesced)
    raise unsupported("div", " unless dividing a sparse tensor by a scalar")


def _negative(a):
    return SparseCOO(a.indices, -a.values, a.shape, a.coalesced)


def _positive(a):
    return a


_UFUNCS = {"add": _add, "subtract": _subtract, "multiply": _multiply, "true_divide": _true_divide,
           "divide": _true_divide, "negative": _negative, "positive": _positive}


# ---- array kernels ------------------------------------------------------------------------------------
def _keys(index_arrays, sizes):
    """One int64 key per column of each ``(k, n)`` index array, ordered like the index tuples.

    The row-major linear index when the shape's element count fits in int64; otherwise the rank of
    each column among all columns given (so keys of different arrays still compare correctly).
    """
    xp = xp_of(index_arrays[0])
    if not sizes:
        return [xp.zeros(a.shape[1], dtype=np.int64) for a in index_arrays]
    if math.prod(sizes) < 2 ** 62:
        strides = xp.asarray([math.prod(sizes[i + 1:]) for i in range(len(sizes))], dtype=np.int64)
        return [strides @ a if a.shape[1] else xp.zeros(0, dtype=np.int64) for a in index_arrays]
    allcols = xp.concatenate(index_arrays, axis=1)
    _, inv = xp.unique(allcols, axis=1, return_inverse=True)
    inv = inv.reshape(-1).astype(np.int64)
    out, start = [], 0
    for a in index_arrays:
        out.append(inv[start:start + a.shape[1]])
        start += a.shape[1]
    return out


def coalesce_arrays(indices, values, sparse_sizes):
    """Indices sorted lexicographically without duplicates, and values with duplicates summed."""
    nnz = indices.shape[1]
    if nnz <= 1:
        return indices, values
    xp = xp_of(values)
    (key,) = _keys([indices], tuple(sparse_sizes))
    order = xp.argsort(key, kind="stable")
    ks = key[order]
    first = xp.empty(nnz, dtype=bool)
    first[0] = True
    xp.not_equal(ks[1:], ks[:-1], out=first[1:])
    starts = xp.flatnonzero(first)
    vals = values[order]
    if starts.shape[0] < nnz:
        vals = xp.add.reduceat(vals, starts, axis=0)
    return indices[:, order[starts]], vals


def dense_from(s: SparseCOO):
    """The dense array of a sparse tensor (duplicates summed)."""
    xp = s.xp
    out = xp.zeros(s.shape, dtype=s.values.dtype)
    c = s.coalesced_form()
    if c.nnz:
        if c.sparse_dim == 0:  # a single dense block
            out[...] = c.values[0]
        else:
            out[tuple(c.indices)] = c.values
    return out


def gather_dense(dense, indices):
    """``dense`` at the positions of ``indices`` (sparse dims): shape ``(nnz, *dense_dims)``."""
    return dense[tuple(indices)]


def lookup(g: SparseCOO, indices, dense_shape):
    """The values of sparse ``g`` at the positions ``indices`` (zero where ``g`` has no element)."""
    xp = g.xp
    n = indices.shape[1]
    out = xp.zeros((n, *dense_shape), dtype=g.values.dtype)
    c = g.coalesced_form()
    if c.nnz == 0 or n == 0:
        return out
    kg, kq = _keys([c.indices, indices], c.shape[:c.sparse_dim])
    pos = xp.searchsorted(kg, kq)
    pos = xp.minimum(pos, kg.shape[0] - 1)
    hit = kg[pos] == kq
    out[hit] = c.values[pos[hit]]
    return out


def from_dense(arr, sparse_dim: int) -> SparseCOO:
    """The coalesced sparse form of a dense array: elements (or dense sub-blocks) that are not all zero."""
    xp = xp_of(arr)
    nd = arr.ndim
    nz = arr != 0
    if sparse_dim < nd:
        nz = nz.any(axis=tuple(range(sparse_dim, nd)))
    if sparse_dim == 0:
        return SparseCOO(xp.zeros((0, 1), dtype=np.int64), arr[None].copy(), arr.shape, True)
    where = xp.nonzero(nz)
    indices = xp.stack(where).astype(np.int64, copy=False) if where else xp.zeros((0, 0), dtype=np.int64)
    return SparseCOO(indices, arr[where].copy(), arr.shape, True)


def check_indices(indices, shape, sparse_dim: int) -> None:
    """Raise if an index is negative or not below its dimension's size (PyTorch's invariant check)."""
    if indices.shape[1] == 0:
        return
    lo = indices.min(axis=1)
    hi = indices.max(axis=1)
    for d in range(sparse_dim):
        if int(lo[d]) < 0:
            raise RuntimeError(f"found negative index {int(lo[d])} for dim {d}")
        if int(hi[d]) >= shape[d]:
            raise RuntimeError(f"size is inconsistent with indices: for dim {d}, size is {shape[d]} but found "
                               f"index {int(hi[d])}")
