"""Unary math, special functions, rounding/sign, and binary pointwise math (where, clamp, maximum, lerp, ...)."""
import math

import numpy as np
import pytest

import disttorch
from helpers import UNARY_SHAPES, assert_close, check_complex_grad, check_grad, rand_array

T = disttorch.tensor


def _np_sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# name -> (function, NumPy reference, input range for forward and gradcheck)
UNARY_FLOAT = {
    "exp": (disttorch.exp, np.exp, (-2, 2)),
    "exp2": (disttorch.exp2, np.exp2, (-2, 2)),
    "expm1": (disttorch.expm1, np.expm1, (-2, 2)),
    "log": (disttorch.log, np.log, (0.2, 3)),
    "log2": (disttorch.log2, np.log2, (0.2, 3)),
    "log10": (disttorch.log10, np.log10, (0.2, 3)),
    "log1p": (disttorch.log1p, np.log1p, (-0.5, 2)),
    "sqrt": (disttorch.sqrt, np.sqrt, (0.2, 3)),
    "rsqrt": (disttorch.rsqrt, lambda a: 1 / np.sqrt(a), (0.2, 3)),
    "sin": (disttorch.sin, np.sin, (-3, 3)),
    "cos": (disttorch.cos, np.cos, (-3, 3)),
    "tan": (disttorch.tan, np.tan, (-1.2, 1.2)),
    "asin": (disttorch.asin, np.arcsin, (-0.9, 0.9)),
    "acos": (disttorch.acos, np.arccos, (-0.9, 0.9)),
    "atan": (disttorch.atan, np.arctan, (-3, 3)),
    "sinh": (disttorch.sinh, np.sinh, (-2, 2)),
    "cosh": (disttorch.cosh, np.cosh, (-2, 2)),
    "tanh": (disttorch.tanh, np.tanh, (-2, 2)),
    "asinh": (disttorch.asinh, np.arcsinh, (-2, 2)),
    "acosh": (disttorch.acosh, np.arccosh, (1.2, 3)),
    "atanh": (disttorch.atanh, np.arctanh, (-0.9, 0.9)),
    "sigmoid": (disttorch.sigmoid, _np_sigmoid, (-4, 4)),
    "logit": (disttorch.logit, lambda a: np.log(a / (1 - a)), (0.1, 0.9)),
    "erf": (disttorch.erf, np.vectorize(math.erf), (-2, 2)),
    "erfc": (disttorch.erfc, np.vectorize(math.erfc), (-2, 2)),
    "erfinv": (disttorch.erfinv, None, (-0.9, 0.9)),
    "deg2rad": (disttorch.deg2rad, np.deg2rad, (-90, 90)),
    "rad2deg": (disttorch.rad2deg, np.rad2deg, (-2, 2)),
    "frac": (disttorch.frac, lambda a: a - np.trunc(a), (-3, 3)),
}


def _close_to_grid(a):
    """Move values off the integer grid so frac's jumps stay away from finite differences."""
    return np.where(np.abs(a - np.round(a)) < 0.1, a + 0.25, a)


@pytest.mark.parametrize("name", list(UNARY_FLOAT))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unary_float_forward(name, dtype):
    fn, ref, (lo, hi) = UNARY_FLOAT[name]
    a = rand_array((3, 4), dtype, lo, hi)
    out = fn(T(a))
    assert out.dtype is disttorch.tensor(a).dtype
    if ref is not None:
        expected = ref(a.astype(np.float64))
        assert_close(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    # Methods are the same functions.
    assert_close(getattr(T(a), name)(), out.numpy())


@pytest.mark.parametrize("name", ["exp", "sqrt", "sin", "sigmoid", "erf", "log1p", "tanh", "deg2rad"])
def test_unary_float_int_input_computes_in_default_float(name):
    fn, ref, _ = UNARY_FLOAT[name]
    out = fn(T([0, 1, 2]))
    assert out.dtype is disttorch.float32
    assert_close(out, ref(np.array([0.0, 1.0, 2.0])), rtol=1e-6)


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "sigmoid", "tanh", "erf", "sin"])
@pytest.mark.parametrize("dtype", [disttorch.float16, disttorch.bfloat16])
def test_unary_low_precision_smoke(name, dtype):
    fn, ref, (lo, hi) = UNARY_FLOAT[name]
    a = rand_array((5,), np.float32, lo, hi)
    x = T(a).to(dtype)
    out = fn(x)
    assert out.dtype is dtype
    assert_close(out.float(), ref(x.float().numpy().astype(np.float64)), rtol=2e-2, atol=1e-2)


