"""repeat/tile/repeat_interleave, flip/roll/rot90, tril/triu, diagonal/diag/diag_embed/diagonal_scatter."""
import numpy as np
import pytest

import disttorch
from helpers import assert_close, check_grad, rand_array


@pytest.mark.parametrize("shape,reps", [((), (3,)), ((2,), (2,)), ((2, 3), (2, 1)), ((2, 3), (2, 1, 2)), ((0, 2), (2, 2)),
                                        ((2, 1), (0, 3))])
def test_repeat_tile(shape, reps):
    a = rand_array(shape)
    x = disttorch.tensor(a)
    assert_close(x.repeat(*reps), np.tile(a, reps))
    assert_close(x.repeat(reps), np.tile(a, reps))
    assert_close(disttorch.tile(x, reps), np.tile(a, reps))
    assert_close(x.tile(reps[-1:]), np.tile(a, reps[-1:]))
    check_grad(lambda t: t.repeat(*reps), a, gradgrad=True)


def test_repeat_errors():
    with pytest.raises(RuntimeError, match="Number of dimensions of repeat dims can not be smaller"):
        disttorch.zeros(2, 3).repeat(2)


@pytest.mark.parametrize("shape,reps,dim", [((3,), 2, 0), ((2, 3), 2, None), ((2, 3), [1, 0, 2], 1), ((2, 3), [3], 0),
                                            ((), 3, None), ((2, 3), 2, -1)])
def test_repeat_interleave(shape, reps, dim):
    a = rand_array(shape)
    x = disttorch.tensor(a)
    r = reps if isinstance(reps, int) else disttorch.tensor(reps)
    assert_close(disttorch.repeat_interleave(x, r, dim), np.repeat(a, reps, axis=dim))
    assert_close(x.repeat_interleave(r, dim=dim), np.repeat(a, reps, axis=dim))
    check_grad(lambda t: t.repeat_interleave(r, dim), a)


def test_repeat_interleave_repeats_only_and_errors():
    assert disttorch.repeat_interleave(disttorch.tensor([2, 0, 1])).tolist() == [0, 0, 2]
    with pytest.raises(RuntimeError, match="repeats must have the same size as input along dim"):
        disttorch.zeros(3).repeat_interleave(disttorch.tensor([1, 2]), 0)
    with pytest.raises(RuntimeError, match="Repeats must be non-negative"):
        disttorch.zeros(3).repeat_interleave(-1)


@pytest.mark.parametrize("shape,dims", [((3,), (0,)), ((2, 3), (0, 1)), ((2, 3, 4), (-1,)), ((), ()), ((0, 2), (1,))])
def test_flip(shape, dims):
    a = rand_array(shape)
    x = disttorch.tensor(a)
    r = disttorch.flip(x, dims)
    assert_close(disttorch.flip(x, dims=list(dims)), np.flip(a, dims) if dims else a)
    assert_close(r, np.flip(a, dims) if dims else a)
    assert_close(x.flip(*dims) if dims else x.flip(dims), np.flip(a, dims) if dims else a)
    if r.numel():
        r.reshape(-1)[0] = 100.0  # a copy, not a view
        assert_close(x, a)
    check_grad(lambda t: t.flip(dims), a)


def test_fliplr_flipud():
    a = rand_array((2, 3, 2))
    assert_close(disttorch.fliplr(disttorch.tensor(a)), np.fliplr(a))
    assert_close(disttorch.flipud(disttorch.tensor(a)), np.flipud(a))
    with pytest.raises(RuntimeError, match="Input must be >= 2-d"):
        disttorch.fliplr(disttorch.zeros(3))
    with pytest.raises(RuntimeError, match="Input must be >= 1-d"):
        disttorch.flipud(disttorch.tensor(1.0))


@pytest.mark.parametrize("shape,shifts,dims", [((5,), 2, 0), ((2, 3), -1, None), ((2, 3), (1, 2), (0, 1)),
                                               ((2, 3, 4), 5, -1), ((0, 3), 1, 1), ((), 1, None)])
def test_roll(shape, shifts, dims):
    a = rand_array(shape)
    assert_close(disttorch.roll(disttorch.tensor(a), shifts, dims), np.roll(a, shifts, dims))
    assert_close(disttorch.tensor(a).roll(shifts, dims), np.roll(a, shifts, dims))
    check_grad(lambda t: t.roll(shifts, dims), a)
    with pytest.raises(RuntimeError, match="shifts and dimensions must align"):
        disttorch.roll(disttorch.tensor(a), (1, 2), 0)


@pytest.mark.parametrize("k", [0, 1, 2, 3, -1, 6])
@pytest.mark.parametrize("dims", [(0, 1), (1, 0), (-1, 0)])
def test_rot90(k, dims):
    a = rand_array((2, 3, 2))
    assert_close(disttorch.rot90(disttorch.tensor(a), k, dims), np.rot90(a, k, dims))
    check_grad(lambda t: t.rot90(k, dims), a)


