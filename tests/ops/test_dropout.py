"""Dropout family: statistics, scaling, channel-wise masks, reproducibility, in-place semantics, grads, errors."""
import math

import numpy as np
import pytest

import disttorch
from disttorch.ops import dropout as Dr
from helpers import assert_close, check_grad, rand_array

T = disttorch.tensor
ALPHA = 1.7580993408473766


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics_and_scale(p):
    disttorch.manual_seed(0)
    y = Dr.dropout(disttorch.ones(20000), p).numpy()
    zero = y == 0
    assert abs(zero.mean() - p) < 0.02
    np.testing.assert_allclose(y[~zero], 1 / (1 - p), rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.05


def test_dropout_identity_cases_return_input():
    x = disttorch.randn(4, 5)
    assert Dr.dropout(x, 0.5, training=False) is x
    assert Dr.dropout(x, 0.0) is x
    x4 = disttorch.randn(2, 3, 4, 4)
    assert Dr.dropout2d(x4, training=False) is x4
    assert Dr.alpha_dropout(x, 0.5) is x  # alpha_dropout defaults to training=False
    e = disttorch.zeros(0, 3)
    assert Dr.dropout(e, 0.5) is e


def test_dropout_p_one_gives_zeros_and_zero_grad():
    x = T(rand_array((3, 4)), requires_grad=True)
    y = Dr.dropout(x, 1.0)
    assert_close(y, np.zeros((3, 4)))
    y.sum().backward()
    assert_close(x.grad, np.zeros((3, 4)))


@pytest.mark.parametrize("fn", [Dr.dropout, Dr.alpha_dropout, Dr.dropout1d, Dr.dropout2d, Dr.dropout3d,
                                Dr.feature_alpha_dropout])
@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_p_validated(fn, p):
    with pytest.raises(ValueError, match=f"dropout probability has to be between 0 and 1, but got {p}"):
        fn(disttorch.randn(2, 3, 4, 4, 2), p)


def test_reproducible_with_manual_seed():
    x = disttorch.randn(50, 8)
    disttorch.manual_seed(123)
    a = Dr.dropout(x, 0.3).numpy()
    b = Dr.dropout(x, 0.3).numpy()
    disttorch.manual_seed(123)
    c = Dr.dropout(x, 0.3).numpy()
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)


def test_backward_is_grad_times_saved_mask():
    x = T(rand_array((6, 7)), requires_grad=True)
    y = Dr.dropout(x, 0.4)
    g = rand_array((6, 7))
    y.backward(T(g))
    mask = (y.detach().numpy() != 0) / 0.6
    assert_close(x.grad, g * mask)
    assert y.grad_fn.name() == "NativeDropoutBackward0"


def test_gradcheck_with_fixed_mask():
    a = rand_array((3, 4))

    def fn(x):
        disttorch.manual_seed(7)  # the same mask at every evaluation of the finite differences
        return Dr.dropout(x, 0.3) * 2 + Dr.alpha_dropout(x, 0.2, training=True)

    check_grad(fn, a, gradgrad=True)


@pytest.mark.parametrize("fn,shape,mask_shape", [
    (Dr.dropout1d, (4, 6, 50), (4, 6, 1)), (Dr.dropout1d, (6, 50), (6, 1)),
    (Dr.dropout2d, (4, 6, 8, 8), (4, 6, 1, 1)), (Dr.dropout3d, (3, 4, 3, 4, 5), (3, 4, 1, 1, 1)),
    (Dr.dropout3d, (6, 3, 4, 5), (6, 1, 1, 1))])
def test_channel_wise_masks(fn, shape, mask_shape):
    disttorch.manual_seed(1)
    y = fn(disttorch.ones(*shape), 0.5).numpy()
    axes = tuple(i for i, s in enumerate(mask_shape) if s == 1)
    per_channel = y.max(axis=axes, keepdims=True)
    assert np.all((y == per_channel))  # each channel is all zeros or all 2
    assert set(np.unique(per_channel)) <= {0.0, 2.0}


def test_dropout2d_dim_warnings():
    with pytest.warns(UserWarning, match="Received a 3D input to dropout2d"):
        Dr.dropout2d(disttorch.ones(2, 3, 4))
    with pytest.warns(UserWarning, match="Received a 2-D input to dropout2d, which is deprecated"):
        Dr.dropout2d(disttorch.ones(2, 3))
    with pytest.warns(UserWarning, match="Received a 3-D input to dropout3d"):
        Dr.dropout3d(disttorch.ones(2, 3, 4))


def test_dropout1d_wrong_dims_raise():
    with pytest.raises(RuntimeError, match="dropout1d: Expected 2D or 3D input, but received a 4D input"):
        Dr.dropout1d(disttorch.ones(1, 2, 3, 4))
    with pytest.raises(RuntimeError, match="Feature dropout requires at least 2 dimensions"):
        Dr.feature_alpha_dropout(disttorch.ones(5), 0.5, True)


def test_alpha_dropout_keeps_mean_and_variance():
    disttorch.manual_seed(2)
    a = np.random.default_rng(0).standard_normal(40000)
    y = Dr.alpha_dropout(T(a), 0.2, training=True).numpy()
    assert abs(y.mean()) < 0.03 and abs(y.std() - 1.0) < 0.03
    # dropped entries all take the one value alpha * s * (p - 1)
    s = 1 / math.sqrt((ALPHA ** 2 * 0.2 + 1) * 0.8)
    dropped = np.isclose(y, ALPHA * s * (0.2 - 1))
    assert abs(dropped.mean() - 0.2) < 0.02
    np.testing.assert_allclose(y[~dropped], a[~dropped] * s + ALPHA * s * 0.2, rtol=1e-10)


def test_feature_alpha_dropout_channel_wise():
    disttorch.manual_seed(4)
    y = Dr.feature_alpha_dropout(disttorch.zeros(8, 16, 5), 0.5, training=True).numpy()
    assert np.all(y == y[:, :, :1])


def test_inplace_semantics():
    x = disttorch.ones(100)
    v = x._version
    r = Dr.dropout(x, 0.5, inplace=True)
    assert r is x and x._version > v
    assert set(np.unique(x.numpy())) <= {0.0, 2.0}
    leaf = T(rand_array((10,)), requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
        Dr.dropout(leaf, 0.5, inplace=True)
    y = leaf * 1.0
    Dr.dropout(y, 0.5, inplace=True)
    y.sum().backward()
    assert_close(leaf.grad, (y.detach().numpy() != 0) * 2.0)


@pytest.mark.parametrize("dtype", [disttorch.float32, disttorch.bfloat16, disttorch.float16, disttorch.float64])
def test_dtype_preserved(dtype):
    x = disttorch.ones(4, 3, 5, dtype=dtype, requires_grad=True)
    for y in (Dr.dropout(x, 0.5), Dr.dropout1d(x, 0.5), Dr.alpha_dropout(x, 0.5, True)):
        assert y.dtype == dtype
        y.sum().backward()
        assert x.grad.dtype == dtype


def test_integer_input_rejected_when_training():
    i = T([1, 2, 3])
    assert Dr.dropout(i, 0.5, training=False) is i
    with pytest.raises(RuntimeError, match="floating point"):
        Dr.dropout(i, 0.5)
