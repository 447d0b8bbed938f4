"""``disttorch.linalg``: linear-algebra functions, as ``torch.linalg`` (norms so far, plus matmul)."""
from __future__ import annotations

import math

import numpy as np

from . import _dtype as D
from . import _tensor as T
from .autograd.op import RESULT, Op
from .ops import reduce as _R
from .ops._helpers import quiet, tensor_arg
from .ops.elementwise import _cj
from .ops.linalg import matmul

__all__ = ["vector_norm", "matrix_norm", "norm", "matmul"]


class PowBackward0(Op):
    """``x ** exponent`` for a Python number, in ``x``'s dtype (the p-norm's private power)."""

    op_name = "pow"

    def forward(self, xp, x, exponent):
        self.exponent = exponent
        self.save(0)
        with quiet(xp):
            return xp.power(x, x.dtype.type(exponent))

    def backward(self, g):
        (x,) = self.saved_tensors
        return g * _cj(_pow_scalar(x, self.exponent - 1) * self.exponent)


def _pow_scalar(x, exponent: float):
    """``x ** exponent`` for a Python number exponent (a private differentiable helper)."""
    return PowBackward0.apply(x, exponent)


class LinalgVectorNormBackward0(_R._Reduction):
    op_name = "linalg_vector_norm"

    def forward(self, xp, arr, dims, keepdim, p):
        self._keep(arr, dims, keepdim)
        self.ord = p
        self.save(0, RESULT)
        work = arr.astype(np.float32) if arr.dtype in _R._LOW else arr
        if p != 2 or work.dtype.kind == "c":
            work = xp.abs(work)
        with quiet(xp):
            if p == 2 and len(dims) == arr.ndim and work.dtype.kind == "f":
                flat = work.reshape(-1)  # the common full 2-norm (gradient clipping): one BLAS dot
                res = xp.sqrt(xp.dot(flat, flat)).reshape((1,) * arr.ndim if keepdim else ())
            elif p == 2:
                res = xp.sqrt((work * work).sum(axis=dims, keepdims=keepdim))
            elif p == 1:
                res = work.sum(axis=dims, keepdims=keepdim)
            elif p == math.inf:
                res = work.max(axis=dims, keepdims=keepdim)
            elif p == -math.inf:
                res = work.min(axis=dims, keepdims=keepdim)
            elif p == 0:
                res = (work != 0).sum(axis=dims, keepdims=keepdim)
            else:
                res = (work ** p).sum(axis=dims, keepdims=keepdim) ** (1.0 / p)
        return xp.asarray(res).astype(D.from_numpy_dtype(arr.dtype).to_real().np, copy=False)

    def backward(self, g):
        x, r = self.saved_tensors
        p, shape, dims, keepdim = self.ord, self.shape, self.dims, self.keepdim
        xp, xa = x._xp, x._data
        dt = xa.dtype
        g = _R._expand_back(g, shape, dims, keepdim)
        if p == 0:
            return g * _R._const(dt, xp.zeros(xa.shape))
        sgn = _R._const(dt, xp.sign(xa))
        if p == 1:
            return g * sgn
        r = _R._expand_back(r, shape, dims, keepdim)
        zero = _R._const(dt, r._data == 0)
        if p == 2:
            return g * x / (r + zero)
        if math.isinf(p):
            mask = xp.abs(xa) == r._data
            w = xp.sign(xa) * mask / mask.sum(axis=dims, keepdims=True)
            return g * _R._const(dt, w)
        # d|x|_p = sgn(x) |x|^(p-1) / |x|_p^(p-1); the +1 on zeros keeps 0 * inf out of the graph.
        ax = x * _cj(sgn) + _R._const(dt, xa == 0)  # |x| (sgn is x / |x| for complex x)
        return g * sgn * _pow_scalar(ax, p - 1) / _pow_scalar(r + zero, p - 1)


def _vector_norm(input, ord, dim, keepdim: bool, dtype, _op: str):
    """The vector norm behind ``vector_norm``, ``norm`` and ``torch.norm`` (``_op`` names it in errors)."""
    x = tensor_arg(input, _op)
    if not (x.dtype.is_floating_point or x.dtype.is_complex):
        raise RuntimeError(f"{_op}: Expected a floating point or complex tensor as input. Got {_R._torch_name(x)}")
    if isinstance(ord, str):
        raise RuntimeError(f"{_op}: ord must be a number for a vector norm, got {ord!r}")
    if dtype is not None:
        x = x.to(D.to_dtype(dtype))
    arr = x._data
    dims = _R._rdims(dim, arr.ndim, _op)
    p = float(ord)
    if math.isinf(p) and arr.size == 0 and (dim is None or any(arr.shape[d] == 0 for d in dims)):
        raise RuntimeError(f"{_op}: cannot compute the {ord} norm on an empty tensor because the operation does "
                           "not have an identity")
    return LinalgVectorNormBackward0.apply(x, dims, keepdim, p)


def vector_norm(x, ord=2, dim=None, keepdim: bool = False, *, dtype=None, out=None):
    """The vector ``ord``-norm of ``x`` over ``dim`` (all elements, flattened, when None).

    ``ord`` may be any real number, ``inf`` (max |x|), ``-inf`` (min |x|) or 0 (count of nonzeros).

    Example:
        >>> disttorch.linalg.vector_norm(disttorch.tensor([3., 4.]))
        tensor(5.)
    """
    return _vector_norm(x, ord, dim, keepdim, dtype, "linalg.vector_norm")


