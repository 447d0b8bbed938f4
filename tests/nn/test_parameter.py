"""nn.Parameter and nn.Buffer: sharing, identity, repr, copy and pickle."""
import copy
import pickle

import numpy as np
import pytest

import disttorch as torch
from disttorch import nn


def test_parameter_is_tensor_sharing_data():
    t = torch.zeros(2, 3)
    p = nn.Parameter(t)
    assert isinstance(p, torch.Tensor) and isinstance(p, nn.Parameter)
    assert p.requires_grad and p.is_leaf and p.grad_fn is None
    p.data.add_(1.0)
    np.testing.assert_array_equal(t.numpy(), np.ones((2, 3), np.float32))
    assert p.shape == (2, 3) and p.dtype is torch.float32


def test_parameter_defaults_and_requires_grad_flag():
    p = nn.Parameter()
    assert p.shape == (0,) and p.dtype is torch.get_default_dtype() and p.requires_grad
    q = nn.Parameter(torch.ones(2), requires_grad=False)
    assert not q.requires_grad


def test_parameter_from_graph_tensor_is_leaf():
    x = torch.ones(2, requires_grad=True)
    p = nn.Parameter(x * 2)
    assert p.is_leaf and p.requires_grad
    np.testing.assert_array_equal(p.detach().numpy(), [2.0, 2.0])


def test_parameter_integer_requires_grad_raises():
    with pytest.raises(RuntimeError, match="floating point"):
        nn.Parameter(torch.zeros(2, dtype=torch.int64))
    p = nn.Parameter(torch.zeros(2, dtype=torch.int64), requires_grad=False)
    assert p.dtype is torch.int64


def test_parameter_rejects_non_tensor():
    with pytest.raises(TypeError, match="must be Tensor"):
        nn.Parameter([1.0, 2.0])


def test_parameter_ops_return_plain_tensors():
    p = nn.Parameter(torch.ones(2))
    assert type(p * 2) is torch.Tensor
    assert type(p.detach()) is torch.Tensor
    assert type(p.data) is torch.Tensor


def test_parameter_repr():
    p = nn.Parameter(torch.tensor([1.0, 2.0]))
    assert repr(p) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"
    q = nn.Parameter(torch.tensor([1.5], dtype=torch.float64), requires_grad=False)
    assert repr(q) == "Parameter containing:\ntensor([1.5000], dtype=disttorch.float64)"


def test_parameter_deepcopy_is_fresh_parameter():
    p = nn.Parameter(torch.ones(3))
    p.custom = "tag"
    q = copy.deepcopy(p)
    assert type(q) is nn.Parameter and q is not p and q.requires_grad
    assert q.custom == "tag"
    q.data.mul_(5.0)
    np.testing.assert_array_equal(p.detach().numpy(), np.ones(3))
    memo = {}
    assert copy.deepcopy([p, p], memo)[0] is memo[id(p)]


def test_parameter_pickle_round_trip():
    p = nn.Parameter(torch.tensor([[1.0, 2.0]], dtype=torch.float64), requires_grad=False)
    q = pickle.loads(pickle.dumps(p))
    assert type(q) is nn.Parameter and not q.requires_grad and q.dtype is torch.float64
    np.testing.assert_array_equal(q.detach().numpy(), [[1.0, 2.0]])


def test_buffer_attributes_repr_and_pickle():
    b = nn.Buffer(torch.ones(2), persistent=False)
    assert isinstance(b, torch.Tensor) and isinstance(b, nn.Buffer)
    assert b.persistent is False and not b.requires_grad
    assert repr(b) == "tensor([1., 1.])"
    c = pickle.loads(pickle.dumps(b))
    assert isinstance(c, nn.Buffer) and c.persistent is False
    assert nn.Buffer().shape == (0,)
    with pytest.raises(TypeError):
        nn.Buffer(torch.ones(1), False)  # persistent is keyword-only
