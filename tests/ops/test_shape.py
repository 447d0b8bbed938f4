"""Shape views: reshape/view, expand/broadcast, permute/transpose, squeeze/unsqueeze, flatten, narrow, select, ..."""
import numpy as np
import pytest

import disttorch
from helpers import UNARY_SHAPES, assert_close, check_grad, rand_array


@pytest.mark.parametrize("shape,new", [((), (1,)), ((0,), (0, 3)), ((6,), (2, 3)), ((2, 3), (-1,)), ((2, 0, 3), (0, 6)),
                                       ((2, 3, 4), (4, -1, 2)), ((2, 3), (1, 2, 1, 3)), ((1,), ())])
def test_reshape_view(shape, new):
    a = rand_array(shape)
    x = disttorch.tensor(a)
    assert_close(disttorch.reshape(x, new), a.reshape(new))
    assert_close(x.reshape(*new), a.reshape(new))
    assert_close(disttorch.reshape(x, shape=new), a.reshape(new))
    v = x.view(new)
    assert_close(v, a.reshape(new))
    assert_close(x.view_as(disttorch.zeros(a.reshape(new).shape)), a.reshape(new))
    assert_close(x.reshape_as(disttorch.zeros(a.reshape(new).shape)), a.reshape(new))
    if a.size:
        v.reshape(-1)[0] = 42.0  # views share memory and version
        assert x.reshape(-1)[0].item() == 42.0 and x._version == v._version
    check_grad(lambda t: t.view(new), a)


def test_reshape_copies_non_contiguous_and_view_refuses():
    a = rand_array((3, 4))
    x = disttorch.tensor(a).t()
    r = x.reshape(-1)
    assert_close(r, a.T.reshape(-1))
    r[0] = 99.0
    assert x[0, 0].item() != 99.0
    with pytest.raises(RuntimeError, match="view size is not compatible with input tensor's size and stride"):
        x.view(-1)
    assert x.view(4, 3).shape == (4, 3)
    assert disttorch.tensor(a)[:, :2].view(3, 2, 1).shape == (3, 2, 1)
    with pytest.raises(RuntimeError, match=r"shape '\[5\]' is invalid for input of size 12"):
        x.reshape(5)
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        x.reshape(-1, -1)
    with pytest.raises(RuntimeError, match="-1 can be any value and is ambiguous"):
        disttorch.zeros(2, 0).reshape(0, -1)


def test_view_dtype():
    x = disttorch.tensor([1.0, -2.0], dtype=disttorch.float32)
    v = x.view(disttorch.int32)
    assert v.dtype is disttorch.int32
    assert v.tolist() == np.array([1.0, -2.0], dtype=np.float32).view(np.int32).tolist()
    h = x.view(disttorch.int16)
    assert h.shape == (4,)
    assert x.view(disttorch.float32).dtype is disttorch.float32
    assert disttorch.zeros(2, 3).view(np.int64(6)).shape == (6,)
    with pytest.raises(RuntimeError, match=r"self\.size\(-1\) must be divisible by 2 to view Float as Double "
                                           r"\(different element sizes\), but got 3"):
        disttorch.zeros(3).view(disttorch.float64)


@pytest.mark.parametrize("shape,target", [((), (3,)), ((1,), (2, 3)), ((3, 1), (3, 4)), ((3, 1), (2, -1, 5)),
                                          ((0, 1), (0, 2)), ((2, 3), (2, 3))])
def test_expand_broadcast(shape, target):
    a = rand_array(shape)
    x = disttorch.tensor(a)
    full = tuple(s if s != -1 else shape[i - (len(target) - len(shape))] for i, s in enumerate(target))
    assert_close(x.expand(target), np.broadcast_to(a, full))
    assert_close(x.expand(*target), np.broadcast_to(a, full))
    assert_close(disttorch.broadcast_to(x, target), np.broadcast_to(a, full))
    assert_close(x.expand_as(disttorch.zeros(full)), np.broadcast_to(a, full))
    check_grad(lambda t: t.expand(target), a)


