"""Tensor creation: tensor() inference, sharing (from_numpy/as_tensor), factories, ranges, legacy constructors."""
import math

import numpy as np
import pytest

import disttorch
from helpers import assert_close


# ---- tensor() ----------------------------------------------------------------------------------
@pytest.mark.parametrize("data,dtype", [
    (True, disttorch.bool), ([True, False], disttorch.bool), (3, disttorch.int64), ([1, 2], disttorch.int64),
    (2.5, disttorch.float32), ([1, 2.0], disttorch.float32), ([True, 1], disttorch.int64),
    ([[1, 2], [3, 4.5]], disttorch.float32), ([], disttorch.float32), ([[]], disttorch.float32),
    ([1 + 2j], disttorch.complex64), (np.arange(3, dtype=np.int32), disttorch.int32),
    (np.ones(2, dtype=np.float64), disttorch.float64), (np.float64(1.5), disttorch.float64),
    (np.ones(2, dtype=np.uint8), disttorch.uint8), (range(3), disttorch.int64),
])
def test_tensor_dtype_inference(data, dtype):
    t = disttorch.tensor(data)
    assert t.dtype is dtype
    expected = np.asarray(list(data) if isinstance(data, range) else data).astype(dtype.np)
    np.testing.assert_array_equal(t.numpy(), expected)


def test_tensor_default_dtype_float64():
    prev = disttorch.get_default_dtype()
    disttorch.set_default_dtype(disttorch.float64)
    try:
        assert disttorch.tensor([1.5]).dtype is disttorch.float64
        assert disttorch.tensor([1]).dtype is disttorch.int64
    finally:
        disttorch.set_default_dtype(prev)


def test_tensor_nested_0d_tensors():
    t = disttorch.tensor([disttorch.tensor(1), disttorch.tensor(2)])
    assert t.dtype is disttorch.int64 and t.tolist() == [1, 2]
    t = disttorch.tensor([[disttorch.tensor(1.5, dtype=disttorch.float64), 2]])
    assert t.dtype is disttorch.float64 and t.shape == (1, 2)
    with pytest.raises(ValueError, match="only one element tensors"):
        disttorch.tensor([disttorch.ones(2), disttorch.ones(2)])


def test_tensor_copies_and_warns_for_tensor_input():
    a = np.zeros(3)
    t = disttorch.tensor(a)
    t.numpy()[0] = 1
    assert a[0] == 0
    src = disttorch.ones(2, requires_grad=True)
    with pytest.warns(UserWarning, match="clone"):
        c = disttorch.tensor(src)
    assert not c.requires_grad and c.is_leaf


@pytest.mark.parametrize("data,match", [
    ([[1, 2], [3]], r"expected sequence of length 2 at dim 1 \(got 1\)"),
    ([[1, 2], 3], r"expected sequence of length 2 at dim 1"),
    ([[1, 2], [3, [4]]], r"found a sequence at dim 2"),
])
def test_tensor_ragged(data, match):
    with pytest.raises(ValueError, match=match):
        disttorch.tensor(data)


def test_tensor_bad_leaves_and_overflow():
    with pytest.raises(TypeError, match="Could not infer dtype of str"):
        disttorch.tensor(["a"])
    with pytest.raises(TypeError):
        disttorch.tensor([None])
    with pytest.raises(RuntimeError, match="Overflow when unpacking long long"):
        disttorch.tensor([2 ** 64])
    # as torch 2.13: negative ints wrap into unsigned dtypes down to -max; other out-of-range values raise
    assert disttorch.tensor([-1, -255], dtype=disttorch.uint8).tolist() == [255, 1]
    for data, dtype in [([-1, 300], disttorch.uint8), ([-256], disttorch.uint8), (300, disttorch.uint8),
                        ([1e10], disttorch.int32), ([float("nan")], disttorch.int32), ([float("inf")], disttorch.int8),
                        ([255.5], disttorch.uint8), ([-1.0], disttorch.uint8), ([[1, 2], [3, 300]], disttorch.uint8),
                        ([2 ** 40], disttorch.int32), ([128], disttorch.int8)]:
        name = str(dtype).split(".")[-1]
        with pytest.raises(RuntimeError, match=f"^value cannot be converted to type {name} without overflow$"):
            disttorch.tensor(data, dtype=dtype)
    assert disttorch.tensor([1e10], dtype=disttorch.int64).tolist() == [10 ** 10]
    assert disttorch.tensor([True, 2], dtype=disttorch.int8).tolist() == [1, 2]
    assert disttorch.tensor([255.0, 0.0], dtype=disttorch.uint8).tolist() == [255, 0]


