"""Activation layers (disttorch/nn/modules/activation.py, not MultiheadAttention): forward vs NumPy, repr,
parameters, train/eval, errors."""
from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest

import disttorch as torch
from disttorch.nn.modules import activation as A
from helpers import assert_close, rand_array

_erf = np.vectorize(math.erf)
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x, dim):
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def _softplus(x, beta=1.0, threshold=20.0):
    return np.where(beta * x > threshold, x, np.log1p(np.exp(beta * x)) / beta)


# (constructor, NumPy reference of the forward)
CASES = [
    (lambda: A.ReLU(), lambda x: np.maximum(x, 0)),
    (lambda: A.ReLU6(), lambda x: np.clip(x, 0, 6)),
    (lambda: A.LeakyReLU(), lambda x: np.where(x > 0, x, 0.01 * x)),
    (lambda: A.LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    (lambda: A.PReLU(), lambda x: np.where(x > 0, x, 0.25 * x)),
    (lambda: A.PReLU(init=0.1), lambda x: np.where(x > 0, x, float(np.float32(0.1)) * x)),  # float32 parameter
    (lambda: A.ELU(), lambda x: np.where(x > 0, x, np.expm1(x))),
    (lambda: A.ELU(alpha=0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
    (lambda: A.CELU(alpha=2.0), lambda x: np.maximum(x, 0) + np.minimum(0, 2.0 * np.expm1(x / 2.0))),
    (lambda: A.SELU(), lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(x))),
    (lambda: A.GELU(), lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2)))),
    (lambda: A.GELU("tanh"), lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
    (lambda: A.SiLU(), lambda x: x * _sig(x)),
    (lambda: A.Mish(), lambda x: x * np.tanh(np.log1p(np.exp(x)))),
    (lambda: A.Softplus(), lambda x: _softplus(x)),
    (lambda: A.Softplus(beta=2.0, threshold=1.0), lambda x: _softplus(x, 2.0, 1.0)),
    (lambda: A.Tanh(), np.tanh),
    (lambda: A.Sigmoid(), _sig),
    (lambda: A.Hardtanh(), lambda x: np.clip(x, -1, 1)),
    (lambda: A.Hardtanh(-0.5, 1.5), lambda x: np.clip(x, -0.5, 1.5)),
    (lambda: A.Hardsigmoid(), lambda x: np.clip(x / 6 + 0.5, 0, 1)),
    (lambda: A.Hardswish(), lambda x: x * np.clip(x / 6 + 0.5, 0, 1)),
    (lambda: A.LogSigmoid(), lambda x: -np.logaddexp(0, -x)),
    (lambda: A.Softsign(), lambda x: x / (1 + np.abs(x))),
    (lambda: A.Softshrink(), lambda x: np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0))),
    (lambda: A.Softshrink(1.0), lambda x: np.where(x > 1, x - 1, np.where(x < -1, x + 1, 0))),
    (lambda: A.Hardshrink(), lambda x: np.where(np.abs(x) > 0.5, x, 0)),
    (lambda: A.Tanhshrink(), lambda x: x - np.tanh(x)),
    (lambda: A.Threshold(0.1, 20.0), lambda x: np.where(x > 0.1, x, 20.0)),
    (lambda: A.GLU(), lambda x: x[..., :2] * _sig(x[..., 2:])),
    (lambda: A.GLU(dim=0), lambda x: x[:1] * _sig(x[1:])),
    (lambda: A.Softmax(dim=1), lambda x: _softmax(x, 1)),
    (lambda: A.Softmax(dim=-1), lambda x: _softmax(x, -1)),
    (lambda: A.LogSoftmax(dim=1), lambda x: np.log(_softmax(x, 1))),
    (lambda: A.Softmin(dim=0), lambda x: _softmax(-x, 0)),
    (lambda: A.Softmax2d(), lambda x: _softmax(x, -3)),
    (lambda: A.RReLU().eval(), lambda x: np.where(x >= 0, x, x * (1 / 8 + 1 / 3) / 2)),
]


