"""gradcheck itself: passes correct gradients and catches wrong ones."""
import pytest

import disttorch as torch


class WrongSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x  # wrong: should be 2 * x


def test_gradcheck_accepts_correct_gradients():
    x = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1.5, 0.5, -0.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: a * b + a.exp(), (x, y))


def test_gradcheck_rejects_wrong_gradients():
    x = torch.tensor([0.3, -1.2], dtype=torch.float64, requires_grad=True)
    with pytest.raises(torch.autograd.GradcheckError, match="Jacobian mismatch"):
        torch.autograd.gradcheck(WrongSquare.apply, (x,))
    assert torch.autograd.gradcheck(WrongSquare.apply, (x,), raise_exception=False) is False


class DetachedSquare(torch.autograd.Function):
    """Correct first derivative, but its backward hides x from the graph: wrong second derivative."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 2 * x.detach()


def test_gradgradcheck_rejects_wrong_second_derivative():
    x = torch.tensor([0.3, -1.2], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(DetachedSquare.apply, (x,))
    with pytest.raises(torch.autograd.GradcheckError):
        torch.autograd.gradgradcheck(DetachedSquare.apply, (x,))


def test_gradcheck_needs_an_input_requiring_grad():
    with pytest.raises(ValueError, match="requires_grad=True"):
        torch.autograd.gradcheck(lambda a: a * 2, (torch.ones(2, dtype=torch.float64),))


def _complex_input():
    import numpy as np

    return torch.tensor(np.array([0.3 + 0.4j, -1.2 + 0.5j, 0.7 - 0.9j]), requires_grad=True)


def test_gradcheck_checks_complex_functions_through_real_and_imaginary_parts():
    z = _complex_input()
    assert torch.autograd.gradcheck(torch.exp, (z,))
    assert torch.autograd.gradcheck(lambda a: (a * a.conj()).real, (z,))  # complex in, real out
    assert torch.autograd.gradgradcheck(torch.exp, (z,))

    class MissingConj(torch.autograd.Function):  # d exp(z) backward without PyTorch's conjugation
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a.exp()

        @staticmethod
        def backward(ctx, g):
            (a,) = ctx.saved_tensors
            return g * a.exp()

    assert not torch.autograd.gradcheck(MissingConj.apply, (z,), raise_exception=False)
