"""Discrete Fourier transforms: ``torch.fft``.

Every transform is PyTorch's, with its arguments (``n``/``s``, ``dim``, ``norm`` in {"backward", "ortho",
"forward"}, ``out``), result dtypes (float32 in, complex64 out; integers promoted to the default float;
float16/bfloat16 rejected as on PyTorch's CPU) and gradients. They are built, as in PyTorch, from three
primitives in ``disttorch.ops.fft`` (complex-to-complex, real-to-complex, complex-to-real), which run
``scipy.fft`` on the CPU and ``cupy.fft`` on a GPU.

Example:
    >>> import disttorch as torch
    >>> x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    >>> torch.fft.rfft(x)
    tensor([10.+0.j, -2.+2.j, -2.+0.j])
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

from . import _dtype as D
from . import _tensor as T
from .amp._state import fp32_op as _autocast_fp32
from .ops import inplace as _I
from .ops._helpers import tensor_arg
from .ops.complex_ops import conj, to_complex
from .ops.elementwise import _out
from .ops.fft import BY_N, NONE, ROOT, fft_c2c, fft_c2r, fft_r2c

__all__ = ["fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2", "irfft2", "rfftn", "irfftn",
           "hfft", "ihfft", "hfft2", "ihfft2", "hfftn", "ihfftn", "fftfreq", "rfftfreq", "fftshift", "ifftshift"]

Tensor = T.Tensor
_Dims = Optional[Union[int, Sequence[int]]]
_Sizes = Optional[Union[int, Sequence[int]]]


# ---- argument handling (PyTorch's SpectralOps.cpp) --------------------------------------------------------
def _mode(norm: Optional[str], forward: bool) -> int:
    if norm is None or norm == "backward":
        return NONE if forward else BY_N
    if norm == "forward":
        return BY_N if forward else NONE
    if norm == "ortho":
        return ROOT
    raise RuntimeError(f'Invalid normalization mode: "{norm}"')


def _wrap_dim(dim: int, ndim: int, op: str) -> int:
    if ndim == 0:
        raise IndexError(f"{op}: Dimension specified as {dim} but tensor has no dimensions")
    return T._wrap_dim(int(dim), ndim, op)


def _promote(x, op: str, require_complex: bool):
    """PyTorch's ``promote_tensor_fft``: integers to the default float; only float32/float64 (and complex) run."""
    d = x.dtype
    if d.is_complex:
        return x
    if not d.is_floating_point:
        x = x.to(D.get_default_dtype())
    elif d not in (D.float32, D.float64):
        raise RuntimeError(f"{op}: Unsupported dtype {_I._type_name(d)} (the CPU FFT supports float32 and float64; "
                           "convert with .float() first)")
    return to_complex(x) if require_complex else x


def _resize(x, dims, sizes):
    """Zero-pad or trim ``x`` along ``dims`` to ``sizes`` (differentiable)."""
    for d, n in zip(dims, sizes):
        cur = x.shape[d]
        if n < cur:
            x = x.narrow(d, 0, n)
        elif n > cur:
            from .ops.join import cat

            shape = list(x.shape)
            shape[d] = n - cur
            x = cat([x, x.new_zeros(shape)], d)
    return x


def _check_n(n: int) -> None:
    if n < 1:
        raise RuntimeError(f"Invalid number of data points ({n}) specified")


def _shape_and_dims(x, s, dim, op: str):
    """PyTorch's ``canonicalize_fft_shape_and_dim_args``: the signal sizes and the (wrapped) dims."""
    nd = x.dim()
    dims = None
    if dim is not None:
        dims = tuple(_wrap_dim(d, nd, op) for d in ((dim,) if isinstance(dim, int) else dim))
        if len(set(dims)) != len(dims):
            raise RuntimeError(f"{op}: FFT dims must be unique (got dim={list(dim)})")
    if s is not None:
        s = (s,) if isinstance(s, int) else tuple(s)
        if dims is not None and len(dims) != len(s):
            raise RuntimeError(f"{op}: When given, dim and shape arguments must have the same length "
                               f"(s={list(s)}, dim={list(dims)})")
        if len(s) > nd:
            raise RuntimeError(f"{op}: Got shape with {len(s)} values but input tensor only has {nd} dimensions.")
        if dims is None:
            dims = tuple(range(nd - len(s), nd))
        shape = tuple(x.shape[d] if int(n) == -1 else int(n) for n, d in zip(s, dims))
    elif dims is None:
        dims, shape = tuple(range(nd)), tuple(x.shape)
    else:
        shape = tuple(x.shape[d] for d in dims)
    for n in shape:
        _check_n(n)
    return shape, dims


