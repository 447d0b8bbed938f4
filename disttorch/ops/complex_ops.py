"""Complex accessors: real, imag, view_as_real, view_as_complex, conj, angle, complex, polar.

Gradients follow PyTorch's convention for complex tensors: for a real loss ``L`` of ``z = x + iy`` the
gradient is ``dL/dx + i dL/dy`` (the conjugate Wirtinger derivative times two), so ``z - lr * z.grad`` descends
and a complex-linear map ``y = A z`` sends ``A^H g`` back. ``real``, ``imag``, ``view_as_real`` and
``view_as_complex`` are views sharing memory and version counter with their input, as in PyTorch; ``conj``
returns a conjugated copy (PyTorch's lazy conjugate bit is not modelled, so ``is_conj()`` is always False).
"""
from __future__ import annotations

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from ..amp._state import fp32_op as _autocast_fp32
from ..autograd.function import Node
from ..autograd.op import RESULT, Op, set_history, write_out
from . import inplace as _I
from ._helpers import broadcast_error, quiet, sum_to, tensor_arg

__all__ = ["real", "imag", "view_as_real", "view_as_complex", "conj", "conj_physical", "resolve_conj",
           "resolve_neg", "is_conj", "angle", "complex", "polar"]

_COMPLEX_OF = {np.dtype(np.float32): np.dtype(np.complex64), np.dtype(np.float64): np.dtype(np.complex128)}
_REAL_OF = {c: f for f, c in _COMPLEX_OF.items()}


def _record_view(r, node):
    """Attach ``node`` to ``r``, a view of the node's input (real, imag, view_as_real, view_as_complex)."""
    set_history(r, node)  # not Op.apply: a view that must share its input's version counter
    return node


class ToCopyBackward0(Op):
    """Backward of a real -> complex cast: the real part of the gradient (PyTorch's ``_to_copy_backward``)."""

    op_name = "_to_copy"

    def forward(self, xp, a):
        return a.astype(_COMPLEX_OF[a.dtype])

    def backward(self, g):
        return real(g)


def to_complex(x):
    """``x`` (float32/float64, or already complex) cast to the matching complex dtype, differentiably."""
    if x._data.dtype.kind == "c":
        return x
    return ToCopyBackward0.apply(x)


def _as_complex(g, dt):
    """A real gradient as the complex dtype ``dt`` (what PyTorch's engine does for a complex input)."""
    return to_complex(g if g._data.dtype == _REAL_OF[dt] else g.to(D._FROM_NP[_REAL_OF[dt]]))


# ---- real / imag ---------------------------------------------------------------------------------------
class RealBackward0(Node):
    def backward(self, g):
        return _as_complex(g, self.dt)


class ImagBackward0(Node):
    def backward(self, g):
        return complex(g.new_zeros(g.shape), g)


def real(input):
    """The real part of a complex tensor as a view (a real tensor is returned as is)."""
    x = tensor_arg(input, "real")
    if x._data.dtype.kind != "c":
        return x
    r = T._view_of(x, x._data.real)
    if T.needs_grad(x):
        _record_view(r, RealBackward0(x)).dt = x._data.dtype
    return r


def imag(input):
    """The imaginary part of a complex tensor as a view."""
    x = tensor_arg(input, "imag")
    if x._data.dtype.kind != "c":
        raise RuntimeError("imag is not implemented for tensors with non-complex dtypes.")
    r = T._view_of(x, x._data.imag)
    if T.needs_grad(x):
        _record_view(r, ImagBackward0(x))
    return r


# ---- view_as_real / view_as_complex ----------------------------------------------------------------------
class ViewAsRealBackward0(Node):
    def backward(self, g):
        return view_as_complex(g.contiguous())


class ViewAsComplexBackward0(Node):
    def backward(self, g):
        return view_as_real(g)


