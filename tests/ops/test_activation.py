"""Activation functions: closed-form NumPy references, float64 gradchecks away from kinks, in-place semantics,
dtypes, errors, rrelu randomness and the functional softmax family."""
import math
import warnings

import numpy as np
import pytest

import disttorch
from disttorch.ops import activation as A
from helpers import assert_close, check_grad, rand_array

pytestmark = pytest.mark.filterwarnings("error")  # no NumPy RuntimeWarning may leak

T = disttorch.tensor

_erfc = np.vectorize(math.erfc, otypes=[np.float64])
SELU_A, SELU_S = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def np_sigmoid(a):
    return 1 / (1 + np.exp(-a))


def np_softplus(a, beta=1.0, threshold=20.0):
    return np.where(a * beta > threshold, a, np.log1p(np.exp(a * beta)) / beta)


def np_elu(a, alpha=1.0):
    return np.where(a > 0, a, alpha * np.expm1(np.minimum(a, 0)))


def np_gelu_tanh(a):
    return 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3)))


# name -> (function, kwargs, NumPy reference, has a dedicated node with its own double backward)
CASES = {
    "relu": (A.relu, {}, lambda a: np.maximum(a, 0), False),
    "relu6": (A.relu6, {}, lambda a: np.clip(a, 0, 6), True),
    "leaky_relu": (A.leaky_relu, {"negative_slope": 0.2}, lambda a: np.where(a > 0, a, 0.2 * a), True),
    "leaky_relu_steep": (A.leaky_relu, {"negative_slope": 1.5}, lambda a: np.where(a > 0, a, 1.5 * a), True),
    "leaky_relu_neg": (A.leaky_relu, {"negative_slope": -0.3}, lambda a: np.where(a > 0, a, -0.3 * a), True),
    "elu": (A.elu, {"alpha": 1.5}, lambda a: np_elu(a, 1.5), True),
    "selu": (A.selu, {}, lambda a: SELU_S * np_elu(a, SELU_A), True),
    "celu": (A.celu, {"alpha": 0.7}, lambda a: np.maximum(a, 0) + np.minimum(0, 0.7 * np.expm1(a / 0.7)), True),
    "gelu": (A.gelu, {}, lambda a: 0.5 * a * _erfc(-a / math.sqrt(2)), True),
    "gelu_tanh": (A.gelu, {"approximate": "tanh"}, np_gelu_tanh, True),
    "silu": (A.silu, {}, lambda a: a * np_sigmoid(a), True),
    "mish": (A.mish, {}, lambda a: a * np.tanh(np.log1p(np.exp(a))), True),
    "softplus": (A.softplus, {}, np_softplus, True),
    "softplus_beta": (A.softplus, {"beta": 2.0, "threshold": 3.0}, lambda a: np_softplus(a, 2.0, 3.0), True),
    "hardtanh": (A.hardtanh, {"min_val": -1.0, "max_val": 2.0}, lambda a: np.clip(a, -1.0, 2.0), True),
    "hardsigmoid": (A.hardsigmoid, {}, lambda a: np.clip(a / 6 + 0.5, 0, 1), True),
    "hardswish": (A.hardswish, {}, lambda a: a * np.clip(a + 3, 0, 6) / 6, True),
    "logsigmoid": (A.logsigmoid, {}, lambda a: np.log(np_sigmoid(a)), True),
    "softsign": (A.softsign, {}, lambda a: a / (1 + np.abs(a)), False),
    "softshrink": (A.softshrink, {"lambd": 0.5}, lambda a: np.where(a > 0.5, a - 0.5, np.where(a < -0.5, a + 0.5, 0)),
                   False),
    "hardshrink": (A.hardshrink, {"lambd": 0.5}, lambda a: np.where(np.abs(a) > 0.5, a, 0), False),
    "tanhshrink": (A.tanhshrink, {}, lambda a: a - np.tanh(a), False),
    "threshold": (A.threshold, {"threshold": 0.1, "value": -3.0}, lambda a: np.where(a > 0.1, a, -3.0), False),
    "rrelu_eval": (A.rrelu, {"lower": 0.1, "upper": 0.3}, lambda a: np.where(a >= 0, a, 0.2 * a), False),
    "sigmoid": (A.sigmoid, {}, np_sigmoid, False),
    "tanh": (A.tanh, {}, np.tanh, False),
}
INPLACE = ["relu", "relu6", "leaky_relu", "elu", "selu", "celu", "silu", "mish", "hardtanh", "hardsigmoid",
           "hardswish", "threshold", "rrelu_eval"]
