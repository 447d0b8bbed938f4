"""``torch.special`` functions PyTorch gives no gradient: Bessel and Airy functions and the classical orthogonal
polynomials.

As in PyTorch their results never require grad (even when the input does), float16/bfloat16 inputs raise
PyTorch's "not implemented for 'Half'", integers compute in the default float dtype. Each is one vectorised
call of a SciPy ufunc; the polynomials take the degree ``n`` truncated to an integer (PyTorch's cast), give 0
for negative ``n``, and evaluate by recurrence (``scipy.special.eval_*``).
"""
from __future__ import annotations

import numpy as np

from .. import _tensor as T
from ._helpers import as_float_array, binary, broadcast_error, quiet, shape_of, tensor_arg
from .elementwise import _out, _to_float
from .special_fns import check_dtype, sp

__all__ = []  # torch.special only: none of these has a top-level torch name

def _nograd(input, name: str, fn, out):
    x = tensor_arg(input, name)
    check_dtype(x, name, half=False)
    a = as_float_array(x)
    xp = x._xp
    with quiet(xp):
        r = fn(xp, a)
    r = T._wrap(r if r.dtype == a.dtype else r.astype(a.dtype))
    return r if out is None else _out(r, out)


def airy_ai(input, *, out=None):
    """The Airy function Ai."""
    return _nograd(input, "airy_ai", lambda xp, a: sp(xp).airy(a)[0], out)


def bessel_j0(input, *, out=None):
    """The Bessel function of the first kind of order 0."""
    return _nograd(input, "bessel_j0", lambda xp, a: sp(xp).j0(a), out)


def bessel_j1(input, *, out=None):
    """The Bessel function of the first kind of order 1."""
    return _nograd(input, "bessel_j1", lambda xp, a: sp(xp).j1(a), out)


def bessel_y0(input, *, out=None):
    """The Bessel function of the second kind of order 0 (``-inf`` at 0, NaN for negative input)."""
    return _nograd(input, "bessel_y0", lambda xp, a: sp(xp).y0(a), out)


def bessel_y1(input, *, out=None):
    """The Bessel function of the second kind of order 1."""
    return _nograd(input, "bessel_y1", lambda xp, a: sp(xp).y1(a), out)


def modified_bessel_i0(input, *, out=None):
    """The modified Bessel function of the first kind of order 0 (no gradient; ``torch.i0`` has one)."""
    return _nograd(input, "modified_bessel_i0", lambda xp, a: sp(xp).i0(a), out)


def modified_bessel_i1(input, *, out=None):
    """The modified Bessel function of the first kind of order 1."""
    return _nograd(input, "modified_bessel_i1", lambda xp, a: sp(xp).i1(a), out)


def modified_bessel_k0(input, *, out=None):
    """The modified Bessel function of the second kind of order 0."""
    return _nograd(input, "modified_bessel_k0", lambda xp, a: sp(xp).k0(a), out)


def modified_bessel_k1(input, *, out=None):
    """The modified Bessel function of the second kind of order 1."""
    return _nograd(input, "modified_bessel_k1", lambda xp, a: sp(xp).k1(a), out)


def scaled_modified_bessel_k0(input, *, out=None):
    """``exp(x) * modified_bessel_k0(x)``."""
    return _nograd(input, "scaled_modified_bessel_k0", lambda xp, a: sp(xp).k0e(a), out)


def scaled_modified_bessel_k1(input, *, out=None):
    """``exp(x) * modified_bessel_k1(x)``."""
    return _nograd(input, "scaled_modified_bessel_k1", lambda xp, a: sp(xp).k1e(a), out)


def spherical_bessel_j0(input, *, out=None):
    """The spherical Bessel function of the first kind of order 0, ``sin(x) / x``."""
    return _nograd(input, "spherical_bessel_j0", lambda xp, a: sp(xp).spherical_jn(0, a), out)


