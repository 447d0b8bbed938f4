"""Matrix products: matmul, mm, bmm, mv, dot, vdot, inner, outer (ger) and tensordot.

All of them share one forward (``_product``): same-dtype check, float16/bfloat16 computed in float32 and cast
back, NumPy's shape errors turned into PyTorch-style RuntimeErrors. Their backward is ``_mm_grads``, written
with ``matmul`` itself so double backward works. addmm_ops.py builds on these; linalg.py re-exports them.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _dtype as D
from .. import _parallel as P
from .. import _tensor as T
from ..amp._state import STATE as _AC
from ..amp._state import cast_lower as _autocast
from ..autograd.op import Op
from ._helpers import sum_to, tensor_arg
from ._sparse_data import SparseCOO as _SparseCOO
from .elementwise import _cj, _out

__all__ = ["matmul", "mm", "bmm", "mv", "dot", "vdot", "inner", "outer", "ger", "tensordot"]

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_LOW = (np.dtype(np.float16), D.bfloat16.np)
# PyTorch names dtypes by their C++ type in matmul errors ("float != double").
_CNAME = {"float32": "float", "float64": "double", "float16": "c10::Half", "bfloat16": "c10::BFloat16",
          "int64": "long int", "int32": "int", "int16": "short int", "int8": "signed char",
          "uint8": "unsigned char", "bool": "bool", "complex64": "c10::complex<float>",
          "complex128": "c10::complex<double>"}


# ------------------------------------------------------------------------------------------
# shared forward / backward of the matrix products
# ------------------------------------------------------------------------------------------
def _dtype_error(op: str, a, b, names=("m1", "m2")) -> RuntimeError:
    return RuntimeError(f"{op}: expected {names[0]} and {names[1]} to have the same dtype, but got: "
                        f"{_CNAME[a.dtype.name]} != {_CNAME[b.dtype.name]}")


def _shape_error(op: str, sa: tuple, sb: tuple) -> RuntimeError:
    sa, sb = tuple(sa), tuple(sb)
    ka = sa[-1]
    kb = sb[0] if len(sb) == 1 else sb[-2]
    if ka != kb:
        return RuntimeError(f"{op}: shapes {sa} and {sb} cannot be multiplied ({ka} != {kb})")
    return RuntimeError(f"{op}: batch dimensions of shapes {sa} and {sb} do not broadcast")


def _check_pair(op: str, a, b) -> None:
    """The dtype and device checks of the matrix products, before the entry point (PyTorch's order and wording)."""
    ad, bd = a._data, b._data
    dt = ad.dtype
    if dt is not bd.dtype and dt != bd.dtype:
        raise _dtype_error(op, a, b)
    if ad.__class__ is not bd.__class__:
        raise RuntimeError(f"{op}: Expected all tensors to be on the same device, but found at least two "
                           f"devices, {a.device} and {b.device}!")
    if dt is not _F32 and dt.kind == "b":
        raise RuntimeError(f'{op}: "addmm_impl_cpu_" not implemented for \'Bool\'')


def _product(op: str, xp, ad, bd, fn, keep_f32: bool = False):
    """``fn(xp, ad, bd)`` for two same-dtype arrays (checked by ``_check_pair``), low-precision floats via
    float32 (the result rounded back, unless ``keep_f32``: then the caller adds to it in float32 and rounds
    once)."""
    dt = ad.dtype
    try:
        if dt is _F32 or dt is _F64:
            return fn(xp, ad, bd)
        if dt in _LOW:
            r = fn(xp, ad.astype(_F32), bd.astype(_F32))
            return r if keep_f32 else r.astype(dt)
        return fn(xp, ad, bd)
    except ValueError:
        raise _shape_error(op, ad.shape, bd.shape) from None


def _matmul_arrays(xp, a, b):
    return xp.matmul(a, b)


def _mm_grads(a, b, g, need_a: bool, need_b: bool, a_shape: tuple, b_shape: tuple):
    """Gradients of ``matmul(a, b)`` for any ranks (1-D operands are promoted as matmul does, then undone).

    ``a`` is only needed (and may be None otherwise) for the gradient of ``b``, and vice versa.
    """
    na, nb = len(a_shape), len(b_shape)
    # PyTorch's complex convention: grad_a = g @ b^H, grad_b = a^H @ g (conjugate, then transpose).
    a, b = _cj(a), _cj(b)
    if na == 2 and nb == 2:
        return (matmul(g, b.t()) if need_a else None), (matmul(a.t(), g) if need_b else None)
    if na == 1 and nb == 1:
        return (g * b if need_a else None), (g * a if need_b else None)
    g2 = g
    if na == 1:
        g2 = g2.unsqueeze(-2)
    if nb == 1:
        g2 = g2.unsqueeze(-1)
    ga = gb = None
    if need_a:
        ga = matmul(g2, (b.unsqueeze(-1) if nb == 1 else b).transpose(-1, -2))
        if na == 1:
            ga = ga.squeeze(-2)
        ga = sum_to(ga, a_shape)
    if need_b:
        if nb == 2 and na > 2:
            # Batched input against one matrix (a Linear layer on 3-D input): fold the batch into one mm.
            gb = matmul(a.reshape(-1, a_shape[-1]).t(), g2.reshape(-1, g2._data.shape[-1]))
        else:
            gb = matmul((a.unsqueeze(0) if na == 1 else a).transpose(-1, -2), g2)
            if nb == 1:
                gb = gb.squeeze(-1)
            gb = sum_to(gb, b_shape)
    return ga, gb


class MmBackward0(Op):
    """``a @ b`` of two arrays checked by ``_check_pair`` (matmul runs the node PyTorch names for its ranks)."""

    op_name = "mm"

    def forward(self, xp, a, b):
        if self.next_functions:
            nig = self._nig
            self.a_shape, self.b_shape = a.shape, b.shape
            self.save(0 if nig[1] else None, 1 if nig[0] else None)
        dt = a.dtype
        if dt is _F32 or dt is _F64:  # the common case, inlined: it is most of a small layer's cost
            try:
                return P.matmul(xp, a, b)
            except ValueError:
                raise _shape_error(self.op_name, a.shape, b.shape) from None
        return _product(self.op_name, xp, a, b, _matmul_arrays)

    def backward(self, g):
        a, b = self.saved_tensors
        nig = self._nig
        return _mm_grads(a, b, g, nig[0], nig[1], self.a_shape, self.b_shape)


class BmmBackward0(MmBackward0):
    op_name = "bmm"


class MvBackward0(MmBackward0):
    op_name = "mv"


class DotBackward0(MmBackward0):
    op_name = "dot"


class MatmulBackward0(MmBackward0):
    op_name = "matmul"


_NODE_BY_RANK = {(1, 1): DotBackward0, (2, 1): MvBackward0, (3, 3): BmmBackward0}


def matmul(input, other, *, out=None):
    """Matrix product with PyTorch's rules for 1-D operands (1-D x 1-D is a 0-d dot) and batch broadcasting.

    Example:
        >>> disttorch.matmul(disttorch.ones(5, 2, 3), disttorch.ones(3, 4)).shape
        disttorch.Size([5, 2, 4])
    """
    a = input if input.__class__ is T.Tensor else tensor_arg(input, "matmul")
    b = other if other.__class__ is T.Tensor else tensor_arg(other, "matmul", "other")
    ad, bd = a._data, b._data
    na, nb = ad.ndim, bd.ndim
    if na == 0 or nb == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are "
                           f"{na}D and {nb}D")
    if ad.__class__ is _SparseCOO or bd.__class__ is _SparseCOO:
        from .sparse_mm import matmul_with_sparse

        return _out(matmul_with_sparse(a, b, "matmul"), out)
    if _AC.active:
        a, b = _autocast(a, b)
        ad, bd = a._data, b._data
    dt = ad.dtype
    if dt is not bd.dtype or (dt is not _F32 and dt is not _F64) or ad.__class__ is not bd.__class__:
        _check_pair("matmul", a, b)
    if na == 2 and nb == 2:
        sa, sb = ad.shape, bd.shape
        if sa[1] != sb[0]:  # checked here: the node is mm's and would name mm in the error
            raise _shape_error("matmul", sa, sb)
        cls = MmBackward0
    else:
        cls = _NODE_BY_RANK.get((na, nb), MatmulBackward0)
        if cls is not MatmulBackward0:
            _check_matmul_shapes(ad.shape, bd.shape)
    if out is None:
        return cls.apply(a, b)
    return cls.apply(a, b, out=out)