@pytest.mark.parametrize("shape", UNARY_SHAPES)
def test_unary_shapes(shape):
    a = rand_array(shape, low=0.2, high=2.0)
    for fn, ref in ((disttorch.exp, np.exp), (disttorch.log, np.log), (disttorch.abs, np.abs),
                    (disttorch.floor, np.floor), (disttorch.sigmoid, _np_sigmoid)):
        out = fn(T(a))
        assert tuple(out.shape) == shape
        assert_close(out, ref(a))


def test_ieee_results_without_warnings():
    # The suite turns RuntimeWarnings into errors: these must be silent, as in PyTorch.
    assert_close(disttorch.log(T([0.0, -1.0])), np.array([-np.inf, np.nan]))
    assert_close(disttorch.sqrt(T([-1.0])), np.array([np.nan]))
    assert_close(disttorch.exp(T([1000.0])), np.array([np.inf]))
    assert_close(disttorch.atanh(T([1.0])), np.array([np.inf]))
    assert_close(disttorch.sigmoid(T([-1000.0, 1000.0])), np.array([0.0, 1.0]))
    assert_close(T([1e38]) * T([1e38]), np.array([np.inf]))


# ---- erf family -----------------------------------------------------------------------------------------
def test_erf_erfc_match_math_across_range():
    x = np.linspace(-6, 6, 2001)
    assert_close(disttorch.erf(T(x)), np.array([math.erf(v) for v in x]), rtol=1e-14, atol=1e-300)
    assert_close(disttorch.erfc(T(x)), np.array([math.erfc(v) for v in x]), rtol=1e-14, atol=1e-300)
    tail = np.linspace(6, 26, 101)
    assert_close(disttorch.erfc(T(tail)), np.array([math.erfc(v) for v in tail]), rtol=1e-13, atol=1e-300)
    special = T([0.0, np.inf, -np.inf, np.nan, 40.0, -40.0])
    assert_close(disttorch.erf(special), np.array([0.0, 1.0, -1.0, np.nan, 1.0, -1.0]))
    assert_close(disttorch.erfc(special), np.array([1.0, 0.0, 2.0, np.nan, 0.0, 2.0]))


def test_erfinv_inverts_erf():
    y = np.concatenate([np.linspace(-0.999, 0.999, 999), 1 - np.logspace(-15, -2, 27), [1e-12, -0.5]])
    x = disttorch.erfinv(T(y)).numpy()
    assert_close(np.array([math.erf(v) for v in x]), y, rtol=1e-14, atol=2e-16)
    tails = 1 - np.logspace(-15, -2, 27)
    assert_close(np.array([math.erfc(v) for v in x[999:1026]]), 1 - tails, rtol=1e-12)
    assert_close(disttorch.erfinv(T([0.5])), np.array([0.4769362762044699]), rtol=1e-15)
    assert_close(disttorch.erfinv(T([1.0, -1.0, 1.5, np.nan])), np.array([np.inf, -np.inf, np.nan, np.nan]))


def test_erf_float32_accuracy():
    x = np.linspace(-4, 4, 101).astype(np.float32)
    assert_close(disttorch.erf(T(x)), np.array([math.erf(v) for v in x.astype(np.float64)]), rtol=1e-6, atol=1e-7)


# ---- dtype-keeping ops ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [disttorch.int64, disttorch.int32, disttorch.uint8])
def test_int_dtype_kept(dtype):
    x = T([3, 0, 5], dtype=dtype)
    for fn in (disttorch.abs, disttorch.sign, disttorch.floor, disttorch.ceil, disttorch.round, disttorch.trunc,
               disttorch.relu):
        assert fn(x).dtype is dtype
    assert_close(disttorch.abs(T([-3, 2])), np.array([3, 2]))
    assert_close(disttorch.sign(T([-3, 0, 2])), np.array([-1, 0, 1]))
    assert_close(disttorch.relu(T([-3, 0, 2])), np.array([0, 0, 2]))


