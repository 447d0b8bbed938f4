"""Elementwise arithmetic: add/sub/mul/div (rounding modes), floor_divide, remainder, fmod, pow, operators."""
import math

import ml_dtypes
import numpy as np
import pytest

import disttorch
from helpers import BROADCAST_PAIRS, assert_close, check_complex_grad, check_grad, rand_array

T = disttorch.tensor

BINARY = {
    "add": (disttorch.add, np.add),
    "sub": (disttorch.sub, np.subtract),
    "mul": (disttorch.mul, np.multiply),
    "div": (disttorch.div, np.true_divide),
}


# ---- forward ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("shapes", BROADCAST_PAIRS)
def test_binary_broadcast_forward(name, shapes):
    fn, ref = BINARY[name]
    a, b = rand_array(shapes[0]), rand_array(shapes[1], low=0.5, high=2.0)
    out = fn(T(a), T(b))
    assert tuple(out.shape) == np.broadcast_shapes(*shapes)
    assert_close(out, ref(a, b), check_dtype=disttorch.float64)


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32, np.uint8])
def test_binary_dtypes(name, dtype):
    fn, ref = BINARY[name]
    a = rand_array((2, 3), dtype, low=1, high=9)
    b = rand_array((3,), dtype, low=1, high=4)
    out = fn(T(a), T(b))
    expected = ref(a, b)
    if name == "div" and np.dtype(dtype).kind in "iu":
        expected = expected.astype(np.float32)  # true division of ints gives the default float
    assert out.dtype == disttorch.tensor(expected).dtype
    assert_close(out, expected, rtol=1e-6)


@pytest.mark.parametrize("name", ["add", "mul", "div"])
@pytest.mark.parametrize("dtype", [disttorch.float16, disttorch.bfloat16])
def test_binary_low_precision_smoke(name, dtype):
    fn, ref = BINARY[name]
    a, b = rand_array((4,), np.float32), rand_array((4,), np.float32, low=0.5, high=2.0)
    out = fn(T(a).to(dtype), T(b).to(dtype))
    assert out.dtype is dtype
    lp = np.float16 if dtype is disttorch.float16 else ml_dtypes.bfloat16
    expected = ref(a.astype(lp).astype(np.float32), b.astype(lp).astype(np.float32))
    assert_close(out.float(), expected, rtol=2e-2, atol=1e-2)


def test_zero_dim_and_empty():
    assert disttorch.add(T(2.0), T(3.0)).shape == ()
    assert disttorch.add(T(2.0), T(3.0)).item() == 5.0
    e = disttorch.mul(disttorch.zeros(0, 3), T([1.0, 2.0, 3.0]))
    assert tuple(e.shape) == (0, 3)
    assert disttorch.div(disttorch.zeros(2, 0), 2.0).shape == (2, 0)


def test_add_sub_alpha():
    a, b = rand_array((3,)), rand_array((3,))
    assert_close(disttorch.add(T(a), T(b), alpha=2.5), a + 2.5 * b)
    assert_close(disttorch.sub(T(a), T(b), alpha=0.5), a - 0.5 * b)
    assert_close(disttorch.rsub(T(a), T(b), alpha=2), b - 2 * a)
    assert_close(disttorch.add(T([1, 2]), T([3, 4]), alpha=3), np.array([10, 14]))
    with pytest.raises(RuntimeError, match="alpha must not be a floating point"):
        disttorch.add(T([1, 2]), T([3, 4]), alpha=0.5)


