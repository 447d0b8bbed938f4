"""Special functions: ``torch.special``.

The gamma family, Bessel and Airy functions, error-function relatives, orthogonal polynomials and the
numerically careful helpers (``xlog1py``, ``logsumexp``, ``log_softmax``...), with PyTorch's names,
signatures, dtype rules and gradients. Names that PyTorch also has at top level are the same functions here
(``torch.special.gammaln is torch.lgamma``, ``torch.special.erf is torch.erf``). Forward values come from
``scipy.special`` (imported on first use).

Example:
    >>> import disttorch as torch
    >>> torch.special.gammaln(torch.tensor([1.0, 5.0]))
    tensor([0.0000, 3.1781])
"""
from __future__ import annotations

from .ops.elementwise import _out
from .ops.pointwise import erf, erfc, erfinv, exp2, expm1, log1p, logit, round, sigmoid as expit, xlogy  # noqa: A004
from .ops.softmax import logsumexp as _logsumexp
from .ops.softmax import log_softmax, softmax
from .ops.special_fns import (
    digamma, entr, erfcx, i0, i0e, i1, i1e, igamma as gammainc, igammac as gammaincc, lgamma as gammaln, log_ndtr,
    mvlgamma as multigammaln, ndtr, ndtri, polygamma, sinc, xlog1py, zeta,
)
from .ops.special_nograd import (
    airy_ai, bessel_j0, bessel_j1, bessel_y0, bessel_y1, chebyshev_polynomial_t, chebyshev_polynomial_u,
    chebyshev_polynomial_v, chebyshev_polynomial_w, hermite_polynomial_h, hermite_polynomial_he,
    laguerre_polynomial_l, legendre_polynomial_p, modified_bessel_i0, modified_bessel_i1, modified_bessel_k0,
    modified_bessel_k1, scaled_modified_bessel_k0, scaled_modified_bessel_k1, shifted_chebyshev_polynomial_t,
    shifted_chebyshev_polynomial_u, shifted_chebyshev_polynomial_v, shifted_chebyshev_polynomial_w,
    spherical_bessel_j0,
)

__all__ = [
    "airy_ai", "bessel_j0", "bessel_j1", "bessel_y0", "bessel_y1", "chebyshev_polynomial_t", "chebyshev_polynomial_u",
    "chebyshev_polynomial_v", "chebyshev_polynomial_w", "digamma", "entr", "erf", "erfc", "erfcx", "erfinv", "exp2",
    "expit", "expm1", "gammainc", "gammaincc", "gammaln", "hermite_polynomial_h", "hermite_polynomial_he", "i0",
    "i0e", "i1", "i1e", "laguerre_polynomial_l", "legendre_polynomial_p", "log1p", "log_ndtr", "log_softmax", "logit",
    "logsumexp", "modified_bessel_i0", "modified_bessel_i1", "modified_bessel_k0", "modified_bessel_k1",
    "multigammaln", "ndtr", "ndtri", "polygamma", "psi", "round", "scaled_modified_bessel_k0",
    "scaled_modified_bessel_k1", "shifted_chebyshev_polynomial_t", "shifted_chebyshev_polynomial_u",
    "shifted_chebyshev_polynomial_v", "shifted_chebyshev_polynomial_w", "sinc", "softmax", "spherical_bessel_j0",
    "xlog1py", "xlogy", "zeta",
]

psi = digamma


def logsumexp(input, dim, keepdim: bool = False, *, out=None):
    """``log(sum(exp(input), dim))`` computed stably (the same as ``torch.logsumexp``)."""
    r = _logsumexp(input, dim, keepdim)
    return r if out is None else _out(r, out)
