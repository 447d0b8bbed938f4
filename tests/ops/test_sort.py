"""sort, argsort, topk, kthvalue, unique, searchsorted, bucketize against NumPy; value gradients."""
import numpy as np
import pytest

import disttorch
from helpers import assert_close, check_grad, rand_array

pytestmark = pytest.mark.filterwarnings("error")

T = disttorch.tensor

SHAPES_DIMS = [((6,), 0), ((6,), -1), ((3, 5), 1), ((3, 5), 0), ((2, 3, 4), 1), ((2, 0, 3), 1), ((4, 0), 0)]


def np_sort_desc(a, axis):
    """Stable descending order (equal elements keep input order), as PyTorch's stable sort."""
    idx = np.argsort(-a, axis=axis, kind="stable")
    return np.take_along_axis(a, idx, axis), idx


@pytest.mark.parametrize("shape,dim", SHAPES_DIMS)
@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.float32])
def test_sort_against_numpy(shape, dim, dtype):
    a = rand_array(shape, dtype=dtype, low=-3, high=3)  # integer inputs have ties
    values, indices = disttorch.sort(T(a), dim, stable=True)
    assert_close(values, np.sort(a, axis=dim, kind="stable"))
    assert_close(indices, np.argsort(a, axis=dim, kind="stable"))
    assert indices.dtype is disttorch.int64 and values.dtype is T(a).dtype
    res = T(a).sort(dim, descending=True, stable=True)
    assert isinstance(res, disttorch.return_types.sort)
    ev, ei = np_sort_desc(a, dim)
    assert_close(res.values, ev)
    assert_close(res.indices, ei)
    assert_close(disttorch.argsort(T(a), dim, descending=True, stable=True), ei)
    assert_close(T(a).argsort(dim, stable=True), np.argsort(a, axis=dim, kind="stable"))


@pytest.mark.parametrize("shape,dim", SHAPES_DIMS)
@pytest.mark.parametrize("descending", [False, True])
def test_unstable_sort_orders_values(shape, dim, descending):
    a = rand_array(shape, dtype=np.int64, low=-3, high=3)
    values, indices = disttorch.sort(T(a), dim, descending)
    expected = np.sort(a, axis=dim)
    assert_close(values, np.flip(expected, dim) if descending else expected)
    assert_close(T(np.take_along_axis(a, indices.numpy(), dim)), values.numpy())
    assert_close(disttorch.argsort(T(a), dim, descending), indices.numpy())


def test_sort_0d_bool_nan_and_bfloat16():
    v, i = disttorch.sort(T(3.0))
    assert v.shape == () and v.item() == 3.0 and i.item() == 0
    assert disttorch.argsort(T(3.0)).shape == ()
    b = T([True, False, True, False])
    assert disttorch.sort(b).values.tolist() == [False, False, True, True]
    assert disttorch.sort(b, descending=True, stable=True).indices.tolist() == [0, 2, 1, 3]
    n = T([2.0, float("nan"), 1.0, float("nan")])
    assert disttorch.sort(n, stable=True).indices.tolist() == [2, 0, 1, 3]  # NaN is the largest
    assert disttorch.sort(n, descending=True, stable=True).indices.tolist() == [1, 3, 0, 2]
    assert disttorch.sort(n, descending=True).indices.tolist()[2:] == [0, 2]
    bf = n.to(disttorch.bfloat16)
    assert disttorch.sort(bf, stable=True).indices.tolist() == [2, 0, 1, 3]
    assert disttorch.sort(bf).values.dtype is disttorch.bfloat16


def test_msort():
    a = rand_array((4, 3))
    assert_close(disttorch.msort(T(a)), np.sort(a, axis=0))
    assert_close(T(a).msort(), np.sort(a, axis=0))


@pytest.mark.parametrize("shape,dim,k", [((6,), 0, 3), ((3, 5), 1, 2), ((3, 5), 0, 3), ((2, 3, 4), -1, 4),
                                         ((3, 5), 1, 0), ((2, 200), 1, 5), ((200, 2), 0, 1)])
@pytest.mark.parametrize("largest", [True, False])
def test_topk_against_numpy(shape, dim, k, largest):
    a = rand_array(shape)  # distinct values: topk's order among ties is unspecified
    values, indices = disttorch.topk(T(a), k, dim, largest)
    ev, ei = np_sort_desc(a, dim) if largest else (np.sort(a, axis=dim), np.argsort(a, axis=dim, kind="stable"))
    ev, ei = np.take(ev, np.arange(k), axis=dim), np.take(ei, np.arange(k), axis=dim)
    assert_close(values, ev)
    assert_close(indices, ei)
    assert indices.dtype is disttorch.int64
    assert_close(T(a).topk(k, dim=dim, largest=largest, sorted=True).values, ev)