def _check_matmul_shapes(sa: tuple, sb: tuple) -> None:
    """Shape errors of matmul on 1-D and 3-D operands (their nodes are dot's, mv's and bmm's)."""
    ka, kb = sa[-1], (sb[0] if len(sb) == 1 else sb[-2])
    if ka != kb or (len(sa) == 3 and sa[0] != sb[0] and sa[0] != 1 and sb[0] != 1):
        raise _shape_error("matmul", sa, sb)


def _check_ndim(op: str, a, b, na: int, nb: int, what: str) -> None:
    if a._data.ndim != na or b._data.ndim != nb:
        raise RuntimeError(f"{op}: expected {what}, but got {a._data.ndim}-D and {b._data.ndim}-D tensors "
                           f"(shapes {tuple(a._data.shape)} and {tuple(b._data.shape)})")


def mm(input, mat2, *, out=None):
    """Product of two matrices (no broadcasting: use ``matmul`` for that)."""
    a, b = tensor_arg(input, "mm"), tensor_arg(mat2, "mm", "mat2")
    _check_ndim("mm", a, b, 2, 2, "2-D matrices")
    if a._data.__class__ is _SparseCOO or b._data.__class__ is _SparseCOO:
        from .sparse_mm import matmul_with_sparse

        return _out(matmul_with_sparse(a, b, "mm"), out)
    if _AC.active:
        a, b = _autocast(a, b)
    _check_pair("mm", a, b)
    return MmBackward0.apply(a, b, out=out)


