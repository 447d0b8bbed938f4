"""batch_norm, layer_norm, group_norm, instance_norm, rms_norm, local_response_norm against NumPy references."""
import importlib

import numpy as np
import pytest

import disttorch
from tests.helpers import assert_close, check_grad, rand_array

N = importlib.import_module("disttorch.ops.norm")  # disttorch.ops.norm is rebound to the norm() function

rng = np.random.default_rng(7)


# ---- NumPy references -----------------------------------------------------------------------------------
def ref_layer_norm(x, k, w=None, b=None, eps=1e-5):
    axes = tuple(range(x.ndim - k, x.ndim))
    y = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + eps)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


def _chan(p, ndim):
    return p.reshape((1, -1) + (1,) * (ndim - 2))


def ref_batch_norm(x, w=None, b=None, eps=1e-5, mean=None, var=None):
    axes = (0,) + tuple(range(2, x.ndim))
    if mean is None:
        mean, var = x.mean(axes), x.var(axes)
    y = (x - _chan(mean, x.ndim)) / np.sqrt(_chan(var, x.ndim) + eps)
    if w is not None:
        y = y * _chan(w, x.ndim)
    if b is not None:
        y = y + _chan(b, x.ndim)
    return y


def ref_group_norm(x, g, w=None, b=None, eps=1e-5):
    n, c = x.shape[:2]
    xr = x.reshape(n, g, -1)
    y = ((xr - xr.mean(-1, keepdims=True)) / np.sqrt(xr.var(-1, keepdims=True) + eps)).reshape(x.shape)
    if w is not None:
        y = y * _chan(w, x.ndim)
    if b is not None:
        y = y + _chan(b, x.ndim)
    return y


def ref_rms_norm(x, k, w=None, eps=None):
    eps = np.finfo(x.dtype).eps if eps is None else eps
    axes = tuple(range(x.ndim - k, x.ndim))
    y = x / np.sqrt((x * x).mean(axes, keepdims=True) + eps)
    return y if w is None else y * w