def test_sign_family():
    x = T([-2.0, -0.0, 0.0, 3.0, np.nan, -np.inf])
    assert_close(disttorch.sign(x), np.array([-1.0, 0.0, 0.0, 1.0, 0.0, -1.0]))  # NaN -> 0 as PyTorch
    assert_close(disttorch.sgn(x), np.array([-1.0, 0.0, 0.0, 1.0, 0.0, -1.0]))
    assert disttorch.signbit(x).tolist() == [True, True, False, False, False, True]
    assert disttorch.signbit(T([-1, 0, 2])).tolist() == [True, False, False]
    assert disttorch.sign(T([True, False])).dtype is disttorch.bool


def test_rounding():
    x = T([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, -2.6])
    assert_close(disttorch.round(x), np.array([0.0, 2.0, 2.0, -0.0, -2.0, 2.0, -3.0]))  # half to even
    assert_close(disttorch.floor(x), np.floor(x.numpy()))
    assert_close(disttorch.ceil(x), np.ceil(x.numpy()))
    assert_close(disttorch.trunc(x), np.trunc(x.numpy()))
    assert_close(disttorch.fix(x), np.trunc(x.numpy()))
    assert_close(disttorch.round(T([1.2345, 2.5e-3], dtype=disttorch.float64), decimals=2), np.array([1.23, 0.0]))
    assert_close(disttorch.round(T([1234.5, 1250.0], dtype=disttorch.float64), decimals=-2), np.array([1200.0, 1200.0]))
    assert_close(disttorch.frac(T([1.25, -1.25])), np.array([0.25, -0.25]))
    with pytest.raises(RuntimeError, match="frac"):
        disttorch.frac(T([1, 2]))


def test_nan_to_num_and_relu():
    x = T([np.nan, np.inf, -np.inf, 1.5])
    info = np.finfo(np.float32)
    assert_close(disttorch.nan_to_num(x), np.array([0.0, info.max, info.min, 1.5]))
    assert_close(disttorch.nan_to_num(x, nan=1.0, posinf=2.0, neginf=-2.0), np.array([1.0, 2.0, -2.0, 1.5]))
    bf = x.to(disttorch.bfloat16)
    assert disttorch.isfinite(disttorch.nan_to_num(bf)).all().item()
    assert_close(disttorch.relu(T([-1.0, 0.0, 2.0, np.nan])), np.array([0.0, 0.0, 2.0, np.nan]))
    with pytest.raises(RuntimeError):
        disttorch.relu(T([True]))


def test_logit_eps():
    x = T([0.0, 0.5, 1.0], dtype=disttorch.float64)
    eps = 1e-3
    expected = np.log(np.clip(x.numpy(), eps, 1 - eps) / (1 - np.clip(x.numpy(), eps, 1 - eps)))
    assert_close(disttorch.logit(x, eps=eps), expected)


# ---- binary pointwise ------------------------------------------------------------------------------------
def test_where():
    c = T([True, False, True])
    a, b = T([1.0, 2.0, 3.0]), T([-1.0, -2.0, -3.0])
    assert_close(disttorch.where(c, a, b), np.array([1.0, -2.0, 3.0]))
    assert_close(disttorch.where(c, a, 0.0), np.array([1.0, 0.0, 3.0]))
    assert_close(disttorch.where(c, 1.0, b), np.array([1.0, -2.0, 1.0]))
    assert disttorch.where(c, 1.0, 0.0).dtype is disttorch.float32
    assert disttorch.where(c, 1, 0).dtype is disttorch.int64
    assert disttorch.where(c, T([1, 2, 3]), 0.5).dtype is disttorch.float32
    assert_close(a.where(c, b), np.array([1.0, -2.0, 3.0]))
    out = disttorch.where(T([[True], [False]]), a, b)
    assert tuple(out.shape) == (2, 3)
    with pytest.raises(RuntimeError, match="where expected condition to be a boolean tensor"):
        disttorch.where(T([1.0, 0.0, 1.0]), a, b)
    with pytest.raises(RuntimeError, match="where"):
        disttorch.where(c, a, disttorch.ones(4))


