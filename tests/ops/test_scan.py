"""cumsum, cumprod, cummax/cummin, logcumsumexp, diff: NumPy references, dtypes, gradchecks."""
import numpy as np
import pytest

import disttorch
from helpers import assert_close, check_grad, rand_array

pytestmark = pytest.mark.filterwarnings("error")

T = disttorch.tensor

SHAPES_DIMS = [((5,), 0), ((5,), -1), ((3, 4), 1), ((3, 4), 0), ((2, 3, 4), -2), ((2, 0, 3), 1), ((0,), 0)]


@pytest.mark.parametrize("shape,dim", SHAPES_DIMS)
def test_cumsum_cumprod_forward(shape, dim):
    a = rand_array(shape)
    assert_close(disttorch.cumsum(T(a), dim), np.cumsum(a, axis=dim))
    assert_close(T(a).cumprod(dim), np.cumprod(a, axis=dim))


def test_cumsum_complex_is_differentiable():
    # As in PyTorch, a complex cumsum records a graph; d/dz of sum(Re(w * cumsum(z))) is the reversed cumsum of w.
    z = rand_array((2, 5)) + 1j * rand_array((2, 5))
    w = rand_array((2, 5))
    x = T(z, requires_grad=True)
    y = disttorch.cumsum(x, 1)
    assert y.grad_fn.name() == "CumsumBackward0"
    (y.real * T(w)).sum().backward()
    assert_close(x.grad, np.flip(np.cumsum(np.flip(w, 1), 1), 1).astype(np.complex128))


def test_0d_and_dtypes():
    assert disttorch.cumsum(T(2.0), 0).item() == 2.0 and disttorch.cumprod(T(2.0), -1).shape == ()
    for dt in (disttorch.bool, disttorch.uint8, disttorch.int32):
        x = T([1, 0, 1]).to(dt)
        assert disttorch.cumsum(x, 0).dtype is disttorch.int64
        assert disttorch.cumprod(x, 0).dtype is disttorch.int64
    assert disttorch.cumsum(T([True, True, False]), 0).tolist() == [1, 2, 2]
    x = T([1.0, 2.0], dtype=disttorch.float32)
    assert disttorch.cumsum(x, 0, dtype=disttorch.float64).dtype is disttorch.float64
    h = T(np.full(2048, 0.1, dtype=np.float32)).to(disttorch.bfloat16)
    c = disttorch.cumsum(h, 0)
    assert c.dtype is disttorch.bfloat16 and abs(c.float().numpy()[-1] - 204.8) < 2.0
    with pytest.raises(IndexError, match="Dimension out of range"):
        disttorch.cumsum(T([1.0]), 1)


def test_ieee_results_without_warnings():
    assert np.isnan(disttorch.cumsum(T([np.inf, -np.inf]), 0).numpy()[1])
    assert disttorch.cumprod(T([1e30, 1e30], dtype=disttorch.float32), 0).tolist()[1] == np.inf
    assert disttorch.cumsum(T([6e4, 6e4]).to(disttorch.float16), 0).tolist()[1] == np.inf


def test_inplace_variants_and_out():
    o = disttorch.zeros(3)
    assert disttorch.cumsum(T([1.0, 2.0, 3.0]), 0, out=o) is o and o.tolist() == [1.0, 3.0, 6.0]
    disttorch.cumprod(T([1.0, 2.0, 3.0]), 0, out=o)
    assert o.tolist() == [1.0, 2.0, 6.0]
    x = T([1.0, 2.0, 3.0])
    assert x.cumsum_(0) is x and x.tolist() == [1.0, 3.0, 6.0]
    x.cumprod_(0)
    assert x.tolist() == [1.0, 3.0, 18.0]


@pytest.mark.parametrize("fn", [lambda x: disttorch.cumsum(x, 1), lambda x: x.cumsum(0),
                                lambda x: disttorch.cumprod(x, 1), lambda x: x.cumprod(0),
                                lambda x: disttorch.cumsum(x, 1, dtype=disttorch.float64)])
def test_cumsum_cumprod_grad(fn):
    check_grad(fn, rand_array((3, 4)), gradgrad=True)
    check_grad(fn, np.zeros((0, 4)))


