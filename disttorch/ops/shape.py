"""Shape views: reshape/view, expand, permute/transpose, squeeze/unsqueeze, flatten, narrow/select, ...

A view op runs through ``Op.apply`` and its forward returns a NumPy/CuPy view of ``x``'s memory; the op
class declares ``view = True`` (or, for reshape, which copies when it must, ``as_view`` is called on a real
view) and the result shares ``x``'s version counter, so writes through the view show in the base and
autograd's checks see them. Backward formulas are written with Tensor ops so that
double backward works.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from .._internals import bump_version
from .._size import Size
from ..autograd.grad_mode import STATE as _GRAD
from ..autograd.op import Op, as_view, set_history
from ._helpers import broadcast_error, sum_to, tensor_arg
from .index import SelectBackward0, SliceBackward0, _index
from .inplace import _type_name

__all__ = ["reshape", "transpose", "permute", "t", "squeeze", "unsqueeze", "flatten", "unflatten", "swapaxes",
           "swapdims", "movedim", "moveaxis", "broadcast_to", "broadcast_tensors", "broadcast_shapes", "narrow",
           "select", "atleast_1d", "atleast_2d", "atleast_3d", "ravel", "adjoint"]


def _shape_arg(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def _kw_only(kw: dict, name: str, op: str):
    """The one keyword ``name`` an op with a ``*sizes`` signature also accepts (``reshape(x, shape=...)``)."""
    if set(kw) != {name}:
        raise TypeError(f"{op}() got an unexpected keyword argument '{sorted(set(kw) - {name})[0]}'")
    return kw[name]


def _infer_shape(shape: tuple, numel: int) -> tuple:
    """``shape`` with its one ``-1`` resolved for ``numel`` elements (PyTorch's errors)."""
    neg = [i for i, s in enumerate(shape) if s == -1]
    if len(neg) > 1:
        raise RuntimeError("only one dimension can be inferred")
    for i, s in enumerate(shape):
        if s < -1:
            raise RuntimeError(f"invalid shape dimension {s} at index {i} of shape {list(shape)}")
    known = math.prod(s for s in shape if s != -1)
    if neg:
        if known == 0:
            raise RuntimeError(f"cannot reshape tensor of {numel} elements into shape {list(shape)} because the "
                               "unspecified dimension size -1 can be any value and is ambiguous")
        if numel % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape = shape[:neg[0]] + (numel // known,) + shape[neg[0] + 1:]
    elif known != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return shape


class ViewBackward0(Op):
    """``x`` reshaped to ``shape`` (a view when the memory layout allows)."""

    op_name = "view"

    def forward(self, xp, x, shape=()):
        if self.next_functions:
            self.shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return g.reshape(self.shape)


class UnsqueezeBackward0(ViewBackward0):
    op_name = "unsqueeze"


class SqueezeBackward0(ViewBackward0):
    op_name = "squeeze"


class SqueezeBackward1(ViewBackward0):
    op_name = "squeeze"


def reshape(input, *shape, **kw):
    """The same elements in a new shape; a view when the memory layout allows, else a copy."""
    x = tensor_arg(input, "reshape")
    if kw:
        shape = (_kw_only(kw, "shape", "reshape"),)
    return _reshape(x, _infer_shape(_shape_arg(shape), x._data.size), ViewBackward0)


def _reshape(x, new: tuple, node_cls):
    """``x`` reshaped to the already-validated ``new`` shape; ``node_cls`` names the node (PyTorch's names)."""
    r = node_cls.apply(x, new)
    res = r._data
    return as_view(x, r) if res.base is not None and _shares(res, x._data) else r


def _shares(res, arr) -> bool:
    return res.base is arr or (arr.base is not None and res.base is arr.base)


def _reshape_no_copy(arr, new):
    """``arr`` reshaped to ``new`` without copying, or None when that is impossible."""
    try:
        return arr.reshape(new, copy=False)
    except TypeError:  # CuPy's reshape has no copy=; a view keeps the same memory
        res = arr.reshape(new)
        return res if res.base is not None else None
    except ValueError:
        return None


def view(self, *shape):
    """Like reshape, but raises when the result cannot share memory with ``self``; ``view(dtype)`` reinterprets."""
    if len(shape) == 1 and isinstance(shape[0], (D.dtype, str, type, np.dtype)):
        dt = D.to_dtype(shape[0])
        if dt.np == self._data.dtype:
            return reshape(self, self._data.shape)
        arr = self._data
        if dt.itemsize > arr.itemsize and _byte_offset(arr) % dt.itemsize:
            raise RuntimeError(f"self.storage_offset() must be divisible by {dt.itemsize // arr.itemsize} to view "
                               f"{_type_name(self.dtype)} as {_type_name(dt)} (different element sizes), but got "
                               f"{_byte_offset(arr) // arr.itemsize}")
        try:
            res = arr.view(dt.np)
        except ValueError:
            raise _view_dtype_error(arr, self.dtype, dt) from None
        return T._view_of(self, res)
    arr = self._data
    new = _infer_shape(_shape_arg(shape), arr.size)
    if not arr.flags.c_contiguous and arr.size > 1 and _reshape_no_copy(arr, new) is None:
        raise RuntimeError("view size is not compatible with input tensor's size and stride (at least one dimension "
                           "spans across two contiguous subspaces). Use .reshape(...) instead.")
    return _reshape(self, new, ViewBackward0)  # ``new`` is validated: reshape() would infer it again


def _byte_offset(arr) -> int:
    """Bytes from the start of ``arr``'s storage (the array that owns the memory) to its first element.

    PyTorch's ``storage_offset()`` times the element size: NumPy and CuPy can reinterpret memory at any
    offset, PyTorch refuses a wider dtype (``view(dtype)``, ``view_as_complex``) at a misaligned one.
    """
    root = arr
    while isinstance(root.base, type(arr)):
        root = root.base
    if root is arr:
        return 0
    if isinstance(arr, np.ndarray):
        return arr.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    return arr.data.ptr - root.data.ptr


def _view_dtype_error(arr, src, dst) -> RuntimeError:
    """PyTorch's error for ``view(dtype)`` between element sizes that ``arr``'s layout cannot reinterpret."""
    how = f"to view {_type_name(src)} as {_type_name(dst)} (different element sizes)"
    if arr.ndim == 0:
        return RuntimeError(f"self.dim() cannot be 0 {how}")
    stride = arr.strides[-1] // arr.itemsize if arr.shape[-1] > 1 else 1
    if stride != 1:
        return RuntimeError(f"self.stride(-1) must be 1 {how}, but got {stride}")
    ratio = max(dst.itemsize // arr.itemsize, 1)
    return RuntimeError(f"self.size(-1) must be divisible by {ratio} {how}, but got {arr.shape[-1]}")


class ExpandBackward0(Op):
    """A broadcast view of ``x`` at ``shape``."""

    op_name = "expand"
    view, tensor_args = True, 1  # a view of input 0

    def forward(self, xp, x, shape=()):
        if self.next_functions:
            self.shape = x.shape
        return x.view() if shape == x.shape else xp.broadcast_to(x, shape)

    def backward(self, g):
        return sum_to(g, self.shape)


def expand(self, *sizes):
    """A broadcast view of ``self`` with size-1 dims stretched (``-1`` keeps a size)."""
    sizes = _shape_arg(sizes)
    arr = self._data
    if len(sizes) < arr.ndim:
        raise RuntimeError(f"expand({self.type()}{{{list(arr.shape)}}}, size={list(sizes)}): the number of sizes "
                           f"provided ({len(sizes)}) must be greater or equal to the number of dimensions in the "
                           f"tensor ({arr.ndim})")
    lead = len(sizes) - arr.ndim
    target = []
    for i, s in enumerate(sizes):
        if i < lead:
            if s < 0:
                raise RuntimeError(f"The expanded size of the tensor ({s}) isn't allowed in a leading, non-existing "
                                   f"dimension {i}")
            target.append(s)
            continue
        cur = arr.shape[i - lead]
        if s == -1:
            s = cur
        elif cur != s and cur != 1:
            raise RuntimeError(f"The expanded size of the tensor ({s}) must match the existing size ({cur}) "
                               f"at non-singleton dimension {i}.  Target sizes: {list(sizes)}.  Tensor sizes: "
                               f"{list(arr.shape)}")
        target.append(s)
    return ExpandBackward0.apply(self, tuple(target))


def broadcast_to(input, size):
    """``input`` expanded to ``size`` (a view; same rules as ``expand``)."""
    return expand(tensor_arg(input, "broadcast_to"), size)


def broadcast_shapes(*shapes) -> Size:
    """The shape that tensors of ``shapes`` broadcast to (ints count as 1-d shapes)."""
    norm = [(s,) if isinstance(s, int) else tuple(int(v) for v in s) for s in shapes]
    try:
        return Size(np.broadcast_shapes(*norm))
    except ValueError:
        raise broadcast_error("broadcast_shapes", *norm) from None


def broadcast_tensors(*tensors) -> tuple:
    """Views of ``tensors`` expanded to their common broadcast shape."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    ts = [tensor_arg(t, "broadcast_tensors", "tensors") for t in tensors]
    shapes = [t._data.shape for t in ts]
    try:
        shape = tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise broadcast_error("broadcast_tensors", *shapes) from None
    return tuple(expand(t, shape) for t in ts)


def narrow(input, dim: int, start, length: int):
    """A view of ``length`` elements of ``dim`` from ``start`` (which may be a 0-d tensor)."""
    x = tensor_arg(input, "narrow")
    if x._data.ndim == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    d = T._wrap_dim(dim, x._data.ndim, "narrow")
    n = x._data.shape[d]
    start, length = int(start), int(length)
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    if not -n <= start <= n:
        raise IndexError(f"start out of range (expected to be in range of [{-n}, {n}], but got {start})")
    if start < 0:
        start += n
    if start + length > n:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
    return _index(x, (slice(None),) * d + (slice(start, start + length), Ellipsis), False, SliceBackward0)


def select(input, dim: int, index: int):
    """The view ``input[..., index, ...]`` with ``dim`` removed."""
    x = tensor_arg(input, "select")
    if x._data.ndim == 0:
        raise IndexError("select() cannot be applied to a 0-dim tensor.")
    d = T._wrap_dim(dim, x._data.ndim, "select")
    n = x._data.shape[d]
    i = int(index)
    if not -n <= i < n:
        raise IndexError(f"select(): index {i} out of range for tensor of size {list(x.shape)} at dimension {d}")
    return _index(x, (slice(None),) * d + (i, Ellipsis), False, SelectBackward0)


class PermuteBackward0(Op):
    """A view of ``x`` with its dimensions reordered to ``dims``."""

    op_name = "permute"
    view, tensor_args = True, 1  # a view of input 0

    def forward(self, xp, x, dims=()):
        if self.next_functions:
            self.dims = dims
        return x.transpose(dims)

    def backward(self, g):
        inv = [0] * len(self.dims)
        for i, d in enumerate(self.dims):
            inv[d] = i
        return permute(g, inv)


def permute(input, *dims, **kw):
    """A view with dimensions reordered: ``permute(x, (2, 0, 1))``."""
    x = tensor_arg(input, "permute")
    dims = _shape_arg((_kw_only(kw, "dims", "permute"),) if kw else dims)
    nd = x._data.ndim
    if len(dims) != nd:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not match the "
                           f"length of the desired ordering of dimensions i.e. input.dim() = {nd} is not equal to "
                           f"len(dims) = {len(dims)}")
    dims = tuple(T._wrap_dim(d, nd, "permute") for d in dims)
    if len(set(dims)) != nd:
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return PermuteBackward0.apply(x, dims)


class TransposeBackward0(Op):
    """A view of ``x`` with dimensions ``d0`` and ``d1`` swapped."""

    op_name = "transpose"
    view, tensor_args = True, 1  # a view of input 0

    def forward(self, xp, x, d0=0, d1=0):
        if self.next_functions:
            self.d0, self.d1 = d0, d1
        return x.swapaxes(d0, d1) if x.ndim else x.view()

    def backward(self, g):
        return transpose(g, self.d0, self.d1)


class TBackward0(TransposeBackward0):
    op_name = "t"


def transpose(input, dim0: int, dim1: int, *, _node=TransposeBackward0):
    """A view with ``dim0`` and ``dim1`` swapped."""
    x = tensor_arg(input, "transpose")
    nd = x._data.ndim
    d0, d1 = T._wrap_dim(dim0, nd, "transpose"), T._wrap_dim(dim1, nd, "transpose")
    return _node.apply(x, d0, d1)


swapaxes = swapdims = transpose


def t(input):
    """Transpose of a tensor with at most 2 dims."""
    x = tensor_arg(input, "t")
    if x._data.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {x._data.ndim}D")
    return TBackward0.apply(x, 0, 1) if x._data.ndim == 2 else TBackward0.apply(x, 0, 0)  # dims known valid


class ConjBackward0(Op):
    """Complex conjugate (a copy)."""

    op_name = "conj"

    def forward(self, xp, x):
        return xp.conj(x)

    def backward(self, g):
        return _conj(g)


def _conj(x):
    """Complex conjugate (a copy; only used for complex tensors by H/mH/adjoint)."""
    return ConjBackward0.apply(x)


def adjoint(input):
    """The conjugate transpose of the last two dims (a view for real tensors)."""
    x = tensor_arg(input, "adjoint")
    if x._data.ndim < 2:
        raise RuntimeError(f"tensor.adjoint() is only supported on matrices or batches of matrices. Got {x._data.ndim}-D "
                           "tensor.")
    r = transpose(x, -2, -1)
    return _conj(r) if x.dtype.is_complex else r


def movedim(input, source, destination):
    """A view with dims ``source`` moved to positions ``destination`` (the others keep their order)."""
    x = tensor_arg(input, "movedim")
    nd = x._data.ndim
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({src} dims) should contain the "
                           f"same number of dims as destination ({dst} dims)")
    given = {"source": src, "destination": dst}
    src = [T._wrap_dim(d, nd, "movedim") for d in src]
    dst = [T._wrap_dim(d, nd, "movedim") for d in dst]
    for name, wrapped in (("source", src), ("destination", dst)):
        if len(set(wrapped)) != len(wrapped):
            raise RuntimeError(f"movedim: repeated dim in `{name}` ({given[name]})")
    order = [d for d in range(nd) if d not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute(x, order)


moveaxis = movedim


def unsqueeze(input, dim: int):
    """A view with a size-1 dimension inserted at ``dim``."""
    x = tensor_arg(input, "unsqueeze")
    nd = x._data.ndim
    d = T._wrap_dim(dim, nd + 1, "unsqueeze")
    return _reshape(x, x._data.shape[:d] + (1,) + x._data.shape[d:], UnsqueezeBackward0)


def squeeze(input, dim=None):
    """A view without size-1 dimensions (only those in ``dim``, an int or tuple, when given)."""
    x = tensor_arg(input, "squeeze")
    shape = x._data.shape
    nd = len(shape)
    if dim is None:
        dims = {i for i, s in enumerate(shape) if s == 1}
    else:
        dl = dim if isinstance(dim, (list, tuple)) else (dim,)
        dims = {T._wrap_dim(d, nd, "squeeze") for d in dl}
        dims = {d for d in dims if nd and shape[d] == 1}
    return _reshape(x, tuple(s for i, s in enumerate(shape) if i not in dims),
                    SqueezeBackward0 if dim is None else SqueezeBackward1)


def flatten(input, start_dim: int = 0, end_dim: int = -1):
    """Merge dims ``start_dim..end_dim`` into one (a 0-d tensor becomes 1-d)."""
    x = tensor_arg(input, "flatten")
    shape = x._data.shape
    if not shape:
        return reshape(x, (1,))
    s = T._wrap_dim(start_dim, len(shape), "flatten")
    e = T._wrap_dim(end_dim, len(shape), "flatten")
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    return reshape(x, shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:])


def unflatten(input, dim: int, sizes):
    """Split dim ``dim`` into ``sizes`` (one entry may be -1)."""
    x = tensor_arg(input, "unflatten")
    shape = x._data.shape
    d = T._wrap_dim(dim, len(shape), "unflatten")
    sizes = tuple(int(s) for s in sizes)
    if not sizes:
        raise RuntimeError("unflatten: sizes must be non-empty")
    n = shape[d] if shape else 1
    try:
        sizes = _infer_shape(sizes, n)
    except RuntimeError:
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size of dim {dim} "
                           f"({n}) in the input tensor") from None
    return reshape(x, shape[:d] + sizes + shape[d + 1:])


def ravel(input):
    """The elements as a 1-d tensor (a view when contiguous)."""
    return reshape(tensor_arg(input, "ravel"), -1)


def _atleast(tensors, nd: int, op: str):
    single = len(tensors) == 1 and not isinstance(tensors[0], (list, tuple))
    ts = tensors[0] if len(tensors) == 1 and not single else tensors
    outs = []
    for t_ in ts:
        x = tensor_arg(t_, op, "tensors")
        s = x._data.shape
        if len(s) >= nd:
            outs.append(x)
        elif nd == 1:
            outs.append(reshape(x, 1))
        elif nd == 2:
            outs.append(reshape(x, (1,) + (s or (1,))))
        else:
            outs.append(reshape(x, (1, 1, 1) if not s else (1, s[0], 1) if len(s) == 1 else s + (1,)))
    return outs[0] if single else tuple(outs)


def atleast_1d(*tensors):
    """Views with at least one dimension (a tuple when given several tensors or a sequence)."""
    return _atleast(tensors, 1, "atleast_1d")


def atleast_2d(*tensors):
    """Views with at least two dimensions (1-d ``(n,)`` becomes ``(1, n)``)."""
    return _atleast(tensors, 2, "atleast_2d")


def atleast_3d(*tensors):
    """Views with at least three dimensions (``(n,)`` -> ``(1, n, 1)``, ``(m, n)`` -> ``(m, n, 1)``)."""
    return _atleast(tensors, 3, "atleast_3d")


def sum_to_size(self, *size):
    """Sum ``self`` down to ``size`` (which ``self`` must be expandable from)."""
    size = _shape_arg(size)
    try:
        if tuple(np.broadcast_shapes(size, self._data.shape)) != self._data.shape:
            raise ValueError
    except ValueError:
        raise RuntimeError(f"size {{{list(size)}}} is not expandable to size {{{list(self.shape)}}}.") from None
    return sum_to(self, size)


def _meta_inplace(self, r, op: str):
    """Make ``self`` take the shape of ``r`` (a view of it): the in-place view ops ``t_``, ``squeeze_``..."""
    if self._requires_grad and self.grad_fn is None and _GRAD.enabled:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
    self._data = r._data
    if r._requires_grad:
        set_history(self, r.grad_fn)
    bump_version(self)
    return self


# The copying shape ops (repeat, flip, roll, tril, diagonal...) live in rearrange.py, which builds on this file;
# ops/__init__ exports both and Tensor takes its methods from ShapeMethods and RearrangeMethods.
class ShapeMethods:
    __slots__ = ()

    def reshape(self, *shape, **kw):
        return reshape(self, *shape, **kw)

    view = view
    expand = expand
    permute = permute
    transpose = transpose
    swapaxes = swapdims = transpose
    t = t
    adjoint = adjoint
    movedim = moveaxis = movedim
    unsqueeze = unsqueeze
    squeeze = squeeze
    flatten = flatten
    unflatten = unflatten
    ravel = ravel
    sum_to_size = sum_to_size
    broadcast_to = broadcast_to
    narrow = narrow
    select = select

    def view_as(self, other):
        return view(self, other.shape)

    def reshape_as(self, other):
        return reshape(self, other.shape)

    def expand_as(self, other):
        return expand(self, other.shape)

    def t_(self):
        return _meta_inplace(self, t(self), "t_")

    def transpose_(self, dim0: int, dim1: int):
        return _meta_inplace(self, transpose(self, dim0, dim1), "transpose_")

    swapaxes_ = swapdims_ = transpose_

    def squeeze_(self, dim=None):
        return _meta_inplace(self, squeeze(self, dim), "squeeze_")

    def unsqueeze_(self, dim: int):
        return _meta_inplace(self, unsqueeze(self, dim), "unsqueeze_")

    @property
    def T(self):
        if self._data.ndim not in (0, 2):
            warnings.warn("The use of `x.T` on tensors of dimension other than 2 to reverse their shape is "
                          "deprecated and it will throw an error in a future release.", UserWarning, stacklevel=2)
        return permute(self, tuple(range(self._data.ndim - 1, -1, -1)))

    @property
    def mT(self):
        if self._data.ndim < 2:
            raise RuntimeError(f"tensor.mT is only supported on matrices or batches of matrices. Got "
                               f"{self._data.ndim}-D tensor.")
        return transpose(self, -2, -1)

    @property
    def H(self):
        if self._data.ndim not in (0, 2):
            raise RuntimeError(f"tensor.H is only supported on matrices (2-D tensors). Got {self._data.ndim}-D "
                               "tensor. For batches of matrices, consider using tensor.mH")
        r = transpose(self, 0, 1) if self._data.ndim == 2 else transpose(self, 0, 0)
        return _conj(r) if self.dtype.is_complex else r

    @property
    def mH(self):
        return adjoint(self)
