"""nn.utils.parametrize and nn.utils.parametrizations against NumPy references and PyTorch-written state dicts."""
import os

import numpy as np
import pytest

import disttorch as torch
from disttorch import nn
from disttorch.nn.utils import parametrize as P
from disttorch.nn.utils.parametrizations import orthogonal, spectral_norm, weight_norm
from helpers import assert_close

RNG = np.random.default_rng(11)
DATA = os.path.join(os.path.dirname(__file__), "..", "data", "torch_parametrizations.pt")


def t(a):
    return torch.tensor(np.asarray(a, dtype=np.float64))


class Symmetric(nn.Module):
    def forward(self, x):
        return x.triu() + x.triu(1).mT

    def right_inverse(self, a):
        return a.triu()


class Scale(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, x):
        return x * self.s


def test_register_replaces_the_tensor_by_a_computed_property():
    m = nn.Linear(3, 3).double()
    w0 = m.weight.detach().numpy().copy()
    P.register_parametrization(m, "weight", Symmetric())
    assert type(m).__name__ == "ParametrizedLinear" and P.type_before_parametrizations(m) is nn.Linear
    assert isinstance(m, nn.Linear) and P.is_parametrized(m) and P.is_parametrized(m, "weight")
    assert not P.is_parametrized(m, "bias")
    up = np.triu(w0)
    assert_close(m.parametrizations.weight.original, up)  # right_inverse ran at registration
    assert_close(m.weight, up + np.triu(up, 1).T)
    assert sorted(m.state_dict()) == ["bias", "parametrizations.weight.original"]
    assert "weight" not in dict(m.named_parameters())
    # Gradients reach the original: d/dX sum(G * (triu(X) + triu(X,1)^T)) = triu(G) + triu(G^T, 1).
    g = RNG.standard_normal((3, 3))
    (m.weight * t(g)).sum().backward()
    assert_close(m.parametrizations.weight.original.grad, np.triu(g) + np.triu(g.T, 1))
    other = nn.Linear(3, 3)
    assert type(other) is nn.Linear and not hasattr(type(other), "weight")


def test_assignment_goes_through_right_inverse_and_chains():
    m = nn.Linear(3, 3).double()
    P.register_parametrization(m, "weight", Symmetric())
    a = RNG.standard_normal((3, 3))
    m.weight = t(a)
    assert_close(m.parametrizations.weight.original, np.triu(a))
    P.register_parametrization(m, "weight", Scale(2.0))
    assert len(m.parametrizations.weight) == 2
    assert_close(m.weight, 2 * (np.triu(a) + np.triu(a, 1).T))
    with pytest.raises(RuntimeError, match="parametrization Scale does not implement right_inverse"):
        m.weight = t(a)


def test_shape_and_dtype_checks():
    m = nn.Linear(3, 2)

    class Bad(nn.Module):
        def forward(self, x):
            return x[0]

    with pytest.raises(ValueError, match="may not change the shape of the tensor"):
        P.register_parametrization(m, "weight", Bad())
    assert type(m) is nn.Linear and "weight" in m._parameters  # nothing changed
    P.register_parametrization(m, "weight", Bad(), unsafe=True)
    assert tuple(m.weight.shape) == (3,)
    with pytest.raises(ValueError, match="does not have a parameter, a buffer, or a parametrized element with name"):
        P.register_parametrization(m, "nope", Scale(1.0))


def test_cached_computes_each_tensor_once():
    calls = []

    class Count(nn.Module):
        def forward(self, x):
            calls.append(1)
            return x * 1.0

    m = nn.Linear(2, 2)
    P.register_parametrization(m, "weight", Count())
    calls.clear()
    with P.cached():
        a, b = m.weight, m.weight
    assert a is b and len(calls) == 1
    _ = m.weight, m.weight
    assert len(calls) == 3


@pytest.mark.parametrize("leave", [True, False])
def test_remove_parametrizations(leave):
    m = nn.Linear(3, 3).double()
    P.register_parametrization(m, "weight", Scale(3.0))
    orig = m.parametrizations.weight.original
    value = orig.detach().numpy().copy()
    P.remove_parametrizations(m, "weight", leave_parametrized=leave)
    assert type(m) is nn.Linear and not hasattr(m, "parametrizations")
    assert m.weight is orig and isinstance(m.weight, nn.Parameter)
    assert_close(m.weight, value * 3.0 if leave else value)
    with pytest.raises(ValueError, match="does not have a parametrization on weight"):
        P.remove_parametrizations(m, "weight")


