"""disttorch.func.vmap against NumPy references, and PyTorch's argument errors."""
import numpy as np
import pytest

import disttorch as torch
from disttorch.func import grad, vmap
from helpers import assert_close

RNG = np.random.default_rng(7)
B = RNG.standard_normal((4, 3))
C = RNG.standard_normal((4, 3))
M = RNG.standard_normal((4, 3, 2))


def t(a):
    return torch.tensor(np.asarray(a, dtype=np.float64))


def test_elementwise_matmul_and_reduction():
    assert_close(vmap(torch.sin)(t(B)), np.sin(B))
    assert_close(vmap(torch.mv)(t(M.transpose(0, 2, 1)), t(B)), np.einsum("bij,bj->bi", M.transpose(0, 2, 1), B))
    assert_close(vmap(lambda x: x.sum())(t(B)), B.sum(1))
    assert_close(vmap(lambda x: x.max())(t(B)), B.max(1))
    assert_close(vmap(torch.dot)(t(B), t(C)), (B * C).sum(1))


def test_in_dims_none_negative_and_pytrees():
    w = RNG.standard_normal(3)
    assert_close(vmap(torch.mul, in_dims=(0, None))(t(B), t(w)), B * w)
    assert_close(vmap(lambda x: x * 2, in_dims=1)(t(B)), (B * 2).T)
    assert_close(vmap(lambda x: x, in_dims=-1)(t(M)), M.transpose(2, 0, 1))
    out = vmap(lambda d: d["a"] + d["b"], in_dims=({"a": 0, "b": None},))({"a": t(B), "b": t(w)})
    assert_close(out, B + w)
    assert_close(vmap(lambda x, scale: x * scale, in_dims=(0, None))(t(B), 3.0), 3 * B)
    assert_close(vmap(lambda x, *, k: x * k)(t(B), k=2.0), 2 * B)  # keyword arguments are not mapped


def test_out_dims_and_pytree_outputs():
    out = vmap(lambda x: (x * 2, {"s": x.sum()}), out_dims=(1, 0))(t(B))
    assert_close(out[0], (2 * B).T)
    assert_close(out[1]["s"], B.sum(1))
    const = vmap(lambda x: (x, t([1.0, 2.0])), out_dims=(0, None))(t(B))
    assert_close(const[1], [1.0, 2.0])


def test_indexing_the_batch_element_and_nested_vmap():
    assert_close(vmap(lambda x: x[1:] - x[:-1])(t(B)), B[:, 1:] - B[:, :-1])
    outer = vmap(vmap(torch.mul, in_dims=(None, 0)), in_dims=(0, None))(t(B[:, 0]), t(C[:, 1]))
    assert_close(outer, np.outer(B[:, 0], C[:, 1]))


def test_batch_of_size_zero_keeps_shapes():
    out = vmap(lambda x: x.sum(0, keepdim=True) * 2)(t(np.zeros((0, 3))))
    assert tuple(out.shape) == (0, 1)


def test_gradients_flow_through_vmap():
    x = torch.tensor(B, requires_grad=True)
    vmap(lambda r: (r ** 2).sum())(x).sum().backward()
    assert_close(x.grad, 2 * B)


def test_per_sample_gradients_match_closed_form():
    # Linear regression: loss_i = (w.x_i + b - y_i)^2, so dloss_i/dw = 2 r_i x_i and dloss_i/db = 2 r_i.
    w, b = RNG.standard_normal(3), 0.3
    y = RNG.standard_normal(4)

    def loss(p, x, target):
        return ((p["w"] * x).sum() + p["b"] - target) ** 2

    g = vmap(grad(loss), in_dims=(None, 0, 0))({"w": t(w), "b": t(b)}, t(B), t(y))
    r = B @ w + b - y
    assert_close(g["w"], 2 * r[:, None] * B)
    assert_close(g["b"], 2 * r)


def test_randomness_modes():
    x = t(np.zeros((3, 2)))
    with pytest.raises(RuntimeError, match="vmap: called random operation while in randomness error mode"):
        vmap(lambda r: r + torch.rand(2, dtype=torch.float64))(x)
    same = vmap(lambda r: r + torch.rand(2, dtype=torch.float64), randomness="same")(x).numpy()
    assert np.all(same == same[0]) and np.all(same > 0)
    diff = vmap(lambda r: r + torch.rand(2, dtype=torch.float64), randomness="different")(x).numpy()
    assert not np.allclose(diff[0], diff[1])


def test_argument_errors_match_pytorch():
    x = t(B)
    with pytest.raises(ValueError, match=r"Got in_dim=2 for some input, but that input is a Tensor of dimensionality 2 "
                                         r"so expected in_dim to satisfy -2 <= in_dim < 2"):
        vmap(torch.sin, in_dims=2)(x)
    with pytest.raises(ValueError, match=r"Expected all tensors to have the same size in the mapped dimension, got "
                                         r"sizes \[4, 3\]"):
        vmap(torch.add)(x, t(B.T))
    with pytest.raises(ValueError, match="in_dims is not compatible with the structure of `inputs`"):
        vmap(torch.add, in_dims=(0,))(x, x)
    with pytest.raises(ValueError, match="expected `in_dims` to be int or a \\(potentially nested\\) tuple"):
        vmap(torch.add, in_dims=[0, 0])(x, x)
    with pytest.raises(ValueError, match="in_dim must be either an integer dimension or None"):
        vmap(torch.add, in_dims=(0, 1.0))(x, x)
    with pytest.raises(ValueError, match="We cannot vmap over non-Tensor arguments"):
        vmap(lambda a, b: a, in_dims=(0, 0))(x, 3)
    with pytest.raises(ValueError, match="got no inputs"):
        vmap(lambda: 1)()
    with pytest.raises(ValueError, match="Expected at least one Tensor to vmap over"):
        vmap(lambda a: a, in_dims=(None,))(x)
    with pytest.raises(ValueError, match="must only return Tensors, got type <class 'int'>"):
        vmap(lambda a: 3)(x)
    with pytest.raises(ValueError, match="can not return a BatchedTensor when out_dim is None"):
        vmap(lambda a: a, out_dims=None)(x)
    with pytest.raises(ValueError, match="out_dims is not compatible with the structure of `outputs`"):
        vmap(lambda a: (a, a), out_dims=(0,))(x)
    with pytest.raises(IndexError, match="Dimension out of range"):
        vmap(lambda a: a, out_dims=2)(x)
    with pytest.raises(ValueError, match="chunk_size should be None or greater than 0"):
        vmap(lambda a: a, chunk_size=0)
    with pytest.raises(RuntimeError, match="Only allowed values for randomness"):
        vmap(lambda a: a, randomness="x")
