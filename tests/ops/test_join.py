"""Joining and splitting: cat/stack/hstack/..., split/chunk/tensor_split/unbind, meshgrid, cartesian_prod."""
import itertools
import warnings

import numpy as np
import pytest

import disttorch
from helpers import assert_close, check_grad, rand_array


@pytest.mark.parametrize("shapes,dim", [
    ([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1), (2, 0)], 1), ([(2, 3), (2, 3)], -1), ([(1, 2, 3), (1, 2, 2)], 2),
    ([(5,), (0,), (2,)], 0), ([(0, 3), (2, 3)], 0), ([(3,)], 0),
])
def test_cat_matches_numpy(shapes, dim):
    arrays = [rand_array(s) for s in shapes]
    r = disttorch.cat([disttorch.tensor(a) for a in arrays], dim)
    assert_close(r, np.concatenate(arrays, axis=dim))
    assert_close(disttorch.concat(tuple(disttorch.tensor(a) for a in arrays), dim=dim), np.concatenate(arrays, dim))
    assert_close(disttorch.concatenate([disttorch.tensor(a) for a in arrays], axis=dim), np.concatenate(arrays, dim))
    check_grad(lambda *ts: disttorch.cat(ts, dim), *arrays)


def test_cat_skips_1d_empty_and_promotes():
    a = rand_array((2, 3))
    empty = disttorch.zeros(0, dtype=disttorch.float64, requires_grad=True)
    r = disttorch.cat([disttorch.tensor(a), empty, disttorch.tensor(a)], 1)
    assert_close(r, np.concatenate([a, a], 1))
    check_grad(lambda t, e: disttorch.cat([t, e, t], 1), a, np.zeros(0))
    assert disttorch.cat([disttorch.zeros(0), disttorch.zeros(0)]).shape == (0,)
    i = disttorch.tensor([1, 2], dtype=disttorch.int32)
    f = disttorch.tensor([0.5], dtype=disttorch.float32)
    d = disttorch.tensor([1.5], dtype=disttorch.float64)
    assert disttorch.cat([i, f]).dtype is disttorch.float32
    assert disttorch.cat([i, disttorch.tensor([3], dtype=disttorch.int64)]).dtype is disttorch.int64
    assert disttorch.cat([f, d]).dtype is disttorch.float64
    assert disttorch.cat([disttorch.tensor([True]), i]).tolist() == [1, 1, 2]
    fr = disttorch.tensor([0.5], dtype=disttorch.float32, requires_grad=True)
    dr = disttorch.tensor([1.5], dtype=disttorch.float64, requires_grad=True)
    disttorch.cat([fr, dr]).sum().backward()
    assert fr.grad.dtype is disttorch.float32 and dr.grad.dtype is disttorch.float64
    out = disttorch.empty(0)
    disttorch.cat([f, f], out=out)
    assert out.tolist() == [0.5, 0.5]


def test_cat_errors():
    a, b = disttorch.zeros(2, 2), disttorch.zeros(3, 3)
    with pytest.raises(RuntimeError, match=r"Sizes of tensors must match except in dimension 1. Expected size 2 but "
                                           r"got size 3 for tensor number 1 in the list."):
        disttorch.cat([a, b], 1)
    with pytest.raises(RuntimeError, match="Tensors must have same number of dimensions: got 2 and 1"):
        disttorch.cat([a, disttorch.zeros(2)])
    with pytest.raises(RuntimeError, match=r"zero-dimensional tensor \(at position 1\) cannot be concatenated"):
        disttorch.cat([disttorch.zeros(1), disttorch.tensor(1.0)])
    with pytest.raises(RuntimeError, match="expected a non-empty list of Tensors"):
        disttorch.cat([])
    with pytest.raises(TypeError, match="must be tuple of Tensors"):
        disttorch.cat(a)
    with pytest.raises(IndexError, match="Dimension out of range"):
        disttorch.cat([a, a], 2)


@pytest.mark.parametrize("shape,dim", [((), 0), ((3,), 0), ((3,), 1), ((2, 3), -1), ((2, 0), 1), ((2, 3), 2)])
def test_stack(shape, dim):
    arrays = [rand_array(shape) for _ in range(3)]
    ts = [disttorch.tensor(a) for a in arrays]
    assert_close(disttorch.stack(ts, dim), np.stack(arrays, axis=dim))
    assert_close(disttorch.stack(tuple(ts), dim=dim), np.stack(arrays, axis=dim))
    check_grad(lambda *t: disttorch.stack(t, dim), *arrays)


def test_stack_errors_and_promotion():
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got \[2, 3\] at entry 0 "
                                           r"and \[3\] at entry 1"):
        disttorch.stack([disttorch.zeros(2, 3), disttorch.zeros(3)])
    with pytest.raises(RuntimeError, match="stack expects a non-empty TensorList"):
        disttorch.stack([])
    assert disttorch.stack([disttorch.tensor([1]), disttorch.tensor([0.5])]).dtype is disttorch.float32