def test_clamp():
    a = rand_array((3, 4), low=-2, high=2)
    assert_close(disttorch.clamp(T(a), -0.5, 0.5), np.clip(a, -0.5, 0.5))
    assert_close(disttorch.clamp(T(a), min=0.0), np.maximum(a, 0.0))
    assert_close(disttorch.clamp(T(a), max=0.0), np.minimum(a, 0.0))
    assert_close(disttorch.clip(T(a), -1, 1), np.clip(a, -1, 1))
    assert_close(disttorch.clamp_min(T(a), 0.1), np.maximum(a, 0.1))
    assert_close(disttorch.clamp_max(T(a), 0.1), np.minimum(a, 0.1))
    lo, hi = rand_array((4,), low=-1, high=0), rand_array((3, 1), low=0, high=1)
    assert_close(disttorch.clamp(T(a), T(lo), T(hi)), np.minimum(np.maximum(a, lo), hi))
    assert_close(disttorch.clamp(T([1.0, 5.0]), min=3.0, max=2.0), np.array([2.0, 2.0]))  # min > max -> max
    assert_close(disttorch.clamp(T([np.nan, 1.0]), 0.0, 0.5), np.array([np.nan, 0.5]))
    assert disttorch.clamp(T([1, 5]), 0, 3).dtype is disttorch.int64
    assert disttorch.clamp(T([1, 5]), 0.5).dtype is disttorch.float32
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max' must not be None"):
        disttorch.clamp(T([1.0]))


def test_maximum_minimum_fmax_fmin():
    a, b = T([1.0, np.nan, 3.0, np.nan]), T([2.0, 1.0, np.nan, np.nan])
    assert_close(disttorch.maximum(a, b), np.array([2.0, np.nan, np.nan, np.nan]))
    assert_close(disttorch.minimum(a, b), np.array([1.0, np.nan, np.nan, np.nan]))
    assert_close(disttorch.fmax(a, b), np.array([2.0, 1.0, 3.0, np.nan]))
    assert_close(disttorch.fmin(a, b), np.array([1.0, 1.0, 3.0, np.nan]))
    assert disttorch.maximum(T([1, 4]), T([3, 2])).tolist() == [3, 4]


def test_binary_math_forward():
    a, b = rand_array((2, 3), low=0.2, high=2), rand_array((3,), low=-2, high=2)
    assert_close(disttorch.atan2(T(a), T(b)), np.arctan2(a, b))
    assert_close(disttorch.arctan2(T(a), T(b)), np.arctan2(a, b))
    assert_close(disttorch.hypot(T(a), T(b)), np.hypot(a, b))
    assert_close(disttorch.logaddexp(T(a), T(b)), np.logaddexp(a, b))
    assert_close(disttorch.logaddexp2(T(a), T(b)), np.logaddexp2(a, b))
    assert_close(disttorch.copysign(T(a), T(b)), np.copysign(a, b))
    assert_close(disttorch.xlogy(T(b), T(a)), b * np.log(a))
    assert_close(disttorch.xlogy(T([0.0, 0.0, 1.0]), T([0.0, np.nan, 0.0])), np.array([0.0, np.nan, -np.inf]))
    assert_close(disttorch.xlogy(2.0, T(a)), 2.0 * np.log(a))
    assert disttorch.atan2(T([1, 2]), T([3, 4])).dtype is disttorch.float32


def test_lerp_addcmul_addcdiv():
    s, e = rand_array((2, 3)), rand_array((3,))
    w = rand_array((2, 3), low=0, high=1)
    assert_close(disttorch.lerp(T(s), T(e), 0.3), s + 0.3 * (e - s))
    assert_close(disttorch.lerp(T(s), T(e), 0.8), s + 0.8 * (e - s))
    assert_close(disttorch.lerp(T(s), T(e), T(w)), s + w * (e - s))
    t1, t2 = rand_array((2, 3)), rand_array((3,), low=0.5, high=2)
    assert_close(disttorch.addcmul(T(s), T(t1), T(t2), value=0.5), s + 0.5 * t1 * t2)
    assert_close(disttorch.addcdiv(T(s), T(t1), T(t2), value=-2), s - 2 * t1 / t2)
    with pytest.raises(RuntimeError, match="Integer division with addcdiv is no longer supported"):
        disttorch.addcdiv(T([1]), T([1]), T([2]))


# ---- autograd -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n in UNARY_FLOAT if n != "frac"])
def test_unary_gradcheck(name):
    fn, _, (lo, hi) = UNARY_FLOAT[name]
    check_grad(fn, rand_array((2, 3), low=lo, high=hi))


def test_unary_gradcheck_shapes_and_frac():
    check_grad(disttorch.exp, rand_array(()))
    check_grad(disttorch.sin, rand_array((0, 2)))
    check_grad(disttorch.frac, _close_to_grid(rand_array((5,), low=-3, high=3)))
    check_grad(lambda x: disttorch.logit(x, eps=0.05), rand_array((5,), low=0.1, high=0.9))
    check_grad(disttorch.abs, np.array([-1.5, -0.5, 0.5, 2.0]))
    check_grad(disttorch.relu, np.array([-1.5, -0.5, 0.5, 2.0]))
    check_grad(disttorch.nan_to_num, rand_array((4,)))