@pytest.mark.parametrize("make,ref", CASES, ids=[repr(make()) for make, _ in CASES])
@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 2, 3, 4)])
def test_forward_matches_numpy(make, ref, shape):
    x = rand_array(shape, low=-3, high=3)
    m = make().double()
    out = m(torch.tensor(x))
    assert out.dtype == torch.float64
    assert_close(out, ref(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make,ref", CASES, ids=[repr(make()) for make, _ in CASES])
def test_gradcheck(make, ref):
    m = make().double()
    x = torch.tensor(rand_array((2, 2, 4), low=-3, high=3), requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, *ps: m(x), (x, *m.parameters()))


def test_float32_default_dtype():
    out = A.GELU()(torch.tensor(rand_array((3, 4)).astype(np.float32)))
    assert out.dtype == torch.float32


REPRS = [
    (A.ReLU(), "ReLU()"),
    (A.ReLU(inplace=True), "ReLU(inplace=True)"),
    (A.ReLU6(), "ReLU6()"),
    (A.ReLU6(inplace=True), "ReLU6(inplace=True)"),
    (A.LeakyReLU(), "LeakyReLU(negative_slope=0.01)"),
    (A.LeakyReLU(0.2, True), "LeakyReLU(negative_slope=0.2, inplace=True)"),
    (A.PReLU(), "PReLU(num_parameters=1)"),
    (A.PReLU(3), "PReLU(num_parameters=3)"),
    (A.RReLU(), "RReLU(lower=0.125, upper=0.3333333333333333)"),
    (A.RReLU(0.1, 0.3, inplace=True), "RReLU(lower=0.1, upper=0.3, inplace=True)"),
    (A.ELU(), "ELU(alpha=1.0)"),
    (A.ELU(0.5, inplace=True), "ELU(alpha=0.5, inplace=True)"),
    (A.CELU(), "CELU(alpha=1.0)"),
    (A.SELU(), "SELU()"),
    (A.SELU(inplace=True), "SELU(inplace=True)"),
    (A.GELU(), "GELU(approximate='none')"),
    (A.GELU(approximate="tanh"), "GELU(approximate='tanh')"),
    (A.SiLU(), "SiLU()"),
    (A.SiLU(inplace=True), "SiLU(inplace=True)"),
    (A.Mish(), "Mish()"),
    (A.Softplus(), "Softplus(beta=1.0, threshold=20.0)"),
    (A.Softplus(2, 10), "Softplus(beta=2, threshold=10)"),
    (A.Tanh(), "Tanh()"),
    (A.Sigmoid(), "Sigmoid()"),
    (A.Hardtanh(), "Hardtanh(min_val=-1.0, max_val=1.0)"),
    (A.Hardtanh(-2.0, 2.0, True), "Hardtanh(min_val=-2.0, max_val=2.0, inplace=True)"),
    (A.Hardsigmoid(), "Hardsigmoid()"),
    (A.Hardswish(inplace=True), "Hardswish()"),
    (A.LogSigmoid(), "LogSigmoid()"),
    (A.Softsign(), "Softsign()"),
    (A.Softshrink(), "Softshrink(0.5)"),
    (A.Hardshrink(0.25), "Hardshrink(0.25)"),
    (A.Tanhshrink(), "Tanhshrink()"),
    (A.Threshold(0.1, 20), "Threshold(threshold=0.1, value=20)"),
    (A.Threshold(0.1, 20, inplace=True), "Threshold(threshold=0.1, value=20, inplace=True)"),
    (A.GLU(), "GLU(dim=-1)"),
    (A.Softmax(), "Softmax(dim=None)"),
    (A.Softmax(dim=1), "Softmax(dim=1)"),
    (A.LogSoftmax(dim=-1), "LogSoftmax(dim=-1)"),
    (A.Softmin(dim=0), "Softmin(dim=0)"),
    (A.Softmax2d(), "Softmax2d()"),
]


@pytest.mark.parametrize("m,text", REPRS, ids=[t for _, t in REPRS])
def test_repr(m, text):
    assert repr(m) == text


@pytest.mark.parametrize("make,ref", [
    (lambda: A.ReLU(inplace=True), lambda x: np.maximum(x, 0)),
    (lambda: A.ReLU6(inplace=True), lambda x: np.clip(x, 0, 6)),
    (lambda: A.LeakyReLU(0.1, inplace=True), lambda x: np.where(x > 0, x, 0.1 * x)),
    (lambda: A.ELU(inplace=True), lambda x: np.where(x > 0, x, np.expm1(x))),
    (lambda: A.Hardtanh(inplace=True), lambda x: np.clip(x, -1, 1)),
    (lambda: A.SiLU(inplace=True), lambda x: x * _sig(x)),
    (lambda: A.Threshold(0.0, -1.0, inplace=True), lambda x: np.where(x > 0, x, -1.0)),
])
def test_inplace_modifies_input(make, ref):
    x_np = rand_array((3, 4), low=-3, high=3)
    x = torch.tensor(x_np)
    out = make()(x)
    assert_close(out, ref(x_np), rtol=1e-10, atol=1e-12)
    assert_close(x, ref(x_np), rtol=1e-10, atol=1e-12)


def test_not_inplace_leaves_input():
    x_np = rand_array((3, 4))
    x = torch.tensor(x_np)
    A.ReLU()(x)
    assert_close(x, x_np)


def test_prelu_parameter_and_grad():
    m = A.PReLU(3, init=0.3).double()
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    assert tuple(m.weight.shape) == (3,) and m.weight.requires_grad
    assert_close(m.weight, np.full(3, 0.3))
    x_np = rand_array((2, 3, 4), low=-2, high=2)
    g_np = rand_array((2, 3, 4))
    out = m(torch.tensor(x_np))
    assert_close(out, np.where(x_np > 0, x_np, 0.3 * x_np))
    out.backward(torch.tensor(g_np))
    # d out / d a_c = x where x < 0, summed over everything but the channel dim
    expected = (np.where(x_np < 0, x_np, 0) * g_np).sum(axis=(0, 2))
    assert_close(m.weight.grad, expected, rtol=1e-10)
    x = torch.tensor(rand_array((2, 3), low=-2, high=2), requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: m(x), (x, m.weight))


def test_prelu_state_dict_round_trip_and_factory_kwargs():
    m = A.PReLU(4, dtype=torch.float64)
    assert m.weight.dtype == torch.float64
    m.weight.data.fill_(0.7)
    fresh = A.PReLU(4, dtype=torch.float64)
    fresh.load_state_dict(m.state_dict())
    assert list(m.state_dict()) == ["weight"]
    assert_close(fresh.weight, np.full(4, 0.7))
    fresh.weight.data.fill_(0.0)
    fresh.reset_parameters()
    assert_close(fresh.weight, np.full(4, 0.25))


def test_prelu_channel_mismatch():
    with pytest.raises(RuntimeError, match=r"^Mismatch of parameter numbers and input channel size\. Found parameter "
                                           r"numbers = 2 and channel size = 3\.$"):
        A.PReLU(2)(torch.randn(2, 3))


def test_rrelu_train_eval():
    x_np = -np.abs(rand_array((200,))) - 0.1
    m = A.RReLU(0.1, 0.3)
    out = m(torch.tensor(x_np)).numpy()
    slope = out / x_np
    assert np.all((slope >= 0.1 - 1e-12) & (slope <= 0.3 + 1e-12))
    assert slope.std() > 0.01  # random per element in training
    m.eval()
    assert_close(m(torch.tensor(x_np)), x_np * 0.2, rtol=1e-10)


def test_hardtanh_checks_and_deprecated_kwargs():
    with pytest.raises(AssertionError, match="max_val"):
        A.Hardtanh(1.0, 0.0)
    with pytest.warns(FutureWarning, match="min_value"):
        m = A.Hardtanh(min_value=-2.0)
    assert m.min_val == -2.0 and m.max_val == 1.0
    with pytest.warns(FutureWarning, match="max_value"):
        m = A.Hardtanh(max_value=3.0)
    assert repr(m) == "Hardtanh(min_val=-1.0, max_val=3.0)"
    assert isinstance(A.ReLU6(), A.Hardtanh) and (A.ReLU6().min_val, A.ReLU6().max_val) == (0.0, 6.0)


def test_softmax2d_needs_3d_or_4d():
    with pytest.raises(ValueError, match="Softmax2d: expected input to be 3D or 4D, got 2D instead"):
        A.Softmax2d()(torch.randn(2, 3))
    x = rand_array((3, 2, 2))
    assert_close(A.Softmax2d()(torch.tensor(x)), _softmax(x, 0))


def test_softmax_implicit_dim_warns():
    x = rand_array((2, 3))
    with pytest.warns(UserWarning, match="Implicit dimension"):
        out = A.Softmax()(torch.tensor(x))
    assert_close(out, _softmax(x, 1))


def test_glu_odd_dim_error_and_gelu_bad_approximate():
    with pytest.raises(RuntimeError, match="^Halving dimension must be even, but dimension 1 is size 3$"):
        A.GLU()(torch.randn(2, 3))
    with pytest.raises(RuntimeError, match="approximate"):
        A.GELU("bad")(torch.randn(2))


def test_no_parameters_and_pickle_round_trip():
    for m in (A.ReLU(), A.Softmax(dim=1), A.GELU("tanh"), A.LeakyReLU(0.3)):
        assert list(m.parameters()) == [] and m.state_dict() == {}
        assert repr(pickle.loads(pickle.dumps(m))) == repr(m)
        assert repr(copy.deepcopy(m)) == repr(m)


def test_softmax_setstate_without_dim():
    m = A.Softmax(dim=1)
    state = m.__dict__.copy()
    del state["dim"]
    fresh = A.Softmax.__new__(A.Softmax)
    fresh.__setstate__(state)
    assert fresh.dim is None
