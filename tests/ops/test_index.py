"""Indexing: __getitem__ (basic views and advanced copies), __setitem__ with autograd, masked ops, nonzero."""
import numpy as np
import pytest

import disttorch
from helpers import assert_close, check_grad, rand_array

_A = np.arange(24, dtype=np.float64).reshape(2, 3, 4)


def _np_key(key):
    """The same key for NumPy (tensors become arrays; lists stay lists)."""
    if isinstance(key, tuple):
        return tuple(_np_key(k) for k in key)
    if isinstance(key, disttorch.Tensor):
        return key.numpy()
    return key


BASIC_KEYS = [0, -1, 1, slice(None), slice(1, None), slice(None, None, 2), (0, 1), (0, 1, 2), (-1, -2, -3),
              (slice(None), 1), (Ellipsis, 1), (None,), (0, None, slice(1, 3)), (slice(0, 2), Ellipsis, slice(1, 4, 2)),
              (Ellipsis,), (), (slice(5, 9),), (1, slice(2, 2))]


@pytest.mark.parametrize("key", BASIC_KEYS)
def test_getitem_basic_matches_numpy_and_is_a_view(key):
    x = disttorch.tensor(_A)
    r = x[key]
    assert_close(r, _A[key])
    if r.numel():
        r[...] = -5.0
        expected = _A.copy()
        expected[key] = -5.0
        assert_close(x, expected)
        assert x._version == r._version


@pytest.mark.parametrize("key", [
    [0, 1, 1], np.array([[0, 1], [1, 0]]), [], (slice(None), [2, 0, 2]), (0, [1, 2], [3, 0]), (slice(None), [0, 2], None),
    ([0, 1], slice(None), [1, 3]), ([[0], [1]], [0, 2]), (Ellipsis, [0, -1]), ([True, False],),
    (slice(None), [True, False, True]), ([-1, -2],),
])
def test_getitem_advanced_lists(key):
    x = disttorch.tensor(_A)
    r = x[key]
    assert_close(r, _A[np.array([], dtype=np.int64)] if isinstance(key, list) and not key else _A[key])
    if r.numel():
        r[...] = 100.0
        assert_close(x, _A)  # advanced indexing copies


@pytest.mark.parametrize("dtype", [disttorch.int64, disttorch.int32, disttorch.int16, disttorch.uint8, disttorch.bool])
def test_getitem_tensor_index_dtypes(dtype):
    x = disttorch.tensor(_A)
    if dtype is disttorch.bool:
        m = _A > 10
        assert_close(x[disttorch.tensor(m)], _A[m])
        assert_close(x[disttorch.tensor(m[0, 0, 0])], _A[np.asarray(m[0, 0, 0])])
        assert_close(x[disttorch.tensor(m[1, 2, 3])], _A[np.asarray(m[1, 2, 3])])
        return
    idx = np.array([[1, 0], [0, 1]])
    t = disttorch.tensor(idx, dtype=dtype)
    if dtype is disttorch.uint8:  # a byte tensor is a (deprecated) mask
        m = np.array([[1, 0, 1], [0, 1, 1]], dtype=np.uint8)
        with pytest.warns(UserWarning, match="uint8"):
            r = x[disttorch.tensor(m)]
        assert_close(r, _A[m.astype(bool)])
    else:
        assert_close(x[t], _A[idx])
        assert_close(x[:, t, 1], _A[:, idx, 1])


def test_getitem_0d_integer_tensor_is_an_int_and_a_view():
    x = disttorch.tensor(_A)
    r = x[disttorch.tensor(1), disttorch.tensor(2)]
    assert r.shape == (4,)
    r[0] = -1.0
    assert x[1, 2, 0].item() == -1.0


def test_getitem_sequence_with_sequences_is_a_tuple():
    x = disttorch.tensor(_A)
    assert_close(x[[0, [1, 2]]], _A[0, [1, 2]])
    assert_close(x[[[0, 1], [1, 2]]], _A[[0, 1], [1, 2]])
    assert_close(x[[disttorch.tensor(1), slice(None), 0]], _A[1, :, 0])
    assert_close(x[range(2)], _A[[0, 1]])
    assert_close(x[(0, 1), 1], _A[[0, 1], 1])


def test_getitem_scalar_result_is_0d_view_of_base():
    x = disttorch.tensor(_A.copy())
    v = x[1, 2, 3]
    assert v.shape == () and v.item() == 23.0
    v.mul_(2)
    assert x[1, 2, 3].item() == 46.0