# ---- orthogonal polynomials ------------------------------------------------------------------------------
def _poly(input, n, name: str, fn, out):
    """Evaluate ``fn(xp, k, x)`` (``k`` the int64 degree, >= 0) where the degree is >= 0, 0 elsewhere."""
    xp, x, k = binary(input, n, name)  # the common dtype decides, as in PyTorch
    x, k = _to_float(x, k)
    check_dtype(T._wrap(x), name, half=False)
    try:
        x, k = xp.broadcast_arrays(x, k)
    except ValueError:
        raise broadcast_error(name, shape_of(input), shape_of(n)) from None
    with quiet(xp):
        ki = xp.trunc(k).astype(np.int64)  # PyTorch casts the degree to an integer
        r = fn(xp, xp.maximum(ki, 0), x)
        r = xp.where(ki < 0, 0, xp.where(ki == 0, 1, r)).astype(x.dtype)  # degree 0 is 1 even at NaN
    r = T._wrap(r)
    return r if out is None else _out(r, out)


def _chebyshev(kind: str, shifted: bool):
    def fn(xp, k, x):
        s = sp(xp)
        t = 2 * x - 1 if shifted else x
        if kind == "t":
            return s.eval_chebyt(k, t)
        u = s.eval_chebyu(k, t)
        if kind == "u":
            return u
        # third and fourth kinds from the second: V_n = U_n - U_{n-1}, W_n = U_n + U_{n-1} (U_{-1} = 0)
        prev = xp.where(k > 0, s.eval_chebyu(xp.maximum(k - 1, 0), t), 0)
        return u - prev if kind == "v" else u + prev
    return fn


def chebyshev_polynomial_t(input, n, *, out=None):
    """The Chebyshev polynomial of the first kind ``T_n(input)``."""
    return _poly(input, n, "chebyshev_polynomial_t", _chebyshev("t", False), out)


def chebyshev_polynomial_u(input, n, *, out=None):
    """The Chebyshev polynomial of the second kind ``U_n(input)``."""
    return _poly(input, n, "chebyshev_polynomial_u", _chebyshev("u", False), out)


def chebyshev_polynomial_v(input, n, *, out=None):
    """The Chebyshev polynomial of the third kind ``V_n(input)``."""
    return _poly(input, n, "chebyshev_polynomial_v", _chebyshev("v", False), out)


def chebyshev_polynomial_w(input, n, *, out=None):
    """The Chebyshev polynomial of the fourth kind ``W_n(input)``."""
    return _poly(input, n, "chebyshev_polynomial_w", _chebyshev("w", False), out)


def shifted_chebyshev_polynomial_t(input, n, *, out=None):
    """``T_n(2 input - 1)``, the first-kind Chebyshev polynomial on [0, 1]."""
    return _poly(input, n, "shifted_chebyshev_polynomial_t", _chebyshev("t", True), out)


def shifted_chebyshev_polynomial_u(input, n, *, out=None):
    """``U_n(2 input - 1)``."""
    return _poly(input, n, "shifted_chebyshev_polynomial_u", _chebyshev("u", True), out)


def shifted_chebyshev_polynomial_v(input, n, *, out=None):
    """``V_n(2 input - 1)``."""
    return _poly(input, n, "shifted_chebyshev_polynomial_v", _chebyshev("v", True), out)


def shifted_chebyshev_polynomial_w(input, n, *, out=None):
    """``W_n(2 input - 1)``."""
    return _poly(input, n, "shifted_chebyshev_polynomial_w", _chebyshev("w", True), out)


def hermite_polynomial_h(input, n, *, out=None):
    """The physicists' Hermite polynomial ``H_n(input)``."""
    return _poly(input, n, "hermite_polynomial_h", lambda xp, k, x: sp(xp).eval_hermite(k, x), out)


def hermite_polynomial_he(input, n, *, out=None):
    """The probabilists' Hermite polynomial ``He_n(input)``."""
    return _poly(input, n, "hermite_polynomial_he", lambda xp, k, x: sp(xp).eval_hermitenorm(k, x), out)


def laguerre_polynomial_l(input, n, *, out=None):
    """The Laguerre polynomial ``L_n(input)``."""
    return _poly(input, n, "laguerre_polynomial_l", lambda xp, k, x: sp(xp).eval_laguerre(k, x), out)


def legendre_polynomial_p(input, n, *, out=None):
    """The Legendre polynomial ``P_n(input)``."""
    return _poly(input, n, "legendre_polynomial_p", lambda xp, k, x: sp(xp).eval_legendre(k, x), out)
