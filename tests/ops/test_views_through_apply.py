"""Index, shape, pad, pool and random ops run through ``Op.apply`` (issue 12): observers see them by PyTorch's op
names, views still share their base's version counter, and a pool's indices output carries no gradient."""
import numpy as np
import pytest

import disttorch
import disttorch.nn.functional as F
from disttorch.autograd import op as O


def _observed(fn):
    names = []
    with O.add_observer(lambda name, *rest: names.append(name)):
        fn()
    return names


@pytest.mark.parametrize("fn,name", [
    (lambda x: x[0], "select"),
    (lambda x: x[:, 1:], "slice"),
    (lambda x: x[[0, 1]], "index"),
    (lambda x: x.reshape(6, 4), "view"),
    (lambda x: x.transpose(0, 1), "transpose"),
    (lambda x: x.permute(2, 0, 1), "permute"),
    (lambda x: x[:, :1].expand(2, 3, 4), "expand"),
    (lambda x: x.flip(0), "flip"),
    (lambda x: x.roll(1, 0), "roll"),
    (lambda x: x.repeat(1, 2, 1), "repeat"),
    (lambda x: x.diagonal(0, 1, 2), "diagonal"),
    (lambda x: x.masked_fill(x > 0, 0.0), "masked_fill"),
    (lambda x: F.pad(x, (1, 1)), "constant_pad_nd"),
    (lambda x: F.pad(x, (1, 1), mode="reflect"), "reflection_pad1d"),
    (lambda x: F.max_pool2d(x.unsqueeze(0), 2), "max_pool2d_with_indices"),
    (lambda x: F.adaptive_avg_pool2d(x, (2, 3)), "adaptive_avg_pool2d"),
    (lambda x: F.adaptive_max_pool2d(x, (2, 3)), "adaptive_max_pool2d"),
    (lambda x: F.max_unpool2d(*F.max_pool2d(x.unsqueeze(0), 2, return_indices=True), 2), "max_unpool2d"),
    (lambda x: disttorch.bernoulli(x.sigmoid()), "bernoulli"),
])
def test_ops_are_observed_under_their_pytorch_names(fn, name):
    x = disttorch.randn(2, 3, 4, requires_grad=True)
    assert name in _observed(lambda: fn(x))


@pytest.mark.parametrize("view", [lambda x: x[1], lambda x: x.transpose(0, 1), lambda x: x[:, :1].expand(3, 3, 3),
                                  lambda x: x.diagonal(0, 1, 2), lambda x: x.reshape(12, 3),
                                  lambda x: x.permute(2, 1, 0)])
def test_views_share_the_version_counter_of_their_base(view):
    x = disttorch.zeros(3, 4, 3)
    v = view(x)
    before = v._version
    x.add_(1.0)
    assert v._version == x._version == before + 1
    assert float(v.sum()) == v.numel()  # the memory is shared too


def test_writing_a_view_after_its_base_was_saved_raises():
    w = disttorch.randn(3, 4, requires_grad=True)
    x = w * 1.0
    z = (x * x).sum()  # saves x
    x.transpose(0, 1)[0, 0] = 5.0  # a write through a view of x must bump x's version
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.backward()


def test_max_pool_indices_output_has_no_gradient_and_values_get_the_window_max_gradient():
    a = np.arange(16.0).reshape(1, 1, 4, 4)[..., ::-1].copy()
    x = disttorch.tensor(a, requires_grad=True)
    values, indices = F.max_pool2d(x, 2, return_indices=True)
    assert type(values.grad_fn).__name__ == "MaxPool2DWithIndicesBackward0"
    assert not indices.requires_grad and indices.dtype is disttorch.int64
    values.sum().backward()
    expected = np.zeros_like(a)
    for i in range(2):
        for j in range(2):
            win = a[0, 0, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
            r, c = np.unravel_index(np.argmax(win), win.shape)
            expected[0, 0, 2 * i + r, 2 * j + c] = 1.0
            assert int(indices[0, 0, i, j]) == (2 * i + r) * 4 + 2 * j + c
    np.testing.assert_array_equal(x.grad.numpy(), expected)
