"""torch.special and the top-level gamma/Bessel functions: forward against closed forms, series and independent
recurrences (scipy.special only where no simpler reference exists), PyTorch's dtype rules and errors, edge values
measured on PyTorch 2.13 (CPU), and gradients by gradcheck in float64."""
from __future__ import annotations

import math

import numpy as np
import pytest

import disttorch as torch
from disttorch.autograd import gradcheck, gradgradcheck

S = torch.special
EULER = 0.5772156649015329
rng = np.random.default_rng(11)


def npy(t):
    return t.detach().numpy()


def t64(a, requires_grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def close(t, expected, rtol=1e-12, atol=1e-14):
    np.testing.assert_allclose(npy(t).astype(np.float64), np.asarray(expected, dtype=np.float64), rtol=rtol, atol=atol,
                               equal_nan=True)


# ---- the namespace --------------------------------------------------------------------------------------------
PYTORCH_SPECIAL = [
    "airy_ai", "bessel_j0", "bessel_j1", "bessel_y0", "bessel_y1", "chebyshev_polynomial_t", "chebyshev_polynomial_u",
    "chebyshev_polynomial_v", "chebyshev_polynomial_w", "digamma", "entr", "erf", "erfc", "erfcx", "erfinv", "exp2",
    "expit", "expm1", "gammainc", "gammaincc", "gammaln", "hermite_polynomial_h", "hermite_polynomial_he", "i0",
    "i0e", "i1", "i1e", "laguerre_polynomial_l", "legendre_polynomial_p", "log1p", "log_ndtr", "log_softmax", "logit",
    "logsumexp", "modified_bessel_i0", "modified_bessel_i1", "modified_bessel_k0", "modified_bessel_k1",
    "multigammaln", "ndtr", "ndtri", "polygamma", "psi", "round", "scaled_modified_bessel_k0",
    "scaled_modified_bessel_k1", "shifted_chebyshev_polynomial_t", "shifted_chebyshev_polynomial_u",
    "shifted_chebyshev_polynomial_v", "shifted_chebyshev_polynomial_w", "sinc", "softmax", "spherical_bessel_j0",
    "xlog1py", "xlogy", "zeta"]


def test_every_pytorch_special_function_exists():
    missing = [n for n in PYTORCH_SPECIAL if not callable(getattr(S, n, None))]
    assert not missing
    assert sorted(S.__all__) == sorted(PYTORCH_SPECIAL)


def test_aliases_are_the_top_level_functions():
    assert S.gammaln is torch.lgamma and S.psi is S.digamma is torch.digamma
    assert S.polygamma is torch.polygamma and S.multigammaln is torch.mvlgamma
    assert S.i0 is torch.i0 and S.sinc is torch.sinc and S.gammainc is torch.igamma and S.gammaincc is torch.igammac
    assert S.erf is torch.erf and S.erfc is torch.erfc and S.erfinv is torch.erfinv and S.expit is torch.sigmoid
    assert S.exp2 is torch.exp2 and S.expm1 is torch.expm1 and S.log1p is torch.log1p and S.logit is torch.logit
    assert S.xlogy is torch.xlogy and S.round is torch.round


def test_import_disttorch_does_not_import_scipy():
    import subprocess
    import sys

    code = ("import sys, disttorch, disttorch.special, disttorch.fft; "
            "print(any(m.startswith('scipy') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


# ---- gamma family -------------------------------------------------------------------------------------------
def test_lgamma_digamma_polygamma_closed_forms():
    n = np.arange(1, 15)
    close(torch.lgamma(t64(n)), [math.lgamma(v) for v in n])
    x = np.array([-2.5, -0.5, 0.1, 0.5, 3.7, 40.0])
    close(S.gammaln(t64(x)), [math.lgamma(v) for v in x], rtol=1e-13)
    harmonic = np.cumsum(1.0 / np.arange(1, 14))
    close(torch.digamma(t64(np.arange(2, 15))), harmonic - EULER, rtol=1e-13)
    close(S.psi(t64([1.0, 0.5])), [-EULER, -EULER - 2 * math.log(2)], rtol=1e-13)
    # trigamma: pi^2/6 at 1, pi^2/2 at 1/2, reflection pi^2/sin^2 at negative non-integers
    close(torch.polygamma(1, t64([1.0, 0.5, 2.0])), [math.pi ** 2 / 6, math.pi ** 2 / 2, math.pi ** 2 / 6 - 1],
          rtol=1e-13)
    close(torch.polygamma(1, t64([-0.5])), [math.pi ** 2 / 2 + 4], rtol=1e-12)  # psi1(x) + psi1(1-x) = pi^2/sin^2
    zeta3 = sum(1.0 / k ** 3 for k in range(1, 200000)) + 1 / (2 * 200000.0 ** 2)
    close(torch.polygamma(2, t64([1.0])), [-2 * zeta3], rtol=1e-10)
    close(torch.polygamma(3, t64([1.0])), [math.pi ** 4 / 15], rtol=1e-12)  # 3! zeta(4)
    close(torch.polygamma(0, t64([3.0])), [1.5 - EULER], rtol=1e-13)


def test_gamma_family_edge_values_as_pytorch():
    # measured on PyTorch 2.13 CPU
    x = t64([-math.inf, -1.0, 0.0, -0.0, math.inf])
    close(torch.lgamma(x), [math.inf] * 5)
    close(torch.digamma(t64([0.0, -0.0, -1.0, -2.0])), [-math.inf, math.inf, math.nan, math.nan])
    close(torch.mvlgamma(torch.tensor([0.2, 1.0]), 2), [3.5613, 1.1447], rtol=1e-4)


def test_mvlgamma_definition():
    x = np.array([2.0, 3.3, 7.0])
    for p in (1, 2, 4):
        ref = [p * (p - 1) / 4 * math.log(math.pi) + sum(math.lgamma(v - j / 2) for j in range(p)) for v in x]
        close(torch.mvlgamma(t64(x), p), ref, rtol=1e-13)
        close(S.multigammaln(t64(x), p=p), ref, rtol=1e-13)


def test_incomplete_gamma_closed_forms():
    x = np.array([0.0, 0.1, 1.0, 2.5, 10.0])
    close(S.gammainc(t64(np.ones(5)), t64(x)), 1 - np.exp(-x), rtol=1e-13)
    close(torch.igamma(t64(np.full(5, 2.0)), t64(x)), 1 - np.exp(-x) * (1 + x), rtol=1e-12, atol=1e-15)
    close(S.gammaincc(t64(np.full(5, 3.0)), t64(x)), np.exp(-x) * (1 + x + x * x / 2), rtol=1e-12)
    close(torch.igammac(t64([0.5]), t64([2.0])), [math.erfc(math.sqrt(2.0))], rtol=1e-12)


def test_zeta_and_xlog1py():
    close(S.zeta(t64([2.0, 4.0]), t64([1.0, 1.0])), [math.pi ** 2 / 6, math.pi ** 4 / 90], rtol=1e-13)
    q = 2.5
    close(S.zeta(t64([6.0]), q), [sum((k + q) ** -6.0 for k in range(20000))], rtol=1e-12)
    close(S.zeta(2.0, t64([1.0])), [math.pi ** 2 / 6], rtol=1e-13)
    # negative non-integer q with integer x (the sum is still defined), as PyTorch
    close(S.zeta(t64([2.0]), t64([-0.5])), [math.pi ** 2 / 2 + 4], rtol=1e-12)
    a, b = np.array([0.0, 0.0, 1.0, 2.0, -1.0, 0.0]), np.array([-1.0, math.nan, -1.0, 0.5, 3.0, -2.0])
    expected = [0.0, math.nan, -math.inf, 2 * math.log1p(0.5), -math.log1p(3.0), 0.0]
    close(S.xlog1py(t64(a), t64(b)), expected)
    close(S.xlog1py(2.0, t64([1.0])), [2 * math.log(2.0)])
    close(S.xlog1py(t64([1.0]), 2), [math.log(3.0)])


# ---- Bessel and friends --------------------------------------------------------------------------------------
def _series(x, order, sign):
    """sum_k sign^k (x/2)^(2k+order) / (k! (k+order)!): I_order (sign +1) or J_order (sign -1)."""
    return [sum(sign ** k * (v / 2) ** (2 * k + order) / (math.factorial(k) * math.factorial(k + order))
                for k in range(60)) for v in x]


def test_bessel_first_kind_against_power_series():
    x = np.array([-3.0, -0.5, 0.0, 0.7, 2.0, 5.5])
    close(torch.i0(t64(x)), _series(x, 0, 1), rtol=1e-13)
    close(S.i1(t64(x)), _series(x, 1, 1), rtol=1e-13)
    close(S.i0e(t64(x)), np.exp(-np.abs(x)) * _series(x, 0, 1), rtol=1e-13)
    close(S.i1e(t64(x)), np.exp(-np.abs(x)) * _series(x, 1, 1), rtol=1e-13)
    close(S.modified_bessel_i0(t64(x)), _series(x, 0, 1), rtol=1e-13)
    close(S.modified_bessel_i1(t64(x)), _series(x, 1, 1), rtol=1e-13)
    close(S.bessel_j0(t64(x)), _series(x, 0, -1), rtol=1e-11, atol=1e-13)
    close(S.bessel_j1(t64(x)), _series(x, 1, -1), rtol=1e-11, atol=1e-13)


def test_bessel_second_kind_airy_spherical():
    import scipy.special as sc  # reference for the functions without an elementary series

    x = np.array([0.1, 0.9, 2.0, 7.5, 30.0])
    for name, ref in [("bessel_y0", sc.y0), ("bessel_y1", sc.y1), ("modified_bessel_k0", sc.k0),
                      ("modified_bessel_k1", sc.k1), ("scaled_modified_bessel_k0", sc.k0e),
                      ("scaled_modified_bessel_k1", sc.k1e)]:
        close(getattr(S, name)(t64(x)), ref(x), rtol=1e-13)
    close(S.scaled_modified_bessel_k0(t64(x)), np.exp(x) * sc.k0(x), rtol=1e-12)
    close(S.airy_ai(t64([0.0])), [1 / (3 ** (2 / 3) * math.gamma(2 / 3))], rtol=1e-13)
    close(S.airy_ai(t64([-3.0, 1.0])), [-0.378814293677658, 0.135292416312881], rtol=1e-12)
    y = np.array([-4.0, -0.3, 1e-9, 2.0, 50.0])
    close(S.spherical_bessel_j0(t64(y)), np.sin(y) / y, rtol=1e-13)
    close(S.spherical_bessel_j0(t64([0.0, math.inf])), [1.0, 0.0])
    # edge values as PyTorch 2.13 gives them
    close(S.bessel_y0(t64([0.0, -1.0])), [-math.inf, math.nan])
    close(S.modified_bessel_k0(t64([0.0, -1.0])), [math.inf, math.nan])


def test_error_function_relatives():
    x = np.array([-5.0, -1.0, 0.0, 0.3, 2.0, 8.0])
    close(S.erfcx(t64(x)), [math.exp(v * v) * math.erfc(v) for v in x], rtol=1e-11)
    close(S.ndtr(t64(x)), [0.5 * math.erfc(-v / math.sqrt(2)) for v in x], rtol=1e-13)
    close(S.log_ndtr(t64(x)), [math.log(0.5 * math.erfc(-v / math.sqrt(2))) for v in x], rtol=1e-12)
    close(S.log_ndtr(t64([-40.0])), [-40.0 ** 2 / 2 - math.log(40.0 * math.sqrt(2 * math.pi)) - 1 / 1600],
          rtol=1e-6)  # asymptotic tail, where log(ndtr) would underflow
    p = np.array([1e-10, 0.025, 0.5, 0.9, 1 - 1e-9])
    close(S.ndtr(S.ndtri(t64(p))), p, rtol=1e-9)
    close(S.ndtri(t64([0.0, 1.0, 0.5])), [-math.inf, math.inf, 0.0])
    close(S.entr(t64([-1.0, 0.0, 0.5, 2.0, math.nan])), [-math.inf, 0.0, 0.5 * math.log(2), -2 * math.log(2), math.nan])
    s = np.array([-2.5, -1.0, 0.0, 1e-5, 0.5, 3.2])
    expected = [1.0 if v == 0 else math.sin(math.pi * v) / (math.pi * v) for v in s]
    close(torch.sinc(t64(s)), expected, rtol=1e-12, atol=1e-16)
    z = np.array([0.5 + 0.5j, 0j])
    np.testing.assert_allclose(npy(torch.sinc(torch.tensor(z))), [np.sin(np.pi * z[0]) / (np.pi * z[0]), 1.0])


def test_softmax_family_and_round():
    x = rng.standard_normal((3, 4))
    e = np.exp(x - x.max(1, keepdims=True))
    close(S.softmax(t64(x), 1), e / e.sum(1, keepdims=True), rtol=1e-13)
    close(S.log_softmax(t64(x), dim=1), np.log(e / e.sum(1, keepdims=True)), rtol=1e-13)
    assert S.softmax(torch.tensor(x), 0, dtype=torch.float64).dtype == torch.float64
    lse = np.log(np.exp(x).sum(0))
    close(S.logsumexp(t64(x), 0), lse, rtol=1e-13)
    o = torch.empty(0, dtype=torch.float64)
    assert S.logsumexp(t64(x), (0, 1), True, out=o) is o and o.shape == (1, 1)
    close(S.round(t64([0.5, 1.5, 2.5, -0.5])), [0.0, 2.0, 2.0, -0.0])


# ---- orthogonal polynomials ------------------------------------------------------------------------------------
def _recurrence(kind, n, x):
    """An independent evaluation: three-term recurrences in plain Python."""
    if n < 0:
        return 0.0
    first = {"t": x, "u": 2 * x, "v": 2 * x - 1, "w": 2 * x + 1, "h": 2 * x, "he": x, "l": 1 - x, "p": x}[kind]
    p, q = 1.0, first
    if n == 0:
        return p
    for k in range(1, n):
        if kind in "tuvw":
            p, q = q, 2 * x * q - p
        elif kind == "h":
            p, q = q, 2 * x * q - 2 * k * p
        elif kind == "he":
            p, q = q, x * q - k * p
        elif kind == "l":
            p, q = q, ((2 * k + 1 - x) * q - k * p) / (k + 1)
        else:
            p, q = q, ((2 * k + 1) * x * q - k * p) / (k + 1)
    return q


POLYS = [("chebyshev_polynomial_t", "t", False), ("chebyshev_polynomial_u", "u", False),
         ("chebyshev_polynomial_v", "v", False), ("chebyshev_polynomial_w", "w", False),
         ("shifted_chebyshev_polynomial_t", "t", True), ("shifted_chebyshev_polynomial_u", "u", True),
         ("shifted_chebyshev_polynomial_v", "v", True), ("shifted_chebyshev_polynomial_w", "w", True),
         ("hermite_polynomial_h", "h", False), ("hermite_polynomial_he", "he", False),
         ("laguerre_polynomial_l", "l", False), ("legendre_polynomial_p", "p", False)]


@pytest.mark.parametrize("name,kind,shifted", POLYS, ids=[p[0] for p in POLYS])
def test_polynomials_against_recurrence(name, kind, shifted):
    x = np.array([-1.0, -0.7, -0.2, 0.0, 0.3, 0.5, 0.8, 1.0, 1.5])
    xs = (x + 1) / 2 if shifted else x  # the shifted ones are evaluated at 2x - 1
    n = np.array([-2, 0, 1, 2, 3, 5, 9, 12])
    fn = getattr(S, name)
    out = fn(t64(xs)[:, None], torch.tensor(n)[None, :])
    expected = [[_recurrence(kind, int(k), 2 * v - 1 if shifted else v) for k in n] for v in xs]
    close(out, expected, rtol=1e-10, atol=1e-10)
    # a float degree is truncated (PyTorch's cast); -0.5 truncates to 0; degree 0 is 1 even at NaN
    close(fn(t64([0.3]), 2.7), [_recurrence(kind, 2, 2 * 0.3 - 1 if shifted else 0.3)], rtol=1e-12)
    close(fn(t64([math.nan, 0.3]), -0.5), [1.0, 1.0])
    assert fn(torch.tensor([0.5]), 2).dtype == torch.float32
    assert fn(torch.tensor([1, 2]), torch.tensor([2])).dtype == torch.float32
    assert fn(t64([0.5]), torch.tensor([2.0])).dtype == torch.float64


def test_polynomial_closed_forms():
    th = np.array([0.3, 1.1, 2.5])
    c = np.cos(th)
    close(S.chebyshev_polynomial_t(t64(c), 7), np.cos(7 * th), rtol=1e-12, atol=1e-13)
    close(S.chebyshev_polynomial_u(t64(c), 7), np.sin(8 * th) / np.sin(th), rtol=1e-11, atol=1e-12)
    close(S.chebyshev_polynomial_v(t64(c), 4), np.cos(4.5 * th) / np.cos(th / 2), rtol=1e-11, atol=1e-12)
    close(S.chebyshev_polynomial_w(t64(c), 4), np.sin(4.5 * th) / np.sin(th / 2), rtol=1e-11, atol=1e-12)
    x = np.array([-1.3, 0.4, 2.0])
    close(S.hermite_polynomial_h(t64(x), 3), 8 * x ** 3 - 12 * x, rtol=1e-13)
    close(S.hermite_polynomial_he(t64(x), 4), x ** 4 - 6 * x ** 2 + 3, rtol=1e-13)
    close(S.laguerre_polynomial_l(t64(x), 2), (x * x - 4 * x + 2) / 2, rtol=1e-13)
    close(S.legendre_polynomial_p(t64(x), 3), (5 * x ** 3 - 3 * x) / 2, rtol=1e-13)


# ---- dtypes ---------------------------------------------------------------------------------------------------
HALF_OK = ["gammaln", "digamma", "i0", "i0e", "i1", "i1e", "entr", "ndtr", "sinc"]
HALF_NOT = ["erfcx", "log_ndtr", "ndtri", "airy_ai", "bessel_j0", "bessel_j1", "bessel_y0", "bessel_y1",
            "modified_bessel_i0", "modified_bessel_i1", "modified_bessel_k0", "modified_bessel_k1",
            "scaled_modified_bessel_k0", "scaled_modified_bessel_k1", "spherical_bessel_j0"]


@pytest.mark.parametrize("name", HALF_OK)
@pytest.mark.parametrize("dt", [torch.float16, torch.bfloat16])
def test_low_precision_computes_in_float32_and_rounds_back(name, dt):
    x = torch.tensor([0.3, 1.7, 4.2], dtype=dt)
    out = getattr(S, name)(x)
    assert out.dtype == dt
    ref = getattr(S, name)(x.float()).to(dt)
    np.testing.assert_array_equal(npy(out.float()), npy(ref.float()))


@pytest.mark.parametrize("name", HALF_NOT)
def test_low_precision_not_implemented_where_pytorch_lacks_it(name):
    for dt, word in ((torch.float16, "Half"), (torch.bfloat16, "BFloat16")):
        with pytest.raises(RuntimeError, match=f'"{name}_cpu" not implemented for \'{word}\''):
            getattr(S, name)(torch.ones(2, dtype=dt))


@pytest.mark.parametrize("name", HALF_OK + HALF_NOT)
def test_integer_inputs_use_default_float(name):
    out = getattr(S, name)(torch.tensor([1, 2, 3]))
    assert out.dtype == torch.float32
    close(out, npy(getattr(S, name)(t64([1.0, 2.0, 3.0]))), rtol=1e-6, atol=1e-6)


def test_binary_and_polygamma_dtypes():
    assert torch.polygamma(2, torch.tensor([1, 2])).dtype == torch.float32
    assert torch.polygamma(1, torch.tensor([1.0], dtype=torch.float16)).dtype == torch.float16
    assert torch.mvlgamma(torch.tensor([3, 4]), 2).dtype == torch.float32
    assert S.xlog1py(torch.tensor([1, 2]), torch.tensor([1, 2])).dtype == torch.float32
    assert S.xlog1py(torch.tensor([1.0], dtype=torch.bfloat16), torch.tensor([1.0], dtype=torch.bfloat16)).dtype \
        == torch.bfloat16
    assert S.zeta(torch.tensor([2]), torch.tensor([1])).dtype == torch.float32
    assert S.gammainc(torch.tensor([1.0], dtype=torch.float16), torch.tensor([1.0], dtype=torch.float16)).dtype \
        == torch.float16


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: torch.polygamma(-1, torch.ones(2)), RuntimeError, "does not support negative n"),
    (lambda: torch.mvlgamma(torch.ones(2), 0), RuntimeError, "p has to be greater than or equal to 1"),
    (lambda: torch.mvlgamma(torch.ones(2, dtype=torch.bool), 1), RuntimeError, "may not be a boolean tensor"),
    (lambda: torch.igamma(torch.ones(2, dtype=torch.int64), torch.ones(2, dtype=torch.int64)), RuntimeError,
     "\"igamma_cpu\" not implemented for 'Long'"),
    (lambda: S.zeta(torch.ones(2, dtype=torch.float16), torch.ones(2, dtype=torch.float16)), RuntimeError,
     "\"zeta_cpu\" not implemented for 'Half'"),
    (lambda: torch.lgamma(torch.ones(2, dtype=torch.complex64)), RuntimeError, "not implemented for 'ComplexFloat'"),
    (lambda: S.chebyshev_polynomial_t(torch.ones(2, dtype=torch.float16), 2), RuntimeError,
     "\"chebyshev_polynomial_t_cpu\" not implemented for 'Half'"),
    (lambda: S.legendre_polynomial_p(torch.ones(2), torch.ones(3)), RuntimeError, "size of tensor"),
])
def test_errors_as_pytorch(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


def test_tensor_methods_and_inplace():
    x = t64([0.5, 2.0, 3.5])
    close(x.lgamma(), npy(torch.lgamma(x)))
    close(x.digamma(), npy(torch.digamma(x)))
    close(x.polygamma(2), npy(torch.polygamma(2, x)))
    close(x.mvlgamma(2), npy(torch.mvlgamma(x, 2)))
    close(x.i0(), npy(torch.i0(x)))
    close(x.sinc(), npy(torch.sinc(x)))
    close(x.igamma(t64([1.0, 1.0, 1.0])), npy(torch.igamma(x, t64([1.0, 1.0, 1.0]))))
    close(x.igammac(2.0), npy(torch.igammac(x, 2.0)))
    for name, args in [("lgamma_", ()), ("digamma_", ()), ("polygamma_", (1,)), ("mvlgamma_", (2,)), ("i0_", ()),
                       ("sinc_", ()), ("igamma_", (t64([0.5, 0.5, 0.5]),)), ("igammac_", (t64([0.5, 0.5, 0.5]),))]:
        y = x.clone()
        expected = npy(getattr(y, name[:-1])(*args))
        assert getattr(y, name)(*args) is y
        close(y, expected)


# ---- gradients ----------------------------------------------------------------------------------------------
UNARY_GRADS = [
    (torch.lgamma, [-2.5, 0.3, 1.7, 6.0]), (torch.digamma, [-0.7, 0.4, 2.2, 9.0]),
    (lambda x: torch.polygamma(1, x), [-0.3, 0.6, 3.0]), (lambda x: torch.polygamma(3, x), [0.8, 2.5]),
    (lambda x: torch.mvlgamma(x, 3), [1.2, 2.0, 4.5]), (torch.i0, [-2.0, 0.5, 3.0]), (S.i0e, [-2.0, 0.5, 3.0]),
    (S.i1, [-2.0, 0.5, 3.0]), (S.i1e, [-2.0, 0.5, 3.0]), (torch.sinc, [-1.3, 0.2, 2.7]), (S.entr, [0.2, 1.0, 3.0]),
    (S.erfcx, [-1.5, 0.0, 2.0]), (S.ndtr, [-2.0, 0.1, 1.5]), (S.log_ndtr, [-6.0, 0.1, 2.0]),
    (S.ndtri, [0.05, 0.5, 0.93]),
]


@pytest.mark.parametrize("fn,x", UNARY_GRADS, ids=[str(i) for i in range(len(UNARY_GRADS))])
def test_unary_gradcheck(fn, x):
    t = t64(x, requires_grad=True)
    assert gradcheck(fn, (t,))


def test_second_derivatives():
    x = t64([0.7, 2.0], requires_grad=True)
    assert gradgradcheck(torch.lgamma, (x,))
    assert gradgradcheck(S.log_ndtr, (x,))
    assert gradgradcheck(S.i1, (x,))


def test_binary_gradients():
    a, x = t64([0.5, 2.0, 4.0]), t64([0.3, 1.5, 6.0], requires_grad=True)
    assert gradcheck(lambda t: S.gammainc(a, t), (x,))
    assert gradcheck(lambda t: S.gammaincc(a, t), (x,))
    q = t64([1.0, 2.5], requires_grad=True)
    assert gradcheck(lambda t: S.zeta(t64([2.0, 3.5]), t), (q,))
    u, v = t64([0.5, -1.0, 2.0], requires_grad=True), t64([0.2, 1.0, 3.0], requires_grad=True)
    assert gradcheck(S.xlog1py, (u, v))


def test_gradients_at_pytorch_special_points():
    # values measured on PyTorch 2.13: i1/i1e have slope 1/2 at 0, sinc 0 at 0, entr +inf at 0
    z = t64([0.0, 1e-20], requires_grad=True)
    for fn, expected in [(S.i1, [0.5, 0.5]), (S.i1e, [0.5, 0.5]), (torch.sinc, [0.0, 0.0]), (S.i0e, [0.0, -1.0])]:
        (g,) = torch.autograd.grad(fn(z).sum(), z)
        close(g, expected, rtol=1e-12)
    (g,) = torch.autograd.grad(S.entr(z).sum(), z)
    close(g, [math.inf, 45.05170185988091], rtol=1e-12)
    u, w = t64([0.0, 0.0, 2.0], requires_grad=True), t64([-1.0, -2.0, 0.5], requires_grad=True)
    gu, gw = torch.autograd.grad(S.xlog1py(u, w).sum(), [u, w])
    close(gu, [0.0, 0.0, math.log1p(0.5)])
    close(gw, [math.nan, -0.0, 2 / 1.5])


def test_no_gradient_where_pytorch_has_none():
    a = t64([2.0, 3.0], requires_grad=True)
    x = t64([0.5, 1.5], requires_grad=True)
    with pytest.raises(NotImplementedError, match="the derivative for 'igamma: input' is not implemented"):
        S.gammainc(a, x).sum().backward()
    with pytest.raises(NotImplementedError, match="the derivative for 'igammac: input' is not implemented"):
        S.gammaincc(a, x.detach()).sum().backward()
    with pytest.raises(NotImplementedError, match="the derivative for 'zeta' is not implemented"):
        S.zeta(a, x.detach()).sum().backward()
    # Bessel/Airy functions and the polynomials give results that do not require grad at all
    for fn in (S.bessel_j0, S.airy_ai, S.modified_bessel_k1, S.spherical_bessel_j0):
        assert not fn(x).requires_grad
    assert not S.chebyshev_polynomial_t(x, a).requires_grad
    assert not S.hermite_polynomial_h(x, 3).requires_grad


def test_float32_gradient_dtype():
    x = torch.tensor([0.5, 2.0], requires_grad=True)
    (torch.lgamma(x) + S.log_ndtr(x) + S.i1e(x)).sum().backward()
    assert x.grad.dtype == torch.float32
