"""Comparisons, equal/isclose/allclose, logical and bitwise ops, classification (isnan, ...)."""
import operator

import numpy as np
import pytest

import disttorch
from helpers import BROADCAST_PAIRS, assert_close, rand_array

T = disttorch.tensor

CMP = {
    "eq": (disttorch.eq, np.equal, operator.eq),
    "ne": (disttorch.ne, np.not_equal, operator.ne),
    "lt": (disttorch.lt, np.less, operator.lt),
    "le": (disttorch.le, np.less_equal, operator.le),
    "gt": (disttorch.gt, np.greater, operator.gt),
    "ge": (disttorch.ge, np.greater_equal, operator.ge),
}


@pytest.mark.parametrize("name", list(CMP))
@pytest.mark.parametrize("shapes", BROADCAST_PAIRS)
def test_compare_broadcast(name, shapes):
    fn, ref, op = CMP[name]
    a = rand_array(shapes[0], np.int64, -2, 2).astype(np.float64)
    b = rand_array(shapes[1], np.int64, -2, 2).astype(np.float64)
    out = fn(T(a), T(b))
    assert out.dtype is disttorch.bool
    assert_close(out, ref(a, b))
    assert_close(op(T(a), T(b)), ref(a, b))
    assert_close(getattr(T(a), name)(T(b)), ref(a, b))


@pytest.mark.parametrize("name", list(CMP))
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8, np.bool_])
def test_compare_scalars_and_dtypes(name, dtype):
    fn, ref, op = CMP[name]
    a = rand_array((5,), dtype, 0, 3)
    assert_close(fn(T(a), 1), ref(a, 1))
    assert_close(op(T(a), 1.5), ref(a.astype(np.float64), 1.5))  # promotes to float before comparing
    assert_close(op(1, T(a)), ref(1, a))


def test_compare_aliases_and_nan():
    a, b = T([1.0, np.nan, 3.0]), T([1.0, np.nan, 2.0])
    assert disttorch.greater(a, b).tolist() == [False, False, True]
    assert disttorch.greater_equal(a, b).tolist() == [True, False, True]
    assert disttorch.less(a, b).tolist() == [False, False, False]
    assert disttorch.less_equal(a, b).tolist() == [True, False, False]
    assert disttorch.not_equal(a, b).tolist() == [False, True, True]
    bf = a.to(disttorch.bfloat16)
    assert (bf == bf).tolist() == [True, False, True]  # no NumPy warning for bfloat16 NaN
    assert (bf < 2).tolist() == [True, False, False]


def test_compare_no_graph_and_eq_protocol():
    x = T([1.0, 2.0], requires_grad=True)
    y = x > 1.5
    assert not y.requires_grad and y.grad_fn is None
    assert isinstance(x == x, disttorch.Tensor)
    assert (x == None) is False  # noqa: E711 - PyTorch returns False for non-tensor, non-number operands
    assert (x != "a") is True
    assert hash(x) == id(x)
    assert (T([1.0, 2.0]) == np.array([1.0, 0.0])).tolist() == [True, False]
    assert (np.array([1, 3]) & T([3, 3])).tolist() == [1, 3]
    out = disttorch.empty(2, dtype=disttorch.bool)
    assert disttorch.eq(T([1, 2]), 2, out=out) is out and out.tolist() == [False, True]
    with pytest.raises(RuntimeError, match=r"\(2\).*\(3\)"):
        T([1, 2]) < T([1, 2, 3])


def test_equal():
    assert disttorch.equal(T([1.0, 2.0]), T([1.0, 2.0])) is True
    assert disttorch.equal(T([1.0, 2.0]), T([1.0, 2.5])) is False
    assert disttorch.equal(T([1.0, 2.0]), T([[1.0, 2.0]])) is False  # no broadcasting
    assert disttorch.equal(T([np.nan]), T([np.nan])) is False
    assert T([1, 2]).equal(T([1, 2]))


