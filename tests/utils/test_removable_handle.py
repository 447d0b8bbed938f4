"""One hook-handle class: every register_*hook returns disttorch.utils.hooks.RemovableHandle (PyTorch's), whose
remove() is idempotent, whose id is unique, and which removes its hook when used as a context manager."""
from __future__ import annotations

import disttorch
from disttorch import nn, optim
from disttorch.optim.optimizer import register_optimizer_step_pre_hook
from disttorch.utils.hooks import RemovableHandle


def _graph():
    x = disttorch.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    return x, y


def test_every_register_returns_the_one_handle_class():
    x, y = _graph()
    opt = optim.SGD([x], lr=0.1)
    lin = nn.Linear(2, 2)
    handles = [
        x.register_hook(lambda g: None),
        x.register_post_accumulate_grad_hook(lambda t: None),
        y.register_hook(lambda g: None),
        y.grad_fn.register_hook(lambda gi, go: None),
        y.grad_fn.register_prehook(lambda go: None),
        opt.register_step_pre_hook(lambda o, a, k: None),
        opt.register_state_dict_post_hook(lambda o, sd: None),
        register_optimizer_step_pre_hook(lambda o, a, k: None),
        lin.register_forward_hook(lambda m, i, o: None),
    ]
    try:
        assert all(type(h) is RemovableHandle for h in handles)
        ids = [h.id for h in handles]
        assert len(set(ids)) == len(ids)
    finally:
        for h in handles:
            h.remove()


def test_removed_hooks_stop_firing_and_remove_twice_is_harmless():
    calls = []
    x, y = _graph()
    handles = [
        x.register_hook(lambda g: calls.append("leaf")),
        x.register_post_accumulate_grad_hook(lambda t: calls.append("post_acc")),
        y.register_hook(lambda g: calls.append("tensor")),
        y.grad_fn.register_hook(lambda gi, go: calls.append("node_post")),
        y.grad_fn.register_prehook(lambda go: calls.append("node_pre")),
    ]
    y.sum().backward(retain_graph=True)
    assert sorted(calls) == ["leaf", "node_post", "node_pre", "post_acc", "tensor"]
    for h in handles:
        h.remove()
        h.remove()
    calls.clear()
    y.sum().backward()
    assert calls == []
    assert x.grad.tolist() == [6.0, 6.0]  # the two backward passes still accumulated


def test_node_hooks_run_in_registration_order_and_one_can_go():
    order = []
    _, y = _graph()
    h1 = y.grad_fn.register_prehook(lambda go: order.append(1))
    y.grad_fn.register_prehook(lambda go: order.append(2))
    h3 = y.grad_fn.register_prehook(lambda go: order.append(3))
    y.sum().backward(retain_graph=True)
    assert order == [1, 2, 3]
    h1.remove()
    order.clear()
    y.sum().backward(retain_graph=True)
    assert order == [2, 3]
    with h3:
        pass  # leaving the block removes the hook
    order.clear()
    y.sum().backward()
    assert order == [2]


def test_context_manager_for_optimizer_and_tensor_hooks():
    seen = []
    x = disttorch.tensor([1.0], requires_grad=True)
    opt = optim.SGD([x], lr=0.5)
    with opt.register_step_post_hook(lambda o, a, k: seen.append("step")):
        x.grad = disttorch.tensor([1.0])
        opt.step()
    opt.step()
    assert seen == ["step"]
    assert x.item() == 0.0  # two steps of 0.5 * 1.0
    with x.register_hook(lambda g: g * 10):
        (x * 1.0).sum().backward()
    assert x.grad.item() == 11.0  # 1 (set above) + 10 from the hooked pass
    (x * 1.0).sum().backward()
    assert x.grad.item() == 12.0