def test_weight_norm_matches_closed_form_and_gradients():
    conv = weight_norm(nn.Conv2d(2, 3, 3).double())
    assert sorted(conv.state_dict()) == ["bias", "parametrizations.weight.original0",
                                         "parametrizations.weight.original1"]
    g = conv.parametrizations.weight.original0.detach().numpy()
    v = conv.parametrizations.weight.original1.detach().numpy()
    norm = np.sqrt((v ** 2).sum(axis=(1, 2, 3), keepdims=True))
    assert g.shape == (3, 1, 1, 1)
    assert_close(conv.weight, g * v / norm)
    gw = RNG.standard_normal(v.shape)
    (conv.weight * t(gw)).sum().backward()
    dot = (gw * v).sum(axis=(1, 2, 3), keepdims=True)
    assert_close(conv.parametrizations.weight.original0.grad, dot / norm)
    assert_close(conv.parametrizations.weight.original1.grad, g / norm * (gw - dot / norm ** 2 * v))
    whole = weight_norm(nn.Linear(3, 2).double(), dim=None)
    assert tuple(whole.parametrizations.weight.original0.shape) == ()
    # The older nn.utils.weight_norm keys (weight_g / weight_v) load through the compatibility hook.
    fresh = weight_norm(nn.Linear(3, 2).double())
    fresh.load_state_dict({"weight_g": t(np.ones((2, 1))), "weight_v": t(np.eye(2, 3) * 2), "bias": t([0.0, 0.0])})
    assert_close(fresh.weight, np.eye(2, 3))


def test_spectral_norm_normalises_the_largest_singular_value():
    torch.manual_seed(0)
    lin = spectral_norm(nn.Linear(5, 4).double())
    assert sorted(lin.state_dict()) == ["bias", "parametrizations.weight.0._u", "parametrizations.weight.0._v",
                                        "parametrizations.weight.original"]
    for _ in range(20):  # power iterations run in training-mode forwards
        w = lin.weight
    assert np.linalg.svd(w.detach().numpy(), compute_uv=False)[0] == pytest.approx(1.0, rel=1e-6)
    u = lin.parametrizations.weight[0]._u.detach().numpy().copy()
    lin.eval()
    _ = lin.weight
    np.testing.assert_array_equal(lin.parametrizations.weight[0]._u.detach().numpy(), u)  # eval: no iteration
    with pytest.raises(ValueError, match="has no parameter or buffer with name 'nope'"):
        spectral_norm(nn.Linear(2, 2), name="nope")


@pytest.mark.parametrize("orth_map", ["matrix_exp", "cayley", "householder"])
@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4)])
def test_orthogonal_stays_orthogonal_while_training(orth_map, shape):
    lin = orthogonal(nn.Linear(shape[1], shape[0]).double(), orthogonal_map=orth_map)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    x = t(RNG.standard_normal((6, shape[1])))
    for _ in range(3):
        opt.zero_grad()
        lin(x).pow(2).sum().backward()
        opt.step()
    q = lin.weight.detach().numpy()
    gram = q.T @ q if shape[0] >= shape[1] else q @ q.T
    np.testing.assert_allclose(gram, np.eye(min(shape)), atol=1e-10)
    assert sorted(lin.state_dict()) == ["bias", "parametrizations.weight.0.base", "parametrizations.weight.original"]


def test_orthogonal_assignment_and_errors():
    lin = orthogonal(nn.Linear(3, 3).double())
    q = np.linalg.qr(RNG.standard_normal((3, 3)))[0]
    lin.weight = t(q)
    assert_close(lin.weight, q, atol=1e-12)
    with pytest.raises(ValueError, match="Expected a matrix or batch of matrices. Got a tensor of 1 dimensions"):
        orthogonal(nn.Linear(3, 3), name="bias")
    with pytest.raises(ValueError, match="orthogonal_map has to be one of"):
        orthogonal(nn.Linear(3, 3), orthogonal_map="qr")


def test_pytorch_written_state_dicts_load_and_give_pytorch_outputs():
    ref = torch.load(DATA)
    conv = weight_norm(nn.Conv2d(2, 3, 3))
    conv.load_state_dict(ref["wn_conv"])
    assert_close(conv(ref["x_conv"]), ref["wn_out"].numpy(), rtol=1e-5, atol=1e-5)
    lin = spectral_norm(nn.Linear(4, 3)).eval()
    lin.load_state_dict(ref["sn_linear"])
    assert_close(lin(ref["x_lin"]), ref["sn_out"].numpy(), rtol=1e-5, atol=1e-6)
    orth = orthogonal(nn.Linear(3, 5))
    orth.load_state_dict(ref["orth_linear"])
    assert_close(orth(ref["x_orth"]), ref["orth_out"].numpy(), rtol=1e-5, atol=1e-6)
    # And back: our state dict has PyTorch's keys and shapes.
    assert {k: tuple(v.shape) for k, v in conv.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in ref["wn_conv"].items()}
