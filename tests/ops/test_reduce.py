"""Reductions against NumPy references, float64 gradchecks, PyTorch's empty/0-d/error behaviour."""
import math

import numpy as np
import pytest

import disttorch
import disttorch.linalg
from helpers import assert_close, check_grad, rand_array

# PyTorch returns IEEE results silently: no NumPy RuntimeWarning may escape an op.
pytestmark = pytest.mark.filterwarnings("error")

T = disttorch.tensor

# (shape, dim) pairs: None, ints (incl. negative), tuples; 0-d accepts 0 and -1.
DIM_CASES = [((), None), ((), 0), ((), -1), ((5,), 0), ((2, 3), None), ((2, 3), 1), ((2, 3), -2),
             ((2, 3, 4), (0, 2)), ((2, 3, 4), [-1, 1]), ((2, 0, 3), 1), ((2, 0, 3), 2), ((0,), None)]


def _np_dims(shape, dim):
    if dim is None:
        return None
    if isinstance(dim, int):
        dim = (dim,)
    return tuple(d % max(len(shape), 1) for d in dim) if shape else None


@pytest.mark.parametrize("shape,dim", DIM_CASES)
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_mean_forward(shape, dim, keepdim):
    a = rand_array(shape)
    ax = _np_dims(shape, dim)
    assert_close(disttorch.sum(T(a), dim, keepdim), np.sum(a, axis=ax, keepdims=keepdim))
    assert_close(T(a).mean(dim, keepdim), np.mean(a, axis=ax, keepdims=keepdim) if a.size else
                 np.full(np.sum(a, axis=ax, keepdims=keepdim).shape, np.nan))


@pytest.mark.parametrize("shape,dim", [((2, 3), 1), ((2, 3, 4), (0, 2)), ((), None), ((4,), 0)])
def test_nansum_nanmean_prod_forward(shape, dim):
    a = rand_array(shape)
    if a.size > 2:
        a.reshape(-1)[1] = np.nan
    ax = _np_dims(shape, dim)
    assert_close(disttorch.nansum(T(a), dim), np.nansum(a, axis=ax))
    assert_close(disttorch.nanmean(T(a), dim), np.nanmean(a, axis=ax))
    b = rand_array(shape)
    pdim = dim if not isinstance(dim, tuple) else None
    assert_close(disttorch.prod(T(b), pdim), np.prod(b, axis=_np_dims(shape, pdim)))


@pytest.mark.parametrize("dtype", [disttorch.bool, disttorch.uint8, disttorch.int32, disttorch.int64])
def test_sum_prod_of_int_and_bool_are_int64(dtype):
    a = rand_array((3, 4), dtype=dtype.np, low=0, high=3)
    assert disttorch.sum(T(a)).dtype is disttorch.int64
    assert disttorch.prod(T(a), 1).dtype is disttorch.int64
    assert disttorch.cumsum(T(a), 0).dtype is disttorch.int64
    assert_close(T(a).sum(0), a.astype(np.int64).sum(0))
    assert T(a).sum(dtype=disttorch.float64).dtype is disttorch.float64
    assert disttorch.nansum(T(a)).dtype is disttorch.int64


def test_empty_reductions():
    e = disttorch.zeros(0, 3)
    assert disttorch.sum(e).item() == 0
    assert math.isnan(disttorch.mean(e).item())
    assert disttorch.prod(e).item() == 1
    assert_close(e.sum(0), np.zeros(3))
    assert_close(e.amax(1), np.zeros((0,)))
    assert disttorch.all(e).item() is True and disttorch.any(e).item() is False
    assert disttorch.count_nonzero(e).item() == 0
    assert math.isnan(e.var().item())
    assert math.isnan(disttorch.median(e).item())
    assert disttorch.norm(e).item() == 0


@pytest.mark.parametrize("fn,err,match", [
    (lambda e: disttorch.max(e), RuntimeError, r"max\(\): Expected reduction dim to be specified"),
    (lambda e: disttorch.min(e), RuntimeError, r"min\(\): Expected reduction dim to be specified"),
    (lambda e: disttorch.amax(e), RuntimeError, r"amax\(\): Expected reduction dim"),
    (lambda e: disttorch.argmax(e), IndexError, r"argmax\(\): Expected reduction dim to be specified"),
    (lambda e: disttorch.max(e, 0), IndexError, r"max\(\): Expected reduction dim 0 to have non-zero size"),
    (lambda e: disttorch.amin(e, 0), IndexError, r"amin\(\): Expected reduction dim 0"),
    (lambda e: disttorch.argmin(e, 0), IndexError, r"argmin\(\)"),
    (lambda e: disttorch.median(e, 0), IndexError, r"median\(\)"),
    (lambda e: disttorch.aminmax(e), RuntimeError, r"aminmax\(\)"),
    (lambda e: disttorch.linalg.vector_norm(e, float("inf")), RuntimeError, r"inf norm on an empty tensor"),
])
def test_empty_max_family_raises(fn, err, match):
    with pytest.raises(err, match=match):
        fn(disttorch.zeros(0, 3))