def test_topk_errors_and_0d():
    with pytest.raises(RuntimeError, match=r"^selected index k out of range \(k = 4.*size 3"):
        disttorch.topk(T([1.0, 2.0, 3.0]), 4)
    with pytest.raises(IndexError, match="Dimension out of range"):
        disttorch.topk(T([1.0, 2.0, 3.0]), 1, dim=1)
    v, i = disttorch.topk(T(2.5), 1)
    assert v.shape == () and v.item() == 2.5 and i.item() == 0
    r = disttorch.topk(T([1.0, 5.0, 3.0]), 2)
    assert isinstance(r, disttorch.return_types.topk) and r.values.tolist() == [5.0, 3.0]
    n = T([1.0, float("nan"), 3.0])
    assert disttorch.topk(n, 1).indices.tolist() == [1]


@pytest.mark.parametrize("shape,dim", [((6,), 0), ((3, 5), 1), ((3, 5), 0), ((2, 3, 4), -1)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_kthvalue(shape, dim, keepdim):
    a = rand_array(shape)
    n = a.shape[dim]
    for k in (1, n):
        values, indices = disttorch.kthvalue(T(a), k, dim, keepdim)
        ev = np.take(np.sort(a, axis=dim), [k - 1], axis=dim)
        ei = np.take(np.argsort(a, axis=dim, kind="stable"), [k - 1], axis=dim)
        assert_close(values, ev if keepdim else ev.squeeze(dim))
        assert_close(indices, ei if keepdim else ei.squeeze(dim))


def test_kthvalue_errors():
    with pytest.raises(RuntimeError, match=r"kthvalue\(\): selected number k out of range"):
        disttorch.kthvalue(T([1.0, 2.0]), 3)
    with pytest.raises(RuntimeError, match="out of range"):
        T([1.0, 2.0]).kthvalue(0)
    with pytest.raises(IndexError, match="non-zero size"):
        disttorch.kthvalue(disttorch.zeros(0), 1)
    assert isinstance(disttorch.kthvalue(T([3.0, 1.0]), 1), disttorch.return_types.kthvalue)
    assert disttorch.kthvalue(T(4.0), 1).values.item() == 4.0


@pytest.mark.parametrize("fn", [lambda x: disttorch.sort(x, 1).values, lambda x: x.sort(0, descending=True)[0],
                                lambda x: disttorch.topk(x, 2).values, lambda x: x.topk(2, 0, largest=False)[0],
                                lambda x: disttorch.kthvalue(x, 2, 1).values, lambda x: x.msort(),
                                lambda x: disttorch.kthvalue(x, 3, 0, keepdim=True).values])
def test_selection_grads(fn):
    a = np.random.default_rng(11).permutation(12).reshape(3, 4).astype(np.float64)
    check_grad(fn, a, gradgrad=True)


def test_sort_grad_scatters_back():
    x = disttorch.tensor([3.0, 1.0, 2.0], requires_grad=True)
    v, _ = x.sort()
    (v * T([1.0, 10.0, 100.0])).sum().backward()
    assert x.grad.tolist() == [100.0, 1.0, 10.0]
    check_grad(lambda x: disttorch.sort(x).values, np.array(1.5))
    check_grad(lambda x: disttorch.sort(x, 0).values, np.zeros((0, 2)))


@pytest.mark.parametrize("dtype", [np.int64, np.float64, np.bool_])
def test_unique_flat(dtype):
    a = rand_array((4, 5), dtype=dtype, low=0, high=4)
    ev, ei, ec = np.unique(a, return_inverse=True, return_counts=True)
    assert_close(disttorch.unique(T(a)), ev)
    out, inv, cnt = disttorch.unique(T(a), return_inverse=True, return_counts=True)
    assert_close(out, ev)
    assert_close(inv, ei.reshape(a.shape))
    assert_close(cnt, ec)
    assert inv.dtype is disttorch.int64 and cnt.dtype is disttorch.int64
    out, cnt = T(a).unique(return_counts=True)
    assert_close(cnt, ec)


def test_unique_dim_and_nan():
    a = np.array([[1, 2], [0, 5], [1, 2], [0, 5], [0, 1]])
    ev, ei, ec = np.unique(a, axis=0, return_inverse=True, return_counts=True)
    out, inv, cnt = disttorch.unique(T(a), dim=0, return_inverse=True, return_counts=True)
    assert_close(out, ev)
    assert_close(inv, ei.reshape(-1))
    assert_close(cnt, ec)
    assert_close(disttorch.unique(T(a.T), dim=1), ev.T)
    n = disttorch.unique(T([1.0, float("nan"), 1.0, float("nan")]))
    assert n.shape == (3,)  # NaNs are never equal, as in PyTorch
    assert disttorch.unique(disttorch.zeros(0)).shape == (0,)


def test_unique_consecutive():
    a = np.array([1, 1, 2, 2, 3, 1, 1, 2])
    out, inv, cnt = disttorch.unique_consecutive(T(a), return_inverse=True, return_counts=True)
    assert out.tolist() == [1, 2, 3, 1, 2]
    assert inv.tolist() == [0, 0, 1, 1, 2, 3, 3, 4]
    assert cnt.tolist() == [2, 2, 1, 2, 1]
    assert_close(T(a.reshape(2, 4)).unique_consecutive(), np.array([1, 2, 3, 1, 2]))
    m = np.array([[1, 1, 2, 2], [3, 3, 3, 4]])
    out, cnt = disttorch.unique_consecutive(T(m), return_counts=True, dim=1)
    assert out.tolist() == [[1, 2, 2], [3, 3, 4]] and cnt.tolist() == [2, 1, 1]
    assert disttorch.unique_consecutive(disttorch.zeros(0)).shape == (0,)


@pytest.mark.parametrize("right", [False, True])
def test_searchsorted_and_bucketize(right):
    seq = np.array([1.0, 3.0, 3.0, 5.0, 7.0])
    vals = np.array([[0.0, 3.0, 6.0], [7.0, 8.0, 3.0]])
    side = "right" if right else "left"
    res = disttorch.searchsorted(T(seq), T(vals), right=right)
    assert res.dtype is disttorch.int64
    assert_close(res, np.searchsorted(seq, vals, side=side))
    assert_close(disttorch.searchsorted(T(seq), T(vals), side=side), np.searchsorted(seq, vals, side=side))
    assert disttorch.searchsorted(T(seq), 3.0, right=right).item() == np.searchsorted(seq, 3.0, side=side)
    assert disttorch.searchsorted(T(seq), T(vals), out_int32=True).dtype is disttorch.int32
    o = disttorch.zeros(2, 3, dtype=disttorch.int64)
    assert disttorch.searchsorted(T(seq), T(vals), right=right, out=o) is o
    assert_close(o, np.searchsorted(seq, vals, side=side))
    b = disttorch.bucketize(T(vals), T(seq), right=right)
    assert_close(b, np.searchsorted(seq, vals, side=side))
    seq2 = np.sort(rand_array((2, 6)), axis=1)
    vals2 = rand_array((2, 3))
    expected = np.stack([np.searchsorted(seq2[i], vals2[i], side=side) for i in range(2)])
    assert_close(disttorch.searchsorted(T(seq2), T(vals2), right=right), expected)


def test_searchsorted_sorter_and_errors():
    seq = np.array([5.0, 1.0, 3.0])
    sorter = np.argsort(seq)
    assert_close(disttorch.searchsorted(T(seq), T([2.0, 4.0]), sorter=T(sorter)),
                 np.searchsorted(seq, [2.0, 4.0], sorter=sorter))
    with pytest.raises(RuntimeError, match="side and right can't be set to opposites"):
        disttorch.searchsorted(T(seq), T([1.0]), right=True, side="left")
    with pytest.raises(RuntimeError, match="boundaries tensor must be 1 dimension"):
        disttorch.bucketize(T([1.0]), T([[1.0, 2.0]]))
    with pytest.raises(RuntimeError, match="first N-1 dimensions"):
        disttorch.searchsorted(T([[1.0, 2.0]]), T([[1.0], [2.0]]))


def test_return_types_behave_like_pytorch_structseqs():
    import pickle

    R = disttorch.return_types
    v, i = T([1.0, 2.0]), T([0, 1])
    r = R.sort((v, i))
    assert isinstance(r, tuple) and len(r) == 2 and r[0] is v and r[-1] is i
    a, b = r
    assert a is v and b is i and r.values is v and r.indices is i
    assert R.topk(v, i) == r and R.kthvalue(values=v, indices=i).indices is i
    assert repr(r) == f"disttorch.return_types.sort(\nvalues={v!r},\nindices={i!r})"
    assert r._asdict() == {"values": v, "indices": i} and r.n_fields == 2
    back = pickle.loads(pickle.dumps(R.max((1, 2))))
    assert type(back) is R.max and tuple(back) == (1, 2)
    mm = R.aminmax((1, 2))
    assert mm.min == 1 and mm.max == 2
    with pytest.raises(TypeError, match="2-sequence"):
        R.max((1, 2, 3))


def test_bincount_matches_numpy():
    x = np.array([0, 3, 3, 1, 7])
    w = np.array([0.5, 1.0, 2.0, -1.0, 3.0])
    assert disttorch.bincount(disttorch.tensor(x)).tolist() == np.bincount(x).tolist()
    assert disttorch.tensor(x).bincount(minlength=10).tolist() == np.bincount(x, minlength=10).tolist()
    got = disttorch.bincount(disttorch.tensor(x), weights=disttorch.tensor(w))
    assert got.dtype is disttorch.float64
    np.testing.assert_allclose(got.numpy(), np.bincount(x, weights=w))
    with pytest.raises(RuntimeError, match="non-negative"):
        disttorch.bincount(disttorch.tensor([1, -1]))
    with pytest.raises(RuntimeError, match="1-d"):
        disttorch.bincount(disttorch.tensor([[1]]))
