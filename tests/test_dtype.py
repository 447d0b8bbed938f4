"""dtype objects, aliases, default dtype and promotion basics (property tests live in test_promotion.py)."""
import numpy as np
import pytest

import disttorch as torch


def test_aliases():
    assert torch.float is torch.float32 and torch.double is torch.float64 and torch.half is torch.float16
    assert torch.long is torch.int64 and torch.int is torch.int32 and torch.short is torch.int16


def test_dtype_properties():
    assert torch.float32.is_floating_point and not torch.int64.is_floating_point
    assert torch.int8.is_signed and not torch.uint8.is_signed
    assert torch.bfloat16.itemsize == 2 and torch.float64.itemsize == 8
    assert repr(torch.float32) == "disttorch.float32"


def test_set_default_dtype_changes_float_creation():
    try:
        torch.set_default_dtype(torch.float64)
        assert torch.get_default_dtype() is torch.float64
        assert torch.tensor([1.5]).dtype is torch.float64
        assert torch.zeros(2).dtype is torch.float64
        assert (torch.tensor([1, 2]) * 0.5).dtype is torch.float64
    finally:
        torch.set_default_dtype(torch.float32)
    with pytest.raises(TypeError, match="floating-point"):
        torch.set_default_dtype(torch.int64)


@pytest.mark.parametrize("a,b,expected", [
    ("float16", "bfloat16", "float32"), ("uint8", "int8", "int16"), ("int64", "float16", "float16"),
    ("bool", "int32", "int32"), ("int32", "int64", "int64"), ("float32", "float64", "float64"),
    ("bool", "bool", "bool"), ("uint8", "bool", "uint8"),
])
def test_promote_types_table(a, b, expected):
    assert torch.promote_types(getattr(torch, a), getattr(torch, b)) is getattr(torch, expected)


def test_result_type_scalars_and_zero_dim():
    i32 = torch.ones(3, dtype=torch.int32)
    assert torch.result_type(i32, 2) is torch.int32
    assert torch.result_type(i32, 2.5) is torch.float32
    assert torch.result_type(torch.ones(3, dtype=torch.float16), 2.5) is torch.float16
    assert torch.result_type(i32, torch.tensor(1.5, dtype=torch.float64)) is torch.float64
    assert torch.result_type(torch.ones(3, dtype=torch.float16), torch.tensor(1.5, dtype=torch.float64)) \
        is torch.float16
    assert torch.result_type(torch.ones(3, dtype=torch.uint8), 1000) is torch.uint8


def test_finfo_iinfo():
    assert torch.finfo(torch.float32).eps == float(np.finfo(np.float32).eps)
    assert torch.finfo(torch.bfloat16).bits == 16
    assert torch.iinfo(torch.int8).max == 127 and torch.iinfo(torch.uint8).min == 0


def test_unsupported_numpy_dtype_is_rejected():
    with pytest.raises(TypeError, match="uint16|unsupported"):
        torch.from_numpy(np.zeros(2, dtype=np.uint16))