def _check_bmm(op: str, a, b) -> None:
    _check_ndim(op, a, b, 3, 3, "3-D batches of matrices")
    sa, sb = a._data.shape, b._data.shape
    if sa[0] != sb[0]:
        raise RuntimeError(f"{op}: batch sizes of shapes {tuple(sa)} and {tuple(sb)} do not match "
                           f"({sa[0]} != {sb[0]})")


def bmm(input, mat2, *, out=None):
    """Batched matrix product of two 3-D tensors with equal batch sizes."""
    a, b = tensor_arg(input, "bmm"), tensor_arg(mat2, "bmm", "mat2")
    _check_bmm("bmm", a, b)
    if _AC.active:
        a, b = _autocast(a, b)
    _check_pair("bmm", a, b)
    return BmmBackward0.apply(a, b, out=out)


def mv(input, vec, *, out=None):
    """Matrix-vector product."""
    a, b = tensor_arg(input, "mv"), tensor_arg(vec, "mv", "vec")
    _check_ndim("mv", a, b, 2, 1, "a 2-D matrix and a 1-D vector")
    if a._data.__class__ is _SparseCOO:
        from .sparse_mm import matmul_with_sparse

        return _out(matmul_with_sparse(a, b, "mv"), out)
    _check_pair("mv", a, b)
    return MvBackward0.apply(a, b, out=out)


def _check_dot(op: str, a, b) -> None:
    if a._data.ndim != 1 or b._data.ndim != 1:
        raise RuntimeError(f"{op}: 1D tensors expected, but got {a._data.ndim}D and {b._data.ndim}D tensors")
    if a._data.shape[0] != b._data.shape[0]:
        n, m = a._data.shape[0], b._data.shape[0]
        raise RuntimeError(f"{op}: inconsistent tensor size, expected tensor [{n}] and src [{m}] to have the same "
                           f"number of elements, but got {n} and {m} elements respectively")
    if a._data.dtype != b._data.dtype:
        raise RuntimeError(f"{op}: expected both vectors to have same dtype, but found "
                           f"{a.dtype.name.capitalize()} and {b.dtype.name.capitalize()}")