@pytest.mark.parametrize("row", [[2.0, 0.0, 3.0, 4.0], [0.0, 5.0, 0.5, 2.0], [1.5, 0.0, 0.0, 3.0],
                                 [1.5, 2.0, 3.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
def test_cumprod_grad_with_zeros(row):
    a = np.array([row, [1.5, -2.0, 0.5, 3.0]])
    check_grad(lambda x: disttorch.cumprod(x, 1), a)
    check_grad(lambda x: disttorch.cumprod(x, 0), a.T.copy())
    x = disttorch.tensor(np.array(row), requires_grad=True)
    g = np.array([1.0, -2.0, 3.0, 0.5])
    disttorch.cumprod(x, 0).backward(T(g))
    # Closed form: d/dx_i sum_k g_k prod_{j<=k} x_j = sum_{k>=i} g_k prod_{j<=k, j!=i} x_j.
    r = np.array(row)
    expected = [sum(g[k] * np.prod(np.delete(r[:k + 1], i)) for k in range(i, 4)) for i in range(4)]
    assert_close(x.grad, np.array(expected))


def test_cumprod_grad_of_a_zero_free_row_ignores_zeros_elsewhere():
    """A row's gradient does not depend on whether another row holds a zero: the formula for zeros must not
    multiply the inf of a zero-free row's unused products into its gradient (0 * inf = NaN)."""
    row = [np.inf, 1.0, 2.0]

    def grad(rows):
        x = disttorch.tensor(np.array(rows), requires_grad=True)
        disttorch.cumprod(x, 1).sum().backward()
        return x.grad.numpy()

    alone, beside_zero = grad([row]), grad([row, [3.0, 0.0, 2.0]])
    np.testing.assert_array_equal(beside_zero[0], alone[0])
    assert np.isinf(alone[0, 1:]).all()  # d/dx1 = x0 + x0 x2 = inf (x0's own entry is inf / inf, as in PyTorch)
    np.testing.assert_array_equal(beside_zero[1], [1 + 0.0 + 0.0, 3.0 + 3.0 * 2.0, 0.0])


def test_cumprod_grad_0d():
    check_grad(lambda x: disttorch.cumprod(x, 0), np.array(0.0))
    check_grad(lambda x: disttorch.cumsum(x, 0), np.array(3.0))


def _ref_cum_extreme(a, high):
    """PyTorch's rule, element by element: ties move the index; a NaN, once seen, stays."""
    vals, idx = np.empty_like(a), np.empty(a.shape, dtype=np.int64)
    for r in range(a.shape[0]):
        best, bi = a[r, 0], 0
        for j in range(a.shape[1]):
            x = a[r, j]
            if not np.isnan(best) and (np.isnan(x) or (x >= best if high else x <= best)):
                best, bi = x, j
            vals[r, j], idx[r, j] = best, bi
    return vals, idx


@pytest.mark.parametrize("high", [True, False])
def test_cummax_cummin(high):
    a = np.array([[1.0, 3.0, 3.0, 2.0, 5.0, 5.0], [2.0, np.nan, 4.0, np.nan, 1.0, 0.0],
                  [0.0, 0.0, 0.0, 1.0, -1.0, -1.0]])
    fn = disttorch.cummax if high else disttorch.cummin
    res = fn(T(a), 1)
    assert isinstance(res, disttorch.return_types.cummax if high else disttorch.return_types.cummin)
    ev, ei = _ref_cum_extreme(a, high)
    assert_close(res.values, ev)
    assert_close(res.indices, ei)
    ints = rand_array((3, 7), dtype=np.int64, low=0, high=3)
    v, i = (T(ints).cummax if high else T(ints).cummin)(1)
    ev, ei = _ref_cum_extreme(ints.astype(np.float64), high)
    assert_close(v, ev.astype(np.int64))
    assert_close(i, ei)
    v, i = fn(T(a.T), 0)
    assert_close(i, _ref_cum_extreme(a, high)[1].T)
    assert fn(T(2.0), 0).indices.item() == 0


def test_cummax_grad_accumulates_on_repeated_indices():
    x = disttorch.tensor([1.0, 3.0, 2.0, 2.5], requires_grad=True)
    disttorch.cummax(x, 0).values.sum().backward()
    assert x.grad.tolist() == [1.0, 3.0, 0.0, 0.0]
    a = np.random.default_rng(2).permutation(12).reshape(3, 4).astype(np.float64)
    check_grad(lambda x: disttorch.cummax(x, 1).values, a, gradgrad=True)
    check_grad(lambda x: disttorch.cummin(x, 0).values, a, gradgrad=True)


@pytest.mark.parametrize("shape,dim", SHAPES_DIMS)
def test_logcumsumexp_forward(shape, dim):
    a = rand_array(shape, low=-5, high=5)
    assert_close(disttorch.logcumsumexp(T(a), dim), np.logaddexp.accumulate(a, axis=dim) if a.size else a)


def test_logcumsumexp_stability_and_special_values():
    a = np.array([1000.0, 1000.0, -np.inf, 999.0])
    res = disttorch.logcumsumexp(T(a), 0).numpy()
    assert abs(res[1] - (1000 + np.log(2))) < 1e-9 and np.isfinite(res).all()
    assert disttorch.logcumsumexp(T([-np.inf, -np.inf]), 0).tolist() == [-np.inf, -np.inf]
    assert disttorch.logcumsumexp(T([1, 2]), 0).dtype is disttorch.float32


def test_logcumsumexp_grad():
    a = rand_array((3, 4))
    check_grad(lambda x: disttorch.logcumsumexp(x, 1), a, gradgrad=True)
    check_grad(lambda x: disttorch.logcumsumexp(x * 300, 0), a)
    # Mixed-sign and zero upstream gradients travel the two log-space branches.
    x = disttorch.tensor(a, requires_grad=True)
    g = np.array([[1.0, -2.0, 0.0, 3.0]] * 3)
    disttorch.logcumsumexp(x, 1).backward(T(g))
    y = np.logaddexp.accumulate(a, axis=1)
    expected = np.array([[sum(g[r, k] * np.exp(a[r, i] - y[r, k]) for k in range(i, 4)) for i in range(4)]
                         for r in range(3)])
    assert_close(x.grad, expected)
    check_grad(lambda x: disttorch.logcumsumexp(x, 0), np.array(0.5))


@pytest.mark.parametrize("n", [1, 2, 3, 6])
@pytest.mark.parametrize("shape,dim", [((5,), 0), ((3, 4), 1), ((3, 4), 0), ((2, 3, 4), -1)])
def test_diff(n, shape, dim):
    a = rand_array(shape)
    assert_close(disttorch.diff(T(a), n, dim), np.diff(a, n, axis=dim))
    check_grad(lambda x: disttorch.diff(x, n, dim), a, gradgrad=True)


def test_diff_prepend_append_and_bool():
    a = rand_array((2, 3))
    p, q = rand_array((2, 1)), rand_array((2, 2))
    assert_close(disttorch.diff(T(a), 1, 1, prepend=T(p), append=T(q)), np.diff(a, 1, 1, prepend=p, append=q))
    assert_close(T(a).diff(append=T(q)), np.diff(a, append=q))
    check_grad(lambda x, y, z: disttorch.diff(x, 2, 1, prepend=y, append=z), a, p, q, gradgrad=True)
    assert disttorch.diff(T([True, False, False, True])).tolist() == [True, False, True]
    assert_close(disttorch.diff(T([1, 4, 9])), np.array([3, 5]))
    with pytest.raises(RuntimeError, match="at least one-dimensional"):
        disttorch.diff(T(1.0))
    with pytest.raises(RuntimeError, match="same dimension"):
        disttorch.diff(T(a), prepend=T([1.0]))


@pytest.mark.parametrize("dim", [0, 1])
def test_cumprod_double_backward_with_zeros(dim):
    torch = disttorch
    """Second derivatives through slices holding one, two or no zeros (PyTorch's create_graph formula)."""
    x = torch.tensor([[2.0, 0.0, 3.0, 4.0], [1.0, 2.0, 0.0, 5.0], [0.0, 0.0, 3.0, -1.5], [1.5, -2.0, 3.0, 0.5]],
                     dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: t.cumprod(dim), (x,))
    assert torch.autograd.gradgradcheck(lambda t: t.cumprod(dim), (x,))