def test_isclose_allclose():
    a = T([1.0, 1.0, np.inf, np.nan, -np.inf, 1.0], dtype=disttorch.float64)
    b = T([1.0 + 1e-9, 1.1, np.inf, np.nan, np.inf, 1.0 + 2e-5], dtype=disttorch.float64)
    assert disttorch.isclose(a, b).tolist() == [True, False, True, False, False, False]
    assert disttorch.isclose(a, b, equal_nan=True).tolist() == [True, False, True, True, False, False]
    assert disttorch.isclose(a, b, rtol=1e-4).tolist() == [True, False, True, False, False, True]
    assert disttorch.isclose(a, b, rtol=0, atol=0.2).tolist()[1] is True
    ref = np.isclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-8)
    assert_close(disttorch.isclose(a, b), ref)
    assert disttorch.isclose(T([1, 2]), T([1, 3])).tolist() == [True, False]
    assert disttorch.allclose(T([1.0, 2.0]), T([1.0, 2.0 + 1e-7]))
    assert not disttorch.allclose(T([1.0, np.nan]), T([1.0, np.nan]))
    assert disttorch.allclose(T([1.0, np.nan]), T([1.0, np.nan]), equal_nan=True)
    assert T([1.0]).allclose(T([1.0]))
    with pytest.raises(RuntimeError, match="Float did not match Double"):
        disttorch.isclose(T([1.0]), T([1.0], dtype=disttorch.float64))
    with pytest.raises(RuntimeError, match="rtol must be greater than or equal to zero"):
        disttorch.isclose(T([1.0]), T([1.0]), rtol=-1)


@pytest.mark.parametrize("name,ref", [("logical_and", np.logical_and), ("logical_or", np.logical_or),
                                      ("logical_xor", np.logical_xor)])
@pytest.mark.parametrize("dtype", [np.bool_, np.int64, np.float32])
def test_logical(name, ref, dtype):
    a, b = rand_array((2, 3), dtype, 0, 2), rand_array((3,), dtype, 0, 2)
    out = getattr(disttorch, name)(T(a), T(b))
    assert out.dtype is disttorch.bool
    assert_close(out, ref(a, b))
    assert_close(disttorch.logical_not(T(a)), np.logical_not(a))
    assert disttorch.logical_and(T([np.nan]), T([1.0])).tolist() == [True]


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_])
def test_bitwise(dtype):
    a, b = rand_array((2, 3), dtype, 0, 7), rand_array((3,), dtype, 0, 7)
    x, y = T(a), T(b)
    assert_close(x & y, np.bitwise_and(a, b))
    assert_close(x | y, np.bitwise_or(a, b))
    assert_close(x ^ y, np.bitwise_xor(a, b))
    assert_close(~x, np.invert(a))
    assert_close(disttorch.bitwise_and(x, y), np.bitwise_and(a, b))
    assert_close(disttorch.bitwise_not(x), np.invert(a))
    assert (x & y).dtype is x.dtype


def test_bitwise_scalars_and_shifts():
    x = T([1, 2, 12])
    assert_close(x & 6, np.array([0, 2, 4]))
    assert_close(6 | x, np.array([7, 6, 14]))
    assert_close(x << 2, np.array([4, 8, 48]))
    assert_close(x >> 1, np.array([0, 1, 6]))
    assert_close(1 << x, np.array([2, 4, 4096]))
    assert_close(disttorch.bitwise_left_shift(x, T([1, 1, 2])), np.array([2, 4, 48]))
    assert_close(disttorch.bitwise_right_shift(T([-8]), 1), np.array([-4]))
    assert (T([True, False]) ^ True).tolist() == [False, True]


@pytest.mark.parametrize("fn", [lambda a: a & a, lambda a: a | 1, lambda a: a ^ a, lambda a: ~a, lambda a: a << 1,
                                lambda a: disttorch.bitwise_and(a, a)])
def test_bitwise_float_raises(fn):
    with pytest.raises(RuntimeError, match="not implemented for 'Float'"):
        fn(T([1.0, 2.0]))


def test_bitwise_error_names_the_op():
    with pytest.raises(RuntimeError, match="bitwise_or"):
        T([1.0]) | T([2.0])


def test_classification():
    x = T([1.0, np.nan, np.inf, -np.inf, -0.0])
    assert disttorch.isnan(x).tolist() == [False, True, False, False, False]
    assert disttorch.isinf(x).tolist() == [False, False, True, True, False]
    assert disttorch.isposinf(x).tolist() == [False, False, True, False, False]
    assert disttorch.isneginf(x).tolist() == [False, False, False, True, False]
    assert disttorch.isfinite(x).tolist() == [True, False, False, False, True]
    assert disttorch.isreal(x).tolist() == [True] * 5
    i = T([1, 2])
    assert disttorch.isnan(i).tolist() == [False, False]
    assert disttorch.isinf(i).tolist() == [False, False]
    assert disttorch.isfinite(i).tolist() == [True, True]
    assert disttorch.isposinf(i).tolist() == [False, False]
    assert x.isnan().dtype is disttorch.bool
    bf = x.to(disttorch.bfloat16)
    assert disttorch.isposinf(bf).tolist() == [False, False, True, False, False]
    assert tuple(disttorch.isnan(disttorch.zeros(0, 2)).shape) == (0, 2)
    assert disttorch.isnan(T(np.nan)).item() is True