@pytest.mark.parametrize("fn", [lambda x: x.sum(2), lambda x: x.mean(-3), lambda x: x.amax((0, 5)),
                                lambda x: x.max(2), lambda x: x.argmax(2), lambda x: x.var(3),
                                lambda x: x.norm(dim=2), lambda x: x.all(2), lambda x: x.median(4),
                                lambda x: x.prod(2), lambda x: x.std(-3)])
def test_dim_out_of_range(fn):
    with pytest.raises(IndexError, match="Dimension out of range"):
        fn(disttorch.ones(2, 3))


def test_mean_of_int_raises_and_dtype_argument():
    x = T([1, 2, 4])
    with pytest.raises(RuntimeError, match=r"mean\(\): could not infer output dtype.*Long"):
        x.mean()
    with pytest.raises(RuntimeError, match="nanmean"):
        disttorch.nanmean(x)
    assert_close(x.mean(dtype=disttorch.float64), np.float64(7 / 3))
    assert x.mean(dtype=disttorch.float64).dtype is disttorch.float64


@pytest.mark.parametrize("dtype", [disttorch.float16, disttorch.bfloat16])
def test_low_precision_accumulates_in_float32(dtype):
    a = np.full(4096, 0.1, dtype=np.float32)
    x = T(a).to(dtype)
    assert x.sum().dtype is dtype
    assert abs(x.sum().item() - 409.6) < 2.0
    assert abs(x.mean().item() - 0.1) < 1e-3
    assert abs(x.var().item()) < 1e-3


@pytest.mark.parametrize("fn", [
    lambda x: x.sum(), lambda x: x.sum((0, 2), keepdim=True), lambda x: x.mean(-1),
    lambda x: disttorch.nansum(x, 1), lambda x: disttorch.nanmean(x, (0, 1)),
    lambda x: x.prod(), lambda x: x.prod(1), lambda x: x.prod(-1, keepdim=True),
])
def test_sum_mean_prod_grad(fn):
    check_grad(fn, rand_array((2, 3, 2)), gradgrad=True)


@pytest.mark.parametrize("values", [[2., 0., 3., 4.], [0., 5., 0., 2.], [0., 0., 0., 1.5], [1.5, -2., 0.5, 3.]])
def test_prod_grad_with_zeros(values):
    a = np.array(values).reshape(2, 2)
    check_grad(lambda x: x.prod(), a, gradgrad=True)
    check_grad(lambda x: x.prod(1), a, gradgrad=True)
    x = disttorch.tensor(np.array(values), requires_grad=True)
    x.prod().backward()
    expected = [np.prod(np.delete(np.array(values), i)) for i in range(4)]
    assert_close(x.grad, np.array(expected))


def test_ieee_results_without_warnings():
    inf, nan = math.inf, math.nan
    assert math.isnan(T([inf, -inf]).sum().item()) and math.isnan(T([inf, -inf]).mean().item())
    assert T([3e38, 3e38], dtype=disttorch.float32).sum().item() == inf
    assert T([6e4, 6e4]).to(disttorch.float16).sum().item() == inf
    assert T([1e30, 1e30], dtype=disttorch.float32).prod().item() == inf
    assert math.isnan(T([1.0, nan]).max().item()) and math.isnan(T([nan, 1.0]).amin(0).item())
    assert math.isnan(T([inf, 1.0]).var().item()) and math.isnan(T([inf, 1.0]).std().item())
    assert math.isnan(disttorch.nanmean(T([nan, nan])).item())
    assert disttorch.nansum(T([nan, 1.0])).item() == 1.0