# Values 0.05+ away from every kink (0, +-0.5, +-1, 2, +-3, 6, 0.1) and spanning both sides of them.
KINKLESS = np.array([-4.1, -2.7, -1.3, -0.8, -0.35, 0.25, 0.62, 1.4, 2.45, 3.6, 6.5, -1.9])


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("shape", [(), (0,), (7,), (2, 3, 4)])
def test_forward_matches_reference(name, shape):
    fn, kw, ref, _ = CASES[name]
    a = rand_array(shape, low=-5, high=5)
    assert_close(fn(T(a), **kw), ref(a), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", list(CASES))
def test_forward_extreme_values(name):
    fn, kw, ref, _ = CASES[name]
    a = np.array([-60.0, -25.0, -1e-3, 0.0, 1e-3, 25.0, 60.0])
    with np.errstate(over="ignore", divide="ignore"):
        expected = ref(a)
    r = fn(T(a), **kw)
    assert np.all(np.isfinite(r.numpy()))
    assert_close(r, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck(name):
    fn, kw, _, dedicated = CASES[name]
    a = KINKLESS.reshape(3, 4)
    check_grad(lambda x: fn(x, **kw), a, gradgrad=dedicated)


@pytest.mark.parametrize("name", [n for n in CASES if CASES[n][3]])
def test_create_graph_backward_matches_plain_backward(name):
    fn, kw, _, _ = CASES[name]
    a = np.concatenate([KINKLESS, rand_array((20,), low=-8, high=8)])
    x = T(a, requires_grad=True)
    (plain,) = disttorch.autograd.grad(fn(x, **kw).sum(), x)
    (graph,) = disttorch.autograd.grad(fn(x, **kw).sum(), x, create_graph=True)
    assert graph.requires_grad or name.startswith(("relu6", "hardtanh", "hardsigmoid", "leaky_relu"))
    assert_close(graph, plain.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["gelu", "silu", "elu", "softplus", "mish", "logsigmoid"])
def test_gradcheck_0d_and_empty(name):
    fn, kw, _, _ = CASES[name]
    check_grad(lambda x: fn(x, **kw), np.array(0.7))
    x = disttorch.zeros(0, 3, requires_grad=True)
    fn(x, **kw).sum().backward()
    assert x.grad.shape == (0, 3)


@pytest.mark.parametrize("name", ["gelu", "gelu_tanh", "silu", "elu", "softplus", "mish", "leaky_relu", "hardtanh",
                                  "hardswish", "logsigmoid", "relu6"])
@pytest.mark.parametrize("dtype", [disttorch.float32, disttorch.bfloat16, disttorch.float16])
def test_low_precision_dtype_preserved(name, dtype):
    fn, kw, ref, _ = CASES[name]
    a = rand_array((4, 5), low=-4, high=4)
    x = T(a, dtype=dtype, requires_grad=True)
    y = fn(x, **kw)
    assert y.dtype == dtype
    tol = 1e-6 if dtype == disttorch.float32 else 2e-2
    assert_close(y, ref(x.detach().float().numpy().astype(np.float64)), rtol=tol, atol=tol)
    y.sum().backward()
    assert x.grad.dtype == dtype


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_same_object_version_and_values(name):
    fn, kw, ref, _ = CASES[name]
    a = rand_array((3, 4), low=-4, high=4)
    x = T(a)
    v = x._version
    r = fn(x, inplace=True, **kw)
    assert r is x
    assert x._version > v
    assert_close(x, ref(a))


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_grad_through_non_leaf(name):
    fn, kw, _, _ = CASES[name]
    a = KINKLESS.reshape(3, 4)
    leaf = T(a, requires_grad=True)
    y = leaf * 1.0
    fn(y, inplace=True, **kw)
    y.sum().backward()
    ref_leaf = T(a, requires_grad=True)
    fn(ref_leaf, **kw).sum().backward()
    assert_close(leaf.grad, ref_leaf.grad.numpy())


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_on_leaf_requiring_grad_raises(name):
    fn, kw, _, _ = CASES[name]
    x = disttorch.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
        fn(x, inplace=True, **kw)


def test_underscore_variants():
    a = rand_array((2, 5), low=-3, high=3)
    for fn_, ref in [(lambda x: A.elu_(x, 0.5), lambda a: np_elu(a, 0.5)),
                     (lambda x: A.leaky_relu_(x, 0.1), lambda a: np.where(a > 0, a, 0.1 * a)),
                     (lambda x: A.hardtanh_(x, -0.5, 0.5), lambda a: np.clip(a, -0.5, 0.5)),
                     (lambda x: A.threshold_(x, 0.0, 9.0), lambda a: np.where(a > 0, a, 9.0)),
                     (A.relu_, lambda a: np.maximum(a, 0)), (A.selu_, lambda a: SELU_S * np_elu(a, SELU_A)),
                     (lambda x: A.celu_(x, 2.0), lambda a: np.maximum(a, 0) + np.minimum(0, 2 * np.expm1(a / 2))),
                     (lambda x: A.rrelu_(x, 0.2, 0.4), lambda a: np.where(a >= 0, a, 0.3 * a))]:
        x = T(a)
        assert fn_(x) is x
        assert_close(x, ref(a))


def test_integer_inputs():
    i = T([-3, 0, 2, 9])
    assert_close(A.relu6(i), np.array([0, 0, 2, 6]), check_dtype=disttorch.int64)
    assert_close(A.hardtanh(i, -1.5, 2.5), np.array([-1, 0, 2, 2]), check_dtype=disttorch.int64)
    assert_close(A.threshold(i, 1, 5), np.array([5, 5, 2, 9]), check_dtype=disttorch.int64)
    assert_close(A.relu(i), np.array([0, 0, 2, 9]), check_dtype=disttorch.int64)
    with pytest.raises(RuntimeError, match="not implemented for 'Long'"):
        A.gelu(i)
    with pytest.raises(RuntimeError, match="Bool inputs not supported for hardtanh"):
        A.hardtanh(T([True]))
    with pytest.raises(TypeError, match="must be Tensor"):
        A.silu([1.0, 2.0])


def test_argument_errors():
    x = disttorch.randn(4)
    with pytest.raises(ValueError, match="min_val cannot be greater than max_val"):
        A.hardtanh(x, 2.0, 1.0)
    with pytest.raises(RuntimeError, match="approximate argument must be either none or tanh"):
        A.gelu(x, approximate="erf")
    with pytest.raises(RuntimeError, match="lambda must be greater or equal to 0"):
        A.softshrink(x, -1.0)
    with pytest.raises(RuntimeError, match="Lower bound should be less than or equal to the upper bound"):
        A.rrelu(x, 0.5, 0.1, training=True)


# ---- prelu -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,wshape", [((2, 3, 4), (3,)), ((2, 3), (1,)), ((5,), (1,)), ((2, 3, 2, 2), (3,)),
                                          ((4,), ()), ((), (1,))])
