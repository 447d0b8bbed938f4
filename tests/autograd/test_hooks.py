"""Tensor hooks, retain_grad, post-accumulate-grad hooks and node hooks."""
import pytest

import disttorch as torch
from helpers import assert_close


def test_register_hook_on_leaf_can_replace_gradient():
    x = torch.ones(2, requires_grad=True)
    h = x.register_hook(lambda g: g * 10)
    (x * 3).sum().backward()
    assert_close(x.grad, [30.0, 30.0])
    h.remove()
    x.grad = None
    (x * 3).sum().backward()
    assert_close(x.grad, [3.0, 3.0])


def test_register_hook_on_intermediate_sees_and_replaces_gradient():
    x = torch.ones(2, requires_grad=True)
    y = x * 2
    seen = []
    y.register_hook(lambda g: seen.append(g.tolist()) or g * 0.5)
    (y * 3).sum().backward()
    assert seen == [[3.0, 3.0]]
    assert_close(x.grad, [3.0, 3.0])


def test_hook_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        torch.ones(2).register_hook(lambda g: g)


def test_retain_grad_keeps_intermediate_gradient():
    x = torch.ones(2, requires_grad=True)
    y = x * 2
    y.retain_grad()
    assert y.retains_grad
    (y * y).sum().backward()
    assert_close(y.grad, [4.0, 4.0])
    assert_close(x.grad, [8.0, 8.0])


def test_intermediate_grad_is_none_without_retain_grad():
    x = torch.ones(2, requires_grad=True)
    y = x * 2
    (y * y).sum().backward()
    assert y.grad is None


def test_post_accumulate_grad_hook_sees_final_grad():
    x = torch.ones(2, requires_grad=True)
    seen = []
    x.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.tolist()))
    (x * 2 + x * 3).sum().backward()
    assert seen == [[5.0, 5.0]]


def test_post_accumulate_grad_hook_only_on_leaves():
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="non-leaf"):
        (x * 2).register_post_accumulate_grad_hook(lambda t: None)


def test_node_hooks_and_prehooks():
    x = torch.ones(2, requires_grad=True)
    y = x * 2
    calls = []
    y.grad_fn.register_prehook(lambda go: calls.append("pre"))
    y.grad_fn.register_hook(lambda gi, go: calls.append("post"))
    y.sum().backward()
    assert calls == ["pre", "post"]


def test_hooks_on_leaf_apply_to_autograd_grad_too():
    x = torch.ones(2, requires_grad=True)
    x.register_hook(lambda g: g * 2)
    (g,) = torch.autograd.grad((x * 1).sum(), x)
    assert_close(g, [2.0, 2.0])
