"""gather/scatter/scatter_reduce, index_select/add/copy/fill/put, put, take, take_along_dim, *_scatter."""
import numpy as np
import pytest

import disttorch
from helpers import assert_close, check_grad, rand_array

_rng = np.random.default_rng(7)


def _idx(shape, n):
    return _rng.integers(0, n, size=shape).astype(np.int64)


def _along(idx, dim):
    """NumPy reference key pairing index entries with their other coordinates."""
    return tuple(idx if d == dim else np.arange(idx.shape[d]).reshape([-1 if i == d else 1 for i in range(idx.ndim)])
                 for d in range(idx.ndim))


# (input shape, index shape, dim)
CASES = [((5,), (7,), 0), ((3, 4), (2, 4), 0), ((3, 4), (3, 6), 1), ((3, 4), (2, 2), -1), ((2, 3, 4), (2, 2, 4), 1),
         ((2, 3), (0, 3), 0)]


@pytest.mark.parametrize("xshape,ishape,dim", CASES)
def test_gather(xshape, ishape, dim):
    a = rand_array(xshape)
    idx = _idx(ishape, xshape[dim])
    r = disttorch.gather(disttorch.tensor(a), dim, disttorch.tensor(idx))
    assert_close(r, a[_along(idx, dim % len(xshape))])
    assert_close(disttorch.tensor(a).gather(dim, disttorch.tensor(idx)), a[_along(idx, dim % len(xshape))])
    check_grad(lambda t: t.gather(dim, disttorch.tensor(idx)), a)


def test_gather_0d_and_double_backward():
    x = disttorch.tensor(2.5)
    assert disttorch.gather(x, 0, disttorch.tensor(0)).item() == 2.5
    idx = disttorch.tensor([[0, 0], [1, 0]])
    check_grad(lambda t: t.gather(1, idx) * t.gather(1, idx), rand_array((2, 2)), gradgrad=True)


def test_int32_index_gather_scatter():
    # PyTorch accepts int32 indices for gather/scatter as well as int64.
    a = rand_array((3, 4))
    idx = np.array([[2, 0, 1, 1]], dtype=np.int32)
    key = _along(idx.astype(np.int64), 0)
    assert_close(disttorch.tensor(a).gather(0, disttorch.tensor(idx)), a[key])
    exp = a.copy()
    np.add.at(exp, key, np.ones((1, 4)))
    got = disttorch.tensor(a).scatter_add(0, disttorch.tensor(idx), disttorch.ones(1, 4, dtype=disttorch.float64))
    assert_close(got, exp)


def test_gather_errors():
    x = disttorch.zeros(3, 4)
    with pytest.raises(RuntimeError, match=r"gather\(\): Expected dtype int32/int64 for index"):
        x.gather(0, disttorch.tensor([[0]], dtype=disttorch.int16))
    with pytest.raises(RuntimeError, match="index 5 is out of bounds for dimension 0 with size 3"):
        x.gather(0, disttorch.tensor([[5]]))
    with pytest.raises(RuntimeError, match="index -1 is out of bounds for dimension 1 with size 4"):
        x.gather(1, disttorch.tensor([[-1]]))
    with pytest.raises(RuntimeError, match=r"Size does not match at dimension 1 expected index \[1, 5\] to be no larger "
                                           r"than self \[3, 4\] apart from dimension 0"):
        x.gather(0, disttorch.zeros(1, 5, dtype=disttorch.int64))
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        x.gather(0, disttorch.zeros(2, dtype=disttorch.int64))


def _unique_idx(ishape, n, dim):
    """Indices without repeats along ``dim`` (scatter's result is then deterministic)."""
    idx = np.empty(ishape, dtype=np.int64)
    for pos in np.ndindex(*(s for i, s in enumerate(ishape) if i != dim)):
        perm = _rng.permutation(n)[:ishape[dim]]
        full = list(pos)
        full.insert(dim, slice(None))
        idx[tuple(full)] = perm
    return idx