def test_prelu_forward_and_grad(shape, wshape):
    a = rand_array(shape, low=-3, high=3)
    a = np.where(np.abs(a) < 0.1, 0.5, a)
    w = rand_array(wshape, low=0.05, high=0.5)
    wb = w.reshape([1] * len(shape)) if w.size == 1 else w.reshape((1, -1) + (1,) * (len(shape) - 2))
    assert_close(A.prelu(T(a), T(w)), np.where(a > 0, a, wb * a))
    check_grad(A.prelu, a, w)
    assert_close(A.ActivationMethods.prelu(T(a), T(w)), np.where(a > 0, a, wb * a))  # Tensor.prelu


def test_prelu_errors():
    with pytest.raises(RuntimeError, match="Mismatch of parameter numbers and input channel size"):
        A.prelu(disttorch.randn(2, 3), disttorch.randn(4))
    with pytest.raises(RuntimeError, match="Expected `weight` to be a scalar or 1D tensor"):
        A.prelu(disttorch.randn(2, 1), disttorch.randn(1, 1))


# ---- rrelu ---------------------------------------------------------------------------------------------
def test_rrelu_training_slopes_in_range_and_reproducible():
    a = -rand_array((2000,), low=0.5, high=2.0)
    disttorch.manual_seed(3)
    y1 = A.rrelu(T(a), 0.1, 0.3, training=True).numpy()
    disttorch.manual_seed(3)
    y2 = A.rrelu(T(a), 0.1, 0.3, training=True).numpy()
    np.testing.assert_array_equal(y1, y2)
    slopes = y1 / a
    assert slopes.min() >= 0.1 and slopes.max() <= 0.3
    assert abs(slopes.mean() - 0.2) < 0.01
    pos = np.abs(a)
    np.testing.assert_array_equal(A.rrelu(T(pos), training=True).numpy(), pos)


def test_rrelu_training_grad_is_the_sampled_slope():
    a = np.array([-1.0, -2.0, 3.0, -0.5])
    x = T(a, requires_grad=True)
    y = A.rrelu(x, training=True)
    y.sum().backward()
    assert_close(x.grad, y.detach().numpy() / a)