@pytest.mark.parametrize("dtype", [disttorch.int64, disttorch.int32, disttorch.bool, disttorch.uint8])
def test_requires_grad_on_int_raises(dtype):
    with pytest.raises(RuntimeError, match="only Tensors of floating point and complex dtype can require gradients"):
        disttorch.tensor([1], dtype=dtype, requires_grad=True)
    with pytest.raises(RuntimeError, match="only Tensors of floating point"):
        disttorch.zeros(2, dtype=dtype, requires_grad=True)


@pytest.mark.parametrize("dtype", [disttorch.float16, disttorch.bfloat16, disttorch.float64, disttorch.int8])
def test_tensor_explicit_dtype(dtype):
    t = disttorch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=dtype)
    assert t.dtype is dtype and t.shape == (2, 2)
    assert t.tolist() == [[1, 2], [3, 4]]


def test_tensor_requires_grad_leaf():
    t = disttorch.tensor([1.0, 2.0], requires_grad=True)
    assert t.requires_grad and t.is_leaf


# ---- sharing ----------------------------------------------------------------------------------
def test_from_numpy_shares_memory_both_ways():
    a = np.zeros((2, 3), dtype=np.float32)
    t = disttorch.from_numpy(a)
    a[0, 0] = 5
    assert t.numpy()[0, 0] == 5
    t.numpy()[1, 2] = 7
    assert a[1, 2] == 7
    assert t.dtype is disttorch.float32


def test_from_numpy_errors():
    with pytest.raises(TypeError, match="expected np.ndarray"):
        disttorch.from_numpy([1, 2])
    with pytest.raises(TypeError):
        disttorch.from_numpy(np.zeros(2, dtype=np.uint16))
    with pytest.raises(ValueError, match="byte order"):
        disttorch.from_numpy(np.zeros(2, dtype=">f4"))


def test_as_tensor_sharing():
    a = np.zeros(3)
    t = disttorch.as_tensor(a)
    a[1] = 4
    assert t.numpy()[1] == 4
    c = disttorch.as_tensor(a, dtype=disttorch.float32)  # a cast must copy
    a[2] = 9
    assert c.numpy()[2] == 0
    x = disttorch.ones(2)
    assert disttorch.as_tensor(x) is x
    assert disttorch.as_tensor([1, 2]).dtype is disttorch.int64
    y = disttorch.asarray(a, copy=True)
    a[0] = 3
    assert y.numpy()[0] == 0


def test_frombuffer_shares():
    buf = bytearray(np.arange(4, dtype=np.int32).tobytes())
    t = disttorch.frombuffer(buf, dtype=disttorch.int32)
    assert t.tolist() == [0, 1, 2, 3]
    t.numpy()[0] = 9
    assert np.frombuffer(buf, dtype=np.int32)[0] == 9
    assert disttorch.frombuffer(buf, dtype=disttorch.int32, count=2, offset=4).tolist() == [1, 2]
    with pytest.raises(ValueError, match="frombuffer"):
        disttorch.frombuffer(bytearray(3), dtype=disttorch.int32)


# ---- factories --------------------------------------------------------------------------------
FACTORIES = [(disttorch.zeros, 0.0), (disttorch.ones, 1.0)]


@pytest.mark.parametrize("fn,value", FACTORIES)
@pytest.mark.parametrize("call", [lambda f: f(2, 3), lambda f: f((2, 3)), lambda f: f([2, 3]),
                                  lambda f: f(size=(2, 3)), lambda f: f(disttorch.Size([2, 3])),
                                  lambda f: f(np.int64(2), 3)])
def test_filled_size_forms(fn, value, call):
    t = call(fn)
    assert t.shape == (2, 3) and t.dtype is disttorch.float32
    assert_close(t, np.full((2, 3), value))