@pytest.mark.parametrize("fn", [disttorch.exp, disttorch.tanh, disttorch.sigmoid, disttorch.sin, disttorch.log])
def test_unary_gradgradcheck(fn):
    check_grad(fn, rand_array((4,), low=0.3, high=2.0), gradgrad=True)


@pytest.mark.parametrize("fn", [disttorch.floor, disttorch.ceil, disttorch.round, disttorch.trunc, disttorch.sign])
def test_rounding_grad_is_zero(fn):
    x = T([0.3, -1.7, 2.5], requires_grad=True)
    y = fn(x)
    assert y.requires_grad
    y.sum().backward()
    assert_close(x.grad, np.zeros(3))


def test_kink_gradients_follow_pytorch():
    x = T([0.0, -1.0, 2.0], requires_grad=True)
    disttorch.abs(x).sum().backward()
    assert_close(x.grad, np.array([0.0, -1.0, 1.0]))  # abs'(0) = 0
    x = T([0.0, 1.0, 2.0], requires_grad=True)
    disttorch.relu(x).sum().backward()
    assert_close(x.grad, np.array([0.0, 1.0, 1.0]))
    x = T([-1.0, -0.5, 0.0, 0.5, 1.0], requires_grad=True)
    disttorch.clamp(x, -0.5, 0.5).sum().backward()
    assert_close(x.grad, np.array([0.0, 1.0, 1.0, 1.0, 0.0]))  # gradient passes where min <= x <= max
    a = T([1.0, 2.0, 3.0], requires_grad=True)
    b = T([1.0, 1.0, 4.0], requires_grad=True)
    disttorch.maximum(a, b).sum().backward()
    assert_close(a.grad, np.array([0.5, 1.0, 0.0]))  # ties split evenly
    assert_close(b.grad, np.array([0.5, 0.0, 1.0]))
    a.grad = b.grad = None
    disttorch.minimum(a, b).sum().backward()
    assert_close(a.grad, np.array([0.5, 0.0, 1.0]))
    assert_close(b.grad, np.array([0.5, 1.0, 0.0]))


def test_binary_math_gradcheck():
    a, b = rand_array((2, 3), low=0.3, high=2), rand_array((3,), low=-2, high=-0.3)
    for fn in (disttorch.atan2, disttorch.hypot, disttorch.logaddexp, disttorch.logaddexp2, disttorch.copysign,
               disttorch.maximum, disttorch.minimum, disttorch.fmax, disttorch.fmin):
        check_grad(fn, a, b)
    check_grad(disttorch.xlogy, b, a)
    check_grad(lambda x: disttorch.xlogy(x, 2.0), b)
    check_grad(lambda y: disttorch.xlogy(1.5, y), a)


def test_where_clamp_lerp_gradcheck():
    cond = T([[True, False, True], [False, False, True]])
    a, b = rand_array((2, 3)), rand_array((3,))
    check_grad(lambda x, y: disttorch.where(cond, x, y), a, b)
    check_grad(lambda x: disttorch.where(cond, x, 0.0), a)
    x = np.array([-1.7, -0.2, 0.3, 1.6])
    check_grad(lambda t: disttorch.clamp(t, -1.0, 1.0), x)
    check_grad(lambda t: disttorch.clamp(t, min=0.0), x)
    check_grad(lambda t, lo, hi: disttorch.clamp(t, lo, hi), x, np.array([-1.0, 0.0, -0.5, 0.8]),
               np.array([1.0, 0.5, 0.1, 1.2]))
    check_grad(lambda t, lo: disttorch.clamp(t, min=lo), x, np.array([-1.0, 0.0, -0.5, 0.8]))
    s, e, w = rand_array((2, 3)), rand_array((3,)), rand_array((2, 3), low=0, high=1)
    check_grad(disttorch.lerp, s, e, w)
    check_grad(lambda p, q: disttorch.lerp(p, q, 0.7), s, e)
    check_grad(lambda p, q, r: disttorch.addcmul(p, q, r, value=0.5), s, e, w)
    check_grad(lambda p, q, r: disttorch.addcdiv(p, q, r, value=-1.5), s, e, w + 0.5)