SCATTER_CASES = [((5,), (3,), 0), ((3, 4), (2, 4), 0), ((3, 4), (3, 2), 1), ((2, 3, 4), (2, 2, 3), 1)]


@pytest.mark.parametrize("xshape,ishape,dim", SCATTER_CASES)
def test_scatter_src_value_add(xshape, ishape, dim):
    a, src = rand_array(xshape), rand_array(tuple(s + 1 for s in ishape))
    idx = _unique_idx(ishape, xshape[dim], dim)
    key = _along(idx, dim)
    part = src[tuple(slice(0, s) for s in ishape)]
    exp = a.copy()
    exp[key] = part
    x, it, st = disttorch.tensor(a), disttorch.tensor(idx), disttorch.tensor(src)
    assert_close(disttorch.scatter(x, dim, it, st), exp)
    exp_v = a.copy()
    exp_v[key] = 2.5
    assert_close(x.scatter(dim, it, 2.5), exp_v)
    assert_close(x.scatter(dim, it, value=2.5), exp_v)
    rep = _idx(ishape, xshape[dim])
    exp_add = a.copy()
    np.add.at(exp_add, _along(rep, dim), part)
    assert_close(disttorch.scatter_add(x, dim, disttorch.tensor(rep), st), exp_add)
    assert_close(x.scatter(dim, disttorch.tensor(rep), st, reduce="add"), exp_add)
    exp_mul = a.copy()
    np.multiply.at(exp_mul, _along(rep, dim), part)
    assert_close(x.scatter(dim, disttorch.tensor(rep), st, reduce="multiply"), exp_mul)
    check_grad(lambda t, s: t.scatter(dim, it, s), a, src)
    check_grad(lambda t, s: t.scatter_add(dim, disttorch.tensor(rep), s), a, src)
    y = disttorch.tensor(a)
    assert y.scatter_(dim, it, st) is y and y._version == 1
    assert_close(y, exp)
    y = disttorch.tensor(a)
    y.scatter_add_(dim, disttorch.tensor(rep), st)
    assert_close(y, exp_add)


def _ref_scatter_reduce(a, dim, idx, src, reduce, include_self):
    out = a.copy()
    buckets = {}
    for pos in np.ndindex(*idx.shape):
        tgt = list(pos)
        tgt[dim] = idx[pos]
        buckets.setdefault(tuple(tgt), []).append(src[pos])
    for tgt, vals in buckets.items():
        vals = ([a[tgt]] if include_self else []) + vals
        out[tgt] = {"sum": np.sum, "prod": np.prod, "mean": np.mean, "amax": np.max, "amin": np.min}[reduce](vals)
    return out


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("xshape,ishape,dim", [((4,), (6,), 0), ((3, 2), (2, 2), 1)])
def test_scatter_reduce(reduce, include_self, xshape, ishape, dim):
    a, src = rand_array(xshape), rand_array(ishape)
    idx = _idx(ishape, xshape[dim])
    exp = _ref_scatter_reduce(a, dim, idx, src, reduce, include_self)
    it = disttorch.tensor(idx)
    r = disttorch.scatter_reduce(disttorch.tensor(a), dim, it, disttorch.tensor(src), reduce, include_self=include_self)
    assert_close(r, exp)
    check_grad(lambda t, s: t.scatter_reduce(dim, it, s, reduce, include_self=include_self), a, src)
    y = disttorch.tensor(a)
    y.scatter_reduce_(dim, it, disttorch.tensor(src), reduce, include_self=include_self)
    assert_close(y, exp)


def test_scatter_reduce_prod_with_zeros_and_ties():
    idx = disttorch.tensor([0, 0, 1, 1, 1])
    src = np.array([0.0, 2.0, 0.0, 0.0, 3.0])
    check_grad(lambda t, s: t.scatter_reduce(0, idx, s, "prod"), np.array([1.5, 2.0]), src)
    check_grad(lambda t, s: t.scatter_reduce(0, idx, s, "prod"), np.array([0.0, 2.0]), np.array([1.0, 2.0, 3, 4, 5]))
    x = disttorch.tensor([1.0, 1.0], dtype=disttorch.float64, requires_grad=True)
    s = disttorch.tensor([1.0, 0.5, 1.0, 1.0, 1.0], dtype=disttorch.float64, requires_grad=True)
    x.scatter_reduce(0, idx, s, "amax").sum().backward()
    assert_close(x.grad, np.array([0.5, 0.25]))  # ties share the gradient
    assert_close(s.grad, np.array([0.5, 0.0, 0.25, 0.25, 0.25]))


