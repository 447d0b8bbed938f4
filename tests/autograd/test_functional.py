"""autograd.functional against closed forms."""
import numpy as np
import pytest

import disttorch as torch
from disttorch.autograd.functional import hessian, hvp, jacobian, jvp, vhp, vjp
from helpers import assert_close

X = np.array([0.5, -1.0, 2.0])


def cubic(x):
    return (x ** 3).sum()


def test_jacobian_of_elementwise_square_is_diagonal():
    j = jacobian(lambda x: x ** 2, torch.tensor(X))
    assert_close(j, np.diag(2 * X))


def test_jacobian_of_matrix_map_and_multiple_inputs():
    a = np.arange(6.0).reshape(2, 3)
    ja, jx = jacobian(lambda m, x: m @ x, (torch.tensor(a), torch.tensor(X)))
    assert tuple(ja.shape) == (2, 2, 3) and tuple(jx.shape) == (2, 3)
    assert_close(jx, a)
    expected = np.zeros((2, 2, 3))
    for i in range(2):
        expected[i, i] = X
    assert_close(ja, expected)


def test_hessian_of_cubic():
    assert_close(hessian(cubic, torch.tensor(X)), np.diag(6 * X))


def test_vjp_jvp_hvp_vhp():
    x = torch.tensor(X)
    v = torch.tensor([1.0, 2.0, 3.0])
    out, g = vjp(lambda t: t ** 2, x, v)
    assert_close(out, X ** 2)
    assert_close(g, 2 * X * np.array([1, 2, 3]))
    out, jv = jvp(lambda t: t.sin(), x, v)
    assert_close(jv, np.cos(X) * np.array([1, 2, 3]))
    _, hv = hvp(cubic, x, v)
    assert_close(hv, 6 * X * np.array([1, 2, 3]))
    _, vh = vhp(cubic, x, v)
    assert_close(vh, 6 * X * np.array([1, 2, 3]))


def test_inputs_are_not_modified_and_strict_mode():
    x = torch.tensor(X)
    jacobian(lambda t: t * 2, x)
    assert not x.requires_grad and x.grad is None
    with pytest.raises(RuntimeError, match="independent of input 1"):
        jacobian(lambda a, b: a * 2, (torch.tensor(X), torch.tensor(X)), strict=True)
    ja, jb = jacobian(lambda a, b: a * 2, (torch.tensor(X), torch.tensor(X)))
    assert_close(jb, np.zeros((3, 3)))


def test_create_graph_allows_differentiating_the_jacobian():
    x = torch.tensor(X, requires_grad=True)
    j = jacobian(lambda t: t ** 3, x, create_graph=True)
    (g,) = torch.autograd.grad(j.sum(), x)
    assert_close(g, 6 * X)
