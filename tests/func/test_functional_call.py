"""functional_call / stack_module_state: outputs against NumPy, restoration, tied weights and errors."""
import numpy as np
import pytest

import disttorch as torch
from disttorch import nn
from disttorch.func import functional_call, grad, replace_all_batch_norm_modules_, stack_module_state, vmap
from helpers import assert_close

RNG = np.random.default_rng(3)
X = RNG.standard_normal((5, 3))


def t(a):
    return torch.tensor(np.asarray(a, dtype=np.float64))


def mlp():
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()


def np_mlp(p, x):
    h = np.tanh(x @ p["0.weight"].T + p["0.bias"])
    return h @ p["2.weight"].T + p["2.bias"]


def test_replaced_parameters_are_used_and_originals_restored():
    model = mlp()
    before = {k: v.detach().numpy().copy() for k, v in model.named_parameters()}
    new = {k: RNG.standard_normal(tuple(v.shape)) for k, v in model.named_parameters()}
    out = functional_call(model, {k: t(v) for k, v in new.items()}, (t(X),))
    assert_close(out, np_mlp(new, X))
    assert all(isinstance(p, nn.Parameter) for p in model.parameters())
    for k, v in model.named_parameters():
        np.testing.assert_array_equal(v.detach().numpy(), before[k])
    # A partial dict replaces only what it names; a bare argument is one positional argument.
    part = functional_call(model, {"2.bias": t([10.0, 20.0])}, t(X))
    ref = dict(before, **{"2.bias": np.array([10.0, 20.0])})
    assert_close(part, np_mlp(ref, X))


def test_originals_restored_when_forward_raises():
    model = mlp()
    w = model[0].weight
    with pytest.raises(RuntimeError):
        functional_call(model, {"0.weight": t(np.ones((4, 3)))}, (t(np.ones((2, 7))),))
    assert model[0].weight is w


def test_buffers_and_sequence_of_dicts():
    bn = nn.BatchNorm1d(3).double().eval()
    mean, var = RNG.standard_normal(3), RNG.uniform(0.5, 2, 3)
    out = functional_call(bn, ({"running_mean": t(mean)}, {"running_var": t(var)}), (t(X),))
    assert_close(out, (X - mean) / np.sqrt(var + bn.eps), rtol=1e-6)
    with pytest.raises(ValueError, match=r"\['running_mean'\] appeared in multiple dictionaries"):
        functional_call(bn, ({"running_mean": t(mean)}, {"running_mean": t(mean)}), (t(X),))


def test_tied_weights_and_strict():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3, bias=False).double()
            self.b = nn.Linear(3, 3, bias=False).double()
            self.b.weight = self.a.weight

        def forward(self, x):
            return self.b(self.a(x))

    m = Tied()
    w = RNG.standard_normal((3, 3))
    assert_close(functional_call(m, {"a.weight": t(w)}, (t(X),)), X @ w.T @ w.T)
    assert_close(functional_call(m, {"a.weight": t(w)}, (t(X),), tie_weights=False),
                 X @ w.T @ m.a.weight.detach().numpy().T)
    with pytest.raises(ValueError, match="which are tied"):
        functional_call(m, {"a.weight": t(w), "b.weight": t(w + 1)}, (t(X),))
    with pytest.raises(RuntimeError, match=r"Error\(s\) in reparametrizing for Tied:\n\tUnexpected key\(s\): 'zz'"):
        functional_call(m, {"a.weight": t(w), "zz": t(w)}, (t(X),), strict=True)
    with pytest.raises(RuntimeError, match=r"Missing key\(s\): 'a.weight', 'b.weight'"):
        functional_call(m, {}, (t(X),), strict=True, tie_weights=False)


def test_per_sample_gradients_match_a_loop_over_the_batch():
    model = mlp()
    y = RNG.integers(0, 2, 5)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_fn(p, x, target):
        out = functional_call(model, p, (x.unsqueeze(0),))
        return torch.nn.functional.cross_entropy(out, target.unsqueeze(0))

    per_sample = vmap(grad(loss_fn), in_dims=(None, 0, 0))(params, t(X), torch.tensor(y))
    for i in range(5):  # the reference: ordinary backward on one sample at a time
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(t(X[i:i + 1])), torch.tensor(y[i:i + 1])).backward()
        for k, p in model.named_parameters():
            assert_close(per_sample[k][i], p.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_stack_module_state_ensemble_under_vmap():
    models = [mlp() for _ in range(3)]
    params, buffers = stack_module_state(models)
    assert tuple(params["0.weight"].shape) == (3, 4, 3) and params["0.weight"].requires_grad
    assert params["0.weight"].grad_fn is None
    out = vmap(lambda p, b, x: functional_call(models[0], (p, b), (x,)), in_dims=(0, 0, None))(params, buffers, t(X))
    for i, m in enumerate(models):
        assert_close(out[i], np_mlp({k: v.detach().numpy() for k, v in m.named_parameters()}, X))
    with pytest.raises(RuntimeError, match="Expected at least one model"):
        stack_module_state([])
    with pytest.raises(RuntimeError, match="same class"):
        stack_module_state([mlp(), nn.Linear(3, 2)])


def test_replace_all_batch_norm_modules():
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    replace_all_batch_norm_modules_(net)
    assert net[1].running_mean is None and not net[1].track_running_stats


def test_parametrized_tensor_given_by_name_bypasses_the_parametrization():
    from disttorch.nn.utils.parametrizations import weight_norm

    m = weight_norm(nn.Linear(3, 2).double())
    before = m.weight.detach().numpy().copy()
    w = RNG.standard_normal((2, 3))
    out = functional_call(m, {"weight": t(w)}, (t(X),))
    assert_close(out, X @ w.T + m.bias.detach().numpy())
    assert_close(m.weight, before)  # the originals were not touched, the property is back
    g = RNG.uniform(1, 2, (2, 1))
    out = functional_call(m, {"parametrizations.weight.original0": t(g)}, (t(X),))
    v = m.parametrizations.weight.original1.detach().numpy()
    assert_close(out, X @ (g * v / np.linalg.norm(v, axis=1, keepdims=True)).T + m.bias.detach().numpy())
