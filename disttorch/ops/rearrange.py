"""Shape ops that rearrange or copy: repeat, tile, repeat_interleave, flip, roll, rot90, tril/triu, diagonal.

shape.py re-exports these functions and its mixin inherits ``RearrangeMethods``. ``diagonal`` is a
writable view (as in PyTorch); its backward is ``diagonal_scatter`` into zeros.
"""
from __future__ import annotations

import numpy as np

from .. import _tensor as T
from .._internals import bump_version
from ..autograd.op import Op
from ._helpers import dims_arg, tensor_arg
from .inplace import inplace
from .scatter_ops import index_select
from .shape import _kw_only, _shape_arg, reshape, transpose

__all__ = ["tile", "repeat_interleave", "flip", "fliplr", "flipud", "roll", "rot90", "tril", "triu", "diagonal",
           "diag", "diag_embed", "diagonal_scatter"]


class RepeatBackward0(Op):
    """``x`` (seen with ``padded`` dims) tiled ``sizes`` times."""

    op_name = "repeat"

    def forward(self, xp, x, sizes=(), padded=()):
        if self.next_functions:
            self.sizes, self.padded, self.shape = sizes, padded, x.shape
        return xp.tile(x.reshape(padded), sizes)

    def backward(self, g):
        inter = []
        for r, s in zip(self.sizes, self.padded):
            inter += [r, s]
        g = g.reshape(inter).sum(tuple(range(0, len(inter), 2)))
        return g.reshape(self.shape)


def repeat(self, *sizes):
    """``self`` tiled ``sizes[i]`` times along each dim (extra leading sizes add dims)."""
    sizes = _shape_arg(sizes)
    arr = self._data
    if len(sizes) < arr.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions of "
                           "tensor")
    padded = (1,) * (len(sizes) - arr.ndim) + arr.shape
    if any(s < 0 for s in sizes):
        target = [r * n for r, n in zip(sizes, padded)]
        raise RuntimeError(f"Trying to create tensor with negative dimension {min(target)}: {target}")
    return RepeatBackward0.apply(self, sizes=sizes, padded=padded)


def tile(input, dims):
    """``input`` repeated ``dims[i]`` times per dim; a short ``dims`` is padded with leading 1s."""
    x = tensor_arg(input, "tile")
    dims = _shape_arg((dims,) if isinstance(dims, int) else tuple(dims))
    return repeat(x, (1,) * (x._data.ndim - len(dims)) + dims)


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """Repeat each element ``repeats`` times along ``dim`` (flattened input when None).

    With only a 1-d integer tensor ``input``, returns ``arange(len(input))`` repeated by ``input``.
    """
    x = tensor_arg(input, "repeat_interleave")
    if repeats is None:
        reps = x._data
        if reps.ndim > 1 or reps.dtype.kind not in "iu":
            raise RuntimeError("repeat_interleave: repeats must be a 0-dim or 1-dim integer tensor")
        return T._wrap(x._xp.repeat(x._xp.arange(reps.size, dtype=np.int64), reps.reshape(-1)))
    if dim is None:
        x, d = reshape(x, -1), 0
    else:
        d = T._wrap_dim(dim, x._data.ndim, "repeat_interleave")
        if x._data.ndim == 0:
            x = reshape(x, 1)
    n = x._data.shape[d]
    xp = x._xp
    if isinstance(repeats, T.Tensor):
        reps = repeats._data.reshape(-1) if repeats._xp is xp else xp.asarray(repeats._data).reshape(-1)
        if repeats._data.ndim > 1 or reps.dtype.kind not in "iu":
            raise RuntimeError("repeat_interleave: repeats must be a 0-dim or 1-dim integer tensor")
        if reps.size != 1 and reps.size != n:
            raise RuntimeError(f"repeats must have the same size as input along dim, but got repeats.size(0) = "
                               f"{reps.size} and input.size({d}) = {n}")
    else:
        reps = int(repeats)
    if (reps < 0).any() if not isinstance(reps, int) else reps < 0:
        raise RuntimeError("Repeats must be non-negative")
    idx = xp.repeat(xp.arange(n, dtype=np.int64), reps)
    if output_size is not None and idx.size != output_size:
        raise RuntimeError(f"repeat_interleave: Invalid output_size, expected {idx.size} but got {output_size}")
    return index_select(x, d, T._wrap(idx))


class FlipBackward0(Op):
    """A copy of ``x`` reversed along ``dims``."""

    op_name = "flip"

    def forward(self, xp, x, dims=()):
        if self.next_functions:
            self.dims = dims
        return xp.flip(x, dims).copy() if dims else x.copy()

    def backward(self, g):
        return flip(g, self.dims)