def dot(input, tensor, *, out=None):
    """Inner product of two 1-D tensors of the same size and dtype (a 0-d result)."""
    a, b = tensor_arg(input, "dot"), tensor_arg(tensor, "dot", "tensor")
    _check_dot("dot", a, b)
    _check_pair("dot", a, b)
    return DotBackward0.apply(a, b, out=out)


class VdotBackward0(Op):
    op_name = "vdot"

    def forward(self, xp, a, b):
        if self.next_functions:
            raise NotImplementedError("vdot: autograd for complex inputs is not implemented in disttorch")
        return _product("vdot", xp, a, b, lambda xp, x, y: xp.asarray(xp.vdot(x, y)))


def vdot(input, other, *, out=None):
    """``dot(input.conj(), other)``; the same as ``dot`` for real tensors."""
    a, b = tensor_arg(input, "vdot"), tensor_arg(other, "vdot", "other")
    _check_dot("vdot", a, b)
    if not a.dtype.is_complex:
        return dot(a, b, out=out)
    return VdotBackward0.apply(a, b, out=out)


def inner(input, other, *, out=None):
    """Sum of products over the last dimension of both tensors (a product when either is 0-d)."""
    a, b = tensor_arg(input, "inner"), tensor_arg(other, "inner", "other")
    if a._data.ndim == 0 or b._data.ndim == 0:
        r = a * b
    else:
        if a._data.shape[-1] != b._data.shape[-1]:
            raise RuntimeError(f"inner() the last dimension must match on both input tensors but got shapes "
                               f"{list(a._data.shape)} and {list(b._data.shape)}")
        r = tensordot(a, b, ([-1], [-1]))
    return r if out is None else _out(r, out)


def outer(input, vec2, *, out=None):
    """Outer product of two 1-D tensors (types promote as for ``mul``)."""
    a, b = tensor_arg(input, "outer"), tensor_arg(vec2, "outer", "vec2")
    for name, x in (("self", a), ("vec2", b)):
        if x._data.ndim != 1:
            raise RuntimeError(f"outer: Expected 1-D argument {name}, but got {x._data.ndim}-D")
    r = a.reshape(-1, 1) * b
    return r if out is None else _out(r, out)


ger = outer


def tensordot(a, b, dims=2, out=None):
    """Contract ``dims`` (an int: the last dims of ``a`` with the first of ``b``; or two lists of dims)."""
    x, y = tensor_arg(a, "tensordot", "a"), tensor_arg(b, "tensordot", "b")
    nx, ny = x._data.ndim, y._data.ndim
    if isinstance(dims, T.Tensor):
        dims = dims.item() if dims._data.ndim == 0 else dims.tolist()
    if isinstance(dims, (int, np.integer)):
        if dims < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
        if dims > min(nx, ny):
            raise RuntimeError(f"tensordot expects dims < ndim_a or ndim_b, but got dims={dims}")
        da, db = list(range(nx - dims, nx)), list(range(dims))
    else:
        da, db = dims
        da = [da] if isinstance(da, (int, np.integer)) else list(da)
        db = [db] if isinstance(db, (int, np.integer)) else list(db)
        if len(da) != len(db):
            raise RuntimeError(f"both dimension lists should have same length (got {da} and {db})")
        da = [T._wrap_dim(d, nx, "tensordot") for d in da]
        db = [T._wrap_dim(d, ny, "tensordot") for d in db]
    sx, sy = x._data.shape, y._data.shape
    for i, j in zip(da, db):
        if sx[i] != sy[j]:
            raise RuntimeError(f"contracted dimensions need to match, but first has size {sx[i]} in dim "
                               f"{i} and second has size {sy[j]} in dim {j} (shapes {tuple(sx)} and {tuple(sy)})")
    fa = [i for i in range(nx) if i not in da]
    fb = [j for j in range(ny) if j not in db]
    k = math.prod(sx[i] for i in da)
    xm = x.permute(fa + da).reshape(math.prod(sx[i] for i in fa), k)
    ym = y.permute(db + fb).reshape(k, math.prod(sy[j] for j in fb))
    r = mm(xm, ym).reshape(tuple(sx[i] for i in fa) + tuple(sy[j] for j in fb))
    return r if out is None else _out(r, out)