@pytest.mark.parametrize("fn", [disttorch.zeros, disttorch.ones, disttorch.empty])
def test_filled_errors_and_scalars(fn):
    with pytest.raises(RuntimeError, match="negative dimension -1"):
        fn(2, -1)
    with pytest.raises(TypeError, match="tuple of ints"):
        fn(2, 3.0)
    assert fn(()).shape == ()
    assert fn(0).shape == (0,)
    assert fn(2, dtype=disttorch.int32).dtype is disttorch.int32


def test_empty_and_empty_strided():
    assert disttorch.empty(2, 3).shape == (2, 3)
    t = disttorch.empty_strided((2, 3), (1, 2))
    assert t.shape == (2, 3) and t.stride() == (1, 2)
    assert disttorch.empty_strided((2, 0), (1, 1)).shape == (2, 0)


@pytest.mark.parametrize("value,dtype", [(1, disttorch.int64), (1.5, disttorch.float32), (True, disttorch.bool),
                                         (1j, disttorch.complex64)])
def test_full_dtype_inference(value, dtype):
    t = disttorch.full((2,), value)
    assert t.dtype is dtype
    np.testing.assert_array_equal(t.numpy(), np.full((2,), value))


def test_full_variants():
    assert disttorch.full((2,), 3, dtype=disttorch.float64).dtype is disttorch.float64
    assert disttorch.full([2, 2], disttorch.tensor(2.0)).tolist() == [[2.0, 2.0], [2.0, 2.0]]
    assert math.copysign(1.0, disttorch.full((1,), -0.0).item()) == -1.0
    assert disttorch.full((2,), 1.5, dtype=disttorch.bfloat16).tolist() == [1.5, 1.5]
    with pytest.raises(RuntimeError, match="overflow"):
        disttorch.full((2,), 300, dtype=disttorch.uint8)
    with pytest.raises(RuntimeError, match="overflow"):
        disttorch.full((2,), float("nan"), dtype=disttorch.int64)


def test_like_functions():
    x = disttorch.ones(2, 3, dtype=disttorch.float64)
    for fn, v in [(disttorch.zeros_like, 0), (disttorch.ones_like, 1)]:
        t = fn(x)
        assert t.shape == (2, 3) and t.dtype is disttorch.float64
        assert_close(t, np.full((2, 3), v))
    assert disttorch.empty_like(x).shape == (2, 3)
    t = disttorch.full_like(disttorch.ones(2, dtype=disttorch.int64), 2.7)
    assert t.dtype is disttorch.int64 and t.tolist() == [2, 2]
    assert disttorch.zeros_like(x, dtype=disttorch.int32).dtype is disttorch.int32
    assert disttorch.ones_like(x, requires_grad=True).requires_grad
    with pytest.raises(TypeError, match="must be Tensor"):
        disttorch.zeros_like(np.ones(2))


def test_out_arguments():
    out = disttorch.empty(0)
    r = disttorch.zeros(2, 2, out=out)
    assert r is out and out.shape == (2, 2) and out.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    out = disttorch.empty(0, dtype=disttorch.int64)
    disttorch.arange(4, out=out)
    assert out.tolist() == [0, 1, 2, 3] and out.dtype is disttorch.int64
    out = disttorch.empty(3, dtype=disttorch.float64)
    disttorch.arange(3, out=out)
    assert out.dtype is disttorch.float64 and out.tolist() == [0.0, 1.0, 2.0]
    out = disttorch.empty(2, 2)
    disttorch.eye(2, out=out)
    assert out.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    out = disttorch.empty(3)
    disttorch.linspace(0, 1, 3, out=out)
    assert out.tolist() == [0.0, 0.5, 1.0]
    v = out._version
    disttorch.ones(3, out=out)
    assert out._version > v
    with pytest.raises(RuntimeError, match="does not match dtype of out"):
        disttorch.zeros(2, out=disttorch.empty(2), dtype=disttorch.float64)


def test_scalar_tensor():
    t = disttorch.scalar_tensor(3)
    assert t.shape == () and t.dtype is disttorch.float32 and t.item() == 3.0


# ---- ranges ------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,dtype", [((5,), disttorch.int64), ((2, 7), disttorch.int64), ((1, 10, 3), disttorch.int64),
                                        ((0, 1, 0.1), disttorch.float32), ((1, 2.5, 0.5), disttorch.float32),
                                        ((5.0,), disttorch.float32), ((10, 0, -3), disttorch.int64),
                                        ((-1, 1, 0.3), disttorch.float32), ((3, 3), disttorch.int64)])