def test_scalars_and_reflected_operators():
    a = rand_array((2, 3), low=0.5, high=2.0)
    x = T(a)
    assert_close(2 + x, 2 + a)
    assert_close(2 - x, 2 - a)
    assert_close(2 * x, 2 * a)
    assert_close(2 / x, 2 / a)
    assert_close(7 // x, 7 // a)
    assert_close(7 % x, 7 % a)
    assert_close(2 ** x, 2 ** a)
    assert_close(x ** 2, a ** 2)
    assert_close(abs(-x), a)
    assert_close(-x, -a)
    assert (+x) is x
    assert_close(x // 0.7, a // 0.7)
    assert_close(x % 0.7, a % 0.7)


@pytest.mark.parametrize("a,b", [(7, 2), (-7, 2), (7, -2), (-7, -2), (0, 3), (6, 3), (-6, 3)])
def test_rounding_division_int(a, b):
    ta, tb = T([a]), T([b])
    assert disttorch.div(ta, tb, rounding_mode="floor").item() == a // b
    assert disttorch.div(ta, tb, rounding_mode="trunc").item() == math.trunc(a / b)
    assert disttorch.div(ta, tb, rounding_mode="trunc").dtype is disttorch.int64
    assert (ta // tb).item() == a // b
    assert (ta % tb).item() == a % b
    assert disttorch.fmod(ta, tb).item() == math.fmod(a, b)
    assert disttorch.remainder(ta, tb).dtype is disttorch.int64


@pytest.mark.parametrize("a,b", [(7.5, 2.0), (-7.5, 2.0), (7.5, -2.0), (-7.5, -2.0), (1.0, 0.3), (-0.0, 1.0)])
def test_rounding_division_float(a, b):
    ta, tb = T([a], dtype=disttorch.float64), T([b], dtype=disttorch.float64)
    assert disttorch.div(ta, tb, rounding_mode="floor").item() == a // b
    assert disttorch.div(ta, tb, rounding_mode="trunc").item() == math.trunc(a / b)
    assert disttorch.floor_divide(ta, tb).item() == a // b
    assert disttorch.remainder(ta, tb).item() == pytest.approx(a % b)
    assert disttorch.fmod(ta, tb).item() == pytest.approx(math.fmod(a, b))


def test_division_by_zero():
    assert_close(T([1.0, -1.0, 0.0]) / 0.0, np.array([np.inf, -np.inf, np.nan]))
    assert_close(T([1.0, -1.0]) // 0.0, np.array([np.inf, -np.inf]))
    for fn in (lambda: T([1]) // T([0]), lambda: T([1]) % 0, lambda: disttorch.div(T([1]), 0, rounding_mode="trunc"),
               lambda: disttorch.fmod(T([3]), T([0]))):
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            fn()
    with pytest.raises(RuntimeError, match="rounding_mode"):
        disttorch.div(T([1.0]), 2.0, rounding_mode="round")


def test_pow_variants():
    a = rand_array((2, 3), low=0.5, high=2.0)
    assert_close(disttorch.pow(T(a), 3), a ** 3)
    assert_close(disttorch.pow(2.0, T(a)), 2.0 ** a)
    assert_close(disttorch.pow(T(a), T(a)), a ** a)
    assert_close(disttorch.float_power(T([2, 3]), 2), np.array([4.0, 9.0]), check_dtype=disttorch.float64)
    assert disttorch.float_power(T([2.0], dtype=disttorch.float32), 0.5).dtype is disttorch.float64
    assert (T([1, 2, 3]) ** 2).dtype is disttorch.int64
    assert (T([1, 2, 3]) ** 0.5).dtype is disttorch.float32
    assert (2 ** T([1, 2, 3])).dtype is disttorch.int64
    assert (2.0 ** T([1, 2, 3])).dtype is disttorch.float32
    assert disttorch.square(T([True, False])).dtype is disttorch.int64
    assert_close(disttorch.square(T([-3, 2])), np.array([9, 4]))


def test_pow_integer_negative_exponent():
    with pytest.raises(RuntimeError, match="Integers to negative integer powers are not allowed"):
        T([1, 2]) ** -1
    # Tensor exponents follow PyTorch's integer rule: 0 unless the base is 1 or -1.
    out = disttorch.pow(T([2, 1, -1, -1, 0, 3]), T([-1, -3, -3, -2, 2, 2]))
    assert_close(out, np.array([0, 1, -1, 1, 0, 9]))


def test_reciprocal_neg_positive():
    assert_close(disttorch.reciprocal(T([2, 4])), np.array([0.5, 0.25]), check_dtype=disttorch.float32)
    assert disttorch.neg(T([1, -2])).dtype is disttorch.int64
    assert_close(disttorch.negative(T([1.5])), np.array([-1.5]))
    assert disttorch.positive(T([1.0])) is not None


def test_out_argument():
    out = disttorch.empty(3)
    r = disttorch.add(T([1.0, 2.0, 3.0]), 1.0, out=out)
    assert r is out
    assert_close(out, np.array([2.0, 3.0, 4.0]))
    small = disttorch.empty(1)
    disttorch.mul(T([1.0, 2.0]), 2.0, out=small)
    assert tuple(small.shape) == (2,)
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output type Long"):
        disttorch.div(T([1, 2]), 2, out=disttorch.zeros(2, dtype=disttorch.int64))
    with pytest.raises(RuntimeError, match="out=... arguments don't support automatic differentiation"):
        disttorch.add(T([1.0], requires_grad=True), 1.0, out=disttorch.empty(1))


# ---- errors ---------------------------------------------------------------------------------------------
def test_shape_mismatch_names_sizes():
    with pytest.raises(RuntimeError, match=r"\(3\).*\(4\)"):
        disttorch.add(disttorch.ones(2, 3), disttorch.ones(4))
    for fn in (disttorch.sub, disttorch.mul, disttorch.div, disttorch.pow, disttorch.remainder):
        with pytest.raises(RuntimeError, match=r"\[2, 3\].*\[4\]"):
            fn(disttorch.ones(2, 3), disttorch.ones(4))


def test_bool_errors():
    b = T([True, False])
    with pytest.raises(RuntimeError, match="two bool tensors is not supported"):
        b - b
    with pytest.raises(RuntimeError, match="with a bool tensor is not supported"):
        T([1, 2]) - True
    with pytest.raises(RuntimeError, match="Negation, the `-` operator, on a bool tensor"):
        -b
    with pytest.raises(RuntimeError, match="`\\+` operator, on a bool tensor"):
        +b
    assert (b + b).dtype is disttorch.bool
    assert (b * b).dtype is disttorch.bool


def test_numpy_operands():
    x = T([1.0, 2.0])
    r = np.array([1.0, 2.0]) + x  # defers to Tensor.__radd__ (array priority), as in PyTorch
    assert isinstance(r, disttorch.Tensor) and r.dtype is disttorch.float64
    assert_close(r, np.array([2.0, 4.0]))
    assert_close(x * np.array([2.0, 3.0]), np.array([2.0, 6.0]))
    s = np.float64(2.0) * x
    assert isinstance(s, disttorch.Tensor) and s.dtype is disttorch.float32


def test_non_number_operand_raises_type_error():
    with pytest.raises(TypeError):
        T([1.0]) + "a"
    with pytest.raises(TypeError):
        disttorch.mul(T([1.0]), [1, 2])


@pytest.mark.parametrize("case,expected", [
    ((T([1, 2], dtype=disttorch.int32), 2.5), disttorch.float32),
    ((T([1, 2], dtype=disttorch.int32), 2), disttorch.int32),
    ((T([1.0], dtype=disttorch.float16), T(2.0, dtype=disttorch.float64)), disttorch.float16),
    ((T([1], dtype=disttorch.uint8), T([1], dtype=disttorch.int8)), disttorch.int16),
    ((T([True]), 1), disttorch.int64),
    ((T([1]), T([1.0], dtype=disttorch.float16)), disttorch.float16),
    ((T([1.0], dtype=disttorch.float16), T([1.0], dtype=disttorch.bfloat16)), disttorch.float32),
])
def test_result_dtypes(case, expected):
    a, b = case
    assert (a + b).dtype is expected
    assert (a * b).dtype is expected


# ---- autograd ----------------------------------------------------------------------------------------------
GRAD_PAIRS = [((), (3,)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((3,), ())]


@pytest.mark.parametrize("shapes", GRAD_PAIRS)
@pytest.mark.parametrize("name", ["add", "sub", "mul", "div"])
def test_binary_gradcheck(name, shapes):
    fn = BINARY[name][0]
    a, b = rand_array(shapes[0]), rand_array(shapes[1], low=0.5, high=2.0)
    check_grad(fn, a, b)


def test_alpha_and_scalar_gradcheck():
    a, b = rand_array((2, 3)), rand_array((3,))
    check_grad(lambda x, y: disttorch.add(x, y, alpha=-1.5), a, b)
    check_grad(lambda x, y: disttorch.sub(x, y, alpha=2.0), a, b)
    check_grad(lambda x: 3.0 / x, rand_array((4,), low=0.5, high=2.0))
    check_grad(lambda x: 3.0 - x * 2.0, a)


def test_pow_gradcheck():
    a, e = rand_array((2, 3), low=0.5, high=2.0), rand_array((3,), low=-1.5, high=1.5)
    check_grad(lambda x: x ** 3, rand_array((4,)))
    check_grad(lambda x: x ** 0.5, rand_array((4,), low=0.5, high=2.0))
    check_grad(lambda x: x ** 0, rand_array((3,)))
    check_grad(disttorch.pow, a, e)
    check_grad(lambda x: 2.5 ** x, e)
    check_grad(lambda x: disttorch.float_power(x, 2.5), rand_array((3,), low=0.5, high=2.0))
    check_grad(disttorch.reciprocal, rand_array((4,), low=0.5, high=2.0))
    check_grad(disttorch.square, rand_array((4,)))


def test_pow_exponent_gradient_at_zero_base():
    x = T([0.0, 2.0], dtype=disttorch.float64)
    e = T([2.0, 3.0], dtype=disttorch.float64, requires_grad=True)
    disttorch.pow(x, e).sum().backward()
    assert_close(e.grad, np.array([0.0, 8.0 * math.log(2.0)]))


def test_remainder_fmod_gradcheck():
    a, b = rand_array((2, 3), low=-0.8, high=-0.2), rand_array((3,), low=1.0, high=2.0)
    check_grad(disttorch.remainder, a, b)  # floor(a / b) == -1 everywhere here
    a2, b2 = rand_array((2, 3), low=2.2, high=2.8), rand_array((3,), low=1.0, high=1.05)
    check_grad(disttorch.fmod, a2, b2)  # trunc(a / b) == 2 everywhere here
    check_grad(lambda x: x % 1.5, rand_array((4,), low=0.1, high=1.4))


def test_rounding_div_has_zero_grad_and_floor_divide_is_not_differentiable():
    x = T([1.5, -2.5], requires_grad=True)
    y = disttorch.div(x, 2.0, rounding_mode="trunc")
    y.sum().backward()
    assert_close(x.grad, np.zeros(2))
    z = x // 2.0
    assert z.requires_grad
    with pytest.raises(NotImplementedError, match="floor_divide"):
        z.sum().backward()


def test_neg_gradcheck_and_zero_dim():
    check_grad(disttorch.neg, rand_array(()))
    check_grad(lambda x: -x * 2, rand_array((0, 3)))


@pytest.mark.parametrize("fn,arrays", [
    (disttorch.mul, ((2, 3), (3,))),
    (disttorch.div, ((3,), (3,))),
    (lambda x, y: disttorch.pow(x, y), ((3,), (3,))),
])
def test_gradgradcheck(fn, arrays):
    a, b = rand_array(arrays[0], low=0.5, high=2.0), rand_array(arrays[1], low=0.5, high=2.0)
    check_grad(fn, a, b, gradgrad=True)


def test_grad_dtype_matches_input_dtype():
    x = T([1.0, 2.0], dtype=disttorch.float32, requires_grad=True)
    s = T(3.0, dtype=disttorch.float64, requires_grad=True)
    y = x * s
    assert y.dtype is disttorch.float32
    y.sum().backward()
    assert s.grad.dtype is disttorch.float64 and x.grad.dtype is disttorch.float32
    assert s.grad.item() == pytest.approx(3.0)


# ---- complex gradients: PyTorch's grad * conj(df/dz) -------------------------------------------------------------
_CRNG = np.random.default_rng(11)
# Off both axes (the branch cut of log and of non-integer powers lies on the negative real axis).
_ZA = (_CRNG.uniform(0.4, 1.2, (2, 3)) * _CRNG.choice([-1, 1], (2, 3))
       + 1j * _CRNG.uniform(0.4, 1.2, (2, 3)) * _CRNG.choice([-1, 1], (2, 3)))
_ZB = _CRNG.uniform(-1, 1, (2, 3)) + 1j * _CRNG.uniform(-1, 1, (2, 3))


def _cgrad(fn, *arrays, up):
    ts = [disttorch.tensor(a, requires_grad=True) for a in arrays]
    return disttorch.autograd.grad(fn(*ts), ts, disttorch.tensor(up))


def test_complex_pow_reciprocal_mul_div_gradients_conjugate():
    a, b = _ZA, _ZB
    up = _CRNG.standard_normal((2, 3)) + 1j * _CRNG.standard_normal((2, 3))
    (g,) = _cgrad(disttorch.reciprocal, a, up=up)
    assert_close(g, up * np.conj(-1 / a ** 2), rtol=1e-9, atol=1e-12)
    (g,) = _cgrad(lambda x: x ** 2.5, a, up=up)
    assert_close(g, up * np.conj(2.5 * a ** 1.5), rtol=1e-9, atol=1e-12)
    (g,) = _cgrad(lambda x: x ** (1 + 2j), a, up=up)
    assert_close(g, up * np.conj((1 + 2j) * a ** 2j), rtol=1e-9, atol=1e-12)
    ga, gb = _cgrad(disttorch.pow, a, b, up=up)
    assert_close(ga, up * np.conj(b * a ** (b - 1)), rtol=1e-9, atol=1e-12)
    assert_close(gb, up * np.conj(a ** b * np.log(a)), rtol=1e-9, atol=1e-12)
    (gb,) = _cgrad(lambda e: (2 - 1j) ** e, b, up=up)
    assert_close(gb, up * np.conj((2 - 1j) ** b * np.log(2 - 1j)), rtol=1e-9, atol=1e-12)
    ga, gb = _cgrad(lambda x, y: x * y, a, b, up=up)
    assert_close(ga, up * np.conj(b), rtol=1e-9, atol=1e-12)
    ga, gb = _cgrad(lambda x, y: x / y, b, a, up=up)
    assert_close(ga, up * np.conj(1 / a), rtol=1e-9, atol=1e-12)
    assert_close(gb, up * np.conj(-b / a ** 2), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("fn", [disttorch.reciprocal, disttorch.square, lambda x: x ** 2.5,
                                lambda x: disttorch.pow(x, 0.5 - 1j), lambda x: 2.0 ** x],
                         ids=["reciprocal", "square", "pow_real", "pow_complex", "number_pow"])
def test_complex_unary_pow_gradcheck(fn):
    check_complex_grad(fn, _ZA, gradgrad=True)


def test_complex_binary_gradcheck():
    for fn in (disttorch.pow, disttorch.mul, disttorch.div):
        check_complex_grad(fn, _ZA, _ZB)