@pytest.mark.parametrize("shapes", [[(), ()], [(3,), (2,)], [(2, 3), (2, 1)], [(2, 1, 3), (2, 2, 3)]])
def test_hstack(shapes):
    arrays = [rand_array(s) for s in shapes]
    assert_close(disttorch.hstack([disttorch.tensor(a) for a in arrays]), np.hstack(arrays))
    check_grad(lambda *t: disttorch.hstack(t), *arrays)


@pytest.mark.parametrize("shapes", [[(), ()], [(3,), (3,)], [(2, 3), (3,)], [(1, 2, 3), (2, 2, 3)]])
def test_vstack_row_stack(shapes):
    arrays = [rand_array(s) for s in shapes]
    assert_close(disttorch.vstack([disttorch.tensor(a) for a in arrays]), np.vstack(arrays))
    assert_close(disttorch.row_stack([disttorch.tensor(a) for a in arrays]), np.vstack(arrays))
    check_grad(lambda *t: disttorch.vstack(t), *arrays)


@pytest.mark.parametrize("shapes", [[(), ()], [(3,), (3,)], [(2, 3), (2, 3)], [(2, 3, 1), (2, 3, 2)]])
def test_dstack(shapes):
    arrays = [rand_array(s) for s in shapes]
    assert_close(disttorch.dstack([disttorch.tensor(a) for a in arrays]), np.dstack(arrays))
    check_grad(lambda *t: disttorch.dstack(t), *arrays)


@pytest.mark.parametrize("shapes", [[(), ()], [(3,), (3,)], [(3,), (3, 2)], [(2, 1, 2), (2, 3)]])
def test_column_stack(shapes):
    arrays = [rand_array(s) for s in shapes]
    if len(shapes[0]) == 3:
        with pytest.raises(RuntimeError, match="Tensors must have same number of dimensions"):
            disttorch.column_stack([disttorch.tensor(a) for a in arrays])
        return
    assert_close(disttorch.column_stack([disttorch.tensor(a) for a in arrays]), np.column_stack(arrays))
    check_grad(lambda *t: disttorch.column_stack(t), *arrays)


# ---- splitting ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,arg,dim", [
    ((5,), 2, 0), ((6, 2), 3, 0), ((2, 7), 3, 1), ((4, 2), [1, 3], 0), ((2, 5), [2, 0, 3], -1), ((0, 2), 2, 0),
    ((3,), 5, 0),
])
def test_split(shape, arg, dim):
    a = rand_array(shape)
    x = disttorch.tensor(a)
    pieces = disttorch.split(x, arg, dim)
    n = shape[dim]
    if isinstance(arg, list):
        points = np.cumsum(arg)[:-1]
    else:
        points = list(range(arg, n, arg))
    expected = np.split(a, points, axis=dim)
    assert_close(pieces, expected)
    assert_close(x.split(arg, dim), expected)
    check_grad(lambda t: disttorch.split(t, arg, dim), a)
    check_grad(lambda t: disttorch.split(t, arg, dim)[-1] * 2.0, a)  # unused pieces get zero gradient
    if x.numel() and pieces[-1].numel():
        pieces[-1][...] = 100.0  # the pieces are views
        assert x.reshape(-1)[-1].item() == 100.0


def test_split_errors():
    x = disttorch.zeros(4, 2)
    with pytest.raises(RuntimeError, match=r"split_with_sizes expects split_sizes to sum exactly to 4 \(input tensor's "
                                           r"size at dimension 0\), but got split_sizes=\[1, 2\]"):
        x.split([1, 2])
    with pytest.raises(RuntimeError, match="split_size can only be 0 if dimension size is 0"):
        x.split(0)
    with pytest.raises(RuntimeError, match="split expects at least a 1-dimensional tensor"):
        disttorch.tensor(1.0).split(1)


