"""The legacy typed constructors (FloatTensor ...), Tensor.type(), autograd.Variable, set_default_tensor_type."""
import warnings

import numpy as np
import pytest

import disttorch as torch
from disttorch.autograd import Variable

TYPES = [("FloatTensor", torch.float32), ("DoubleTensor", torch.float64), ("HalfTensor", torch.float16),
         ("BFloat16Tensor", torch.bfloat16), ("LongTensor", torch.int64), ("IntTensor", torch.int32),
         ("ShortTensor", torch.int16), ("CharTensor", torch.int8), ("ByteTensor", torch.uint8),
         ("BoolTensor", torch.bool)]


@pytest.mark.parametrize("name, dtype", TYPES)
def test_constructor_forms(name, dtype):
    cls = getattr(torch, name)
    assert cls.dtype is dtype and cls.is_sparse is False and cls.layout is torch.strided
    e = cls()
    assert e.shape == (0,) and e.dtype is dtype and type(e) is torch.Tensor
    z = cls(2, 3)
    assert z.shape == (2, 3) and z.dtype is dtype
    assert cls(torch.Size([4])).shape == (4,)
    d = cls([[1, 0], [1, 1]])
    assert d.dtype is dtype and d.shape == (2, 2)
    np.testing.assert_array_equal(d.float().numpy(), [[1, 0], [1, 1]])
    assert cls(np.array([1, 0])).dtype is dtype and cls((1, 0)).shape == (2,)
    same = torch.zeros(2, dtype=dtype)
    alias = cls(same)
    assert alias.dtype is dtype and np.shares_memory(alias.numpy(), same.numpy())
    assert type(alias) is torch.Tensor


def test_constructor_conversions_and_errors():
    np.testing.assert_array_equal(torch.LongTensor([1.7, -2.5]).numpy(), [1, -2])  # truncation, as PyTorch
    with pytest.raises(TypeError, match=r"^FloatTensor: expected a tensor of type torch.FloatTensor .*got "
                                        r"torch.LongTensor"):
        torch.FloatTensor(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="data must be a sequence"):
        torch.FloatTensor(2.5)
    with pytest.raises(RuntimeError, match="negative dimension -1"):
        torch.FloatTensor(-1)
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        torch.FloatTensor(2, dtype=torch.float64)
    assert torch.FloatTensor(2, device="cpu").shape == (2,)


def test_isinstance_follows_dtype_device_and_layout():
    x = torch.zeros(2)
    assert isinstance(x, torch.FloatTensor) and not isinstance(x, torch.DoubleTensor)
    assert isinstance(x.double(), torch.DoubleTensor) and isinstance(x.long(), torch.LongTensor)
    assert isinstance(torch.nn.Parameter(torch.zeros(2)), torch.FloatTensor)
    assert not isinstance([1.0], torch.FloatTensor) and not isinstance(1.0, torch.FloatTensor)
    s = x.to_sparse()
    assert not isinstance(s, torch.FloatTensor) and isinstance(s, torch.sparse.FloatTensor)
    assert not isinstance(x, torch.sparse.FloatTensor)
    assert not issubclass(torch.FloatTensor, torch.Tensor)  # as PyTorch: a type object, not a subclass
    assert torch.FloatTensor.add is torch.Tensor.add


def test_type_strings_and_casts():
    x = torch.tensor([1.5, -2.0])
    names = {torch.float32: "torch.FloatTensor", torch.float64: "torch.DoubleTensor",
             torch.float16: "torch.HalfTensor", torch.bfloat16: "torch.BFloat16Tensor",
             torch.int64: "torch.LongTensor", torch.int32: "torch.IntTensor", torch.int16: "torch.ShortTensor",
             torch.int8: "torch.CharTensor", torch.uint8: "torch.ByteTensor", torch.bool: "torch.BoolTensor"}
    for dt, name in names.items():
        assert x.to(dt).type() == name
    assert x.to_sparse().type() == "torch.sparse.FloatTensor"
    assert x.type(torch.DoubleTensor).dtype is torch.float64
    assert x.type("torch.LongTensor").tolist() == [1, -2]
    assert x.type("torch.IntTensor").dtype is torch.int32
    assert x.type(torch.float16).dtype is torch.float16
    assert x.type(torch.FloatTensor) is x
    with pytest.raises(RuntimeError, match="CUDA"):
        x.type("torch.cuda.FloatTensor")
    with pytest.raises(ValueError, match="invalid tensor type name"):
        x.type("torch.NotATensor")


def test_sparse_legacy_constructors():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        s = torch.sparse.FloatTensor(torch.LongTensor([[0, 2]]), torch.FloatTensor([1.0, 2.0]), torch.Size([3]))
        e = torch.sparse.DoubleTensor(2, 3)
    assert s.is_sparse and s.shape == (3,) and s.to_dense().tolist() == [1.0, 0.0, 2.0]
    assert e.is_sparse and e.shape == (2, 3) and e.dtype is torch.float64 and e._nnz() == 0
    with pytest.warns(UserWarning, match="deprecated"):
        torch.sparse.FloatTensor(2)


def test_variable_is_a_detaching_no_op():
    t = torch.tensor([1.0, 2.0])
    v = Variable(t)
    assert v is not t and np.shares_memory(v.numpy(), t.numpy()) and not v.requires_grad
    w = Variable(t, requires_grad=True)
    assert w.requires_grad and w.is_leaf
    b = torch.ones(2, requires_grad=True) * 2
    assert Variable(b).grad_fn is None
    assert Variable(torch.tensor([1, 2])).dtype is torch.int64
    assert isinstance(t, Variable) and Variable().shape == (0,)
    with pytest.raises(TypeError, match="Variable data has to be a tensor"):
        Variable([1.0])
    assert torch.autograd.Variable is Variable


def test_set_default_tensor_type():
    try:
        with pytest.warns(UserWarning, match="deprecated"):
            torch.set_default_tensor_type(torch.DoubleTensor)
        assert torch.tensor([1.0]).dtype is torch.float64
        with pytest.warns(UserWarning):
            torch.set_default_tensor_type("torch.FloatTensor")
        assert torch.tensor([1.0]).dtype is torch.float32
        with pytest.raises(TypeError, match="floating-point"), pytest.warns(UserWarning):
            torch.set_default_tensor_type(torch.LongTensor)
    finally:
        torch.set_default_dtype(torch.float32)