def test_rot90_errors():
    with pytest.raises(RuntimeError, match="expected total rotation dims == 2"):
        disttorch.rot90(disttorch.zeros(2, 2), 1, (0,))
    with pytest.raises(RuntimeError, match="expected total dims >= 2"):
        disttorch.rot90(disttorch.zeros(2))
    with pytest.raises(RuntimeError, match="expected rotation dims to be different"):
        disttorch.rot90(disttorch.zeros(2, 2), 1, (0, 0))


@pytest.mark.parametrize("shape", [(3, 3), (2, 4), (2, 3, 4), (0, 2)])
@pytest.mark.parametrize("k", [0, 1, -1])
def test_tril_triu(shape, k):
    a = rand_array(shape)
    x = disttorch.tensor(a)
    assert_close(disttorch.tril(x, k), np.tril(a, k))
    assert_close(x.triu(diagonal=k), np.triu(a, k))
    check_grad(lambda t: t.tril(k), a)
    check_grad(lambda t: t.triu(k), a)
    y = disttorch.tensor(a)
    y.tril_(k)
    assert_close(y, np.tril(a, k))
    assert disttorch.tril(disttorch.ones(2, 2, dtype=disttorch.int64)).dtype is disttorch.int64
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        disttorch.tril(disttorch.zeros(3))


@pytest.mark.parametrize("shape,offset,d1,d2", [((3, 3), 0, 0, 1), ((3, 4), 1, 0, 1), ((3, 4), -2, 0, 1),
                                                ((2, 3, 4), 0, -1, 0), ((2, 3, 4), 1, 1, 2), ((2, 2), 5, 0, 1)])
def test_diagonal(shape, offset, d1, d2):
    a = rand_array(shape)
    x = disttorch.tensor(a)
    exp = np.diagonal(a, offset, d1, d2)
    assert_close(disttorch.diagonal(x, offset, d1, d2), exp)
    assert_close(x.diagonal(offset=offset, dim1=d1, dim2=d2), exp)
    check_grad(lambda t: t.diagonal(offset, d1, d2), a, gradgrad=True)
    s = rand_array(exp.shape)
    out = disttorch.diagonal_scatter(x, disttorch.tensor(s), offset, d1, d2)
    assert_close(out.diagonal(offset, d1, d2), s)
    idx = np.indices(shape)
    on_diag = (idx[d2 % len(shape)] - idx[d1 % len(shape)]) == offset
    assert_close(out.numpy()[~on_diag], a[~on_diag])
    check_grad(lambda t, u: disttorch.diagonal_scatter(t, u, offset, d1, d2), a, s)
    if exp.size:
        x.diagonal(offset, d1, d2)[...] = 50.0  # a writable view of x
        assert (x.numpy() == 50.0).sum() == exp.size


def test_diagonal_errors():
    with pytest.raises(RuntimeError, match="diagonal dimensions cannot be identical"):
        disttorch.zeros(2, 2).diagonal(0, 1, 1)
    with pytest.raises(RuntimeError, match=r"expected src to have a size equal to the slice of self\. src size = \[2\], "
                                           r"slice size = \[3\]"):
        disttorch.diagonal_scatter(disttorch.zeros(3, 3), disttorch.zeros(2))


@pytest.mark.parametrize("shape,k", [((3,), 0), ((3,), 1), ((2,), -2), ((3, 4), 0), ((3, 4), 2), ((3, 4), -1)])
def test_diag(shape, k):
    a = rand_array(shape)
    r = disttorch.diag(disttorch.tensor(a), k)
    assert_close(r, np.diag(a, k))
    check_grad(lambda t: disttorch.diag(t, k), a)
    with pytest.raises(RuntimeError, match="Supports 1D or 2D tensors. Got 3D"):
        disttorch.diag(disttorch.zeros(2, 2, 2))


@pytest.mark.parametrize("shape,offset,d1,d2", [((3,), 0, -2, -1), ((2, 3), 1, -2, -1), ((2, 3), -1, 0, 2),
                                                ((2, 3), 0, 2, 0)])
def test_diag_embed(shape, offset, d1, d2):
    a = rand_array(shape)
    r = disttorch.diag_embed(disttorch.tensor(a), offset, d1, d2)
    n = shape[-1] + abs(offset)
    assert r.shape[d1] == n and r.shape[d2] == n
    assert_close(r.diagonal(offset, d1, d2), a)
    assert float(np.abs(r.numpy()).sum()) == pytest.approx(float(np.abs(a).sum()))
    if shape == (2, 3) and (d1, d2) == (-2, -1):
        assert_close(r, np.stack([np.diag(row, offset) for row in a]))
    check_grad(lambda t: t.diag_embed(offset, d1, d2), a)