@pytest.mark.parametrize("n,chunks", [(6, 3), (7, 3), (5, 4), (2, 5), (0, 3), (1, 1)])
def test_chunk(n, chunks):
    a = rand_array((n, 2))
    pieces = disttorch.chunk(disttorch.tensor(a), chunks)
    size = -(-n // chunks)
    if n == 0:
        assert len(pieces) == chunks and all(p.shape == (0, 2) for p in pieces)
        return
    assert_close(pieces, np.split(a, list(range(size, n, size))))
    check_grad(lambda t: t.chunk(chunks), a)
    with pytest.raises(RuntimeError, match="chunk expects `chunks` to be greater than 0, got: 0"):
        disttorch.chunk(disttorch.tensor(a), 0)


@pytest.mark.parametrize("n,arg", [(7, 3), (5, 5), (2, 4), (6, [1, 4]), (6, [4, 1]), (6, [-2, 10]), (6, []), (0, 2)])
def test_tensor_split(n, arg):
    a = rand_array((2, n))
    x = disttorch.tensor(a)
    expected = np.array_split(a, arg, axis=1)
    assert_close(disttorch.tensor_split(x, arg, 1), expected)
    if isinstance(arg, int):
        assert_close(x.tensor_split(disttorch.tensor(arg), dim=1), expected)
    else:
        assert_close(x.tensor_split(disttorch.tensor(arg, dtype=disttorch.int64), dim=1), expected)
    check_grad(lambda t: disttorch.tensor_split(t, arg, 1), a)


def test_hsplit_vsplit_dsplit():
    a = rand_array((4, 6, 2))
    x = disttorch.tensor(a)
    assert_close(disttorch.hsplit(x, 3), np.hsplit(a, 3))
    assert_close(disttorch.hsplit(x, [1, 4]), np.hsplit(a, [1, 4]))
    assert_close(disttorch.vsplit(x, 2), np.vsplit(a, 2))
    assert_close(disttorch.dsplit(x, [1]), np.dsplit(a, [1]))
    assert_close(disttorch.hsplit(disttorch.tensor(a[0, :, 0]), 2), np.hsplit(a[0, :, 0], 2))
    with pytest.raises(RuntimeError, match="not divisible by the split_size 4"):
        disttorch.hsplit(x, 4)
    with pytest.raises(RuntimeError, match="vsplit requires a tensor with at least 2 dimension"):
        disttorch.vsplit(disttorch.zeros(3), 3)
    check_grad(lambda t: disttorch.vsplit(t, [1]), rand_array((3, 2)))


@pytest.mark.parametrize("shape,dim", [((3,), 0), ((2, 3), 1), ((2, 3, 2), -1), ((0, 2), 1)])
def test_unbind(shape, dim):
    a = rand_array(shape)
    x = disttorch.tensor(a)
    pieces = disttorch.unbind(x, dim)
    assert_close(pieces, [np.take(a, i, axis=dim) for i in range(shape[dim])])
    assert_close(x.unbind(dim), [np.take(a, i, axis=dim) for i in range(shape[dim])])
    assert_close(list(x), list(a))
    if a.size:
        check_grad(lambda t: t.unbind(dim), a)
        check_grad(lambda t: t.unbind(dim)[0] * t.unbind(dim)[0], a, gradgrad=True)
        pieces[0][...] = 5.0
        assert_close(x, np.where(np.isin(np.arange(shape[dim % len(shape)]), [0]).reshape(
            [-1 if i == dim % len(shape) else 1 for i in range(len(shape))]), 5.0, a))


def test_meshgrid():
    a, b, c = rand_array((3,)), rand_array((2,)), rand_array(())
    ts = [disttorch.tensor(v) for v in (a, b, c)]
    for indexing in ("ij", "xy"):
        assert_close(disttorch.meshgrid(*ts, indexing=indexing), np.meshgrid(a, b, c, indexing=indexing))
        assert_close(disttorch.meshgrid(ts[:2], indexing=indexing), np.meshgrid(a, b, indexing=indexing))
        check_grad(lambda x, y: disttorch.meshgrid(x, y, indexing=indexing), a, b)
    with pytest.warns(UserWarning, match="indexing argument"):
        g = disttorch.meshgrid(ts[0], ts[1])
    assert g[0].shape == (3, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        disttorch.meshgrid(ts[0], indexing="ij")
    with pytest.raises(RuntimeError, match="Expected 0D or 1D tensor"):
        disttorch.meshgrid(disttorch.zeros(2, 2), indexing="ij")


def test_cartesian_prod():
    a, b = np.array([1, 2, 3]), np.array([4, 5])
    r = disttorch.cartesian_prod(disttorch.tensor(a), disttorch.tensor(b))
    assert r.tolist() == [list(p) for p in itertools.product(a.tolist(), b.tolist())]
    assert disttorch.cartesian_prod(disttorch.tensor(a)).tolist() == [1, 2, 3]
    check_grad(lambda x, y: disttorch.cartesian_prod(x, y), rand_array((3,)), rand_array((2,)))


def test_join_errors_use_pytorch_wording():
    with pytest.raises(TypeError, match=r"^cat\(\): argument 'tensors' \(position 1\) must be tuple of Tensors, not "
                                        r"Tensor$"):
        disttorch.cat(disttorch.ones(2))
    with pytest.raises(TypeError, match=r"^expected Tensor as element 1 in argument 0, but got int$"):
        disttorch.stack([disttorch.ones(2), 1])
    with pytest.raises(RuntimeError, match=r"^Dimension specified as 0 but tensor has no dimensions$"):
        disttorch.unbind(disttorch.tensor(1.0))
    with pytest.raises(RuntimeError, match=r"^meshgrid expects all tensors to have the same dtype$"):
        disttorch.meshgrid(disttorch.ones(2), disttorch.ones(2, dtype=disttorch.float64), indexing="ij")
    with pytest.raises(RuntimeError, match=r"^diff expects the shape of tensor to prepend or append to match that of "
                                           r"input except along the differencing dimension; input.size\(0\) = 2, but "
                                           r"got tensor.size\(0\) = 3$"):
        disttorch.diff(disttorch.ones(2, 3), prepend=disttorch.ones(3, 3))
    with pytest.raises(TypeError, match=r"^to\(\) received an invalid combination of arguments - got \(foo=int, \), "
                                        r"but expected one of:"):
        disttorch.ones(2).to(foo=1)
