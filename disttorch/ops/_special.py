"""Array kernels for special functions NumPy lacks: erf and erfc (W. J. Cody), erfinv (M. Giles + Newton).

Each kernel takes ``(xp, array)`` of a floating dtype and returns an array of the same dtype; the
work happens in float64, so float32/float16 results are correctly rounded for practical purposes.
"""
from __future__ import annotations

import math

import numpy as np  # dtype constants, and telling NumPy (host) from a device module

_F64 = np.dtype(np.float64)

# W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23 (1969),
# as in SPECFUN's CALERF: erf on [0, 0.46875]; erfc on (0.46875, 4]; erfc on (4, inf).
_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02, 3.20937758913846947e03,
      1.85777706184603153e-1)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03)
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01, 2.98635138197400131e02,
      8.81952221241769090e02, 1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03,
      2.15311535474403846e-8)
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02, 1.62138957456669019e03,
      3.29079923573345963e03, 4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03)
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1, 1.60837851487422766e-2,
      6.58749161529837803e-4, 1.63153871373020978e-2)
_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1, 6.05183413124413191e-2,
      2.33520497626869185e-3)
_SQRPI = 5.6418958354775628695e-1  # 1 / sqrt(pi)
_XBIG = 27.5  # erfc underflows to 0 beyond this

# M. Giles, "Approximating the erfinv function" (GPU Computing Gems, 2011), single-precision version.
_G_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
              -0.00417768164, 0.246640727, 1.50140941)
_G_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
           0.00943887047, 1.00167406, 2.83297682)


def _exp_neg_sq(xp, t):
    """``exp(-t*t)`` without the rounding error of forming ``t*t`` (Cody's split at 1/16)."""
    ysq = xp.trunc(t * 16.0) / 16.0
    delta = (t - ysq) * (t + ysq)
    return xp.exp(-ysq * ysq) * xp.exp(-delta)


def _erf_small(xp, t):
    """Cody's erf on [0, 0.46875]."""
    z = t * t
    num, den = _A[4] * z, z
    for i in range(3):
        num = (num + _A[i]) * z
        den = (den + _B[i]) * z
    return t * (num + _A[3]) / (den + _B[3])


def _erfc_mid(xp, t):
    """Cody's erfc on (0.46875, 4]."""
    num, den = _C[8] * t, t
    for i in range(7):
        num = (num + _C[i]) * t
        den = (den + _D[i]) * t
    return _exp_neg_sq(xp, t) * ((num + _C[7]) / (den + _D[7]))


def _erfc_tail(xp, t):
    """Cody's erfc on (4, inf): 0 from _XBIG on (and for inf)."""
    big = t >= _XBIG
    t = xp.where(big, 5.0, t)  # a finite stand-in (inf would give NaN); replaced by 0 below
    z = 1.0 / (t * t)
    num, den = _P[5] * z, z
    for i in range(4):
        num = (num + _P[i]) * z
        den = (den + _Q[i]) * z
    v = z * (num + _P[4]) / (den + _Q[4])
    return xp.where(big, 0.0, _exp_neg_sq(xp, t) * ((_SQRPI - v) / t))


def _cody(xp, y):
    """``(erf(y), erfc(y))`` for a float64 array ``y >= 0``; NaN stays NaN.

    On NumPy each range is evaluated on its own elements only (``mask.any()`` skips empty ones: a host
    test, free there). On a device that test would be a host synchronisation per range, so every range is
    evaluated on all elements, each on its argument clamped into its domain (no inf/NaN from the unused
    ranges), and ``where`` selects.
    """
    if xp is not np:
        small, mid = y <= 0.46875, y <= 4.0
        lo = _erf_small(xp, xp.minimum(y, 0.46875))
        # NaN takes the tail (every comparison is false) and stays NaN through maximum/minimum.
        c = xp.where(mid, _erfc_mid(xp, xp.minimum(xp.maximum(y, 0.46875), 4.0)),
                     _erfc_tail(xp, xp.maximum(y, 4.0)))
        return xp.where(small, lo, 1.0 - c), xp.where(small, 1.0 - lo, c)
    erf = xp.full(y.shape, math.nan)
    erfc = xp.full(y.shape, math.nan)
    m = y <= 0.46875
    if m.any():
        v = _erf_small(xp, y[m])
        erf[m] = v
        erfc[m] = 1.0 - v
    m = (y > 0.46875) & (y <= 4.0)
    if m.any():
        v = _erfc_mid(xp, y[m])
        erfc[m] = v
        erf[m] = 1.0 - v
    m = y > 4.0
    if m.any():
        v = _erfc_tail(xp, y[m])
        erfc[m] = v
        erf[m] = 1.0 - v
    return erf, erfc


def _as64(a):
    return a if a.dtype == _F64 else a.astype(_F64)


def erf(xp, a):
    """The error function of a floating array."""
    x = _as64(a)
    e, _ = _cody(xp, xp.abs(x))
    r = xp.copysign(e, x)
    return r if a.dtype == _F64 else r.astype(a.dtype)


def erfc(xp, a):
    """The complementary error function ``1 - erf`` of a floating array (no cancellation for large inputs)."""
    x = _as64(a)
    _, c = _cody(xp, xp.abs(x))
    r = xp.where(x < 0, 2.0 - c, c)
    return r if a.dtype == _F64 else r.astype(a.dtype)


def _horner(xp, coeffs, w):
    p = xp.full(w.shape, coeffs[0])
    for c in coeffs[1:]:
        p = p * w + c
    return p


def erfinv(xp, a):
    """The inverse error function of a floating array: ±inf at ±1, NaN outside [-1, 1]."""
    y = _as64(a)
    s = xp.abs(y)
    q = 1.0 - s  # exact for s >= 0.5 (Sterbenz), so the tail keeps full relative accuracy
    w = -xp.log(q * (1.0 + s))
    t = xp.where(w < 5.0, _horner(xp, _G_CENTRAL, w - 2.5), _horner(xp, _G_TAIL, xp.sqrt(w) - 3.0)) * s
    # Giles' fit covers float32's range (w < 16); deeper tails start from erfc's asymptote
    # erfc(t) ~ exp(-t^2) / (t sqrt(pi)) instead.
    lq = -xp.log(q)
    tail = xp.sqrt(lq)
    for _ in range(2):
        tail = xp.sqrt(lq - xp.log(tail * math.sqrt(math.pi)))
    t = xp.where(w < 16.0, t, tail)
    # Newton steps take that to full float64 accuracy: on erf(t) = s in the centre, and on
    # log(erfc(t)) = log(1 - s) past 0.5, where erf(t) - s would cancel and log(erfc) is nearly quadratic.
    for _ in range(3):
        e, c = _cody(xp, t)
        d = (2.0 * _SQRPI) * _exp_neg_sq(xp, t)
        t = xp.where(s > 0.5, t + xp.log(c / q) * c / d, t - (e - s) / d)
    r = xp.copysign(t, y)
    r = xp.where(s == 1.0, xp.copysign(math.inf, y), r)
    r = xp.where(s > 1.0, math.nan, r)
    return r if a.dtype == _F64 else r.astype(a.dtype)
