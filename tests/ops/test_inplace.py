"""In-place ops: values, aliasing, version counters, autograd rules, dtype/shape errors, fill_/zero_/copy_."""
import numpy as np
import pytest

import disttorch
from helpers import assert_close, check_grad, rand_array

T = disttorch.tensor

# method name -> (args, NumPy reference on the old value)
INPLACE_BINARY = {
    "add_": ((1.5,), lambda a: a + 1.5),
    "sub_": ((0.5,), lambda a: a - 0.5),
    "mul_": ((3.0,), lambda a: a * 3.0),
    "div_": ((4.0,), lambda a: a / 4.0),
    "pow_": ((2,), lambda a: a ** 2),
    "remainder_": ((0.7,), lambda a: np.remainder(a, 0.7)),
    "fmod_": ((0.7,), lambda a: np.fmod(a, 0.7)),
    "clamp_": ((-0.5, 0.5), lambda a: np.clip(a, -0.5, 0.5)),
    "clip_": ((-0.5, 0.5), lambda a: np.clip(a, -0.5, 0.5)),
    "clamp_min_": ((0.1,), lambda a: np.maximum(a, 0.1)),
    "clamp_max_": ((0.1,), lambda a: np.minimum(a, 0.1)),
}
INPLACE_UNARY = {
    "neg_": lambda a: -a, "abs_": np.abs, "exp_": np.exp, "sqrt_": lambda a: np.sqrt(np.abs(a)),
    "sin_": np.sin, "cos_": np.cos, "tanh_": np.tanh, "sigmoid_": lambda a: 1 / (1 + np.exp(-a)),
    "floor_": np.floor, "ceil_": np.ceil, "round_": np.round, "trunc_": np.trunc, "reciprocal_": lambda a: 1 / a,
    "relu_": lambda a: np.maximum(a, 0), "log_": lambda a: np.log(np.abs(a)), "zero_": np.zeros_like,
}


@pytest.mark.parametrize("name", list(INPLACE_BINARY))
def test_inplace_binary_values_identity_version(name):
    args, ref = INPLACE_BINARY[name]
    a = rand_array((2, 3))
    x = T(a)
    v = x._version
    r = getattr(x, name)(*args)
    assert r is x
    assert x._version > v
    assert_close(x, ref(a))


@pytest.mark.parametrize("name", list(INPLACE_UNARY))
def test_inplace_unary(name):
    a = rand_array((2, 3), low=0.2, high=2.0) if name in ("sqrt_", "log_") else rand_array((2, 3))
    x = T(a)
    assert getattr(x, name)() is x
    assert_close(x, INPLACE_UNARY[name](a))


def test_inplace_tensor_operands_broadcast():
    a, b = rand_array((2, 3)), rand_array((3,), low=0.5, high=2.0)
    x = T(a)
    x.add_(T(b), alpha=2).mul_(T(b)).div_(T(b)).sub_(T(b))
    assert_close(x, (a + 2 * b) * b / b - b)
    x = T(a)
    x.div_(T(b), rounding_mode="floor")
    assert_close(x, np.floor_divide(a, b))
    x = T(a)
    x.lerp_(T(b), 0.25)
    assert_close(x, a + 0.25 * (b - a))
    x = T(a)
    x.lerp_(T(b), 0.75)
    assert_close(x, a + 0.75 * (b - a))
    x = T(a)
    x.lerp_(T(b), T(np.full((2, 3), 0.3)))
    assert_close(x, a + 0.3 * (b - a))
    x = T(a)
    x.addcmul_(T(b), T(b), value=0.5).addcdiv_(T(a), T(b), value=-1)
    assert_close(x, a + 0.5 * b * b - a / b)
    x = T(a)
    x.clamp_(T(np.full(3, -0.1)), T(np.full(3, 0.1)))
    assert_close(x, np.clip(a, -0.1, 0.1))


