"""Identity, Linear, Bilinear, NonDynamicallyQuantizableLinear (disttorch.nn.modules.linear)."""
import math

import numpy as np
import pytest

import disttorch as torch
from disttorch.nn.modules.linear import Bilinear, Identity, Linear, NonDynamicallyQuantizableLinear
from tests.helpers import assert_close, rand_array


def gradcheck_layer(layer, *xs):
    """gradcheck ``layer`` (already float64) w.r.t. its inputs and every parameter (perturbed in place)."""
    inputs = tuple(torch.tensor(x, requires_grad=True) for x in xs)
    params = tuple(p for p in layer.parameters())
    n = len(inputs)
    assert torch.autograd.gradcheck(lambda *a: layer(*a[:n]), inputs + params)


def np_(t):
    return t.detach().numpy()


# ---- Identity ---------------------------------------------------------------------------------
def test_identity_ignores_args_and_returns_input():
    m = Identity(54, unused_argument1=0.1, unused_argument2=False)
    x = torch.randn(3, 2)
    assert m(x) is x
    assert repr(m) == "Identity()"
    assert m.state_dict() == {}


# ---- Linear -----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3,), (2, 3), (2, 4, 3), (0, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_forward_matches_numpy(shape, bias):
    m = Linear(3, 5, bias=bias)
    x = rand_array(shape, np.float32)
    ref = x @ np_(m.weight).T + (np_(m.bias) if bias else 0)
    out = m(torch.tensor(x))
    assert_close(out, ref, rtol=1e-5, atol=1e-6, check_dtype=torch.float32)
    assert tuple(out.shape) == shape[:-1] + (5,)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(bias):
    m = Linear(3, 2, bias=bias).double()
    gradcheck_layer(m, rand_array((2, 3)))
    gradcheck_layer(m, rand_array((3,)))


def test_linear_backward_populates_param_grads():
    m = Linear(4, 3)
    m(torch.randn(5, 4)).sum().backward()
    assert m.weight.grad.shape == (3, 4) and m.bias.grad.shape == (3,)
    np.testing.assert_allclose(m.bias.grad.numpy(), np.full(3, 5.0), rtol=1e-6)


def test_linear_default_init_statistics():
    torch.manual_seed(0)
    m = Linear(400, 300)
    bound = 1 / math.sqrt(400)  # kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    w, b = np_(m.weight), np_(m.bias)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert abs(w.mean()) < 0.01 * bound
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.9 * bound


def test_linear_reset_parameters_redraws():
    m = Linear(10, 10)
    before = np_(m.weight).copy()
    m.reset_parameters()
    assert not np.array_equal(before, np_(m.weight))


def test_linear_factory_kwargs_and_attributes():
    m = Linear(3, 2, dtype=torch.float64, device="cpu")
    assert m.weight.dtype == torch.float64 and m.bias.dtype == torch.float64
    assert m.in_features == 3 and m.out_features == 2
    assert m.weight.requires_grad and isinstance(m.weight, torch.nn.Parameter)
    assert tuple(m.weight.shape) == (2, 3)
    assert m(torch.ones(1, 3, dtype=torch.float64)).dtype == torch.float64


def test_linear_no_bias_registers_none():
    m = Linear(3, 2, bias=False)
    assert m.bias is None and "bias" in m._parameters
    assert list(m.state_dict()) == ["weight"]


def test_linear_state_dict_round_trip():
    a, b = Linear(3, 2), Linear(3, 2)
    assert list(a.state_dict()) == ["weight", "bias"]
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 3)
    np.testing.assert_array_equal(a(x).detach().numpy(), b(x).detach().numpy())


def test_linear_repr():
    assert repr(Linear(3, 2)) == "Linear(in_features=3, out_features=2, bias=True)"
    assert repr(Linear(3, 2, bias=False)) == "Linear(in_features=3, out_features=2, bias=False)"


def test_linear_train_eval_same_output():
    m = Linear(3, 2)
    x = torch.randn(2, 3)
    y1 = np_(m(x))
    m.eval()
    np.testing.assert_array_equal(y1, np_(m(x)))


def test_linear_bad_input_shape():
    m = Linear(3, 2)
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        m(torch.randn(4, 5))


def test_non_dynamically_quantizable_linear():
    m = NonDynamicallyQuantizableLinear(4, 2, bias=False, dtype=torch.float64)
    assert isinstance(m, Linear) and m.bias is None and m.weight.dtype == torch.float64
    assert repr(m) == "NonDynamicallyQuantizableLinear(in_features=4, out_features=2, bias=False)"


# ---- Bilinear ---------------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [(4,), (2, 3), ()])
@pytest.mark.parametrize("bias", [True, False])
def test_bilinear_forward_matches_numpy(batch, bias):
    m = Bilinear(3, 2, 5, bias=bias)
    x1, x2 = rand_array(batch + (3,), np.float32), rand_array(batch + (2,), np.float32)
    ref = np.einsum("...i,oij,...j->...o", x1, np_(m.weight), x2) + (np_(m.bias) if bias else 0)
    assert_close(m(torch.tensor(x1), torch.tensor(x2)), ref, rtol=1e-5, atol=1e-5, check_dtype=torch.float32)


def test_bilinear_gradcheck():
    m = Bilinear(3, 2, 2).double()
    gradcheck_layer(m, rand_array((2, 3)), rand_array((2, 2)))


def test_bilinear_init_and_attributes():
    torch.manual_seed(1)
    m = Bilinear(100, 30, 40)
    assert tuple(m.weight.shape) == (40, 100, 30) and tuple(m.bias.shape) == (40,)
    bound = 1 / math.sqrt(100)
    w = np_(m.weight)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert np.abs(np_(m.bias)).max() <= bound
    assert (m.in1_features, m.in2_features, m.out_features) == (100, 30, 40)


def test_bilinear_repr_and_state_dict():
    m = Bilinear(20, 30, 40)
    assert repr(m) == "Bilinear(in1_features=20, in2_features=30, out_features=40, bias=True)"
    assert list(m.state_dict()) == ["weight", "bias"]
    m2 = Bilinear(20, 30, 40, bias=False)
    assert list(m2.state_dict()) == ["weight"]
    m3 = Bilinear(20, 30, 40)
    m3.load_state_dict(m.state_dict())
    x1, x2 = torch.randn(2, 20), torch.randn(2, 30)
    np.testing.assert_array_equal(np_(m(x1, x2)), np_(m3(x1, x2)))


def test_bilinear_bad_input():
    m = Bilinear(3, 2, 5)
    with pytest.raises(RuntimeError, match="bilinear"):
        m(torch.randn(4, 3), torch.randn(4, 3))