# ---- hardshrink method, glu -----------------------------------------------------------------------------
def test_hardshrink_method_and_top_level():
    a = rand_array((3, 4))
    assert_close(A.ActivationMethods.hardshrink(T(a), 0.3), np.where(np.abs(a) > 0.3, a, 0))  # Tensor.hardshrink
    assert_close(disttorch.ops.activation.hardshrink(T(a)), np.where(np.abs(a) > 0.5, a, 0))


@pytest.mark.parametrize("shape,dim", [((4,), -1), ((3, 6), 1), ((4, 3), 0), ((2, 4, 2), 1)])
def test_glu(shape, dim):
    a = rand_array(shape)
    h = shape[dim] // 2
    first, second = np.split(a, 2, axis=dim)
    assert_close(A.glu(T(a), dim), first * np_sigmoid(second))
    assert h * 2 == shape[dim]
    check_grad(lambda x: A.glu(x, dim), a)


def test_glu_errors():
    with pytest.raises(RuntimeError, match="Halving dimension must be even, but dimension 1 is size 3"):
        A.glu(disttorch.randn(2, 3))
    with pytest.raises(RuntimeError, match="glu does not support scalars"):
        A.glu(disttorch.tensor(1.0))


# ---- functional softmax family --------------------------------------------------------------------------
def np_softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("shape,implicit", [((5,), 0), ((3, 4), 1), ((2, 3, 4), 0), ((2, 3, 4, 2), 1)])
def test_softmax_implicit_dim_warns(shape, implicit):
    a = rand_array(shape)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax has been deprecated"):
        r = A.softmax(T(a))
    assert_close(r, np_softmax(a, implicit))
    with pytest.warns(UserWarning, match="Implicit dimension choice for log_softmax"):
        r = A.log_softmax(T(a))
    assert_close(r, np.log(np_softmax(a, implicit)))
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmin"):
        r = A.softmin(T(a))
    assert_close(r, np_softmax(-a, implicit))


def test_softmax_explicit_dim_no_warning_and_dtype():
    a = rand_array((3, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_close(A.softmax(T(a, dtype=disttorch.float32), 1), np_softmax(a, 1), rtol=1e-5)
        r = A.softmin(T(a, dtype=disttorch.float32), dim=0, dtype=disttorch.float64)
        assert r.dtype == disttorch.float64
        assert_close(r, np_softmax(-a.astype(np.float32), 0), rtol=1e-6)
        assert A.log_softmax(T([1, 2, 3]), 0, dtype=disttorch.float32).dtype == disttorch.float32
    check_grad(lambda x: A.softmin(x, 1), a)


def test_gumbel_softmax():
    disttorch.manual_seed(0)
    logits = T(rand_array((4, 5)), requires_grad=True)
    soft = A.gumbel_softmax(logits, tau=0.5)
    assert_close(soft.sum(-1), np.ones(4))
    hard = A.gumbel_softmax(logits, hard=True)
    h = hard.detach().numpy()
    assert set(np.unique(h)) <= {0.0, 1.0} and np.all(h.sum(-1) == 1)
    hard.sum().backward()
    assert logits.grad is not None


def test_module_tables():
    for name in A.FUNCTIONAL:
        assert callable(getattr(A, name)), name
    for name in A.__all__:
        assert name in A.FUNCTIONAL, name


def test_gelu_float32_accuracy_across_range_and_tails():
    # float32 GELU runs its own erfc polynomial; hold its value and gradient to float64 math.erfc everywhere,
    # relative in the negative tail (where GELU is tiny and a 1 + erf formula would cancel to zero).
    a = np.concatenate([np.linspace(-12, 12, 4001), -np.geomspace(1e-6, 12, 200), np.geomspace(1e-6, 12, 200)])
    x = T(a.astype(np.float32), requires_grad=True)
    y = A.gelu(x)
    y.backward(disttorch.ones_like(y))
    a32 = x.detach().numpy().astype(np.float64)
    ref = 0.5 * a32 * _erfc(-a32 / math.sqrt(2))
    dref = 0.5 * _erfc(-a32 / math.sqrt(2)) + a32 * np.exp(-0.5 * a32 * a32) / math.sqrt(2 * math.pi)
    got, dgot = y.detach().numpy().astype(np.float64), x.grad.numpy().astype(np.float64)
    np.testing.assert_allclose(got, ref, rtol=2e-6, atol=1e-7 * np.abs(a32).max())
    tail = (a32 < -2) & (ref != 0)
    np.testing.assert_allclose(got[tail], ref[tail], rtol=5e-5)  # exp of a float32 argument near -70
    np.testing.assert_allclose(dgot, dref, rtol=2e-6, atol=2e-7)