def view_as_real(input):
    """A real view of a complex tensor with a trailing dimension of size 2 (real, imaginary)."""
    x = tensor_arg(input, "view_as_real")
    a = x._data
    if a.dtype.kind != "c":
        raise RuntimeError("view_as_real is only supported for complex tensors")
    re = a.real  # same strides as ``a``; the imaginary part sits one real item further on
    xp = x._xp
    strided = xp.lib.stride_tricks.as_strided
    r = T._view_of(x, strided(re, shape=a.shape + (2,), strides=a.strides + (re.itemsize,)))
    if T.needs_grad(x):
        _record_view(r, ViewAsRealBackward0(x))
    return r


def view_as_complex(input):
    """A complex view of a float32/float64 tensor whose last dimension holds (real, imaginary) pairs."""
    x = tensor_arg(input, "view_as_complex")
    a = x._data
    cd = _COMPLEX_OF.get(a.dtype)
    if cd is None:
        raise RuntimeError("view_as_complex is only supported for float and double tensors, but got a tensor of "
                           f"scalar type: {_I._type_name(x.dtype)}")
    if a.ndim == 0 or a.shape[-1] != 2:
        raise RuntimeError("Tensor must have a last dimension of size 2")
    if a.strides[-1] != a.itemsize:
        raise RuntimeError("Tensor must have a last dimension with stride 1")
    if any(s % (2 * a.itemsize) for s, n in zip(a.strides[:-1], a.shape[:-1]) if n > 1):
        raise RuntimeError("Tensor must have a stride divisible by 2 for all but last dimension")
    from .shape import _byte_offset

    if _byte_offset(a) % (2 * a.itemsize):
        raise RuntimeError("Tensor must have a storage_offset divisible by 2")
    try:
        arr = a.view(cd)[..., 0]
    except ValueError:  # an odd offset into the storage: NumPy cannot reinterpret it in place
        raise RuntimeError("Tensor must have a storage_offset divisible by 2") from None
    r = T._view_of(x, arr)
    if T.needs_grad(x):
        _record_view(r, ViewAsComplexBackward0(x))
    return r


# ---- conj and friends ------------------------------------------------------------------------------------
def conj(input):
    """The complex conjugate (a copy for complex tensors; real tensors are returned as is)."""
    x = tensor_arg(input, "conj")
    if x._data.dtype.kind != "c":
        return x
    from .shape import _conj

    return _conj(x)


def conj_physical(input, *, out=None):
    """The complex conjugate, always materialised (the same as :func:`conj` here)."""
    x = tensor_arg(input, "conj_physical")
    r = conj(x) if x._data.dtype.kind == "c" else x.clone()
    return r if out is None else write_out(r, out, "conj_physical")


def resolve_conj(input):
    """``input`` itself: disttorch conjugates eagerly, so there is no conjugate bit to resolve."""
    return tensor_arg(input, "resolve_conj")


def resolve_neg(input):
    """``input`` itself: disttorch has no lazy negative bit."""
    return tensor_arg(input, "resolve_neg")


def is_conj(input) -> bool:
    """Always False: conjugation is never lazy in disttorch."""
    tensor_arg(input, "is_conj")
    return False


# ---- angle -----------------------------------------------------------------------------------------------
class AngleBackward0(Op):
    op_name = "angle"

    def forward(self, xp, a):
        self.save(0)
        with quiet(xp):
            if a.dtype.kind == "c":
                return xp.angle(a)
            f = a if a.dtype.kind in "fV" else a.astype(D.get_default_dtype().np)
            data = xp.where(f < 0, np.pi, 0.0).astype(f.dtype)
            return xp.where(f != f, f, data)  # NaN stays NaN

    def backward(self, g):
        (z,) = self.saved_tensors
        if z._data.dtype.kind != "c":
            return z.new_zeros(z.shape)
        # d atan2(y, x) = (-y dx + x dy) / |z|^2, i.e. g * i z / |z|^2; 0 at z = 0 as PyTorch.
        m2 = z.abs().pow(2)
        rz = g * (z * 1j) / m2.where(m2 != 0, 1.0)
        return rz.where(z != 0, 0.0)