def test_grad_on_0d_and_empty():
    check_grad(lambda x: x.sum(0), np.array(2.0))
    check_grad(lambda x: x.prod(-1), np.array(0.0))
    check_grad(lambda x: x.amax(0), np.array(2.0))
    check_grad(lambda x: x.max(0).values, np.array(2.0))
    check_grad(lambda x: x.median(-1, keepdim=True).values, np.array(2.0))
    check_grad(lambda x: x.std(0, correction=0), np.array(2.0))
    check_grad(lambda x: x.sum(0), np.zeros((0, 3)))
    check_grad(lambda x: x.mean(1), np.zeros((0, 3)))


# ---- max / min -----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,dim", [((5,), 0), ((3, 4), 1), ((3, 4), -2), ((2, 3, 4), 1), ((), 0), ((), -1)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_with_dim(shape, dim, keepdim):
    a = rand_array(shape, dtype=np.int64, low=-3, high=3)  # ties: indices must be the first occurrence
    for fn, npv, npi in ((disttorch.max, np.max, np.argmax), (disttorch.min, np.min, np.argmin)):
        res = fn(T(a), dim, keepdim)
        assert isinstance(res, disttorch.return_types.max if fn is disttorch.max else disttorch.return_types.min)
        values, indices = res
        ax = dim % max(len(shape), 1) if shape else None
        assert_close(values, npv(a, axis=ax, keepdims=keepdim and bool(shape)))
        assert_close(indices, npi(a, axis=ax, keepdims=keepdim and bool(shape)))
        assert res.values is values and res[1] is indices and indices.dtype is disttorch.int64


def test_max_full_and_bool_and_nan():
    a = rand_array((3, 4))
    assert disttorch.max(T(a)).shape == () and disttorch.max(T(a)).item() == a.max()
    assert disttorch.min(T(a)).item() == a.min()
    b = T([[True, False], [False, False]])
    assert disttorch.max(b).dtype is disttorch.bool and disttorch.max(b).item() is True
    n = T([1.0, float("nan"), 3.0])
    assert math.isnan(n.max().item()) and math.isnan(n.amin().item())
    assert n.max(0).indices.item() == 1 and n.argmin().item() == 1


def test_max_with_tensor_second_argument_delegates_to_maximum(monkeypatch):
    from disttorch.ops import pointwise

    calls = []
    monkeypatch.setattr(pointwise, "maximum", lambda a, b: calls.append(("max", a, b)) or "M", raising=False)
    monkeypatch.setattr(pointwise, "minimum", lambda a, b: calls.append(("min", a, b)) or "m", raising=False)
    a, b = T([1.0, 5.0]), T([3.0, 2.0])
    assert disttorch.max(a, b) == "M" and a.min(b) == "m" and disttorch.max(a, other=b) == "M"
    assert [c[0] for c in calls] == ["max", "min", "max"] and calls[0][2] is b


def test_max_repr_is_pytorch_like():
    r = disttorch.max(T([[1, 3], [4, 2]]), 1)
    assert repr(r).startswith("disttorch.return_types.max(\nvalues=")
    assert "\nindices=" in repr(r)
    v, i = r
    assert i.tolist() == [1, 0] and v.tolist() == [3, 4]


