"""default_collate / default_convert against PyTorch's documented conversion rules."""
from __future__ import annotations

import collections

import numpy as np
import pytest

import disttorch
from disttorch.utils.data import default_collate, default_convert
from disttorch.utils.data._collate import collate, default_collate_fn_map

Point = collections.namedtuple("Point", ["x", "y"])


def arr(t):
    return t.numpy()


def test_tensors_are_stacked():
    a = disttorch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=disttorch.float32)
    b = disttorch.tensor([[5.0, 6.0], [7.0, 8.0]], dtype=disttorch.float32)
    out = default_collate([a, b])
    assert out.shape == (2, 2, 2) and out.dtype is disttorch.float32
    np.testing.assert_array_equal(arr(out), [[[1, 2], [3, 4]], [[5, 6], [7, 8]]])


def test_tensor_shape_mismatch_is_a_clear_error():
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got \[2\] at entry 0 and "
                                           r"\[3\] at entry 1"):
        default_collate([disttorch.zeros(2), disttorch.zeros(3)])


@pytest.mark.parametrize("batch,dtype,expected", [
    ([1.5, 2.5], disttorch.float64, [1.5, 2.5]),
    ([1, 2, 3], disttorch.int64, [1, 2, 3]),
    ([True, False], disttorch.bool, [True, False]),
    ([np.float32(1.0), np.float32(2.0)], disttorch.float32, [1.0, 2.0]),
    ([np.int16(4), np.int16(5)], disttorch.int16, [4, 5]),
    ([np.bool_(True), np.bool_(False)], disttorch.bool, [True, False]),
])
def test_numbers(batch, dtype, expected):
    out = default_collate(batch)
    assert out.dtype is dtype
    np.testing.assert_array_equal(arr(out), expected)


def test_numpy_arrays_become_stacked_tensors():
    out = default_collate([np.array([1, 2], dtype=np.int32), np.array([3, 4], dtype=np.int32)])
    assert out.dtype is disttorch.int32
    np.testing.assert_array_equal(arr(out), [[1, 2], [3, 4]])


def test_numpy_string_arrays_are_rejected():
    with pytest.raises(TypeError, match="default_collate: batch must contain tensors, numpy arrays, numbers"):
        default_collate([np.array(["a"]), np.array(["b"])])


def test_strings_and_bytes_kept():
    assert default_collate(["a", "b"]) == ["a", "b"]
    assert default_collate([b"x", b"y"]) == [b"x", b"y"]


def test_mapping():
    out = default_collate([{"x": 1, "s": "a"}, {"x": 2, "s": "b"}])
    assert type(out) is dict and set(out) == {"x", "s"}
    np.testing.assert_array_equal(arr(out["x"]), [1, 2])
    assert out["s"] == ["a", "b"]


def test_mapping_type_kept():
    out = default_collate([collections.OrderedDict(a=1.0), collections.OrderedDict(a=2.0)])
    assert type(out) is collections.OrderedDict and out["a"].dtype is disttorch.float64


def test_namedtuple_kept():
    out = default_collate([Point(1, 2.0), Point(3, 4.0)])
    assert type(out) is Point
    np.testing.assert_array_equal(arr(out.x), [1, 3])
    assert out.y.dtype is disttorch.float64


def test_sequences_transposed():
    out = default_collate([(disttorch.tensor([1.0]), 0, "a"), (disttorch.tensor([2.0]), 1, "b")])
    assert isinstance(out, list) and len(out) == 3
    np.testing.assert_array_equal(arr(out[0]), [[1.0], [2.0]])
    np.testing.assert_array_equal(arr(out[1]), [0, 1])
    assert out[2] == ("a", "b")
    lst = default_collate([[1, 2], [3, 4], [5, 6]])
    assert isinstance(lst, list)
    np.testing.assert_array_equal(arr(lst[0]), [1, 3, 5])
    np.testing.assert_array_equal(arr(lst[1]), [2, 4, 6])


def test_nested():
    out = default_collate([{"p": (1, [2.0])}, {"p": (3, [4.0])}])
    np.testing.assert_array_equal(arr(out["p"][0]), [1, 3])
    np.testing.assert_array_equal(arr(out["p"][1][0]), [2.0, 4.0])


def test_unequal_sequences():
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        default_collate([[1, 2], [3]])


def test_unsupported_type():
    with pytest.raises(TypeError, match="default_collate: batch must contain tensors, numpy arrays, numbers, dicts or "
                                        "lists; found <class 'object'>"):
        default_collate([object(), object()])


def test_custom_collate_fn_map():
    class Box:
        def __init__(self, v):
            self.v = v

    fn_map = {**default_collate_fn_map, Box: lambda batch, *, collate_fn_map=None: sum(b.v for b in batch)}
    assert collate([(Box(1), 2), (Box(3), 4)], collate_fn_map=fn_map)[0] == 4


def test_default_convert():
    t = disttorch.tensor([1.0])
    assert default_convert(t) is t
    x = default_convert(np.array([1.0, 2.0], dtype=np.float32))
    assert isinstance(x, disttorch.Tensor) and x.dtype is disttorch.float32
    assert default_convert(np.float64(2.5)).dtype is disttorch.float64
    s = np.array(["a"])
    assert default_convert(s) is s  # string arrays stay arrays
    assert default_convert(3) == 3 and default_convert("s") == "s"
    d = default_convert({"a": np.array([1]), "b": [np.int64(2), "z"]})
    assert isinstance(d["a"], disttorch.Tensor) and isinstance(d["b"], list)
    assert d["b"][0].dtype is disttorch.int64 and d["b"][1] == "z"
    assert isinstance(default_convert((np.array([1]), 2)), list)  # tuples become lists, as in PyTorch
    p = default_convert(Point(np.array([1]), 2))
    assert type(p) is Point and isinstance(p.x, disttorch.Tensor)