def test_scatter_reduce_int_mean_and_errors():
    x = disttorch.tensor([10, 20])
    r = x.scatter_reduce(0, disttorch.tensor([0, 0, 1]), disttorch.tensor([1, 2, 5]), "mean")
    assert r.tolist() == [4, 12] and r.dtype is disttorch.int64
    with pytest.raises(RuntimeError, match="reduce argument must be either sum, prod, mean, amax or amin"):
        x.scatter_reduce(0, disttorch.tensor([0]), disttorch.tensor([1]), "multiply")
    with pytest.raises(RuntimeError, match=r"scatter\(\): Expected dtype int32/int64 for index"):
        disttorch.zeros(3).scatter(0, disttorch.tensor([0], dtype=disttorch.int16), disttorch.ones(1))
    with pytest.raises(RuntimeError, match=r"Expected index \[4\] to be no larger than self \[3\] apart from dimension "
                                           r"0 and to be no larger size than src \[2\]"):
        disttorch.zeros(3).scatter(0, disttorch.zeros(4, dtype=disttorch.int64), disttorch.ones(2))
    with pytest.raises(RuntimeError, match="Expected self.dtype to be equal to src.dtype"):
        disttorch.zeros(3).scatter(0, disttorch.tensor([0]), disttorch.ones(1, dtype=disttorch.float64))
    with pytest.raises(RuntimeError, match="index 3 is out of bounds for dimension 0 with size 3"):
        disttorch.zeros(3).scatter_add(0, disttorch.tensor([3]), disttorch.ones(1))
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        disttorch.zeros(3, requires_grad=True).scatter_(0, disttorch.tensor([0]), disttorch.ones(1))


# ---- index_* ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,dim", [((5,), 0), ((3, 4), 1), ((2, 3, 4), -2), ((0, 3), 1)])
@pytest.mark.parametrize("itype", [disttorch.int64, disttorch.int32])
def test_index_select_add_copy_fill(shape, dim, itype):
    a = rand_array(shape)
    n = shape[dim]
    d = dim % len(shape)
    idx = _rng.integers(0, max(n, 1), size=4 if n else 0)
    it = disttorch.tensor(idx, dtype=itype)
    x = disttorch.tensor(a)
    assert_close(disttorch.index_select(x, dim, it), np.take(a, idx, axis=d))
    src_shape = list(shape)
    src_shape[d] = len(idx)
    src = rand_array(tuple(src_shape))
    key = (slice(None),) * d + (idx,)
    exp = a.copy()
    np.add.at(exp, key, 2.0 * src)
    assert_close(x.index_add(dim, it, disttorch.tensor(src), alpha=2.0), exp)
    uniq = np.unique(idx)
    src_u = np.take(src, np.arange(len(uniq)), axis=d)
    exp_c = a.copy()
    exp_c[(slice(None),) * d + (uniq,)] = src_u
    assert_close(x.index_copy(dim, disttorch.tensor(uniq), disttorch.tensor(src_u)), exp_c)
    exp_f = a.copy()
    exp_f[key] = -3.0
    assert_close(x.index_fill(dim, it, -3.0), exp_f)
    if a.size:
        check_grad(lambda t: t.index_select(dim, it), a)
        check_grad(lambda t, s: t.index_add(dim, it, s, alpha=2.0), a, src)
        check_grad(lambda t, s: t.index_copy(dim, disttorch.tensor(uniq), s), a, src_u)
        check_grad(lambda t, v: t.index_fill(dim, it, v), a, rand_array(()))
    y = disttorch.tensor(a)
    y.index_add_(dim, it, disttorch.tensor(src), alpha=2.0)
    assert_close(y, exp)
    y = disttorch.tensor(a)
    y.index_fill_(dim, it, -3.0)
    assert_close(y, exp_f)
    y = disttorch.tensor(a)
    y.index_copy_(dim, disttorch.tensor(uniq), disttorch.tensor(src_u))
    assert_close(y, exp_c)


