"""Tensor attributes, conversions and Python protocols."""
import copy
import pickle

import numpy as np
import pytest

import disttorch as torch
from helpers import assert_close


def test_shape_size_dim_numel():
    t = torch.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4) and isinstance(t.shape, torch.Size)
    assert t.size() == torch.Size([2, 3, 4]) and t.size(1) == 3 and t.size(-1) == 4
    assert t.dim() == 3 and t.ndim == 3 and t.numel() == 24
    assert repr(t.shape) == "disttorch.Size([2, 3, 4])"
    assert t.shape.numel() == 24
    with pytest.raises(IndexError, match="Dimension out of range"):
        t.size(3)


def test_default_dtypes_and_device():
    assert torch.tensor([1.0]).dtype is torch.float32
    assert torch.tensor([1]).dtype is torch.int64
    assert torch.tensor([True]).dtype is torch.bool
    assert torch.zeros(1).device == torch.device("cpu")
    assert str(torch.zeros(1).device) == "cpu"
    assert not torch.zeros(1).is_cuda


def test_item_tolist_numpy():
    t = torch.tensor([[1.5, 2.0], [3.0, 4.0]])
    assert t.tolist() == [[1.5, 2.0], [3.0, 4.0]]
    assert torch.tensor(2.5).item() == 2.5
    assert isinstance(torch.tensor(3).item(), int)
    with pytest.raises(RuntimeError, match="only one element tensors"):
        t.item()
    arr = t.numpy()
    arr[0, 0] = 9
    assert t[0, 0].item() == 9 if hasattr(t, "__getitem__") else t.tolist()[0][0] == 9


def test_numpy_refuses_tensor_requiring_grad():
    with pytest.raises(RuntimeError, match="detach"):
        torch.ones(2, requires_grad=True).numpy()


def test_python_number_conversions():
    assert float(torch.tensor([2.5])) == 2.5
    assert int(torch.tensor(7)) == 7
    assert bool(torch.tensor(1))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(torch.ones(2))
    assert [10, 20, 30][torch.tensor(1)] == 20


def test_len_and_iteration():
    t = torch.tensor([[1, 2], [3, 4], [5, 6]])
    assert len(t) == 3
    rows = [r.tolist() for r in t]
    assert rows == [[1, 2], [3, 4], [5, 6]]
    with pytest.raises(TypeError):
        len(torch.tensor(1.0))


def test_to_and_dtype_shorthands():
    t = torch.tensor([1.7, -2.2])
    assert t.to(torch.float64).dtype is torch.float64
    assert t.double().dtype is torch.float64 and t.half().dtype is torch.float16
    assert t.long().tolist() == [1, -2] and t.int().dtype is torch.int32
    assert t.bool().tolist() == [True, True]
    assert t.bfloat16().dtype is torch.bfloat16
    assert t.to("cpu") is t
    assert t.to(torch.zeros(1, dtype=torch.float64)).dtype is torch.float64
    assert t.type() == "torch.FloatTensor"  # PyTorch's string: scripts compare it
    assert t.type(torch.int64).dtype is torch.int64
    assert t.to(torch.float32, copy=True) is not t


def test_to_is_differentiable():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = x.to(torch.float64)
    assert y.grad_fn is not None
    (y * y).sum().backward()
    assert x.grad.dtype is torch.float32
    assert_close(x.grad, [2.0, 4.0])


def test_to_cuda_without_gpu_raises_clearly():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        torch.zeros(1).to("cuda")


def test_clone_detach_and_data():
    x = torch.ones(2, requires_grad=True)
    c = x.clone()
    assert c.grad_fn is not None and c._data is not x._data
    d = x.detach()
    assert d._data is x._data and not d.requires_grad
    assert x.data._data is x._data and not x.data.requires_grad


def test_is_leaf_and_requires_grad_flag():
    x = torch.ones(2, requires_grad=True)
    y = x * 2
    assert x.is_leaf and not y.is_leaf
    assert torch.ones(2).is_leaf
    with pytest.raises(RuntimeError, match="leaf variables"):
        y.requires_grad = False
    assert x.requires_grad_(False) is x and not x.requires_grad


def test_grad_assignment_validates():
    x = torch.ones(2, requires_grad=True)
    x.grad = torch.zeros(2)
    with pytest.raises(RuntimeError, match="different size"):
        x.grad = torch.zeros(3)
    x.grad = None
    assert x.grad is None


def test_deepcopy_copies_data_and_flags():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = copy.deepcopy(x)
    assert y.requires_grad and y._data is not x._data
    assert y.tolist() == x.tolist()
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(x * 2)


def test_pickle_round_trip_for_worker_processes():
    x = torch.tensor([[1, 2], [3, 4]], dtype=torch.int32)
    y = pickle.loads(pickle.dumps(x))
    assert y.dtype is torch.int32 and y.tolist() == x.tolist()
    assert pickle.loads(pickle.dumps(torch.float16)) is torch.float16


def test_new_factories_keep_dtype():
    x = torch.zeros(2, dtype=torch.float64)
    assert x.new_zeros(3).dtype is torch.float64
    assert x.new_ones((2, 2)).shape == (2, 2)
    assert x.new_full((2,), 7).tolist() == [7.0, 7.0]
    assert x.new_tensor([1, 2]).dtype is torch.float64


def test_legacy_constructor():
    assert torch.Tensor([1, 2]).dtype is torch.float32
    assert torch.Tensor(2, 3).shape == (2, 3)


def test_format_of_scalar_tensor():
    assert f"{torch.tensor(3.14159):.2f}" == "3.14"


def test_missing_method_says_not_implemented():
    with pytest.raises(AttributeError, match="not implemented yet"):
        torch.ones(1).definitely_not_a_method()


def test_from_numpy_shares_memory():
    a = np.arange(3.0)
    t = torch.from_numpy(a)
    a[0] = 42
    assert t.tolist()[0] == 42
    assert t.dtype is torch.float64


def test_contiguous_and_strides():
    t = torch.zeros(2, 3)
    assert t.is_contiguous() and t.stride() == (3, 1)
    tt = t.t()
    assert not tt.is_contiguous() and tt.contiguous().is_contiguous()
