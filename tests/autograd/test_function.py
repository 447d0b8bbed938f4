"""Custom autograd.Function: forward/backward, ctx API, setup_context style, validation."""
import numpy as np
import pytest

import disttorch as torch
from helpers import assert_close


class Cube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return x * x * x * scale

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        assert ctx.needs_input_grad == (True, False)
        return g * 3 * x * x * ctx.scale, None


def test_custom_function_forward_and_backward():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = Cube.apply(x, 2.0)
    assert y.grad_fn.name() == "CubeBackward"
    assert_close(y, [2.0, 16.0])
    y.sum().backward()
    assert_close(x.grad, [6.0, 24.0])


def test_custom_function_gradcheck_and_double_backward():
    x = torch.tensor([0.5, -1.5], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: Cube.apply(t, 1.5), (x,))
    assert torch.autograd.gradgradcheck(lambda t: Cube.apply(t, 1.5), (x,))


class ExpSavingOutput(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = x.exp()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


def test_saving_an_output_works_and_detects_inplace():
    x = torch.tensor([0.0, 1.0], requires_grad=True)
    y = ExpSavingOutput.apply(x)
    y.sum().backward(retain_graph=True)
    assert_close(x.grad, np.exp([0.0, 1.0]), rtol=1e-6)
    y._vc[0] += 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


class Split2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2, x * 3

    @staticmethod
    def backward(ctx, ga, gb):
        return ga * 2 + gb * 3


def test_multiple_outputs_and_materialized_zero_grads():
    x = torch.ones(2, requires_grad=True)
    a, b = Split2.apply(x)
    a.sum().backward()  # gb arrives as zeros (materialize_grads defaults to True)
    assert_close(x.grad, [2.0, 2.0])


class SetupStyle(torch.autograd.Function):
    @staticmethod
    def forward(x, k):
        return x * k

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.k = inputs[1]

    @staticmethod
    def backward(ctx, g):
        return g * ctx.k, None


def test_setup_context_style():
    x = torch.ones(3, requires_grad=True)
    SetupStyle.apply(x, 4.0).sum().backward()
    assert_close(x.grad, [4.0, 4.0, 4.0])


class MarkNonDiff(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        idx = torch.tensor([1, 0])
        out = x * 2
        ctx.mark_non_differentiable(idx)
        return out, idx

    @staticmethod
    def backward(ctx, g, gidx):
        return g * 2


def test_mark_non_differentiable():
    x = torch.ones(2, requires_grad=True)
    out, idx = MarkNonDiff.apply(x)
    assert out.requires_grad and not idx.requires_grad


class InplaceDouble(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        x._data *= 2
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, g):
        return g * 2


def test_mark_dirty_rebases_the_input():
    base = torch.ones(2, requires_grad=True)
    x = base * 1
    y = InplaceDouble.apply(x)
    assert y is x and x.grad_fn.name() == "InplaceDoubleBackward"
    y.sum().backward()
    assert_close(base.grad, [2.0, 2.0])


def test_mark_dirty_on_leaf_raises():
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        InplaceDouble.apply(x)


class WrongShape(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1

    @staticmethod
    def backward(ctx, g):
        return torch.ones(5)


def test_wrong_gradient_shape_is_reported():
    x = torch.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"returned an invalid gradient at index 0 - got \[5\]"):
        WrongShape.apply(x).sum().backward()


class TooManyGrads(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1

    @staticmethod
    def backward(ctx, g):
        return g, g


def test_wrong_number_of_gradients_is_reported():
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        TooManyGrads.apply(x).sum().backward()


def test_once_differentiable_runs_backward_without_graph():
    class Sq(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 2 * x

    x = torch.ones(2, requires_grad=True)
    (g,) = torch.autograd.grad(Sq.apply(x).sum(), x, create_graph=True)
    assert not g.requires_grad


def test_apply_without_grad_records_nothing():
    x = torch.ones(2)
    y = Cube.apply(x, 1.0)
    assert y.grad_fn is None and not y.requires_grad