def test_getitem_0d_and_empty_tensors():
    s = disttorch.tensor(3.0)
    assert_close(s[None], np.array([3.0]))
    assert_close(s[...], np.array(3.0))
    assert_close(s[True], np.array([3.0]))
    assert s[False].shape == (0,)
    e = disttorch.zeros(0, 3)
    assert e[:, 1].shape == (0,)
    assert e[disttorch.tensor([], dtype=disttorch.int64)].shape == (0, 3)


@pytest.mark.parametrize("key,exc,match", [
    ((5,), IndexError, "index 5 is out of bounds for dimension 0 with size 2"),
    ((0, 7), IndexError, "index 7 is out of bounds for dimension 1 with size 3"),
    (([0, 5],), IndexError, "index 5 is out of bounds for dimension 0 with size 2"),
    ((0, 0, 0, 0), IndexError, "too many indices for tensor of dimension 3"),
    ((slice(None, None, -1),), ValueError, "step must be greater than zero"),
    ((slice(None, None, 0),), ValueError, "slice step cannot be zero"),
    ((1.5,), IndexError, "only integers, slices"),
    (("a",), IndexError, "only integers, slices"),
])
def test_getitem_errors(key, exc, match):
    with pytest.raises(exc, match=match):
        disttorch.tensor(_A)[key]


def test_getitem_float_index_tensor_and_bad_mask():
    x = disttorch.tensor(_A)
    with pytest.raises(IndexError, match="tensors used as indices must be long, int, byte or bool tensors"):
        x[disttorch.tensor([0.0, 1.0])]
    with pytest.raises(IndexError, match="tensors used as indices must be long, int, byte or bool tensors"):
        x[[0.0, 1.0]]
    with pytest.raises(IndexError, match=r"The shape of the mask \[3\] at index 0 does not match"):
        x[disttorch.tensor([True, False, True])]
    with pytest.raises(IndexError, match=r"shape mismatch: indexing tensors could not be broadcast together with "
                                         r"shapes \[2\], \[3\]"):
        x[[0, 1], [0, 1, 2]]


@pytest.mark.parametrize("key", [
    (0,), (slice(None), 1), (Ellipsis, slice(1, 3)), ([0, 0, 1],), (slice(None), [2, 2, 0, 2]),
    ([1, 0, 1], [0, 0, 0]), (None, 1, [2, 2]), (np.array([[True, False, True], [False, True, True]]),),
])
def test_getitem_grad(key):
    check_grad(lambda t: t[key], rand_array((2, 3, 4)))


def test_getitem_double_backward_repeated_indices():
    check_grad(lambda t: t[[0, 0, 2]] * t[[0, 0, 2]], rand_array((3, 2)), gradgrad=True)
    check_grad(lambda t: t[1:, ::2] * t[1:, ::2], rand_array((3, 4)), gradgrad=True)