def test_clamp_tensor_bound_gradients():
    x = T([0.0, 2.0, 5.0], requires_grad=True)
    lo = T([1.0, 1.0, 1.0], requires_grad=True)
    hi = T([3.0, 3.0, 3.0], requires_grad=True)
    disttorch.clamp(x, lo, hi).sum().backward()
    assert_close(x.grad, np.array([0.0, 1.0, 0.0]))
    assert_close(lo.grad, np.array([1.0, 0.0, 0.0]))
    assert_close(hi.grad, np.array([0.0, 0.0, 1.0]))


@pytest.mark.parametrize("special", [None, np.nan, np.inf, -np.inf])
def test_where_with_scalar_zero_matches_numpy_bit_for_bit(special):
    # where(c, x, 0) takes a multiply fast path; it must equal np.where exactly, signs of zero included.
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    x[0, 0] = -0.0
    if special is not None:
        x[2, 3] = special
    c = rng.random((6, 5)) > 0.5
    c[0, 0] = True
    for got, want in [(disttorch.where(disttorch.tensor(c), disttorch.tensor(x), 0.0), np.where(c, x, 0.0)),
                      (disttorch.where(disttorch.tensor(c), 0.0, disttorch.tensor(x)), np.where(c, 0.0, x))]:
        got = got.numpy()
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


# ---- complex gradients: PyTorch's grad * conj(f'(z)) ------------------------------------------------------------
_CRNG = np.random.default_rng(7)
# Off both axes, where every branch cut of these functions lies: finite differences stay on one branch.
_Z = (_CRNG.uniform(0.3, 0.9, (2, 3)) * _CRNG.choice([-1, 1], (2, 3))
      + 1j * _CRNG.uniform(0.3, 0.9, (2, 3)) * _CRNG.choice([-1, 1], (2, 3)))
# name -> (function, NumPy derivative f'(z))
COMPLEX_HOLOMORPHIC = {
    "exp": (disttorch.exp, np.exp),
    "exp2": (disttorch.exp2, lambda z: np.log(2) * np.exp2(z)),
    "expm1": (disttorch.expm1, np.exp),
    "log": (disttorch.log, lambda z: 1 / z),
    "log2": (disttorch.log2, lambda z: 1 / (z * np.log(2))),
    "log10": (disttorch.log10, lambda z: 1 / (z * np.log(10))),
    "log1p": (disttorch.log1p, lambda z: 1 / (1 + z)),
    "sqrt": (disttorch.sqrt, lambda z: 0.5 / np.sqrt(z)),
    "rsqrt": (disttorch.rsqrt, lambda z: -0.5 * z ** -1.5),
    "sin": (disttorch.sin, np.cos),
    "cos": (disttorch.cos, lambda z: -np.sin(z)),
    "tan": (disttorch.tan, lambda z: 1 / np.cos(z) ** 2),
    "asin": (disttorch.asin, lambda z: 1 / np.sqrt(1 - z * z)),
    "acos": (disttorch.acos, lambda z: -1 / np.sqrt(1 - z * z)),
    "atan": (disttorch.atan, lambda z: 1 / (1 + z * z)),
    "sinh": (disttorch.sinh, np.cosh),
    "cosh": (disttorch.cosh, np.sinh),
    "tanh": (disttorch.tanh, lambda z: 1 / np.cosh(z) ** 2),
    "asinh": (disttorch.asinh, lambda z: 1 / np.sqrt(z * z + 1)),
    "acosh": (disttorch.acosh, lambda z: 1 / (np.sqrt(z - 1) * np.sqrt(z + 1))),
    "atanh": (disttorch.atanh, lambda z: 1 / (1 - z * z)),
    "sigmoid": (disttorch.sigmoid, lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
}


@pytest.mark.parametrize("name", sorted(COMPLEX_HOLOMORPHIC))
def test_complex_gradient_conjugates_the_derivative(name):
    fn, deriv = COMPLEX_HOLOMORPHIC[name]
    up = _CRNG.standard_normal((2, 3)) + 1j * _CRNG.standard_normal((2, 3))
    z = T(_Z, requires_grad=True)
    (g,) = disttorch.autograd.grad(fn(z), [z], T(up))
    assert_close(g, up * np.conj(deriv(_Z)), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", sorted(COMPLEX_HOLOMORPHIC))
def test_complex_gradcheck(name):
    check_complex_grad(COMPLEX_HOLOMORPHIC[name][0], _Z, gradgrad=name in ("exp", "sqrt", "acosh"))