def test_expand_errors():
    with pytest.raises(RuntimeError, match=r"The expanded size of the tensor \(4\) must match the existing size \(3\)"):
        disttorch.zeros(3).expand(4)
    with pytest.raises(RuntimeError, match="must be greater or equal to the number of dimensions"):
        disttorch.zeros(2, 3).expand(3)
    with pytest.raises(RuntimeError, match="leading, non-existing dimension"):
        disttorch.zeros(3).expand(-1, 3)


def test_broadcast_tensors_and_shapes():
    a, b, c = rand_array((3, 1)), rand_array((4,)), rand_array(())
    outs = disttorch.broadcast_tensors(disttorch.tensor(a), disttorch.tensor(b), disttorch.tensor(c))
    assert_close(outs, np.broadcast_arrays(a, b, c))
    check_grad(lambda x, y: disttorch.broadcast_tensors(x, y), a, b)
    s = disttorch.broadcast_shapes((3, 1), (4,), 1, ())
    assert s == (3, 4) and isinstance(s, disttorch.Size)
    with pytest.raises(RuntimeError, match="must match the size of tensor"):
        disttorch.broadcast_shapes((3,), (4,))
    with pytest.raises(RuntimeError, match="must match the size of tensor"):
        disttorch.broadcast_tensors(disttorch.zeros(2), disttorch.zeros(3))


@pytest.mark.parametrize("shape,dims", [((2, 3, 4), (2, 0, 1)), ((2, 3), (-1, 0)), ((), ()), ((0, 2), (1, 0))])
def test_permute(shape, dims):
    a = rand_array(shape)
    x = disttorch.tensor(a)
    assert_close(disttorch.permute(x, dims), np.transpose(a, dims))
    assert_close(x.permute(*dims), np.transpose(a, dims))
    assert_close(disttorch.permute(x, dims=dims), np.transpose(a, dims))
    check_grad(lambda t: t.permute(dims), a)
    with pytest.raises(RuntimeError, match="number of dimensions in the tensor input does not match"):
        x.permute(*dims, 0)


@pytest.mark.parametrize("shape,d0,d1", [((2, 3), 0, 1), ((2, 3, 4), -1, 0), ((3,), 0, 0), ((), 0, -1)])
def test_transpose_swapaxes(shape, d0, d1):
    a = rand_array(shape)
    x = disttorch.tensor(a)
    exp = np.swapaxes(a, d0, d1) if a.ndim else a
    for fn in (disttorch.transpose, disttorch.swapaxes, disttorch.swapdims):
        assert_close(fn(x, d0, d1), exp)
    check_grad(lambda t: t.transpose(d0, d1), a)
    y = disttorch.tensor(a)
    assert y.transpose_(d0, d1) is y
    assert_close(y, exp)


def test_t_T_mT_H_mH_adjoint():
    a = rand_array((2, 3))
    x = disttorch.tensor(a)
    assert_close(x.t(), a.T)
    assert_close(disttorch.t(disttorch.tensor(a[0])), a[0])
    assert_close(x.T, a.T)
    assert_close(x.H, a.T)
    b = rand_array((4, 2, 3))
    assert_close(disttorch.tensor(b).mT, np.swapaxes(b, -1, -2))
    assert_close(disttorch.tensor(b).mH, np.swapaxes(b, -1, -2))
    assert_close(disttorch.adjoint(disttorch.tensor(b)), np.swapaxes(b, -1, -2))
    with pytest.raises(RuntimeError, match="t\\(\\) expects a tensor with <= 2 dimensions"):
        disttorch.tensor(b).t()
    with pytest.warns(UserWarning, match="x.T"):
        disttorch.tensor(b).T
    with pytest.raises(RuntimeError, match="tensor.mT is only supported on matrices"):
        disttorch.zeros(3).mT
    y = disttorch.tensor(a)
    y.t_()
    assert_close(y, a.T)
    check_grad(lambda t: t.T, a)
    c = np.array([[1 + 2j, 3j, 1.0], [1, 2, -1j]], dtype=np.complex64)
    np.testing.assert_array_equal(disttorch.tensor(c).H.numpy(), c.conj().T)
    np.testing.assert_array_equal(disttorch.tensor(c).mH.numpy(), c.conj().T)