def test_getitem_grad_accumulates_repeated_indices():
    x = disttorch.zeros(3, dtype=disttorch.float64, requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    assert_close(x.grad, np.array([3.0, 0.0, 1.0]))
    assert x[[0, 0]].grad_fn.name() == "IndexBackward0"
    assert x[0].grad_fn.name() == "SelectBackward0"
    assert x[1:].grad_fn.name() == "SliceBackward0"


# ---- __setitem__ ---------------------------------------------------------------------------------
@pytest.mark.parametrize("key,value", [
    (0, 5.0), ((slice(None), 1), np.array([1.0, 2.0, 3.0, 4.0])), ((Ellipsis, 2), np.array([[7.0], [8.0]])),
    ([0, 1], -1.0), ((slice(None), [0, 2], 1), np.array([[1.0, 2.0]])), (_A > 20, 0.5),
    ((1, slice(None, None, 2)), np.ones((1, 4))), ((), 3.0),
])
def test_setitem_forward(key, value):
    x = disttorch.tensor(_A.copy())
    v0 = x._version
    x[key] = disttorch.tensor(value) if isinstance(value, np.ndarray) else value
    expected = _A.copy()
    expected[key] = value
    assert_close(x, expected)
    assert x._version == v0 + 1


def test_setitem_casts_value_and_accepts_tensor_index():
    x = disttorch.zeros(4, dtype=disttorch.int32)
    x[disttorch.tensor([1, 3])] = disttorch.tensor([1.7, -2.2], dtype=disttorch.float64)
    assert x.dtype is disttorch.int32 and x.tolist() == [0, 1, 0, -2]
    b = disttorch.zeros(3, dtype=disttorch.bool)
    b[1] = 2
    assert b.tolist() == [False, True, False]
    h = disttorch.zeros(3, dtype=disttorch.bfloat16)
    h[:2] = 1.5
    assert h.float().tolist() == [1.5, 1.5, 0.0]


def test_setitem_errors():
    x = disttorch.zeros(3, 4)
    with pytest.raises(RuntimeError, match=r"The expanded size of the tensor \(4\) must match the existing size \(3\) "
                                           r"at non-singleton dimension 1\.  Target sizes: \[2, 4\]\.  Tensor sizes: \[3\]"):
        x[:2] = disttorch.ones(3)
    with pytest.raises(IndexError, match="index 3 is out of bounds for dimension 0 with size 3"):
        x[3] = 1.0
    e = disttorch.zeros(1, 4).expand(3, 4)
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        e[0, 0] = 1.0
    leaf = disttorch.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
        leaf[0] = 1.0
    with disttorch.no_grad():
        leaf[0] = 1.0
    assert leaf.tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize("key,vshape", [
    ((0,), (4,)), ((slice(None), 1), (1,)), (([0, 2, 2], [1, 1, 3]), (3,)), ((Ellipsis, [0, 3]), (3, 1)),
    ((np.array([[True, False, False, True]] * 3),), ()), ((1, slice(0, 2)), (1, 2)),
])
def test_setitem_grad_base_and_value(key, vshape):
    def fn(a, v):
        y = a * 1.0
        y[key] = v * 2.0
        return y * a
    check_grad(fn, rand_array((3, 4)), rand_array(vshape))


def test_setitem_double_backward():
    def fn(a, v):
        y = a * a
        y[[0, 2]] = v * v
        return y
    check_grad(fn, rand_array((3, 2)), rand_array((2,)), gradgrad=True)


def test_setitem_plain_tensor_joins_the_graph():
    v = disttorch.tensor([1.0, 2.0], dtype=disttorch.float64, requires_grad=True)
    out = disttorch.zeros(3, 2, dtype=disttorch.float64)
    out[1] = v
    assert out.requires_grad and out.grad_fn is not None and not out.is_leaf
    (out * disttorch.arange(6, dtype=disttorch.float64).reshape(3, 2)).sum().backward()
    assert_close(v.grad, np.array([2.0, 3.0]))


def test_setitem_value_dtype_grad():
    v = disttorch.tensor(2.0, dtype=disttorch.float32, requires_grad=True)
    out = disttorch.zeros(3, dtype=disttorch.float64)
    out[:2] = v
    out.sum().backward()
    assert v.grad.dtype is disttorch.float32 and v.grad.item() == 2.0


def test_setitem_through_a_view_rebases_the_base():
    def fn(a, v):
        y = a * 1.0
        row = y[1]
        row[[0, 2]] = v  # written through a view: y's history must see it
        return y * 2.0 + row.sum()
    check_grad(fn, rand_array((3, 4)), rand_array((2,)))

    def fn2(a, v):
        y = a * 3.0
        col = y.t()[2]
        col[1:] = v
        return y
    check_grad(fn2, rand_array((3, 4)), rand_array((1,)))

    def fn3(v):
        out = disttorch.zeros(2, 3, dtype=disttorch.float64)
        out[0][1:] = v  # a plain tensor's view receiving a value that requires grad
        return out
    check_grad(fn3, rand_array((2,)))


def test_setitem_on_view_of_leaf_raises():
    leaf = disttorch.zeros(3, 2, requires_grad=True)
    v = leaf[0]
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
        v[0] = 1.0


def test_shared_version_counter_detects_modified_saved_output():
    x = disttorch.ones(2, 3, requires_grad=True)
    y = x.exp()
    v = y[0]
    with disttorch.no_grad():
        v.mul_(2)
    assert v._version == y._version == 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    x2 = disttorch.ones(3, requires_grad=True)
    y2 = x2.exp()
    y2[1:][0] = 0.0  # a setitem through a view bumps y2's version too
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y2.sum().backward()


# ---- masks -------------------------------------------------------------------------------------
@pytest.mark.parametrize("xshape,mshape", [((2, 3), (2, 3)), ((2, 3), (3,)), ((3,), (2, 3)), ((), ()), ((0, 3), (3,))])
def test_masked_fill_and_select(xshape, mshape):
    a, m = rand_array(xshape), rand_array(mshape, dtype=bool)
    x, mt = disttorch.tensor(a), disttorch.tensor(m)
    assert_close(disttorch.masked_fill(x, mt, 7.0), np.where(m, 7.0, a))
    assert_close(x.masked_fill(mt, disttorch.tensor(-1.0)), np.where(m, -1.0, a))
    ab, mb = np.broadcast_arrays(a, m)
    assert_close(disttorch.masked_select(x, mt), ab[mb])
    if mshape == xshape:
        check_grad(lambda t: t.masked_fill(mt, 2.0), a)
        check_grad(lambda t, v: t.masked_fill(mt, v), a, rand_array(()))
    check_grad(lambda t: disttorch.masked_select(t, mt), a)


def test_masked_fill_inplace_and_dtype():
    x = disttorch.arange(6).reshape(2, 3)
    r = x.masked_fill_(disttorch.tensor([True, False, True]), 9)
    assert r is x and x.tolist() == [[9, 1, 9], [9, 4, 9]] and x.dtype is disttorch.int64
    assert x._version == 1
    with pytest.raises(RuntimeError, match="only supports boolean masks, but got mask with dtype"):
        x.masked_fill(disttorch.tensor([1, 0, 1]), 0)
    with pytest.raises(RuntimeError, match="0-dimensional value tensor"):
        x.masked_fill(disttorch.tensor([True, False, True]), disttorch.tensor([1]))
    y = disttorch.ones(2, 3, dtype=disttorch.float64, requires_grad=True) * 1.0
    y.masked_fill_(disttorch.tensor([True, False, False]), 0.0)
    y.sum().backward()


@pytest.mark.parametrize("xshape,mshape", [((2, 3), (2, 3)), ((2, 3), (3,)), ((4,), (4,))])
def test_masked_scatter(xshape, mshape):
    a, m, s = rand_array(xshape), rand_array(mshape, dtype=bool), rand_array((7,))
    ab, mb = np.broadcast_arrays(a, m)
    expected = ab.copy()
    expected[mb] = s[:mb.sum()]
    assert_close(disttorch.masked_scatter(disttorch.tensor(a), disttorch.tensor(m), disttorch.tensor(s)), expected)
    check_grad(lambda t, u: t.masked_scatter(disttorch.tensor(m), u), a, s)
    x = disttorch.tensor(a)
    if xshape == tuple(np.broadcast_shapes(xshape, mshape)):
        x.masked_scatter_(disttorch.tensor(m), disttorch.tensor(s))
        assert_close(x, expected)
    with pytest.raises(RuntimeError, match="Number of elements of source < number of ones in mask"):
        disttorch.masked_scatter(disttorch.tensor(a), disttorch.ones(xshape, dtype=disttorch.bool),
                                 disttorch.zeros(1, dtype=disttorch.float64))


@pytest.mark.parametrize("shape", [(), (0,), (5,), (2, 3), (2, 0, 3), (2, 3, 2)])
def test_nonzero_argwhere(shape):
    a = rand_array(shape, dtype=np.int64, low=-1, high=2)
    x = disttorch.tensor(a)
    n = disttorch.nonzero(x)
    assert n.dtype is disttorch.int64
    assert_close(n, np.argwhere(a))
    assert_close(disttorch.argwhere(x), np.argwhere(a))
    tup = x.nonzero(as_tuple=True)
    assert_close(tup, np.nonzero(a.reshape(-1) if a.ndim == 0 else a))


def test_nonzero_floats_and_bool():
    x = disttorch.tensor([[0.0, 1.5], [float("nan"), 0.0]])
    assert x.nonzero().tolist() == [[0, 1], [1, 0]]
    assert disttorch.nonzero(disttorch.tensor([True, False, True]), as_tuple=True)[0].tolist() == [0, 2]


def test_contains():
    x = disttorch.tensor([[1, 2], [3, 4]])
    assert 3 in x and 5 not in x
    assert disttorch.tensor(4) in x
    with pytest.raises(RuntimeError, match="only supports Tensor or scalar"):
        "a" in x


def test_masked_select_out_refuses_autograd_and_other_dtypes():
    x, m = rand_array((2, 3)), rand_array((2, 3)) > 0
    msg = r"masked_select\(\): functions with out=... arguments don't support automatic differentiation"
    with pytest.raises(RuntimeError, match=msg):
        disttorch.masked_select(disttorch.tensor(x, requires_grad=True), disttorch.tensor(m), out=disttorch.empty(0))
    with pytest.raises(RuntimeError, match=msg):
        disttorch.masked_select(disttorch.tensor(x), disttorch.tensor(m), out=disttorch.empty(0, requires_grad=True))
    with pytest.raises(RuntimeError, match=r"masked_select\(\): self and result must have the same scalar type"):
        disttorch.masked_select(disttorch.tensor(x), disttorch.tensor(m), out=disttorch.empty(0))
    out = disttorch.empty(0, dtype=disttorch.float64)
    assert disttorch.masked_select(disttorch.tensor(x), disttorch.tensor(m), out=out) is out
    assert_close(out, x[m])
    with disttorch.no_grad():  # outside grad mode PyTorch allows it
        assert_close(disttorch.masked_select(disttorch.tensor(x, requires_grad=True), disttorch.tensor(m), out=out),
                     x[m])