def test_arange(args, dtype):
    t = disttorch.arange(*args)
    start, end, step = (0, args[0], 1) if len(args) == 1 else (args + (1,))[:3]
    n = max(0, math.ceil((end - start) / step))
    assert t.dtype is dtype and t.shape == (n,)
    assert_close(t, (np.arange(n, dtype=np.float64) * step + start).astype(dtype.np), rtol=1e-6)


def test_arange_dtype_and_errors():
    assert disttorch.arange(5, dtype=disttorch.float64).dtype is disttorch.float64
    assert disttorch.arange(disttorch.tensor(3)).tolist() == [0, 1, 2]
    assert disttorch.arange(0, 2.5, 0.5, dtype=disttorch.int64).tolist() == [0, 0, 1, 1, 2]
    assert disttorch.arange(2 ** 40, 2 ** 40 + 3).tolist() == [2 ** 40, 2 ** 40 + 1, 2 ** 40 + 2]
    with pytest.raises(RuntimeError, match="step must be nonzero"):
        disttorch.arange(0, 5, 0)
    with pytest.raises(RuntimeError, match="inconsistent with step sign"):
        disttorch.arange(0, 5, -1)
    with pytest.raises(RuntimeError, match="unsupported range"):
        disttorch.arange(0, float("inf"))


def test_range_deprecated():
    with pytest.warns(UserWarning, match="deprecated"):
        t = disttorch.range(1, 4)
    assert t.dtype is disttorch.float32 and t.tolist() == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("start,end,steps", [(0, 1, 5), (-2, 3, 1), (0, 1, 0), (1, -1, 4), (0, 10, 7)])
def test_linspace_logspace(start, end, steps):
    t = disttorch.linspace(start, end, steps)
    assert t.dtype is disttorch.float32 and t.shape == (steps,)
    assert_close(t, np.linspace(start, end, steps), rtol=1e-6, atol=1e-6)
    lg = disttorch.logspace(start, end, steps, base=2.0)
    assert_close(lg, np.logspace(start, end, steps, base=2.0), rtol=1e-6)
    if steps > 1:
        assert t.tolist()[0] == start and t.tolist()[-1] == end


def test_linspace_variants_and_errors():
    assert disttorch.linspace(0, 10, 4, dtype=disttorch.int64).tolist() == [0, 3, 6, 10]
    assert disttorch.linspace(disttorch.tensor(0.0), disttorch.tensor(1.0), 3).tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(RuntimeError, match="number of steps must be non-negative"):
        disttorch.linspace(0, 1, -1)
    with pytest.raises(TypeError, match="steps"):
        disttorch.linspace(0, 1, 2.5)


@pytest.mark.parametrize("n,m", [(3, None), (2, 4), (4, 2), (0, None), (0, 3)])
def test_eye(n, m):
    t = disttorch.eye(n, m)
    assert t.dtype is disttorch.float32
    assert_close(t, np.eye(n, m))
    assert disttorch.eye(n, m, dtype=disttorch.bool).dtype is disttorch.bool


def test_eye_errors():
    with pytest.raises(RuntimeError, match="n must be greater or equal to 0, got -1"):
        disttorch.eye(-1)
    with pytest.raises(TypeError):
        disttorch.eye(2.5)


# ---- legacy constructors and new_* -------------------------------------------------------------
def test_legacy_tensor_constructor():
    assert disttorch.Tensor(2, 3).shape == (2, 3) and disttorch.Tensor(2, 3).dtype is disttorch.float32
    t = disttorch.Tensor([1, 2])
    assert t.dtype is disttorch.float32 and t.tolist() == [1.0, 2.0]
    assert disttorch.Tensor().shape == (0,)
    assert disttorch.Tensor(disttorch.Size([2, 3])).shape == (2, 3)
    assert disttorch.Tensor(np.arange(3)).dtype is disttorch.float32
    assert isinstance(disttorch.Tensor(2), disttorch.Tensor)