def angle(input, *, out=None):
    """The argument of each element in radians (for real tensors: 0 for x >= 0, pi for x < 0, NaN kept)."""
    return AngleBackward0.apply(tensor_arg(input, "angle"), out=out)


# ---- complex / polar -------------------------------------------------------------------------------------
def _pair(re, im, op: str):
    a = tensor_arg(re, op, "real" if op == "complex" else "abs")
    b = tensor_arg(im, op, "imag" if op == "complex" else "angle")
    da, db = a._data.dtype, b._data.dtype
    if da not in _COMPLEX_OF or db not in _COMPLEX_OF:
        raise RuntimeError(f"Expected both inputs to be Half, Float or Double tensors but got "
                           f"{_I._type_name(a.dtype)} and {_I._type_name(b.dtype)}")
    if da != db:
        raise RuntimeError(f"Expected object of scalar type {_I._type_name(a.dtype)} but got scalar type "
                           f"{_I._type_name(b.dtype)} for second argument")
    try:
        shape = np.broadcast_shapes(a._data.shape, b._data.shape)
    except ValueError:
        raise broadcast_error(op, a._data.shape, b._data.shape) from None
    return a, b, shape, _COMPLEX_OF[da]


class ComplexBackward0(Op):
    op_name = "complex"

    def forward(self, xp, re, im, shape=(), cd=None):
        if self.next_functions:
            self.shapes = (re.shape, im.shape)
        data = xp.empty(shape, dtype=cd)
        data.real = re
        data.imag = im
        return data

    def backward(self, g):
        n = self.needs_input_grad
        return (sum_to(real(g), self.shapes[0]) if n[0] else None,
                sum_to(imag(g), self.shapes[1]) if n[1] else None)


def complex(real, imag, *, out=None):  # noqa: A001 - PyTorch's name
    """A complex tensor from real and imaginary parts of the same float dtype (broadcast together)."""
    a, b, shape, cd = _pair(real, imag, "complex")
    return ComplexBackward0.apply(a, b, shape=shape, cd=cd, out=out)


class PolarBackward0(Op):
    op_name = "polar"

    def forward(self, xp, r, theta, shape=(), cd=None):
        if self.next_functions:
            self.shapes = (r.shape, theta.shape)
            self.save(RESULT)
        data = xp.empty(shape, dtype=cd)
        with quiet(xp):
            data.real = r * xp.cos(theta)
            data.imag = r * xp.sin(theta)
        return data

    def backward(self, g):
        (z,) = self.saved_tensors
        from .pointwise import sgn

        gc = conj(g)
        n = self.needs_input_grad
        # PyTorch's polar_backward: d|.|: Re(conj(g) sgn(z)), d angle: Re(conj(g) i z).
        return (sum_to(real(gc * sgn(z)), self.shapes[0]) if n[0] else None,
                sum_to(real(gc * (z * 1j)), self.shapes[1]) if n[1] else None)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def polar(abs, angle, *, out=None):  # noqa: A002 - PyTorch's names
    """``abs * (cos(angle) + i sin(angle))`` (broadcast together; both of the same float dtype)."""
    a, b, shape, cd = _pair(abs, angle, "polar")
    return PolarBackward0.apply(a, b, shape=shape, cd=cd, out=out)


_angle = angle
_conj_fn = conj


class ComplexMethods:
    """Tensor methods and properties of the complex family."""

    __slots__ = ()

    @property
    def real(self):
        return real(self)

    @property
    def imag(self):
        return imag(self)

    def conj(self):
        return _conj_fn(self)

    def conj_physical(self):
        return conj_physical(self)

    def resolve_conj(self):
        return self

    def resolve_neg(self):
        return self

    def is_conj(self) -> bool:
        return False

    def is_neg(self) -> bool:
        return False

    def angle(self):
        return _angle(self)
