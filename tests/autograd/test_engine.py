"""The backward engine: accumulation, graph reuse, higher order, ordering, deep graphs."""
import sys

import numpy as np
import pytest

import disttorch as torch
from helpers import assert_close


def test_scalar_backward_accumulates_into_leaves():
    a = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = torch.tensor([4.0, 5.0, 6.0], requires_grad=True)
    (a * b).sum().backward()
    assert_close(a.grad, [4.0, 5.0, 6.0])
    assert_close(b.grad, [1.0, 2.0, 3.0])
    (a * b).sum().backward()  # a second graph adds on top
    assert_close(a.grad, [8.0, 10.0, 12.0])


def test_shared_gradient_is_not_aliased_between_leaves():
    # add's backward hands the same gradient to both inputs: the leaves must not share memory.
    a = torch.zeros(3, requires_grad=True)
    b = torch.zeros(3, requires_grad=True)
    (a + b).sum().backward()
    a.grad.mul_(10) if hasattr(a.grad, "mul_") else a.grad._data.__imul__(10)
    assert_close(b.grad, [1.0, 1.0, 1.0])


def test_user_gradient_buffer_is_not_stored_in_grad():
    a = torch.zeros(3, requires_grad=True)
    g = torch.ones(3)
    (a + 0).backward(g)
    g._data[:] = 7
    assert_close(a.grad, [1.0, 1.0, 1.0])


def test_diamond_graph_sums_both_paths():
    x = torch.tensor(3.0, requires_grad=True)
    y = x * 2
    z = y * y + y.exp()
    z.backward()
    expected = 8 * 3.0 + 2 * np.exp(6.0)
    assert_close(x.grad, expected)


def test_non_scalar_backward_needs_gradient():
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        (x * 2).backward()
    (x * 2).backward(torch.tensor([1.0, 3.0]))
    assert_close(x.grad, [2.0, 6.0])


def test_gradient_shape_mismatch_is_reported():
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Mismatch in shape"):
        (x * 2).backward(torch.ones(3))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        torch.ones(2).sum().backward()


def test_second_backward_without_retain_graph_raises():
    x = torch.ones(3, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = torch.ones(3, requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert_close(x.grad, [4.0, 4.0, 4.0])


def test_saved_tensors_are_freed_after_backward():
    x = torch.ones(3, requires_grad=True)
    y = x * x
    node = y.grad_fn
    assert node._saved
    y.sum().backward()
    assert node._saved == ()


def test_autograd_grad_returns_without_touching_dot_grad():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    (g,) = torch.autograd.grad((x * x).sum(), x)
    assert_close(g, [2.0, 4.0])
    assert x.grad is None


def test_autograd_grad_of_intermediate_tensor():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    z = (y * y).sum()
    (gy,) = torch.autograd.grad(z, y)
    assert_close(gy, [6.0, 12.0])


def test_autograd_grad_allow_unused():
    x = torch.ones(2, requires_grad=True)
    w = torch.ones(2, requires_grad=True)
    out = (x * 2).sum()
    with pytest.raises(RuntimeError, match="appears to not have been used"):
        torch.autograd.grad(out, [x, w], retain_graph=True)
    gx, gw = torch.autograd.grad(out, [x, w], allow_unused=True, retain_graph=True)
    assert gw is None and gx is not None
    gx, gw = torch.autograd.grad(out, [x, w], materialize_grads=True)
    assert_close(gw, [0.0, 0.0])


def test_grad_prunes_branches_that_do_not_reach_inputs():
    calls = []

    class Spy(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t * 1

        @staticmethod
        def backward(ctx, g):
            calls.append(1)
            return g

    x = torch.ones(2, requires_grad=True)
    w = torch.ones(2, requires_grad=True)
    out = (x * 2).sum() + Spy.apply(w).sum()
    torch.autograd.grad(out, x)
    assert calls == []


def test_higher_order_gradients_with_create_graph():
    x = torch.tensor(2.0, requires_grad=True)
    y = x * x * x
    (g,) = torch.autograd.grad(y, x, create_graph=True)
    assert_close(g, 12.0)
    (g2,) = torch.autograd.grad(g, x, create_graph=True)
    assert_close(g2, 12.0)
    (g3,) = torch.autograd.grad(g2, x)
    assert_close(g3, 6.0)


def test_backward_create_graph_builds_differentiable_grad():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    (x.exp() * x).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    gsum = x.grad.sum()
    (gg,) = torch.autograd.grad(gsum, x)
    xv = np.array([1.0, 2.0])
    assert_close(gg, np.exp(xv) * (xv + 2), rtol=1e-5)


def test_backward_inputs_restricts_accumulation():
    x = torch.ones(2, requires_grad=True)
    w = torch.ones(2, requires_grad=True)
    (x * w).sum().backward(inputs=[x])
    assert x.grad is not None and w.grad is None


def test_long_chain_is_iterative():
    x = torch.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        y.backward()
    finally:
        sys.setrecursionlimit(limit)
    assert_close(x.grad, 1.0)


def test_leaf_hooks_fire_in_reverse_order_of_use():
    # DDP's bucketing relies on post-accumulate hooks firing roughly in reverse registration order.
    params = [torch.ones(2, requires_grad=True) for _ in range(4)]
    order = []
    for i, p in enumerate(params):
        p.register_post_accumulate_grad_hook(lambda t, i=i: order.append(i))
    h = torch.ones(2)
    for p in params:
        h = h * p
    h.sum().backward()
    assert order == [3, 2, 1, 0]


def test_grad_of_non_float_output_is_rejected():
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError):
        torch.autograd.backward([x.sum()], [torch.ones(3)])


def test_requires_grad_on_integer_tensor_raises():
    with pytest.raises(RuntimeError, match="floating point"):
        torch.tensor([1, 2]).requires_grad_()


def test_version_counter_detects_inplace_modification_of_saved_input():
    a = torch.ones(3, requires_grad=True)
    b = a * 2
    c = b * b  # saves b
    b._vc[0] += 1  # what any in-place op on b does
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        c.sum().backward()


def test_no_grad_results_do_not_require_grad():
    x = torch.ones(2, requires_grad=True)
    with torch.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None


def test_detach_shares_memory_and_leaves_graph():
    x = torch.ones(2, requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None
    d._data[0] = 5
    assert y._data[0] == 5
    assert d._version == y._version