def test_inplace_mixed_dtypes_cast_into_self():
    x = T([1.0, 2.0], dtype=disttorch.float32)
    x.add_(T([0.5, 0.5], dtype=disttorch.float64))
    assert x.dtype is disttorch.float32
    assert_close(x, np.array([1.5, 2.5]))
    h = T([1.0, 2.0], dtype=disttorch.float16)
    h.mul_(T([2.0, 2.0]))
    assert h.dtype is disttorch.float16 and h.tolist() == [2.0, 4.0]
    i = T([1, 2])
    i.add_(T([True, False]))
    assert i.tolist() == [2, 2]


def test_int_receiving_float_result_raises():
    for fn in (lambda x: x.add_(1.5), lambda x: x.div_(2), lambda x: x.exp_(), lambda x: x.mul_(T([0.5, 0.5])),
               lambda x: x.sqrt_()):
        with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output type Long"):
            fn(T([1, 2]))
    x = T([1, 2])
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output type Long"):
        x /= 2
    x.div_(2, rounding_mode="floor")
    assert x.tolist() == [0, 1]


def test_shape_and_memory_errors():
    with pytest.raises(RuntimeError, match=r"output with shape \[3\] doesn't match the broadcast shape \[2, 3\]"):
        disttorch.ones(3).add_(disttorch.ones(2, 3))
    with pytest.raises(RuntimeError, match=r"\(3\).*\(4\)"):
        disttorch.ones(3).mul_(disttorch.ones(4))
    expanded = T([1.0]).expand(3)
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        expanded.add_(1)


def test_augmented_operators_mutate_and_return_self():
    x = T([1.0, 2.0])
    ident = x
    x += 1
    x -= 0.5
    x *= 4
    x /= 2
    x **= 2
    assert x is ident
    assert_close(x, ((np.array([1.0, 2.0]) + 1 - 0.5) * 4 / 2) ** 2)
    y = T([7.5, -7.5])
    y //= 2
    assert_close(y, np.array([3.0, -4.0]))
    y = T([7.5, -7.5])
    y %= 2
    assert_close(y, np.array([1.5, 0.5]))
    i = T([6, 5])
    ident = i
    i &= 3
    i |= 8
    i ^= 1
    i <<= 1
    i >>= 2
    assert i is ident
    assert i.tolist() == [((((6 & 3) | 8) ^ 1) << 1) >> 2, ((((5 & 3) | 8) ^ 1) << 1) >> 2]
    b = T([True, False])
    b &= T([True, True])
    assert b.tolist() == [True, False] and b.dtype is disttorch.bool


def test_leaf_requiring_grad_raises_unless_no_grad():
    p = T([1.0, 2.0], requires_grad=True)
    for fn in (lambda: p.add_(1), lambda: p.mul_(2), lambda: p.exp_(), lambda: p.fill_(0), lambda: p.zero_(),
               lambda: p.copy_(T([0.0, 0.0])), lambda: p.clamp_(0, 1), lambda: p.addcmul_(p, p)):
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place "
                                               "operation."):
            fn()
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        p += 1
    with disttorch.no_grad():
        p.add_(T([1.0, 1.0]), alpha=-0.5)
        p.mul_(2).clamp_(max=2.0).addcdiv_(T([1.0, 1.0]), T([2.0, 2.0]), value=0.5)
    assert_close(p, np.array([1.25, 2.25]))
    assert p.requires_grad and p.grad_fn is None
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
        p.reshape(2, 1).add_(1)


