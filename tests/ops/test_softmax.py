"""softmax, log_softmax, logsumexp: NumPy references, stability, dtypes, gradchecks."""
import math

import numpy as np
import pytest

import disttorch
from helpers import assert_close, check_grad, rand_array

pytestmark = pytest.mark.filterwarnings("error")

T = disttorch.tensor


def np_logsumexp(a, axis=None, keepdims=False):
    m = np.max(a, axis=axis, keepdims=True) if a.size else np.zeros(())
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


def np_softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("shape,dim", [((5,), 0), ((3, 4), 1), ((3, 4), 0), ((2, 3, 4), -1), ((2, 3, 4), 1),
                                       ((), 0), ((), -1), ((0, 3), 1), ((3, 0), 1)])
def test_softmax_log_softmax_forward(shape, dim):
    a = rand_array(shape, low=-5, high=5)
    ax = dim % max(len(shape), 1) if shape else None
    expected = np_softmax(a, ax) if a.size else a
    assert_close(disttorch.softmax(T(a), dim), expected)
    assert_close(T(a).softmax(dim), expected)
    with np.errstate(divide="ignore"):
        assert_close(disttorch.log_softmax(T(a), dim), np.log(expected))
    assert_close(T(a).log_softmax(dim), a - np_logsumexp(a, ax, keepdims=True) if a.size else a)


def test_softmax_is_stable_for_large_inputs():
    a = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1e4, -999.0]])
    expected = np_softmax(a, 1)
    assert_close(disttorch.softmax(T(a), 1), expected)
    assert_close(disttorch.log_softmax(T(a), 1), a - np_logsumexp(a, 1, keepdims=True))
    f32 = disttorch.softmax(T(a, dtype=disttorch.float32), 1)
    assert f32.dtype is disttorch.float32 and np.isfinite(f32.numpy()).all()


def test_softmax_with_minus_inf():
    a = np.array([[0.0, -np.inf, 0.0], [-np.inf, -np.inf, -np.inf]])
    s = disttorch.softmax(T(a), 1).numpy()
    assert_close(T(s[0]), np.array([0.5, 0.0, 0.5]))
    assert np.isnan(s[1]).all()  # as PyTorch: an all -inf row has no distribution
    ls = disttorch.log_softmax(T(a), 1).numpy()
    assert ls[0, 1] == -np.inf and abs(ls[0, 0] - math.log(0.5)) < 1e-12


@pytest.mark.parametrize("dtype", [disttorch.float16, disttorch.bfloat16, disttorch.float32])
def test_softmax_dtypes(dtype):
    a = rand_array((3, 5), low=-3, high=3).astype(np.float32)
    x = T(a).to(dtype)
    y = disttorch.softmax(x, -1)
    assert y.dtype is dtype
    assert_close(y.float(), np_softmax(x.float().numpy().astype(np.float64), -1), rtol=2e-2, atol=5e-3)
    assert disttorch.log_softmax(x, -1).dtype is dtype


def test_dtype_argument_and_integer_input():
    x = T([1, 2, 3])
    with pytest.raises(RuntimeError, match="softmax.*not implemented for 'Long'"):
        disttorch.softmax(x, 0)
    y = disttorch.softmax(x, 0, dtype=disttorch.float64)
    assert y.dtype is disttorch.float64
    assert_close(y, np_softmax(np.array([1.0, 2.0, 3.0]), 0))
    z = T([1.0, 2.0], dtype=disttorch.float32).log_softmax(0, dtype=disttorch.float64)
    assert z.dtype is disttorch.float64


def test_implicit_dim_warns():
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        y = disttorch.softmax(T([[1.0, 2.0], [3.0, 5.0]]))
    assert_close(y, np_softmax(np.array([[1.0, 2.0], [3.0, 5.0]]), 1))


def test_dim_out_of_range():
    with pytest.raises(IndexError, match="Dimension out of range"):
        disttorch.softmax(disttorch.ones(2, 3), 2)
    with pytest.raises(IndexError, match="Dimension out of range"):
        disttorch.logsumexp(disttorch.ones(2, 3), -3)


@pytest.mark.parametrize("fn", [lambda x: disttorch.softmax(x, 1), lambda x: disttorch.softmax(x, 0),
                                lambda x: disttorch.log_softmax(x, -1), lambda x: x.log_softmax(0),
                                lambda x: disttorch.softmax(x * 50, 1)])
def test_softmax_grad(fn):
    check_grad(fn, rand_array((3, 4)), gradgrad=True)


def test_softmax_grad_0d_and_empty():
    check_grad(lambda x: disttorch.softmax(x, 0), np.array(1.5), gradgrad=True)
    check_grad(lambda x: disttorch.log_softmax(x, -1), np.array(1.5))
    check_grad(lambda x: disttorch.softmax(x, 1), np.zeros((0, 3)))


def test_softmax_backward_formula():
    a = rand_array((2, 3))
    g = rand_array((2, 3))
    x = disttorch.tensor(a, requires_grad=True)
    disttorch.softmax(x, 1).backward(T(g))
    y = np_softmax(a, 1)
    assert_close(x.grad, y * (g - (g * y).sum(1, keepdims=True)))
    x = disttorch.tensor(a, requires_grad=True)
    disttorch.log_softmax(x, 1).backward(T(g))
    assert_close(x.grad, g - y * g.sum(1, keepdims=True))


@pytest.mark.parametrize("shape,dim", [((5,), 0), ((3, 4), 1), ((2, 3, 4), (0, 2)), ((2, 3, 4), [-1]),
                                       ((3, 4), None), ((), 0), ((0, 3), 0), ((0, 3), 1)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_logsumexp_forward(shape, dim, keepdim):
    a = rand_array(shape, low=-3, high=3)
    if dim is None:
        ax = None if keepdim is False else tuple(range(a.ndim))
    else:
        ax = (dim,) if isinstance(dim, int) else tuple(dim)
        ax = tuple(d % a.ndim for d in ax) if a.ndim else None
    res = disttorch.logsumexp(T(a), dim, keepdim) if dim is not None else disttorch.logsumexp(T(a), keepdim=keepdim)
    assert_close(res, np_logsumexp(a, ax, keepdims=keepdim) if a.ndim else a)


def test_logsumexp_stability_and_special_values():
    a = np.array([[1000.0, 1000.0], [-np.inf, -np.inf], [-np.inf, 0.0], [np.inf, 1.0]])
    res = disttorch.logsumexp(T(a), 1).numpy()
    assert abs(res[0] - (1000 + math.log(2))) < 1e-9
    assert res[1] == -np.inf and res[2] == 0.0 and res[3] == np.inf
    assert disttorch.logsumexp(disttorch.zeros(0), 0).item() == -math.inf
    r = disttorch.logsumexp(T([1, 2, 3]), 0)
    assert r.dtype is disttorch.float32 and abs(r.item() - np_logsumexp(np.array([1.0, 2.0, 3.0]), 0)) < 1e-5
    assert T([[1.0, 2.0]]).logsumexp(1).shape == (1,)


@pytest.mark.parametrize("fn", [lambda x: disttorch.logsumexp(x, 1), lambda x: x.logsumexp((0, 1), keepdim=True),
                                lambda x: disttorch.logsumexp(x * 100, 0)])
def test_logsumexp_grad(fn):
    check_grad(fn, rand_array((3, 4)), gradgrad=True)
    check_grad(lambda x: disttorch.logsumexp(x, 0), np.array(0.5))