def test_new_methods():
    x = disttorch.ones(2, dtype=disttorch.float64)
    assert x.new_zeros(3).dtype is disttorch.float64 and x.new_zeros(3).tolist() == [0.0] * 3
    assert x.new_ones((2, 2)).shape == (2, 2)
    assert x.new_empty(2, 3).shape == (2, 3)
    assert x.new_full((2,), 5).tolist() == [5.0, 5.0] and x.new_full((2,), 5).dtype is disttorch.float64
    assert x.new_tensor([1, 2]).dtype is disttorch.float64
    assert x.new_tensor([1, 2], dtype=disttorch.int32).dtype is disttorch.int32
    assert x.new_zeros(2, dtype=disttorch.int64).dtype is disttorch.int64
    assert x.new_empty_strided((2, 2), (2, 1)).shape == (2, 2)
    assert x.new(2, 2).dtype is disttorch.float64 and x.new([1]).tolist() == [1.0]
    assert x.new_zeros(2, requires_grad=True).requires_grad


def test_factory_errors_use_pytorch_wording():
    # Each message as torch 2.13 words it for the same call.
    with pytest.raises(TypeError, match=r"zeros\(\): argument 'size' failed to unpack the object at pos 2 with error "
                                        r"\"type must be tuple of ints,but got float\""):
        disttorch.zeros((2, 1.5))
    with pytest.raises(TypeError, match=r"^zeros\(\) got multiple values for argument 'size'$"):
        disttorch.zeros(2, size=(2,))
    with pytest.raises(RuntimeError, match=r"^value cannot be converted to type uint8_t without overflow$"):
        disttorch.full((2,), 300, dtype=disttorch.uint8)
    with pytest.raises(RuntimeError, match=r"^dtype Double does not match dtype of out parameter \(Float\)$"):
        disttorch.zeros(2, dtype=disttorch.float64, out=disttorch.empty(2))
    with pytest.raises(ValueError, match=r"^requested buffer length \(3 \* 4 bytes\) after offset \(0 bytes\) must not "
                                         r"be greater than actual buffer length \(4 bytes\)$"):
        disttorch.frombuffer(bytearray(4), dtype=disttorch.float32, count=3)
    with pytest.raises(RuntimeError, match=r"^dimensionality of sizes \(2\) must match dimensionality of strides \(1\)$"):
        disttorch.empty_strided((2, 2), (1,))
    with pytest.raises(TypeError, match=r"^arange\(\): argument 'end' \(position 1\) must be Number, not str$"):
        disttorch.arange("a")
    with pytest.raises(RuntimeError, match=r"^upper bound and lower bound inconsistent with step sign$"):
        disttorch.arange(0, 1, -1)
    with pytest.raises(TypeError, match=r"^eye\(\): argument 'm' \(position 2\) must be int, not float$"):
        disttorch.eye(2, 2.5)


@pytest.mark.parametrize("value,dtype,expected", [
    (1e10, "int32", "int"), (2 ** 31, "int32", "int"), (-2 ** 31 - 1, "int32", "int"), (300, "int8", "int8_t"),
    (-129, "int8", "int8_t"), (256, "uint8", "uint8_t"), (-256, "uint8", "uint8_t"), (-1.0, "uint8", "uint8_t"),
    (255.5, "uint8", "uint8_t"), (-128.5, "int8", "int8_t"), (127.5, "int8", "int8_t"),
    (float("nan"), "int64", "int64_t"), (float("inf"), "int16", "int16_t")])
def test_full_rejects_values_an_integer_dtype_cannot_hold(value, dtype, expected):
    with pytest.raises(RuntimeError, match=f"value cannot be converted to type {expected} without overflow"):
        disttorch.full((1,), value, dtype=getattr(disttorch, dtype))


def test_full_integer_edges_follow_pytorch():
    # In range: kept (floats truncate toward zero); negative integers wrap into unsigned dtypes down to -max.
    cases = [(-1, "uint8", 255), (-255, "uint8", 1), (126.9, "int8", 126), (-127.9, "int8", -127),
             (2 ** 31 - 1, "int32", 2 ** 31 - 1), (-2 ** 63, "int64", -2 ** 63), (1e10, "float16", math.inf)]
    for value, dtype, expected in cases:
        assert disttorch.full((2,), value, dtype=getattr(disttorch, dtype)).tolist() == [expected] * 2, (value, dtype)