@pytest.mark.parametrize("shape,src,dst", [((2, 3, 4), 0, -1), ((2, 3, 4), (0, 1), (2, 0)), ((2, 3), 1, 0)])
def test_movedim(shape, src, dst):
    a = rand_array(shape)
    assert_close(disttorch.movedim(disttorch.tensor(a), src, dst), np.moveaxis(a, src, dst))
    assert_close(disttorch.tensor(a).moveaxis(src, dst), np.moveaxis(a, src, dst))
    check_grad(lambda t: t.movedim(src, dst), a)


@pytest.mark.parametrize("shape,dim", [((1, 3, 1), None), ((1, 3, 1), 0), ((1, 3, 1), (0, 2)), ((1, 3, 1), 1),
                                       ((), None), ((), 0), ((2, 1, 0), -2)])
def test_squeeze(shape, dim):
    a = rand_array(shape)
    x = disttorch.tensor(a)
    if dim is None:
        exp = np.squeeze(a)
    else:
        dims = dim if isinstance(dim, tuple) else (dim,)
        exp = np.squeeze(a, tuple(d for d in dims if a.ndim and a.shape[d] == 1)) if a.ndim else a
    assert_close(disttorch.squeeze(x, dim), exp)
    check_grad(lambda t: t.squeeze(dim), a)
    y = disttorch.tensor(a)
    y.squeeze_(dim)
    assert y.shape == exp.shape


@pytest.mark.parametrize("shape,dim", [((), 0), ((), -1), ((3,), 1), ((2, 3), -1), ((2, 3), 0)])
def test_unsqueeze(shape, dim):
    a = rand_array(shape)
    x = disttorch.tensor(a)
    assert_close(x.unsqueeze(dim), np.expand_dims(a, dim))
    check_grad(lambda t: disttorch.unsqueeze(t, dim), a)
    x.unsqueeze_(dim)
    assert x.shape == np.expand_dims(a, dim).shape
    with pytest.raises(IndexError, match="Dimension out of range"):
        disttorch.zeros(shape).unsqueeze(len(shape) + 2)


@pytest.mark.parametrize("shape,s,e", [((), 0, -1), ((2, 3, 4), 0, -1), ((2, 3, 4), 1, 2), ((2, 0, 4), 0, 1),
                                       ((2, 3), 1, 1)])
def test_flatten_unflatten_ravel(shape, s, e):
    a = rand_array(shape)
    x = disttorch.tensor(a)
    nd = max(a.ndim, 1)
    s_, e_ = s % nd, e % nd
    exp_shape = a.shape[:s_] + (int(np.prod(a.shape[s_:e_ + 1])),) + a.shape[e_ + 1:] if a.ndim else (1,)
    assert_close(disttorch.flatten(x, s, e), a.reshape(exp_shape))
    assert_close(disttorch.ravel(x), a.reshape(-1))
    check_grad(lambda t: t.flatten(s, e), a)
    if a.ndim:
        back = disttorch.flatten(x, s, e).unflatten(s_, a.shape[s_:e_ + 1] if e_ > s_ else (-1,))
        assert_close(back, a)


def test_unflatten():
    a = rand_array((2, 12))
    x = disttorch.tensor(a)
    assert_close(disttorch.unflatten(x, 1, (3, -1)), a.reshape(2, 3, 4))
    assert_close(x.unflatten(-1, (2, 2, 3)), a.reshape(2, 2, 2, 3))
    check_grad(lambda t: t.unflatten(1, (4, 3)), a)
    with pytest.raises(RuntimeError, match="don't multiply up to the size of dim 1"):
        x.unflatten(1, (5, 2))


@pytest.mark.parametrize("shape,dim,start,length", [((5,), 0, 1, 3), ((3, 4), 1, -3, 2), ((3, 4), 0, 3, 0),
                                                    ((2, 3, 4), -1, 0, 4)])