def flip(input, *dims, **kw):
    """A copy of ``input`` with the order of elements reversed along ``dims``."""
    x = tensor_arg(input, "flip")
    if kw:
        dims = (_kw_only(kw, "dims", "flip"),)
    dims = dims[0] if len(dims) == 1 and isinstance(dims[0], (list, tuple)) else dims
    dims = dims_arg(list(dims), x._data.ndim, "flip") if dims else ()
    return FlipBackward0.apply(x, dims=dims)


def fliplr(input):
    """Flip a tensor of at least 2 dims left-right (dim 1)."""
    x = tensor_arg(input, "fliplr")
    if x._data.ndim < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return flip(x, (1,))


def flipud(input):
    """Flip a tensor of at least 1 dim up-down (dim 0)."""
    x = tensor_arg(input, "flipud")
    if x._data.ndim < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return flip(x, (0,))


class RollBackward0(Op):
    """``x`` shifted cyclically by ``shifts`` along ``dims``."""

    op_name = "roll"

    def forward(self, xp, x, shifts=(), dims=()):
        if self.next_functions:
            self.shifts, self.dims = shifts, dims
        return xp.roll(x, shifts, dims) if x.ndim else x.copy()

    def backward(self, g):
        return roll(g, tuple(-s for s in self.shifts), self.dims)


def roll(input, shifts, dims=None):
    """Elements shifted cyclically by ``shifts`` along ``dims`` (the flattened tensor when None)."""
    x = tensor_arg(input, "roll")
    shifts = (shifts,) if isinstance(shifts, int) else tuple(int(s) for s in shifts)
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:0")
        return reshape(roll(reshape(x, -1), shifts, 0), x._data.shape)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}")
    nd = x._data.ndim
    dims = tuple(T._wrap_dim(d, nd, "roll") for d in dims)
    return RollBackward0.apply(x, shifts=shifts, dims=dims)


def rot90(input, k: int = 1, dims=(0, 1)):
    """Rotate by 90 degrees ``k`` times in the plane of ``dims`` (from the first towards the second)."""
    x = tensor_arg(input, "rot90")
    nd = x._data.ndim
    if len(dims) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(dims)}")
    if nd < 2:
        raise RuntimeError(f"expected total dims >= 2, but got total dims = {nd}")
    d0, d1 = (T._wrap_dim(d, nd, "rot90") for d in dims)
    if d0 == d1:
        raise RuntimeError(f"expected rotation dims to be different, but got dim0 = {d0} and dim1 = {d1}")
    k %= 4
    if k == 1:
        return transpose(flip(x, (d1,)), d0, d1)
    if k == 2:
        return flip(x, (d0, d1))
    if k == 3:
        return transpose(flip(x, (d0,)), d0, d1)
    return x.clone()


class TrilBackward0(Op):
    """The lower triangle of the last two dims of ``x`` from diagonal ``k``."""

    op_name = "tril"

    def forward(self, xp, x, k=0):
        if self.next_functions:
            self.k = k
        return getattr(xp, self.op_name)(x, k)

    def backward(self, g):
        return tril(g, self.k)


class TriuBackward0(TrilBackward0):
    """The upper triangle of the last two dims of ``x`` from diagonal ``k``."""

    op_name = "triu"

    def backward(self, g):
        return triu(g, self.k)


def _tri(input, diagonal: int, op: str, node_cls):
    x = tensor_arg(input, op)
    if x._data.ndim < 2:
        raise RuntimeError(f"{op}: input tensor must have at least 2 dimensions")
    return node_cls.apply(x, k=int(diagonal))


def tril(input, diagonal: int = 0, *, out=None):
    """The lower triangle (on and below ``diagonal``) of the last two dims; the rest is zero."""
    return _out(_tri(input, diagonal, "tril", TrilBackward0), out)


def triu(input, diagonal: int = 0, *, out=None):
    """The upper triangle (on and above ``diagonal``) of the last two dims; the rest is zero."""
    return _out(_tri(input, diagonal, "triu", TriuBackward0), out)


def _out(r, out):
    if out is None:
        return r
    if out._data.shape != r._data.shape:
        out._data = out._xp.empty(r._data.shape, dtype=out._data.dtype)
    out._xp.copyto(out._data, r._data, casting="unsafe")
    bump_version(out)
    return out


def _diag_view(arr, xp, offset: int, d1: int, d2: int):
    """A writable view of the diagonal of ``arr`` (PyTorch's diagonal is a writable view)."""
    res = arr.diagonal(offset, d1, d2)
    if xp is np and not res.flags.writeable and arr.flags.writeable:
        res.flags.writeable = True
    return res


def _diag_dims(x, dim1, dim2, op):
    nd = x._data.ndim
    d1, d2 = T._wrap_dim(dim1, nd, op), T._wrap_dim(dim2, nd, op)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return d1, d2