def _abs(x):
    """``|x|`` as ``x * sign(x)`` (differentiable, with a constant sign)."""
    return x * T._wrap(x._xp.sign(x._data))


class LinalgMatrixNormBackward0(Op):
    """Nuclear (sum), spectral (largest) or smallest singular value over the last two dims. The gradient is
    first-order (d sigma = u^T dA v): its own derivative is not tracked."""

    op_name = "linalg_matrix_norm"

    def forward(self, xp, arr, ord):
        work = arr.astype(np.float32) if arr.dtype in (D.float16.np, D.bfloat16.np) else arr
        with quiet(xp):
            u, s, vh = xp.linalg.svd(work, full_matrices=False)
        if ord == "nuc":
            res, direction = s.sum(-1), u @ vh
        else:
            k = slice(0, 1) if ord == 2 else slice(-1, None)  # largest / smallest singular value
            res, direction = s[..., k][..., 0], u[..., :, k] @ vh[..., k, :]
        if self.next_functions:
            self.direction = T._wrap(direction.astype(arr.dtype, copy=False))
        return res.astype(D.from_numpy_dtype(arr.dtype).to_real().np, copy=False)

    def backward(self, g):
        return g.reshape(tuple(g.shape) + (1, 1)) * self.direction


def _svd_norm(A, ord):
    """Nuclear (sum), spectral (largest) or smallest singular value over the last two dims."""
    xp, arr = A._xp, A._data
    if arr.size == 0:
        if ord != "nuc":
            raise RuntimeError(f"linalg.matrix_norm: the {ord} norm of an empty matrix is not defined")
        return T._wrap(xp.zeros(arr.shape[:-2], dtype=arr.dtype))
    return LinalgMatrixNormBackward0.apply(A, ord)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim: bool = False, *, dtype=None, out=None):
    """A matrix norm over the two dims ``dim``: 'fro', 'nuc', 1, -1, 2, -2, inf or -inf."""
    A = tensor_arg(A, "linalg.matrix_norm", "A")
    nd = A._data.ndim
    if nd < 2:
        raise RuntimeError(f"linalg.matrix_norm: The input tensor A must have at least 2 dimensions (got {nd}D).")
    if not (A.dtype.is_floating_point or A.dtype.is_complex):
        raise RuntimeError(f"linalg.matrix_norm: Expected a floating point or complex tensor as input. Got "
                           f"{_R._torch_name(A)}")
    dim = tuple(dim)
    if len(dim) != 2:
        raise RuntimeError(f"linalg.matrix_norm: dim must be a 2-tuple. Got {' '.join(str(d) for d in dim)}")
    r, c = (T._wrap_dim(d, nd, "linalg.matrix_norm") for d in dim)
    if r == c:
        raise RuntimeError(f"linalg.matrix_norm: dims must be different. Got ({dim[0]}, {dim[1]})")
    if dtype is not None:
        A = A.to(D.to_dtype(dtype))
    if ord == "fro":
        return _vector_norm(A, 2, (r, c), keepdim, None, "linalg.matrix_norm")
    if ord in ("nuc", 2, -2):
        res = _svd_norm(A.movedim((r, c), (-2, -1)), ord)
        if keepdim:
            for d in sorted((r, c)):
                res = res.unsqueeze(d)
        return res
    if isinstance(ord, str) or abs(ord) not in (1, math.inf):
        raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")
    # 1-norm: largest column sum of |A|; inf-norm: largest row sum.
    summed, picked = (r, c) if abs(ord) == 1 else (c, r)
    sums = _abs(A).sum(summed, keepdim=True)
    res = (_R.amax if ord > 0 else _R.amin)(sums, picked, keepdim=True)
    if not keepdim:
        res = res.reshape(tuple(s for i, s in enumerate(res.shape) if i not in (r, c)))
    return res


def norm(A, ord=None, dim=None, keepdim: bool = False, *, dtype=None, out=None):
    """A vector or matrix norm, chosen as ``torch.linalg.norm`` does.

    With ``dim`` an int (or 1-tuple) a vector norm, with a 2-tuple a matrix norm; with ``dim=None``
    the 2-norm of the flattened input when ``ord`` is None, else ``A`` must be 1-D or 2-D.
    """
    A = tensor_arg(A, "linalg.norm", "A")
    if dim is not None:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        if len(dims) == 1:
            return _vector_norm(A, 2 if ord is None else ord, dims, keepdim, dtype, "linalg.norm")
        if len(dims) == 2:
            return matrix_norm(A, "fro" if ord is None else ord, dims, keepdim, dtype=dtype)
        raise RuntimeError(f"linalg.norm: If dim is specified, it must be of length 1 or 2. Got {list(dims)}")
    if ord is None:
        return _vector_norm(A, 2, None, keepdim, dtype, "linalg.norm")
    nd = A._data.ndim
    if nd == 1:
        return _vector_norm(A, ord, None, keepdim, dtype, "linalg.norm")
    if nd == 2:
        return matrix_norm(A, ord, (-2, -1), keepdim, dtype=dtype)
    raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input must be 1D or 2D. Got {nd}D.")