def _c2r_shape_and_dims(x, s, dim, op: str):
    """``_shape_and_dims`` for a complex-to-real transform: also the real output size of the last dim."""
    shape, dims = _shape_and_dims(x, s, dim, op)
    if not dims:
        raise RuntimeError(f"{op} must transform at least one axis")
    s_last = None if s is None else ((s,) if isinstance(s, int) else tuple(s))[-1]
    last = 2 * (x.shape[dims[-1]] - 1) if s_last is None or s_last == -1 else shape[-1]
    _check_n(last)
    return shape[:-1] + (last // 2 + 1,), dims, last


def _finish(r, out, op: str, want_complex: bool):
    if out is None:
        return r
    if isinstance(out, Tensor) and out.dtype.is_complex != want_complex:
        kind = "complex" if want_complex else "floating point"
        raise RuntimeError(f"{op} expects a {kind} output tensor, but got {_I._type_name(out.dtype)}")
    return _out(r, out)


def _real_input(x, op: str, phrase: str = "a real input tensor"):
    if x.dtype.is_complex:
        raise RuntimeError(f"{op} expects {phrase}, but got {_I._type_name(x.dtype)}")


# ---- one-dimensional transforms --------------------------------------------------------------------------
def _c2c_1d(op, x, n, dim, norm, forward, out):
    d = _wrap_dim(dim, x.dim(), op)
    size = x.shape[d] if n is None else int(n)
    _check_n(size)
    if n is not None:
        x = _resize(x, (d,), (size,))
    return _finish(fft_c2c(x, (d,), _mode(norm, forward), forward), out, op, True)


def _r2c_1d(op, x, n, dim, norm, forward, onesided, out):
    _real_input(x, op)
    x = _promote(x, op, False)
    d = _wrap_dim(dim, x.dim(), op)
    size = x.shape[d] if n is None else int(n)
    _check_n(size)
    if n is not None:
        x = _resize(x, (d,), (size,))
    r = fft_r2c(x, (d,), _mode(norm, forward), onesided)
    return _finish(r if forward else conj(r), out, op, True)


def _c2r_1d(op, x, n, dim, norm, forward, out):
    x = _promote(x, op, True)
    d = _wrap_dim(dim, x.dim(), op)
    size = 2 * (x.shape[d] - 1) if n is None else int(n)
    _check_n(size)
    if n is not None:
        x = _resize(x, (d,), (size // 2 + 1,))
    if forward:
        x = conj(x)
    return _finish(fft_c2r(x, (d,), _mode(norm, forward), size), out, op, False)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def fft(input: Tensor, n: Optional[int] = None, dim: int = -1, norm: Optional[str] = None, *, out=None) -> Tensor:
    """The one-dimensional discrete Fourier transform of ``input`` along ``dim``.

    Args:
        input: a real or complex tensor (integers are promoted to the default float dtype).
        n: signal length; ``input`` is zero-padded or trimmed to it along ``dim``.
        dim: the dimension to transform.
        norm: "backward" (no scaling, the default), "ortho" (1/sqrt(n)) or "forward" (1/n).
        out: optional complex output tensor.

    Returns:
        A complex tensor (complex64 for float32 input).
    """
    x = tensor_arg(input, "fft")
    if x.dtype.is_complex:
        return _c2c_1d("fft", x, n, dim, norm, True, out)
    return _r2c_1d("fft", x, n, dim, norm, True, False, out)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def ifft(input: Tensor, n: Optional[int] = None, dim: int = -1, norm: Optional[str] = None, *, out=None) -> Tensor:
    """The inverse of :func:`fft` (scaled by 1/n under the default ``norm="backward"``)."""
    x = tensor_arg(input, "ifft")
    if x.dtype.is_complex:
        return _c2c_1d("ifft", x, n, dim, norm, False, out)
    return _r2c_1d("ifft", x, n, dim, norm, False, False, out)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def rfft(input: Tensor, n: Optional[int] = None, dim: int = -1, norm: Optional[str] = None, *, out=None) -> Tensor:
    """The FFT of a real signal, keeping the ``n // 2 + 1`` non-redundant frequencies (Hermitian symmetry)."""
    return _r2c_1d("rfft", tensor_arg(input, "rfft"), n, dim, norm, True, True, out)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def irfft(input: Tensor, n: Optional[int] = None, dim: int = -1, norm: Optional[str] = None, *, out=None) -> Tensor:
    """The inverse of :func:`rfft`: a real signal of length ``n`` (default ``2 * (input.size(dim) - 1)``)."""
    return _c2r_1d("irfft", tensor_arg(input, "irfft"), n, dim, norm, False, out)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def hfft(input: Tensor, n: Optional[int] = None, dim: int = -1, norm: Optional[str] = None, *, out=None) -> Tensor:
    """The FFT of a Hermitian-symmetric signal given by its first half: a real tensor of length ``n``."""
    return _c2r_1d("hfft", tensor_arg(input, "hfft"), n, dim, norm, True, out)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def ihfft(input: Tensor, n: Optional[int] = None, dim: int = -1, norm: Optional[str] = None, *, out=None) -> Tensor:
    """The inverse of :func:`hfft`: the one-sided inverse FFT of a real signal."""
    return _r2c_1d("ihfft", tensor_arg(input, "ihfft"), n, dim, norm, False, True, out)


# ---- n-dimensional transforms ----------------------------------------------------------------------------
def _fftn(op, input, s, dim, norm, forward, out):
    x = tensor_arg(input, op)
    shape, dims = _shape_and_dims(x, s, dim, op)
    x = _promote(x, op, False)
    x = _resize(x, dims, shape)
    mode = _mode(norm, forward)
    if x.dtype.is_complex:
        r = fft_c2c(x, dims, mode, forward)
    elif not dims:
        r = to_complex(x).clone()
    else:  # the full (two-sided) transform of a real signal, as c2c of its complex promotion
        r = fft_r2c(x, dims, mode, False)
        r = r if forward else conj(r)
    return _finish(r, out, op, True)


def _rfftn(op, input, s, dim, norm, out):
    x = tensor_arg(input, op)
    _real_input(x, op, "a real-valued input tensor")
    shape, dims = _shape_and_dims(x, s, dim, op)
    if not dims:
        raise RuntimeError(f"{op} must transform at least one axis")
    x = _resize(_promote(x, op, False), dims, shape)
    return _finish(fft_r2c(x, dims, _mode(norm, True), True), out, op, True)


def _irfftn(op, input, s, dim, norm, out):
    x = tensor_arg(input, op)
    shape, dims, last = _c2r_shape_and_dims(x, s, dim, op)
    x = _resize(_promote(x, op, True), dims, shape)
    return _finish(fft_c2r(x, dims, _mode(norm, False), last), out, op, False)


def _hfftn(op, input, s, dim, norm, out):
    x = tensor_arg(input, op)
    shape, dims, last = _c2r_shape_and_dims(x, s, dim, op)
    x = _resize(_promote(x, op, True), dims, shape)
    mode = _mode(norm, True)
    if len(dims) > 1:
        x = fft_c2c(x, dims[:-1], mode, True)
    return _finish(fft_c2r(conj(x), dims[-1:], mode, last), out, op, False)


def _ihfftn(op, input, s, dim, norm, out):
    x = tensor_arg(input, op)
    _real_input(x, op, "a real-valued input tensor")
    shape, dims = _shape_and_dims(x, s, dim, op)
    if not dims:
        raise RuntimeError(f"{op} must transform at least one axis")
    x = _resize(_promote(x, op, False), dims, shape)
    mode = _mode(norm, False)
    r = conj(fft_r2c(x, dims[-1:], mode, True))
    if len(dims) > 1:
        r = fft_c2c(r, dims[:-1], mode, False)
    return _finish(r, out, op, True)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def fftn(input: Tensor, s: _Sizes = None, dim: _Dims = None, norm: Optional[str] = None, *, out=None) -> Tensor:
    """The N-dimensional FFT over ``dim`` (all dims by default, or the last ``len(s)``).

    Args:
        input: a real or complex tensor.
        s: signal sizes per transformed dim (-1 keeps a dim's size); ``input`` is zero-padded or trimmed to them.
        dim: the dims to transform.
        norm: "backward" (default), "ortho" or "forward", applied over the total signal size.
        out: optional complex output tensor.
    """
    return _fftn("fftn", input, s, dim, norm, True, out)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def ifftn(input: Tensor, s: _Sizes = None, dim: _Dims = None, norm: Optional[str] = None, *, out=None) -> Tensor:
    """The inverse of :func:`fftn`."""
    return _fftn("ifftn", input, s, dim, norm, False, out)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def fft2(input: Tensor, s: _Sizes = None, dim: _Dims = (-2, -1), norm: Optional[str] = None, *, out=None) -> Tensor:
    """The two-dimensional FFT (:func:`fftn` over the last two dims by default)."""
    return _fftn("fftn", input, s, dim, norm, True, out)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def ifft2(input: Tensor, s: _Sizes = None, dim: _Dims = (-2, -1), norm: Optional[str] = None, *, out=None) -> Tensor:
    """The inverse of :func:`fft2`."""
    return _fftn("ifftn", input, s, dim, norm, False, out)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def rfftn(input: Tensor, s: _Sizes = None, dim: _Dims = None, norm: Optional[str] = None, *, out=None) -> Tensor:
    """The N-dimensional FFT of a real signal, one-sided in the last transformed dim."""
    return _rfftn("rfftn", input, s, dim, norm, out)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def rfft2(input: Tensor, s: _Sizes = None, dim: _Dims = (-2, -1), norm: Optional[str] = None, *, out=None) -> Tensor:
    """:func:`rfftn` over the last two dims by default."""
    return _rfftn("rfftn", input, s, dim, norm, out)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def irfftn(input: Tensor, s: _Sizes = None, dim: _Dims = None, norm: Optional[str] = None, *, out=None) -> Tensor:
    """The inverse of :func:`rfftn`; the last dim's real size is ``s[-1]`` or ``2 * (input.size(dim[-1]) - 1)``."""
    return _irfftn("irfftn", input, s, dim, norm, out)


@_autocast_fp32  # on PyTorch's CPU autocast float32 list
def irfft2(input: Tensor, s: _Sizes = None, dim: _Dims = (-2, -1), norm: Optional[str] = None, *, out=None) -> Tensor:
    """The inverse of :func:`rfft2`."""
    return _irfftn("irfftn", input, s, dim, norm, out)


def hfftn(input: Tensor, s: _Sizes = None, dim: _Dims = None, norm: Optional[str] = None, *, out=None) -> Tensor:
    """The N-dimensional FFT of a Hermitian-symmetric signal given one-sided in the last dim; real result."""
    return _hfftn("hfftn", input, s, dim, norm, out)


def hfft2(input: Tensor, s: _Sizes = None, dim: _Dims = (-2, -1), norm: Optional[str] = None, *, out=None) -> Tensor:
    """:func:`hfftn` over the last two dims by default."""
    return _hfftn("hfftn", input, s, dim, norm, out)


def ihfftn(input: Tensor, s: _Sizes = None, dim: _Dims = None, norm: Optional[str] = None, *, out=None) -> Tensor:
    """The inverse of :func:`hfftn`: the one-sided N-dimensional inverse FFT of a real signal."""
    return _ihfftn("ihfftn", input, s, dim, norm, out)


def ihfft2(input: Tensor, s: _Sizes = None, dim: _Dims = (-2, -1), norm: Optional[str] = None, *, out=None) -> Tensor:
    """:func:`ihfftn` over the last two dims by default."""
    return _ihfftn("ihfftn", input, s, dim, norm, out)


# ---- helpers ---------------------------------------------------------------------------------------------
def _freq(op: str, count: int, n: int, d: float, out, dtype, device, requires_grad: bool, two_sided: bool):
    from .ops.creation import arange

    dt = D.get_default_dtype() if dtype is None else dtype
    if not (dt.is_floating_point or dt.is_complex):
        raise RuntimeError(f"{op} requires a floating point or complex dtype (got {dt})")
    r = arange(count, dtype=dt, device=device)
    a = r._data
    if two_sided:  # [0, 1, ..., (n - 1) // 2, -(n // 2), ..., -1]
        a[(n + 1) // 2:] = r._xp.arange(-(n // 2), 0)
    if n:
        a *= a.dtype.type(1.0 / (n * d))
    if out is not None:
        r = _out(r, out)
    return r.requires_grad_(True) if requires_grad else r


def fftfreq(n: int, d: float = 1.0, *, out=None, dtype=None, layout=None, device=None,
            requires_grad: bool = False) -> Tensor:
    """The sample frequencies of :func:`fft` for a signal of size ``n`` and sample spacing ``d``:
    ``[0, 1, ..., (n - 1) // 2, -(n // 2), ..., -1] / (d * n)``."""
    return _freq("fftfreq", n, n, d, out, dtype, device, requires_grad, True)


def rfftfreq(n: int, d: float = 1.0, *, out=None, dtype=None, layout=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """The sample frequencies of :func:`rfft`: ``[0, 1, ..., n // 2] / (d * n)``."""
    return _freq("rfftfreq", n // 2 + 1, n, d, out, dtype, device, requires_grad, False)


def _shift(op: str, input, dim, inverse: bool):
    x = tensor_arg(input, op)
    nd = x.dim()
    if dim is None:
        dims = tuple(range(nd))
    else:
        dims = tuple(T._wrap_dim(int(d), nd, op) for d in ((dim,) if isinstance(dim, int) else dim))
    if not dims:
        return x.clone() if nd == 0 else x
    shifts = tuple((x.shape[d] + 1) // 2 if inverse else x.shape[d] // 2 for d in dims)
    return x.roll(shifts, dims)


def fftshift(input: Tensor, dim: _Dims = None) -> Tensor:
    """Reorder :func:`fftn` output so the zero frequency is in the centre (a roll by ``size // 2`` per dim)."""
    return _shift("fftshift", input, dim, False)


def ifftshift(input: Tensor, dim: _Dims = None) -> Tensor:
    """The inverse of :func:`fftshift` (a roll by ``-(size // 2)`` per dim)."""
    return _shift("ifftshift", input, dim, True)