class DiagonalBackward0(Op):
    """A writable view of the diagonal at ``offset`` of the plane ``(d1, d2)`` of ``x``."""

    op_name = "diagonal"
    view, tensor_args = True, 1  # a view of input 0

    def forward(self, xp, x, offset=0, d1=0, d2=1):
        if self.next_functions:
            self.shape, self.offset, self.d1, self.d2 = x.shape, offset, d1, d2
        return _diag_view(x, xp, offset, d1, d2)

    def backward(self, g):
        z = T._wrap(g._xp.zeros(self.shape, dtype=g._data.dtype))
        return diagonal_scatter(z, g, self.offset, self.d1, self.d2)


def diagonal(input, offset: int = 0, dim1: int = 0, dim2: int = 1):
    """A view of the diagonal at ``offset`` of the plane ``(dim1, dim2)``, appended as the last dim."""
    x = tensor_arg(input, "diagonal")
    d1, d2 = _diag_dims(x, dim1, dim2, "diagonal")
    return DiagonalBackward0.apply(x, int(offset), d1, d2)


_diagonal = diagonal  # diag() has a parameter named diagonal


class DiagonalScatterBackward0(Op):
    """A copy of ``x`` with ``src`` written into its diagonal: inputs (x, src)."""

    op_name = "diagonal_scatter"

    def forward(self, xp, x, src, offset=0, d1=0, d2=1, src_dtype=None):
        out = x.copy()
        dv = _diag_view(out, xp, offset, d1, d2)
        if dv.shape != src.shape:
            raise RuntimeError(f"expected src to have a size equal to the slice of self. src size = "
                               f"{list(src.shape)}, slice size = {list(dv.shape)}")
        dv[...] = src
        if self.next_functions:
            self.offset, self.d1, self.d2, self.src_shape, self.src_dtype = offset, d1, d2, src.shape, src_dtype
        return out

    def backward(self, g):
        gi = gs = None
        if self.next_functions[0][0] is not None:
            z = T._wrap(g._xp.zeros(self.src_shape, dtype=g._data.dtype))
            gi = diagonal_scatter(g, z, self.offset, self.d1, self.d2)
        if self.next_functions[1][0] is not None:
            gs = diagonal(g, self.offset, self.d1, self.d2)
            if gs.dtype is not self.src_dtype:
                gs = gs.to(self.src_dtype)
        return gi, gs


def diagonal_scatter(input, src, offset: int = 0, dim1: int = 0, dim2: int = 1):
    """A copy of ``input`` with ``src`` written into its diagonal (the inverse of ``diagonal``)."""
    x = tensor_arg(input, "diagonal_scatter")
    s = tensor_arg(src, "diagonal_scatter", "src")
    d1, d2 = _diag_dims(x, dim1, dim2, "diagonal_scatter")
    return DiagonalScatterBackward0.apply(x, s, offset=int(offset), d1=d1, d2=d2, src_dtype=s.dtype)


def diag_embed(input, offset: int = 0, dim1: int = -2, dim2: int = -1):
    """A tensor whose diagonals (in the plane ``dim1, dim2``) hold the last dim of ``input``."""
    x = tensor_arg(input, "diag_embed")
    nd = x._data.ndim + 1
    if nd < 2:
        x, nd = reshape(x, 1), 2
    d1, d2 = T._wrap_dim(dim1, nd, "diag_embed"), T._wrap_dim(dim2, nd, "diag_embed")
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    m = x._data.shape[-1] + abs(int(offset))
    rest = iter(x._data.shape[:-1])
    shape = tuple(m if i in (d1, d2) else next(rest) for i in range(nd))
    z = T._wrap(x._xp.zeros(shape, dtype=x._data.dtype))
    return diagonal_scatter(z, x, offset, d1, d2)


def diag(input, diagonal: int = 0, *, out=None):
    """A 1-d input becomes a square matrix with it on diagonal ``diagonal``; a 2-d input gives that diagonal."""
    x = tensor_arg(input, "diag")
    nd = x._data.ndim
    if nd == 1:
        return _out(diag_embed(x, diagonal, 0, 1), out)
    if nd == 2:
        return _out(_diagonal(x, diagonal, 0, 1).clone(), out)
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {nd}D")


class RearrangeMethods:
    __slots__ = ()

    repeat = repeat
    tile = tile
    repeat_interleave = repeat_interleave
    flip = flip
    fliplr = fliplr
    flipud = flipud
    roll = roll
    rot90 = rot90
    tril = tril
    triu = triu
    diagonal = diagonal
    diagonal_scatter = diagonal_scatter
    diag = diag
    diag_embed = diag_embed

    def tril_(self, diagonal: int = 0):
        return inplace(self, "tril_", tril, diagonal)

    def triu_(self, diagonal: int = 0):
        return inplace(self, "triu_", triu, diagonal)