@pytest.mark.parametrize("shape,dim", [((3, 4), None), ((3, 4), 1), ((2, 3, 4), (0, 2)), ((2, 3, 4), -1), ((), 0)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_amax_amin_forward(shape, dim, keepdim):
    a = rand_array(shape)
    ax = _np_dims(shape, dim)
    kw = {} if dim is None else {"dim": dim}
    assert_close(disttorch.amax(T(a), keepdim=keepdim, **kw), np.amax(a, axis=ax, keepdims=keepdim))
    assert_close(disttorch.amin(T(a), keepdim=keepdim, **kw), np.amin(a, axis=ax, keepdims=keepdim))


@pytest.mark.parametrize("fn", [lambda x: x.max(), lambda x: x.min(), lambda x: x.max(1).values,
                                lambda x: x.min(0, keepdim=True)[0], lambda x: x.amax((0, 1)),
                                lambda x: x.amin(-1), lambda x: disttorch.aminmax(x, dim=1).max])
def test_max_min_grad_distinct(fn):
    a = np.random.default_rng(3).permutation(12).reshape(3, 4).astype(np.float64)
    check_grad(fn, a, gradgrad=True)


def test_tie_gradient_is_split_evenly():
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    for fn in (lambda x: x.amax(1), lambda x: x.amax(1, keepdim=True)):
        x = disttorch.tensor(a, requires_grad=True)
        fn(x).sum().backward()
        assert_close(x.grad, np.array([[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]]))
    x = disttorch.tensor(a, requires_grad=True)
    x.max().backward()  # full reduction: the two 3s share it
    assert_close(x.grad, np.array([[0, 0.5, 0.5], [0, 0, 0]]))
    x = disttorch.tensor(a, requires_grad=True)
    x.min().backward()
    assert_close(x.grad, np.array([[1, 0, 0], [0, 0, 0]]))
    x = disttorch.tensor(a, requires_grad=True)
    x.max(1).values.sum().backward()  # with a dim: all of it to the returned index
    assert_close(x.grad, np.array([[0, 1, 0], [1, 0, 0]]))


@pytest.mark.parametrize("shape,dim", [((3, 4), None), ((3, 4), 1), ((2, 3, 4), -1), ((), None), ((), 0)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_argmax_argmin(shape, dim, keepdim):
    a = rand_array(shape, dtype=np.int64, low=0, high=3)
    for fn, ref in ((disttorch.argmax, np.argmax), (disttorch.argmin, np.argmin)):
        res = fn(T(a), dim, keepdim)
        assert res.dtype is disttorch.int64
        if dim is None:
            expect = np.asarray(ref(a.reshape(-1))).reshape((1,) * a.ndim if keepdim else ())
        else:
            expect = ref(a, axis=dim % max(a.ndim, 1), keepdims=keepdim) if a.ndim else np.asarray(0)
        assert_close(res, expect)


def test_aminmax():
    a = rand_array((3, 4))
    r = disttorch.aminmax(T(a))
    assert isinstance(r, disttorch.return_types.aminmax)
    assert r.min.item() == a.min() and r.max.item() == a.max()
    mn, mx = T(a).aminmax(dim=0, keepdim=True)
    assert_close(mn, a.min(0, keepdims=True))
    assert_close(mx, a.max(0, keepdims=True))


# ---- var / std -----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,dim", [((5,), None), ((3, 4), 1), ((2, 3, 4), (0, 2)), ((3, 4), -2)])
@pytest.mark.parametrize("correction", [0, 1, 2])
@pytest.mark.parametrize("keepdim", [False, True])
def test_var_std_forward(shape, dim, correction, keepdim):
    a = rand_array(shape)
    ax = _np_dims(shape, dim)
    assert_close(disttorch.var(T(a), dim, correction=correction, keepdim=keepdim),
                 np.var(a, axis=ax, ddof=correction, keepdims=keepdim))
    assert_close(T(a).std(dim, correction=correction, keepdim=keepdim),
                 np.std(a, axis=ax, ddof=correction, keepdims=keepdim))


def test_var_unbiased_forms_and_mean_pairs():
    a = rand_array((3, 4))
    assert_close(T(a).var(1, unbiased=False), np.var(a, 1))
    assert_close(T(a).var(1, True), np.var(a, 1, ddof=1))
    assert_close(disttorch.var(T(a), False), np.var(a))
    assert_close(disttorch.std(T(a), unbiased=True), np.std(a, ddof=1))
    v, m = disttorch.var_mean(T(a), 0, keepdim=True)
    assert type(disttorch.var_mean(T(a))) is tuple
    assert_close(v, np.var(a, 0, ddof=1, keepdims=True))
    assert_close(m, a.mean(0, keepdims=True))
    s, m = disttorch.std_mean(T(a), correction=0)
    assert_close((s, m), (np.std(a), a.mean()))


def test_var_correction_at_least_n_is_inf_or_nan_silently():
    assert math.isinf(T([1.0, 2.0]).var(correction=2).item())
    assert math.isnan(T([1.0]).var().item())
    assert math.isnan(T([1.0]).std().item())
    with pytest.raises(RuntimeError, match="floating point"):
        T([1, 2]).var()


@pytest.mark.parametrize("fn", [lambda x: x.var(), lambda x: x.var(1, keepdim=True), lambda x: x.std(0),
                                lambda x: x.std((0, 1), correction=0), lambda x: disttorch.var_mean(x, 1),
                                lambda x: disttorch.std_mean(x, 0)])
def test_var_std_grad(fn):
    check_grad(fn, rand_array((3, 4)), gradgrad=True)


def test_std_grad_at_zero_is_zero():
    x = disttorch.ones(2, 3, dtype=disttorch.float64, requires_grad=True)
    x.std(1).sum().backward()
    assert_close(x.grad, np.zeros((2, 3)))


# ---- norms ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [2, 1, 3, 0.5, 0, math.inf, -math.inf, -1])
@pytest.mark.parametrize("shape,dim", [((6,), None), ((3, 4), 1), ((3, 4), (0, 1)), ((2, 3, 4), -1)])
def test_vector_norm_forward(p, shape, dim):
    a = rand_array(shape)
    ax = _np_dims(shape, dim)
    with np.errstate(divide="ignore"):
        if p == 0:
            expected = np.count_nonzero(a, axis=ax).astype(np.float64)
        elif math.isinf(p):
            expected = (np.max if p > 0 else np.min)(np.abs(a), axis=ax)
        else:
            expected = np.sum(np.abs(a) ** p, axis=ax) ** (1 / p)
    assert_close(disttorch.linalg.vector_norm(T(a), p, dim), expected)
    assert_close(disttorch.norm(T(a), p, dim), expected)
    if a.ndim == 1:
        assert_close(disttorch.norm(T(a), p), np.linalg.norm(a, p))


def test_norm_variants_against_numpy():
    a = rand_array((3, 4))
    assert_close(T(a).norm(), np.linalg.norm(a))
    assert_close(disttorch.norm(T(a), "fro", (0, 1), keepdim=True), np.linalg.norm(a, keepdims=True))
    assert_close(disttorch.norm(T(a), "nuc"), np.linalg.norm(a, "nuc"))
    for ord in ("fro", "nuc", 1, -1, 2, -2, math.inf, -math.inf):
        assert_close(disttorch.linalg.matrix_norm(T(a), ord), np.linalg.norm(a, ord), rtol=1e-10)
        assert_close(disttorch.linalg.norm(T(a), ord), np.linalg.norm(a, ord), rtol=1e-10)
    b = rand_array((2, 3, 4))
    assert_close(disttorch.linalg.matrix_norm(T(b), 1, dim=(2, 0), keepdim=True),
                 np.linalg.norm(b.transpose(1, 2, 0), 1, axis=(1, 2))[None, :, None])
    assert_close(disttorch.linalg.norm(T(b)), np.linalg.norm(b.reshape(-1)))
    assert_close(disttorch.linalg.norm(T(b), 3, dim=1), np.linalg.norm(b, 3, axis=1))
    with pytest.raises(RuntimeError, match="1D or 2D"):
        disttorch.linalg.norm(T(b), 2)
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        disttorch.linalg.matrix_norm(T([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="floating point"):
        disttorch.norm(T([1, 2]))


@pytest.mark.parametrize("p", [2, 1, 3, 1.5, math.inf, -math.inf, 0])
def test_norm_grad(p):
    a = np.random.default_rng(5).permutation(12).reshape(3, 4).astype(np.float64) - 5.5
    check_grad(lambda x: disttorch.norm(x, p, 1), a, gradgrad=p not in (math.inf, -math.inf))
    check_grad(lambda x: disttorch.linalg.vector_norm(x, p), a)


@pytest.mark.parametrize("ord", ["fro", 1, math.inf, -1, "nuc", 2, -2])
def test_matrix_norm_grad(ord):
    check_grad(lambda x: disttorch.linalg.matrix_norm(x, ord), rand_array((3, 4)) * 3)


def test_norm_grad_at_zero_is_zero():
    for p in (2, 3, 1):
        x = disttorch.zeros(3, dtype=disttorch.float64, requires_grad=True)
        disttorch.norm(x, p).backward()
        assert_close(x.grad, np.zeros(3))
    x = T([0.0, 2.0, 0.0], dtype=disttorch.float64, requires_grad=True)
    disttorch.norm(x, 3).backward()
    assert_close(x.grad, np.array([0.0, 1.0, 0.0]))


# ---- logical / counting --------------------------------------------------------------------------
@pytest.mark.parametrize("shape,dim", [((3, 4), None), ((3, 4), 1), ((2, 3, 4), (0, 2)), ((), 0), ((0, 2), 0)])
@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.float64, np.int64])
def test_all_any_count_nonzero(shape, dim, dtype):
    a = rand_array(shape, dtype=dtype, low=0, high=2)
    ax = _np_dims(shape, dim)
    expect_dtype = disttorch.uint8 if dtype is np.uint8 else disttorch.bool
    for fn, ref in ((disttorch.all, np.all), (disttorch.any, np.any)):
        res = fn(T(a), dim) if dim is not None else fn(T(a))
        assert res.dtype is expect_dtype
        assert_close(res, ref(a, axis=ax).astype(expect_dtype.np))
        assert_close(fn(T(a), dim, keepdim=True) if dim is not None else fn(T(a)),
                     ref(a, axis=ax, keepdims=dim is not None).astype(expect_dtype.np))
    c = disttorch.count_nonzero(T(a), dim)
    assert c.dtype is disttorch.int64
    assert_close(c, np.count_nonzero(a, axis=ax))


# ---- median / mode -------------------------------------------------------------------------------
def test_median_is_lower_median():
    a = np.array([4.0, 1.0, 3.0, 2.0])
    assert disttorch.median(T(a)).item() == 2.0
    assert T([[5, 1], [3, 7]]).median().item() == 3
    assert math.isnan(T([1.0, float("nan"), 2.0]).median().item())
    assert disttorch.nanmedian(T([1.0, float("nan"), 2.0, 3.0])).item() == 2.0
    assert math.isnan(disttorch.nanmedian(T([float("nan")])).item())


@pytest.mark.parametrize("shape,dim", [((5,), 0), ((3, 4), 1), ((3, 4), 0), ((2, 3, 5), -1), ((), 0)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_median_with_dim(shape, dim, keepdim):
    a = rand_array(shape)
    res = disttorch.median(T(a), dim, keepdim)
    assert isinstance(res, disttorch.return_types.median)
    if not shape:
        assert res.values.item() == a and res.indices.item() == 0 and res.values.shape == ()
        return
    n = a.shape[dim]
    expect = np.take(np.sort(a, axis=dim), (n - 1) // 2, axis=dim)
    if keepdim:
        expect = np.expand_dims(expect, dim)
    assert_close(res.values, expect)
    picked = np.take_along_axis(a, res.indices.numpy() if keepdim else np.expand_dims(res.indices.numpy(), dim), dim)
    assert_close(picked if keepdim else picked.squeeze(dim), expect)


def test_median_nanmedian_with_nan_rows():
    a = T([[1.0, float("nan"), 0.0, float("nan")], [3.0, 1.0, 2.0, 4.0]])
    v, i = a.median(1)
    assert math.isnan(v.tolist()[0]) and v.tolist()[1] == 2.0 and i.tolist() == [1, 2]
    v, i = a.nanmedian(1)
    assert v.tolist() == [0.0, 2.0] and i.tolist() == [2, 2]


def test_median_mode_grad():
    a = np.random.default_rng(7).permutation(12).reshape(3, 4).astype(np.float64)
    check_grad(lambda x: x.median(), a, gradgrad=True)
    check_grad(lambda x: x.median(1).values, a, gradgrad=True)
    check_grad(lambda x: disttorch.nanmedian(x, 0, keepdim=True)[0], a)
    x = disttorch.tensor([[1.0, 2.0, 2.0], [3.0, 3.0, 1.0]], requires_grad=True)
    (x.mode(1).values * T([1.0, 10.0])).sum().backward()  # all of it to the returned (last) occurrence
    assert_close(x.grad, np.array([[0, 0, 1.0], [0, 10.0, 0]]))


def test_mode():
    a = np.array([[1, 2, 2, 3, 3, 0], [5, 5, 5, 1, 1, 1]])
    v, i = disttorch.mode(T(a))
    assert v.tolist() == [2, 1]  # ties: the smallest value
    assert [a[r, k] for r, k in enumerate(i.tolist())] == [2, 1]
    v, i = T(a).mode(0, keepdim=True)
    assert v.shape == (1, 6) and v.tolist() == [[1, 2, 2, 1, 1, 0]]
    assert disttorch.mode(T(3.0)).values.item() == 3.0


def test_broadcast_view_equals_numpy_broadcast_to_and_is_read_only():
    import ml_dtypes

    from disttorch.ops._reduce_base import _broadcast_view

    cases = [(np.array(2.0, np.float32), (3, 4)), (np.arange(3.0).reshape(3, 1), (3, 5)),
             (np.arange(4.0).reshape(1, 4), (2, 4)), (np.array(1, dtype=ml_dtypes.bfloat16), (2,)),
             (np.arange(6.0).reshape(2, 3)[:, :1], (2, 3)), (np.array(1.0), ()), (np.ones((1, 1)), (0, 3))]
    for arr, shape in cases:
        got, want = _broadcast_view(np, arr, shape), np.broadcast_to(arr, shape)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
        assert not got.flags.writeable, (arr.shape, shape)