def test_index_errors():
    x = disttorch.zeros(3, 4)
    with pytest.raises(RuntimeError, match=r"index_select\(\): Expected dtype int32 or int64 for index"):
        x.index_select(0, disttorch.tensor([0.0]))
    with pytest.raises(IndexError, match="index out of range in self"):
        x.index_select(0, disttorch.tensor([3]))
    with pytest.raises(RuntimeError, match=r"index_add_\(\): Number of indices \(2\) should be equal to "
                                           r"source.size\(dim\): \(1\), for dim: 0"):
        x.index_add(0, disttorch.tensor([0, 1]), disttorch.ones(1, 4))
    with pytest.raises(RuntimeError, match=r"source tensor shape must match self tensor shape, excluding the specified "
                                           r"dimension. Got self.shape = \[3, 4\] source.shape = \[1, 3\]"):
        x.index_add(0, disttorch.tensor([0]), disttorch.ones(1, 3))
    with pytest.raises(RuntimeError, match=r"index_copy_\(\): Number of indices \(2\) should be equal to "
                                           r"source.size\(dim\) \(1\)"):
        x.index_copy(0, disttorch.tensor([0, 1]), disttorch.ones(1, 4))
    with pytest.raises(RuntimeError, match=r"index_copy_\(\): Source/destination tensor must have same slice shapes. "
                                           r"Destination slice shape: 4 at dimension 0 and source slice shape: 3 at "
                                           r"dimension 0."):
        x.index_copy(0, disttorch.tensor([0]), disttorch.ones(1, 3))
    with pytest.raises(RuntimeError, match=r"index_copy_\(\): When source and destination are not scalars, their "
                                           r"dimensionality must match. Source dimensionality \(1\), destination "
                                           r"dimensionality \(2\)"):
        x.index_copy(0, disttorch.tensor([0]), disttorch.ones(4))
    with pytest.raises(IndexError, match=r"index_copy_\(\): index 3 is out of bounds for dimension 0 with size 3"):
        x.index_copy(0, disttorch.tensor([3]), disttorch.ones(1, 4))


def test_index_put_and_put():
    a = rand_array((3, 4))
    rows, cols = np.array([0, 2, 0]), np.array([1, 3, 1])
    vals = rand_array((3,))
    x = disttorch.tensor(a)
    exp = a.copy()
    np.add.at(exp, (rows, cols), vals)
    r = disttorch.index_put(x, (disttorch.tensor(rows), disttorch.tensor(cols)), disttorch.tensor(vals), accumulate=True)
    assert_close(r, exp)
    exp2 = a.copy()
    exp2[[1, 2]] = 7.0
    assert_close(x.index_put((disttorch.tensor([1, 2]),), disttorch.tensor(7.0, dtype=disttorch.float64)), exp2)
    check_grad(lambda t, v: t.index_put((disttorch.tensor(rows), disttorch.tensor(cols)), v, True), a, vals)
    x.index_put_((disttorch.tensor(rows), disttorch.tensor(cols)), disttorch.tensor(vals), accumulate=True)
    assert_close(x, exp)
    flat = np.array([0, 11, -1])
    y = disttorch.tensor(a)
    exp3 = a.copy().reshape(-1)
    exp3[flat] = [1.0, 2.0, 3.0]
    assert_close(y.put(disttorch.tensor(flat), disttorch.tensor([1.0, 2.0, 3.0], dtype=disttorch.float64)),
                 exp3.reshape(3, 4))
    y.put_(disttorch.tensor(flat), disttorch.tensor([1.0, 2.0, 3.0], dtype=disttorch.float64))
    assert_close(y, exp3.reshape(3, 4))
    check_grad(lambda t, s: t.put(disttorch.tensor([0, 5]), s), a, rand_array((2,)))