def test_modified_saved_tensor_detected():
    x = T([1.0, 2.0], requires_grad=True)
    y = x.exp()
    y.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    x = T([1.0, 2.0], requires_grad=True)
    h = x * 1
    z = h * h
    h.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_inplace_on_non_leaf_records_gradient():
    x = T([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.add_(x, alpha=3)
    assert y.grad_fn is not None and y.requires_grad
    y.sum().backward()
    assert_close(x.grad, np.array([5.0, 5.0]))

    x = T([0.5, 1.5], requires_grad=True)
    y = x * 1
    y.mul_(x).exp_()  # exp(x^2)
    y.sum().backward()
    a = np.array([0.5, 1.5])
    assert_close(x.grad, 2 * a * np.exp(a * a))

    # a non-requiring tensor updated in place from one that requires grad joins the graph
    w = T([2.0, 3.0], requires_grad=True)
    acc = disttorch.zeros(2)
    acc.add_(w * w)
    assert acc.requires_grad
    acc.sum().backward()
    assert_close(w.grad, np.array([4.0, 6.0]))


@pytest.mark.parametrize("fn", [
    lambda x, y: (x * 1).add_(y, alpha=2),
    lambda x, y: (x * 1).sub_(y),
    lambda x, y: (x * 1).mul_(y),
    lambda x, y: (x * 1).div_(y),
    lambda x, y: (x * 1).pow_(2).mul_(y),
    lambda x, y: (x * 1).exp_().sqrt_().log_(),
    lambda x, y: (x * 1).sigmoid_().tanh_(),
    lambda x, y: (x * 1).clamp_(-0.5, 0.5).mul_(y),
    lambda x, y: (x * 1).lerp_(y, 0.3),
    lambda x, y: (x * 1).addcmul_(y, y, value=0.5),
    lambda x, y: (x * 1).addcdiv_(x, y, value=2.0),
    lambda x, y: (x * 1).sin_().cos_().abs_(),
    lambda x, y: (x * 1).reciprocal_().neg_(),
])
def test_inplace_gradcheck(fn):
    a = np.array([[-1.2, 0.3, 0.8], [0.2, -0.4, 1.1]])
    b = np.array([0.7, 1.3, 1.9])
    check_grad(fn, a, b)


def test_fill_and_zero():
    x = disttorch.ones(2, 3)
    assert x.fill_(2.5) is x and x.tolist() == [[2.5] * 3] * 2
    x.fill_(T(4.0))
    assert_close(x, np.full((2, 3), 4.0))
    i = T([1, 2])
    i.fill_(2.7)
    assert i.tolist() == [2, 2]
    assert x.zero_() is x and not x.numpy().any()
    with pytest.raises(RuntimeError, match="fill_ only supports 0-dimension value tensor"):
        x.fill_(T([1.0, 2.0]))


def test_fill_differentiable_wrt_value():
    v = T(2.0, requires_grad=True)
    x = T([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 1
    y.fill_(v)
    (y * T([1.0, 2.0, 3.0])).sum().backward()
    assert v.grad.item() == pytest.approx(6.0)
    assert_close(x.grad, np.zeros(3))


def test_copy_broadcast_cast_and_grad():
    x = disttorch.zeros(2, 3)
    assert x.copy_(T([1.0, 2.0, 3.0])) is x
    assert_close(x, np.tile([1.0, 2.0, 3.0], (2, 1)))
    i = disttorch.zeros(3, dtype=disttorch.int64)
    i.copy_(T([1.7, -2.2, 3.0]))
    assert i.dtype is disttorch.int64 and i.tolist() == [1, -2, 3]
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
        disttorch.zeros(3).copy_(disttorch.ones(2, 3))
    src = T([1.0, 2.0, 3.0], dtype=disttorch.float64, requires_grad=True)
    dst = disttorch.zeros(2, 3)
    dst.copy_(src)
    assert dst.requires_grad and dst.dtype is disttorch.float32
    (dst * 2).sum().backward()
    assert src.grad.dtype is disttorch.float64
    assert_close(src.grad, np.full(3, 4.0))
    with pytest.raises(TypeError):
        dst.copy_([1.0, 2.0, 3.0])


def test_copy_gradcheck():
    check_grad(lambda s: disttorch.zeros(2, 3, dtype=disttorch.float64).copy_(s) * 3, rand_array((3,)))


def test_nan_to_num_and_relu_inplace():
    x = T([np.nan, -1.0, 2.0])
    x.nan_to_num_(nan=5.0).relu_()
    assert x.tolist() == [5.0, 0.0, 2.0]


def test_no_grad_fast_path_writes_into_same_memory():
    p = disttorch.randn(4, 4)
    g = disttorch.randn(4, 4)
    ptr = p.data_ptr()
    expected = p.numpy() - 0.1 * g.numpy()
    with disttorch.no_grad():
        p.add_(g, alpha=-0.1)
    assert p.data_ptr() == ptr
    assert_close(p, expected, rtol=1e-6)
    row = p[0]  # a view: the in-place update lands in the base's memory
    row.mul_(0)
    assert not p.numpy()[0].any()


@pytest.mark.parametrize("op", ["mul_", "add_", "copy_", "fill_"])
def test_inplace_on_view_rewrites_base_history(op):
    # PyTorch's CopySlices: an in-place op on a view changes the base's gradient too.
    x = T([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=disttorch.float64, requires_grad=True)
    w = T([7.0, 8.0, 9.0], dtype=disttorch.float64, requires_grad=True)
    y = x * 2
    row = y[0]
    if op == "mul_":
        row.mul_(w)
        expected_x, expected_w = [[2 * 7, 2 * 8, 2 * 9], [2, 2, 2]], [2, 4, 6]
    elif op == "add_":
        row.add_(w)
        expected_x, expected_w = [[2, 2, 2], [2, 2, 2]], [1, 1, 1]
    elif op == "copy_":
        row.copy_(w)
        expected_x, expected_w = [[0, 0, 0], [2, 2, 2]], [1, 1, 1]
    else:
        row.fill_(w[1])
        expected_x, expected_w = [[0, 0, 0], [2, 2, 2]], [0, 3, 0]
    assert y.grad_fn.name() == "CopySlices"
    (y * T([[1.0], [1.0]], dtype=disttorch.float64)).sum().backward()
    assert_close(x.grad, expected_x)
    assert_close(w.grad, expected_w)


def test_inplace_on_view_matches_gradcheck():
    def f(x, w):
        y = x * 1.5
        y[:, 1].mul_(w)
        y[0].add_(w[0])
        return y

    import numpy as np

    assert disttorch.autograd.gradcheck(f, (T(np.arange(6.0).reshape(2, 3) / 3, dtype=disttorch.float64,
                                              requires_grad=True),
                                            T([0.5, -1.5], dtype=disttorch.float64, requires_grad=True)))


def test_float_power_inplace_requires_double():
    with pytest.raises(RuntimeError, match="float_power_"):
        T([1.0, 2.0]).float_power_(2)
    x = T([2.0], dtype=disttorch.float64)
    x.float_power_(3)
    assert x.tolist() == [8.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_updates_across_chunk_boundaries_match_numpy(dtype):
    # add_(alpha), addcmul_ and addcdiv_ run chunk by chunk through a scratch buffer on large arrays.
    from disttorch.ops import inplace

    n = 3 * inplace._CHUNK + 5
    rng = np.random.default_rng(11)
    base, a, b = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    b = np.abs(b) + 0.5
    for op, expected in [
        (lambda s, x, y: s.add_(x, alpha=-0.3), base + (-0.3) * a),
        (lambda s, x, y: s.sub_(x, alpha=2), base - 2 * a),
        (lambda s, x, y: s.addcmul_(x, y, value=0.25), base + 0.25 * (a * b)),
        (lambda s, x, y: s.addcdiv_(x, y, value=-1.5), base + (-1.5) * (a / b)),
        (lambda s, x, y: s.addcmul_(x, y), base + a * b),
    ]:
        s = disttorch.tensor(base.reshape(3, -1) if n % 3 == 0 else base)
        v0 = s._version
        with disttorch.no_grad():
            op(s, disttorch.tensor(a), disttorch.tensor(b))
        assert s._version == v0 + 1
        np.testing.assert_allclose(s.numpy().ravel(), expected, rtol=1e-6 if dtype == np.float32 else 1e-12)