def test_narrow(shape, dim, start, length):
    a = rand_array(shape)
    x = disttorch.tensor(a)
    n = shape[dim]
    st = start % n if start < 0 else start
    exp = np.take(a, np.arange(st, st + length), axis=dim)
    assert_close(disttorch.narrow(x, dim, start, length), exp)
    assert_close(x.narrow(dim, disttorch.tensor(start), length), exp)
    check_grad(lambda t: t.narrow(dim, start, length), a)
    if length:
        x.narrow(dim, start, length)[...] = 7.0  # a view
        assert (x.numpy() == 7.0).sum() == exp.size


def test_narrow_select_errors():
    x = disttorch.zeros(3, 4)
    with pytest.raises(RuntimeError, match=r"start \(2\) \+ length \(3\) exceeds dimension size \(4\)"):
        x.narrow(1, 2, 3)
    with pytest.raises(IndexError, match="start out of range"):
        x.narrow(0, 5, 0)
    with pytest.raises(IndexError, match=r"select\(\): index 3 out of range for tensor of size \[3, 4\] at dimension 0"):
        x.select(0, 3)


@pytest.mark.parametrize("shape,dim,index", [((3,), 0, 1), ((3, 4), 1, -1), ((2, 3, 4), 1, 2)])
def test_select(shape, dim, index):
    a = rand_array(shape)
    x = disttorch.tensor(a)
    assert_close(disttorch.select(x, dim, index), np.take(a, index, axis=dim))
    check_grad(lambda t: t.select(dim, index), a)
    x.select(dim, index).__setitem__(Ellipsis, 9.0)
    assert (x.numpy() == 9.0).sum() == np.take(a, index, axis=dim).size


@pytest.mark.parametrize("shape", UNARY_SHAPES)
def test_atleast(shape):
    a = rand_array(shape)
    x = disttorch.tensor(a)
    for fn, ref in ((disttorch.atleast_1d, np.atleast_1d), (disttorch.atleast_2d, np.atleast_2d),
                    (disttorch.atleast_3d, np.atleast_3d)):
        assert_close(fn(x), ref(a))
        assert_close(fn(x, x), ref(a, a))
        assert_close(fn([x, x]), ref(a, a))
    check_grad(lambda t: disttorch.atleast_3d(t), a)


def test_sum_to_size():
    a = rand_array((2, 3, 4))
    assert_close(disttorch.tensor(a).sum_to_size(3, 1), a.sum(axis=(0, 2)).reshape(3, 1))
    check_grad(lambda t: t.sum_to_size((1, 4)), a)
    with pytest.raises(RuntimeError, match="is not expandable to size"):
        disttorch.tensor(a).sum_to_size(5)


def test_view_dtype_needs_a_storage_offset_divisible_by_the_size_ratio():
    # PyTorch refuses to reinterpret a view that starts inside a wider element (NumPy would allow it).
    base = disttorch.arange(12, dtype=disttorch.float32)
    with pytest.raises(RuntimeError, match=r"self.storage_offset\(\) must be divisible by 2 to view Float as Double "
                                           r"\(different element sizes\), but got 1"):
        base[1:9].view(disttorch.float64)
    b8 = disttorch.arange(12, dtype=disttorch.int8)
    with pytest.raises(RuntimeError, match=r"divisible by 4 to view Char as Int .*but got 2"):
        b8[2:10].view(disttorch.int32)
    with pytest.raises(RuntimeError, match="divisible by 2 to view Float as Double"):
        base.reshape(3, 4)[:, 1:3].view(disttorch.float64)
    # Aligned offsets reinterpret the same bytes NumPy does; narrower dtypes never need alignment.
    ref = np.arange(12, dtype=np.int8)
    assert_close(b8[4:12].view(disttorch.int32), ref[4:12].view(np.int32))
    assert_close(b8[2:10].view(disttorch.int16), ref[2:10].view(np.int16))
    assert_close(base[1:3].view(disttorch.int16), np.arange(12, dtype=np.float32)[1:3].view(np.int16))
