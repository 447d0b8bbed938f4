"""The Optimizer base: param groups, zero_grad, closures, hooks, state_dict in PyTorch's format, errors."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import disttorch
from disttorch.optim import SGD, Adam, AdamW, Optimizer
from disttorch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

SHAPES = [(3, 4), (4,), (2,)]


def arrays(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in SHAPES]


def grads_for(step):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s).astype(np.float32) for s in SHAPES]


def leaves(arrs):
    return [disttorch.tensor(a.copy(), requires_grad=True) for a in arrs]


def do_steps(opt, tensors, first, last):
    for k in range(first, last):
        for t, g in zip(tensors, grads_for(k)):
            t.grad = disttorch.tensor(g).to(t.dtype)
        opt.step()


OPTIMIZERS = [
    (Adam, dict(lr=0.01, amsgrad=True), dict(lr=0.1, weight_decay=0.1)),
    (AdamW, dict(lr=0.01), dict(lr=0.05, maximize=True)),
    (SGD, dict(lr=0.01, momentum=0.9), dict(lr=0.1, momentum=0.5, nesterov=True)),
]


def grouped(cls, tensors, opts0, opts1):
    return cls([{"params": tensors[:2], **opts0}, {"params": tensors[2:], **opts1}])


@pytest.mark.parametrize("cls,opts0,opts1", OPTIMIZERS, ids=lambda v: getattr(v, "__name__", ""))
def test_state_dict_round_trip_resumes_bitwise(cls, opts0, opts1):
    init = arrays()
    straight = leaves(init)
    opt = grouped(cls, straight, opts0, opts1)
    do_steps(opt, straight, 0, 6)

    first = leaves(init)
    opt1 = grouped(cls, first, opts0, opts1)
    do_steps(opt1, first, 0, 3)
    sd = opt1.state_dict()
    resumed = leaves([t.detach().numpy() for t in first])
    opt2 = grouped(cls, resumed, {**opts0, "lr": 123.0}, opts1)  # the loaded options win
    opt2.load_state_dict(sd)
    do_steps(opt1, first, 10, 12)  # the source keeps going: the loaded state must not share its memory
    do_steps(opt2, resumed, 3, 6)
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert opt2.param_groups[0]["lr"] == opts0["lr"]
    assert opt2.param_groups[0]["params"][0] is resumed[0]


def test_state_dict_format():
    tensors = leaves(arrays())
    opt = Adam([{"params": tensors[:2]}, {"params": tensors[2:], "lr": 0.5}])
    do_steps(opt, tensors, 0, 2)
    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state"]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sd["param_groups"][1]["lr"] == 0.5 and sd["param_groups"][0]["betas"] == (0.9, 0.999)
    assert sorted(sd["state"]) == [0, 1, 2]
    st = sd["state"][1]
    assert sorted(st) == ["exp_avg", "exp_avg_sq", "step"]
    assert st["step"].dtype == disttorch.float32 and st["step"].item() == 2.0
    assert st["exp_avg"] is opt.state[tensors[1]]["exp_avg"]  # by reference, as PyTorch
    assert "params" in opt.param_groups[0] and isinstance(opt.param_groups[0]["params"][0], disttorch.Tensor)


def test_load_casts_state_to_param_dtype_and_accepts_python_step():
    src = [disttorch.tensor(a.astype(np.float64), requires_grad=True) for a in arrays()]
    opt = Adam(src)
    do_steps(opt, src, 0, 1)
    sd = opt.state_dict()
    sd["state"][0]["step"] = 1.0  # old PyTorch checkpoints stored a Python number
    dst = leaves(arrays())
    opt2 = Adam(dst)
    opt2.load_state_dict(sd)
    assert opt2.state[dst[0]]["exp_avg"].dtype == disttorch.float32
    assert isinstance(opt2.state[dst[0]]["step"], disttorch.Tensor) and opt2.state[dst[0]]["step"].item() == 1.0


def test_load_state_dict_errors():
    tensors = leaves(arrays())
    sd = SGD([{"params": tensors[:2]}, {"params": tensors[2:]}], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="different number of parameter groups"):
        SGD(tensors, lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        SGD([{"params": tensors[:1]}, {"params": tensors[1:]}], lr=0.1).load_state_dict(sd)
    with pytest.raises(KeyError, match="param_groups"):
        SGD(tensors, lr=0.1).load_state_dict({"state": {}})


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    tensors = leaves(arrays())
    opt = SGD(tensors, lr=0.1)
    (tensors[0].sum() * 2).backward()
    tensors[1].grad = disttorch.ones(4)
    g0 = tensors[0].grad
    opt.zero_grad(set_to_none=set_to_none)
    if set_to_none:
        assert all(t.grad is None for t in tensors)
    else:
        assert tensors[0].grad is g0 and not g0.requires_grad
        np.testing.assert_array_equal(g0.numpy(), np.zeros((3, 4), np.float32))
        np.testing.assert_array_equal(tensors[1].grad.numpy(), np.zeros(4, np.float32))
        assert tensors[2].grad is None


def test_zero_grad_default_is_set_to_none():
    t = disttorch.zeros(2, requires_grad=True)
    t.grad = disttorch.ones(2)
    SGD([t]).zero_grad()
    assert t.grad is None


def test_step_with_closure_runs_under_enable_grad_and_returns_the_loss():
    w = disttorch.tensor([1.0, -2.0], requires_grad=True)
    opt = SGD([w], lr=0.5)
    seen = []

    def closure():
        opt.zero_grad()
        seen.append(disttorch.is_grad_enabled())
        loss = (w * w).sum()
        loss.backward()
        return loss

    with disttorch.no_grad():
        loss = opt.step(closure)
    assert seen == [True] and loss.item() == 5.0
    np.testing.assert_allclose(w.detach().numpy(), [0.0, 0.0])  # w - 0.5 * 2w
    assert opt.step() is None


def test_step_hooks():
    w = disttorch.zeros(2, requires_grad=True)
    w.grad = disttorch.ones(2)
    opt = SGD([w], lr=1.0)
    calls = []
    h1 = opt.register_step_pre_hook(lambda o, a, k: calls.append(("pre", o is opt, a, k)))
    h2 = opt.register_step_post_hook(lambda o, a, k: calls.append(("post", o is opt, a, k)))
    g1 = register_optimizer_step_pre_hook(lambda o, a, k: calls.append(("gpre",)))
    g2 = register_optimizer_step_post_hook(lambda o, a, k: calls.append(("gpost",)))
    try:
        opt.step()
    finally:
        g1.remove()
        g2.remove()
    assert calls == [("gpre",), ("pre", True, (), {}), ("gpost",), ("post", True, (), {})]
    h1.remove()
    h2.remove()
    calls.clear()
    opt.step()
    assert calls == []
    np.testing.assert_array_equal(w.detach().numpy(), [-2.0, -2.0])


def test_pre_hook_can_replace_the_arguments_and_a_subclass_runs_hooks_once():
    class Doubling(SGD):
        def step(self, closure=None):
            return super().step(closure)

    w = disttorch.tensor([3.0], requires_grad=True)
    opt = Doubling([w], lr=0.1)
    calls = []
    opt.register_step_pre_hook(lambda o, a, k: ((), {"closure": lambda: 7}))
    opt.register_step_post_hook(lambda o, a, k: calls.append(k))
    assert opt.step() == 7
    assert len(calls) == 1


def test_state_dict_hooks():
    w = disttorch.zeros(2, requires_grad=True)
    opt = SGD([w], lr=0.1)
    log = []
    opt.register_state_dict_pre_hook(lambda o: log.append("pre"))
    opt.register_state_dict_post_hook(lambda o, sd: {**sd, "extra": 1})
    opt.register_load_state_dict_pre_hook(lambda o, sd: log.append("load-pre"))
    opt.register_load_state_dict_post_hook(lambda o: log.append("load-post"))
    sd = opt.state_dict()
    assert sd["extra"] == 1
    opt.load_state_dict(sd)
    assert log == ["pre", "load-pre", "load-post"]


def test_add_param_group_fills_defaults_and_rejects_shared_params():
    a, b, c = leaves(arrays())
    opt = Adam([a], lr=0.1)
    opt.add_param_group({"params": b, "betas": (0.5, 0.6)})
    assert opt.param_groups[1]["params"] == [b] and opt.param_groups[1]["lr"] == 0.1
    assert opt.param_groups[1]["betas"] == (0.5, 0.6)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        opt.add_param_group({"params": [c, a]})
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        SGD([{"params": [a, b]}, {"params": [b]}])


def test_named_parameters():
    a, b, _ = leaves(arrays())
    opt = SGD([("w", a), ("b", b)], lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["w", "b"] and opt.param_groups[0]["params"] == [a, b]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["w", "b"]


@pytest.mark.parametrize("params,exc,match", [
    ([], ValueError, "optimizer got an empty parameter list"),
    (iter([]), ValueError, "optimizer got an empty parameter list"),
    (disttorch.zeros(2, requires_grad=True), TypeError, "should be an iterable of Tensors or dicts"),
    ([[1.0, 2.0]], TypeError, "optimizer can only optimize Tensors"),
    ([{"params": {disttorch.zeros(2, requires_grad=True)}}], TypeError, "ordered collections"),
])
def test_constructor_errors(params, exc, match):
    with pytest.raises(exc, match=match):
        SGD(params, lr=0.1)


def test_non_leaf_is_rejected():
    w = disttorch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        Adam([w * 2])


def test_base_class_step_and_custom_subclass():
    class Plain(Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, dict(lr=lr))

        @disttorch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    self.state[p]["n"] = self.state[p].get("n", 0) + 1
                    p.add_(p.grad, alpha=-group["lr"])

    w = disttorch.tensor([1.0], requires_grad=True)
    w.grad = disttorch.tensor([1.0])
    opt = Plain([w])
    opt.step()
    assert w.item() == pytest.approx(0.9) and opt.state[w]["n"] == 1
    assert opt.state_dict()["state"] == {0: {"n": 1}}
    with pytest.raises(NotImplementedError):
        Optimizer([w], {}).step()


def test_deepcopy_keeps_working():
    tensors = leaves(arrays())
    opt = Adam(tensors, lr=0.1)
    do_steps(opt, tensors, 0, 1)
    clone = copy.deepcopy(opt)
    assert clone.state_dict()["state"][0]["step"].item() == 1.0
    assert clone.param_groups[0]["lr"] == 0.1


def test_missing_optimizer_names_say_not_implemented():
    with pytest.raises(AttributeError, match="not implemented yet"):
        disttorch.optim.Rprop  # noqa: B018
