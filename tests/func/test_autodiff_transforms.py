"""disttorch.func's grad / vjp / jvp / jacrev / jacfwd / hessian against closed forms (NumPy), and PyTorch's errors."""
import numpy as np
import pytest

import disttorch as torch
from disttorch.func import grad, grad_and_value, hessian, jacfwd, jacrev, jvp, linearize, vjp
from helpers import assert_close

X = np.array([0.5, -1.0, 2.0])
A = np.arange(6.0).reshape(2, 3) / 4 - 0.5


def t(a, requires_grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


# ---- grad --------------------------------------------------------------------------------------------
def test_grad_of_scalar_function_is_its_derivative():
    assert_close(grad(lambda x: x.sin().sum())(t(X)), np.cos(X))


def test_grad_argnums_tuple_negative_and_pytrees():
    f = lambda a, b: (a * b * b).sum()  # noqa: E731
    ga, gb = grad(f, argnums=(0, 1))(t(X), t(2 * X))
    assert_close(ga, (2 * X) ** 2)
    assert_close(gb, 2 * X * 2 * X)
    assert_close(grad(f, argnums=-1)(t(X), t(2 * X)), 2 * X * 2 * X)
    params = {"w": t(A), "b": t([1.0, -1.0])}
    g = grad(lambda p, x: (p["w"] @ x + p["b"]).pow(2).sum())(params, t(X))
    r = A @ X + np.array([1.0, -1.0])
    assert set(g) == {"w", "b"}
    assert_close(g["w"], 2 * np.outer(r, X))
    assert_close(g["b"], 2 * r)


def test_grad_and_value_and_has_aux():
    g, (v, aux) = grad_and_value(lambda x: ((x ** 2).sum(), x * 3), has_aux=True)(t(X))
    assert_close(g, 2 * X)
    assert_close(v, (X ** 2).sum())
    assert_close(aux, 3 * X)
    assert not v.requires_grad and not aux.requires_grad and not g.requires_grad
    g2, aux2 = grad(lambda x: ((x ** 2).sum(), {"n": 1}), has_aux=True)(t(X))
    assert aux2 == {"n": 1}
    assert_close(g2, 2 * X)


def test_grad_composes_with_itself_and_with_autograd():
    x = t(2.0)
    assert_close(grad(grad(lambda x: x ** 3))(x), 12.0)
    assert_close(grad(grad(grad(lambda x: x ** 4)))(x), 24 * 2.0)
    # An input that requires grad: the gradient stays differentiable w.r.t. it (PyTorch composes with autograd).
    xr = t(X, requires_grad=True)
    g = grad(lambda a: (a ** 3).sum())(xr)
    assert g.requires_grad
    g.sum().backward()
    assert_close(xr.grad, 6 * X)
    # A captured tensor that requires grad makes the result differentiable too.
    w = t(X, requires_grad=True)
    gw = grad(lambda a: (a * w * w).sum())(t(np.ones(3)))
    assert gw.requires_grad
    gw.sum().backward()
    assert_close(w.grad, 2 * X)


def test_grad_works_under_no_grad_and_leaves_inputs_alone():
    x = t(X)
    with torch.no_grad():
        g = grad(lambda a: (a ** 2).sum())(x)
    assert_close(g, 2 * X)
    assert x.grad is None and not x.requires_grad


def test_grad_errors_match_pytorch():
    x = t(X)
    with pytest.raises(RuntimeError, match=r"Expected f\(\*args\) to return a scalar Tensor, got tensor with 1 dims"):
        grad(lambda a: a)(x)
    with pytest.raises(RuntimeError, match=r"Expected f\(\*args\) to return a Tensor, got <class 'int'>"):
        grad(lambda a: 3)(x)
    with pytest.raises(RuntimeError, match=r"should be a tuple: \(output, aux\) if has_aux is True"):
        grad(lambda a: a.sum(), has_aux=True)(x)
    with pytest.raises(RuntimeError, match="Got argnum=1, but only 1 positional inputs"):
        grad(lambda a: a.sum(), argnums=1)(x)
    with pytest.raises(RuntimeError, match="argnums must be non-empty"):
        grad(lambda a: a.sum(), argnums=())(x)
    with pytest.raises(RuntimeError, match="argnums elements must be unique"):
        grad(lambda a, b: a.sum(), argnums=(0, 0))(x, x)
    with pytest.raises(RuntimeError, match="argnums must be int or Tuple"):
        grad(lambda a: a.sum(), argnums=1.0)(x)
    with pytest.raises(ValueError, match="Thing passed to transform API must be Tensor, got <class 'float'>"):
        grad(lambda a: a)(3.0)
    with pytest.raises(RuntimeError, match="can require gradients"):
        grad(lambda a: a.sum())(torch.arange(3))


# ---- vjp / jvp / linearize ----------------------------------------------------------------------------
def test_vjp_single_and_multiple_primals():
    out, fn = vjp(torch.sin, t(X))
    assert_close(out, np.sin(X))
    (g,) = fn(t([1.0, 2.0, 3.0]))
    assert_close(g, np.cos(X) * [1.0, 2.0, 3.0])
    (g_again,) = fn(t(np.ones(3)))  # callable more than once
    assert_close(g_again, np.cos(X))
    out, fn = vjp(lambda a, b: (a * b, a + b), t(X), t(A[0]))
    ga, gb = fn((t(np.ones(3)), t(2 * np.ones(3))))
    assert_close(ga, A[0] + 2)
    assert_close(gb, X + 2)


def test_vjp_errors():
    _, fn = vjp(lambda a: (a, a.sum()), t(X))
    with pytest.raises(RuntimeError, match="Expected pytree structure of cotangents"):
        fn(t(np.ones(3)))
    _, fn = vjp(torch.sin, t(X))
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        fn(t(np.ones(2)))
    with pytest.raises(RuntimeError, match="expected f\\(\\*primals\\) to return only tensors"):
        vjp(lambda a: 3, t(X))


def test_jvp_is_jacobian_times_tangent():
    f = lambda x: x ** 2 * x.sin()  # noqa: E731
    v = np.array([1.0, -2.0, 0.5])
    out, jv = jvp(f, (t(X),), (t(v),))
    assert_close(out, X ** 2 * np.sin(X))
    assert_close(jv, (2 * X * np.sin(X) + X ** 2 * np.cos(X)) * v)
    out, jv, aux = jvp(lambda a, b: ((a * b).sum(), a), (t(X), t(A[1])), (t(v), t(np.ones(3))), has_aux=True)
    assert_close(jv, (v * A[1]).sum() + X.sum())
    assert_close(aux, X)
    _, lin = linearize(f, t(X))
    assert_close(lin(t(v)), (2 * X * np.sin(X) + X ** 2 * np.cos(X)) * v)


def test_jvp_errors():
    with pytest.raises(RuntimeError, match="Expected primals to be a tuple"):
        jvp(torch.sin, t(X), (t(X),))
    with pytest.raises(RuntimeError, match="Expected primals and tangents to have the same python structure"):
        jvp(torch.sin, (t(X),), (t(X), t(X)))
    with pytest.raises(RuntimeError, match="different size than that of the original Tensor"):
        jvp(torch.sin, (t(X),), (t(np.ones(2)),))


# ---- Jacobians and Hessians ----------------------------------------------------------------------------
@pytest.mark.parametrize("transform", [jacrev, jacfwd])
def test_jacobian_of_matrix_tanh(transform):
    j = transform(lambda x: t(A) @ x.tanh())(t(X))
    assert_close(j, A * (1 - np.tanh(X) ** 2))


@pytest.mark.parametrize("transform", [jacrev, jacfwd])
def test_jacobian_argnums_and_pytree_output(transform):
    ja, jb = transform(lambda a, b: a * b, argnums=(0, 1))(t(X), t(A[1]))
    assert_close(ja, np.diag(A[1]))
    assert_close(jb, np.diag(X))
    out = transform(lambda a: {"s": a.sum(0), "sq": a ** 2})(t(A))
    assert tuple(out["s"].shape) == (3, 2, 3) and tuple(out["sq"].shape) == (2, 3, 2, 3)
    expected = np.zeros((3, 2, 3))
    for j in range(3):
        expected[j, :, j] = 1
    assert_close(out["s"], expected)
    assert_close(out["sq"], np.einsum("ij,ik,jl->ijkl", 2 * A, np.eye(2), np.eye(3)))


def test_jacobian_has_aux_and_random_in_jacfwd():
    j, aux = jacrev(lambda x: (x ** 2, x.sum()), has_aux=True)(t(X))
    assert_close(j, np.diag(2 * X))
    assert_close(aux, X.sum())
    with pytest.raises(RuntimeError, match="vmap: called random operation while in randomness error mode"):
        jacfwd(lambda a: torch.rand(3, dtype=torch.float64) * a)(t(X))
    jr = jacrev(lambda a: torch.rand(3, dtype=torch.float64) * a)(t(X))  # jacrev runs f outside vmap: allowed
    assert tuple(jr.shape) == (3, 3)


def test_hessian_closed_form():
    f = lambda x: (x ** 3).sum() + x[0] * x[1]  # noqa: E731
    h = hessian(f)(t(X))
    expected = np.diag(6 * X)
    expected[0, 1] = expected[1, 0] = 1.0
    assert_close(h, expected)
    # Of a two-argument function w.r.t. both: the blocks of the full Hessian.
    hs = hessian(lambda a, b: (a * a * b).sum(), argnums=(0, 1))(t(X), t(A[1]))
    assert_close(hs[0][0], np.diag(2 * A[1]))
    assert_close(hs[0][1], np.diag(2 * X))
    assert_close(hs[1][1], np.zeros((3, 3)))