@pytest.mark.parametrize("shape,ishape", [((5,), (3,)), ((2, 3), (2, 2)), ((2, 3), ()), ((3,), (0,))])
def test_take(shape, ishape):
    a = rand_array(shape)
    n = int(np.prod(shape))
    idx = _rng.integers(-n, n, size=ishape)
    assert_close(disttorch.take(disttorch.tensor(a), disttorch.tensor(idx)), np.take(a, idx))
    check_grad(lambda t: t.take(disttorch.tensor(idx)), a)
    with pytest.raises(IndexError, match=f"out of range: tried to access index {n} on a tensor of {n} elements"):
        disttorch.take(disttorch.tensor(a), disttorch.tensor([n]))


@pytest.mark.parametrize("xshape,ishape,dim", [((3, 4), (3, 2), 1), ((3, 4), (1, 4), 0), ((3, 1), (3, 5), 1),
                                               ((2, 3), (4,), None)])
def test_take_along_dim(xshape, ishape, dim):
    a = rand_array(xshape)
    n = int(np.prod(xshape)) if dim is None else xshape[dim]
    idx = _idx(ishape, n)
    exp = np.take_along_axis(a.reshape(-1) if dim is None else a, idx, axis=0 if dim is None else dim)
    assert_close(disttorch.take_along_dim(disttorch.tensor(a), disttorch.tensor(idx), dim), exp)
    check_grad(lambda t: t.take_along_dim(disttorch.tensor(idx), dim), a)


def test_select_and_slice_scatter():
    a, s = rand_array((3, 4)), rand_array((3,))
    exp = a.copy()
    exp[:, 2] = s
    assert_close(disttorch.select_scatter(disttorch.tensor(a), disttorch.tensor(s), 1, 2), exp)
    s2 = rand_array((2, 4))
    exp2 = a.copy()
    exp2[0:3:2] = s2
    assert_close(disttorch.slice_scatter(disttorch.tensor(a), disttorch.tensor(s2), 0, 0, 3, 2), exp2)
    check_grad(lambda t, u: disttorch.select_scatter(t, u, 1, 2), a, s)
    check_grad(lambda t, u: disttorch.slice_scatter(t, u, 0, 0, 3, 2), a, s2)


def test_scatter_reduce_accepts_max_and_min_forward_only():
    # PyTorch takes "max"/"min" as "amax"/"amin" in the forward; its backward rejects them by name.
    x, src, idx = rand_array((4,)), rand_array((6,)), np.array([0, 1, 0, 3, 3, 1])
    for alias, fn in (("max", np.maximum), ("min", np.minimum)):
        for include_self in (True, False):
            ref = x.copy()
            if not include_self:
                ref[np.unique(idx)] = -np.inf if alias == "max" else np.inf
            fn.at(ref, idx, src)
            out = disttorch.tensor(x).scatter_reduce(0, disttorch.tensor(idx), disttorch.tensor(src), alias,
                                                     include_self=include_self)
            assert_close(out, ref)
        y = disttorch.tensor(x).scatter_reduce_(0, disttorch.tensor(idx), disttorch.tensor(src), reduce=alias)
        assert_close(y, disttorch.tensor(x).scatter_reduce(0, disttorch.tensor(idx), disttorch.tensor(src), "a" + alias))
        t = disttorch.tensor(x, requires_grad=True)
        r = t.scatter_reduce(0, disttorch.tensor(idx), disttorch.tensor(src), alias)
        with pytest.raises(RuntimeError, match=f"Expected 'reduce' to be one of 'sum', 'prod', 'mean', 'amax', "
                                               f"'amin' but got {alias}."):
            r.sum().backward()
    with pytest.raises(RuntimeError, match="reduce argument must be either sum, prod, mean, amax or amin, got add"):
        disttorch.zeros(3).scatter_reduce(0, disttorch.tensor([0]), disttorch.ones(1), "add")