def ref_lrn(x, size, alpha=1e-4, beta=0.75, k=1.0):
    c = x.shape[1]
    sq = x * x
    div = np.zeros_like(x)
    for i in range(c):
        lo, hi = max(0, i - size // 2), min(c, i + (size - 1) // 2 + 1)
        div[:, i] = sq[:, lo:hi].sum(1)
    return x / (k + alpha * div / size) ** beta


def T(a, **kw):
    return disttorch.tensor(a, **kw)


# ---- layer_norm -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,k", [((4, 5), 1), ((2, 3, 4), 1), ((2, 3, 4), 2), ((3, 2, 2, 3), 3), ((6,), 1)])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_forward(shape, k, affine, dtype):
    x = rand_array(shape, dtype, rng=rng) * 3 + 1
    ns = shape[len(shape) - k:]
    w = rand_array(ns, dtype, rng=rng) if affine else None
    b = rand_array(ns, dtype, rng=rng) if affine else None
    out = N.layer_norm(T(x), ns, None if w is None else T(w), None if b is None else T(b))
    tol = 1e-5 if dtype == np.float32 else 1e-10
    assert_close(out, ref_layer_norm(x.astype(np.float64), k, w, b), rtol=tol, atol=tol,
                 check_dtype=disttorch.float32 if dtype == np.float32 else disttorch.float64)


def test_layer_norm_int_normalized_shape_eps_and_noncontiguous():
    x = rand_array((5, 4), rng=rng)
    xt = T(x).t()  # (4, 5), not contiguous
    assert_close(N.layer_norm(xt, 5, eps=0.5), ref_layer_norm(x.T, 1, eps=0.5))
    assert_close(N.layer_norm(T(x), [4]), ref_layer_norm(x, 1))


def test_empty_inputs_forward_and_backward():
    for fn, shape in ((lambda x: N.layer_norm(x, (3,)), (0, 3)), (lambda x: N.layer_norm(x, (0,)), (2, 0)),
                      (lambda x: N.group_norm(x, 2), (0, 4, 2)), (lambda x: N.rms_norm(x, (3,)), (0, 3))):
        x = disttorch.zeros(*shape, requires_grad=True)
        y = fn(x)
        assert y.shape == shape
        y.sum().backward()
        assert x.grad.shape == shape


def test_layer_norm_grad_fn():
    x = disttorch.randn(2, 3, requires_grad=True)
    assert N.layer_norm(x, (3,)).grad_fn.name() == "NativeLayerNormBackward0"


@pytest.mark.parametrize("dt", [disttorch.float16, disttorch.bfloat16])
def test_layer_norm_half(dt):
    x = rand_array((3, 8), np.float32, rng=rng)
    w, b = rand_array((8,), np.float32, rng=rng), rand_array((8,), np.float32, rng=rng)
    xh = T(x).to(dt).requires_grad_()
    out = N.layer_norm(xh, (8,), T(w).to(dt), T(b).to(dt))
    assert out.dtype is dt
    ref = ref_layer_norm(T(x).to(dt).float().numpy().astype(np.float64), 1,
                         T(w).to(dt).float().numpy(), T(b).to(dt).float().numpy())
    assert_close(out.float(), ref, rtol=2e-2, atol=3e-2)
    out.float().sum().backward()
    assert xh.grad.dtype is dt


@pytest.mark.parametrize("shape,k", [((2, 3), 1), ((2, 2, 3), 2)])
def test_layer_norm_grad(shape, k):
    ns = shape[len(shape) - k:]
    x, w, b = rand_array(shape, rng=rng), rand_array(ns, rng=rng), rand_array(ns, rng=rng)
    check_grad(lambda x, w, b: N.layer_norm(x, ns, w, b), x, w, b, gradgrad=True)
    check_grad(lambda x: N.layer_norm(x, ns), x, gradgrad=True)
    check_grad(lambda x, b: N.layer_norm(x, ns, None, b), x, b)


def test_layer_norm_errors():
    x = disttorch.randn(2, 3)
    with pytest.raises(RuntimeError, match=r"normalized_shape=\[4\].*\[2, 3\]"):
        N.layer_norm(x, (4,))
    with pytest.raises(RuntimeError, match="Expected weight to be of same shape"):
        N.layer_norm(x, (3,), disttorch.ones(4))
    with pytest.raises(RuntimeError, match="not implemented"):
        N.layer_norm(disttorch.ones(2, 3, dtype=disttorch.int64), (3,))
    with pytest.raises(TypeError, match="must be Tensor"):
        N.layer_norm([1.0, 2.0], (2,))


# ---- batch_norm -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 5), (2, 3, 2, 2)])
@pytest.mark.parametrize("affine", [False, True])
def test_batch_norm_training_and_running_stats(shape, affine):
    c = shape[1]
    w = rand_array((c,), rng=rng) if affine else None
    b = rand_array((c,), rng=rng) if affine else None
    rm, rv = disttorch.zeros(c, dtype=disttorch.float64), disttorch.ones(c, dtype=disttorch.float64)
    em, ev = np.zeros(c), np.ones(c)
    axes = (0,) + tuple(range(2, len(shape)))
    cnt = np.prod([shape[i] for i in axes])
    for step, mom in enumerate((0.1, 0.3)):
        x = rand_array(shape, rng=rng) * (step + 1) + step
        v0 = rm._version
        out = N.batch_norm(T(x), rm, rv, None if w is None else T(w), None if b is None else T(b), True, mom)
        assert_close(out, ref_batch_norm(x, w, b), rtol=1e-10, atol=1e-10)
        em = (1 - mom) * em + mom * x.mean(axes)
        ev = (1 - mom) * ev + mom * x.var(axes) * cnt / (cnt - 1)
        assert_close(rm, em, rtol=1e-12)
        assert_close(rv, ev, rtol=1e-12)
        assert rm._version > v0
    # eval mode: running statistics normalise, buffers unchanged
    x = rand_array(shape, rng=rng)
    out = N.batch_norm(T(x), rm, rv, None if w is None else T(w), None if b is None else T(b), False)
    assert_close(out, ref_batch_norm(x, w, b, mean=em, var=ev), rtol=1e-10, atol=1e-10)
    assert_close(rm, em, rtol=1e-12)


def test_batch_norm_float32_running_buffers_and_no_running():
    x = rand_array((6, 4), np.float32, rng=rng)
    rm, rv = disttorch.zeros(4), disttorch.ones(4)
    out = N.batch_norm(T(x), rm, rv, training=True, momentum=0.5)
    assert out.dtype is disttorch.float32 and rm.dtype is disttorch.float32
    assert_close(rm, 0.5 * x.astype(np.float64).mean(0), rtol=1e-5, atol=1e-6)
    out2 = N.batch_norm(T(x), None, None, training=True)
    assert_close(out2, ref_batch_norm(x.astype(np.float64)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_grad(training):
    x, w, b = rand_array((3, 2, 2), rng=rng), rand_array((2,), rng=rng), rand_array((2,), rng=rng)
    rm, rv = T(rand_array((2,), rng=rng)), T(rand_array((2,), low=0.5, high=2.0, rng=rng))

    def fn(x, w, b):
        return N.batch_norm(x, rm.clone(), rv.clone(), w, b, training)

    check_grad(fn, x, w, b, gradgrad=True)
    check_grad(lambda x: N.batch_norm(x, None, None, training=True), x, gradgrad=True)


def test_batch_norm_errors():
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, got input size "
                                         r"\[1, 3\]"):
        N.batch_norm(disttorch.randn(1, 3), None, None, training=True)
    with pytest.raises(RuntimeError, match="running_mean"):
        N.batch_norm(disttorch.randn(4, 3), None, None, training=False)
    with pytest.raises(RuntimeError, match="running_mean should contain 3 elements not 4"):
        N.batch_norm(disttorch.randn(4, 3), disttorch.zeros(4), disttorch.ones(4), training=True)
    with pytest.raises(RuntimeError, match="weight should contain 3 elements not 2"):
        N.batch_norm(disttorch.randn(4, 3), None, None, disttorch.ones(2), training=True)
    with pytest.raises(TypeError, match="momentum"):
        N.batch_norm(disttorch.randn(4, 3), disttorch.zeros(3), disttorch.ones(3), training=True, momentum=None)
    # one value per channel is fine in eval mode
    assert N.batch_norm(disttorch.randn(1, 3), disttorch.zeros(3), disttorch.ones(3)).shape == (1, 3)


@pytest.mark.parametrize("dt", [disttorch.float16, disttorch.bfloat16])
def test_batch_norm_half(dt):
    x = rand_array((5, 3, 2), np.float32, rng=rng)
    xh = T(x).to(dt)
    rm, rv = disttorch.zeros(3), disttorch.ones(3)
    out = N.batch_norm(xh, rm, rv, training=True)
    assert out.dtype is dt
    assert_close(out.float(), ref_batch_norm(xh.float().numpy().astype(np.float64)), rtol=2e-2, atol=3e-2)


# ---- group / instance norm -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,g", [((2, 4), 2), ((2, 6, 3), 3), ((3, 4, 2, 2), 1), ((2, 4, 3), 4)])
@pytest.mark.parametrize("affine", [False, True])
def test_group_norm_forward(shape, g, affine):
    c = shape[1]
    x = rand_array(shape, rng=rng)
    w = rand_array((c,), rng=rng) if affine else None
    b = rand_array((c,), rng=rng) if affine else None
    out = N.group_norm(T(x), g, None if w is None else T(w), None if b is None else T(b), eps=1e-3)
    assert_close(out, ref_group_norm(x, g, w, b, eps=1e-3), rtol=1e-10, atol=1e-10)


def test_group_norm_grad_and_errors():
    x, w, b = rand_array((2, 4, 2), rng=rng), rand_array((4,), rng=rng), rand_array((4,), rng=rng)
    check_grad(lambda x, w, b: N.group_norm(x, 2, w, b), x, w, b, gradgrad=True)
    assert N.group_norm(T(x, requires_grad=True), 2).grad_fn.name() == "NativeGroupNormBackward0"
    with pytest.raises(RuntimeError, match="divisible by num_groups"):
        N.group_norm(disttorch.randn(2, 6, 4), 4)
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        N.group_norm(disttorch.randn(6), 3)


def test_instance_norm_forward_running_and_grad():
    x = rand_array((3, 2, 4), rng=rng)
    w, b = rand_array((2,), rng=rng), rand_array((2,), rng=rng)
    rm, rv = disttorch.zeros(2, dtype=disttorch.float64), disttorch.ones(2, dtype=disttorch.float64)
    out = N.instance_norm(T(x), rm, rv, T(w), T(b), momentum=0.2)
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    assert_close(out, (x - mu) / np.sqrt(var + 1e-5) * w[:, None] + b[:, None], rtol=1e-10, atol=1e-10)
    assert_close(rm, 0.2 * x.mean(-1).mean(0), rtol=1e-12)
    assert_close(rv, 0.8 + 0.2 * x.var(-1, ddof=1).mean(0), rtol=1e-12)
    out = N.instance_norm(T(x), rm, rv, use_input_stats=False)
    assert_close(out, ref_batch_norm(x, mean=rm.numpy(), var=rv.numpy()), rtol=1e-10, atol=1e-10)
    check_grad(lambda x, w, b: N.instance_norm(x, None, None, w, b), x, w, b)
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        N.instance_norm(disttorch.randn(2, 3, 1))


# ---- rms_norm / local_response_norm ---------------------------------------------------------------------
@pytest.mark.parametrize("shape,k", [((3, 4), 1), ((2, 2, 3), 2)])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("eps", [None, 1e-3])
def test_rms_norm_forward(shape, k, affine, eps):
    ns = shape[len(shape) - k:]
    x = rand_array(shape, rng=rng)
    w = rand_array(ns, rng=rng) if affine else None
    out = N.rms_norm(T(x), ns, None if w is None else T(w), eps)
    assert_close(out, ref_rms_norm(x, k, w, eps), rtol=1e-10, atol=1e-12)


def test_rms_norm_float32_default_eps_and_grad():
    x = np.full((2, 3), 1e-5, np.float32)
    # eps = finfo(float32).eps dominates mean(x^2) = 1e-10
    assert_close(N.rms_norm(T(x), (3,)), x / np.sqrt(1e-10 + np.finfo(np.float32).eps), rtol=1e-5)
    x, w = rand_array((2, 3), rng=rng), rand_array((3,), rng=rng)
    check_grad(lambda x, w: N.rms_norm(x, (3,), w), x, w, gradgrad=True)


@pytest.mark.parametrize("shape,size", [((2, 5, 3), 3), ((1, 4, 2, 2), 2), ((2, 3, 2), 5)])
def test_local_response_norm(shape, size):
    x = rand_array(shape, rng=rng)
    assert_close(N.local_response_norm(T(x), size, alpha=0.1, beta=0.6, k=2.0),
                 ref_lrn(x, size, 0.1, 0.6, 2.0), rtol=1e-10)
    with pytest.raises(ValueError, match="3D or higher"):
        N.local_response_norm(disttorch.randn(2, 3), 2)


def test_local_response_norm_grad():
    check_grad(lambda x: N.local_response_norm(x, 3, alpha=0.5), rand_array((1, 4, 2), rng=rng))


def test_exports():
    assert set(N.__all__) <= set(N.FUNCTIONAL)
    assert "batch_norm" not in N.__all__ and "batch_norm" in N.FUNCTIONAL
    for name in N.FUNCTIONAL:
        assert callable(getattr(N, name))
