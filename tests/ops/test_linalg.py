"""Linear algebra: matmul family, addmm family, einsum, tensordot, kron, cross, trace."""
import math
import warnings

import ml_dtypes
import numpy as np
import pytest

import disttorch
from disttorch.ops import linalg as linalg_ops
from helpers import assert_close, check_complex_grad, check_grad, rand_array

MATMUL_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 4)), ((4, 2, 3), (3, 2)),
                 ((3,), (2, 3, 2)), ((2, 2, 3), (3,)), ((2, 1, 2, 3), (3, 3, 2)), ((2, 2, 3), (2, 3, 2)),
                 ((0, 3), (3, 2)), ((2, 0), (0, 3))]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_forward(sa, sb):
    a, b = rand_array(sa), rand_array(sb)
    out = disttorch.matmul(disttorch.tensor(a), disttorch.tensor(b))
    assert_close(out, np.matmul(a, b), check_dtype=disttorch.float64)
    assert_close(disttorch.tensor(a) @ disttorch.tensor(b), np.matmul(a, b))


@pytest.mark.parametrize("sa,sb", [s for s in MATMUL_SHAPES if 0 not in s[0] + s[1]])
def test_matmul_grad(sa, sb):
    check_grad(disttorch.matmul, rand_array(sa), rand_array(sb))


def test_matmul_double_backward():
    check_grad(disttorch.matmul, rand_array((2, 3)), rand_array((3, 2)), gradgrad=True)
    check_grad(disttorch.matmul, rand_array((2, 2, 3)), rand_array((3,)), gradgrad=True)


def test_matmul_one_grad_only():
    x = disttorch.tensor(rand_array((4, 3)))
    w = disttorch.tensor(rand_array((2, 3)), requires_grad=True)
    (x @ w.t()).sum().backward()
    assert_close(w.grad, np.ones((4, 2)).T @ x.numpy())
    assert x.grad is None


def test_matmul_1d_1d_is_0d():
    out = disttorch.matmul(disttorch.tensor([1., 2.]), disttorch.tensor([3., 4.]))
    assert out.shape == () and out.item() == 11.0


@pytest.mark.parametrize("dt", [disttorch.float16, disttorch.bfloat16])
def test_matmul_low_precision(dt):
    a, b = rand_array((3, 4)), rand_array((4, 2))
    ta, tb = disttorch.tensor(a, dtype=dt), disttorch.tensor(b, dtype=dt)
    out = ta @ tb
    assert out.dtype is dt
    ref = ta.numpy().astype(np.float32) @ tb.numpy().astype(np.float32)
    assert_close(out.to(disttorch.float32), ref.astype(dt.np).astype(np.float32), rtol=1e-2, atol=1e-2)


def test_matmul_int():
    a, b = np.arange(6).reshape(2, 3), np.arange(6).reshape(3, 2)
    out = disttorch.tensor(a) @ disttorch.tensor(b)
    assert out.dtype is disttorch.int64
    np.testing.assert_array_equal(out.numpy(), a @ b)


def test_matmul_errors():
    with pytest.raises(RuntimeError, match=r"matmul: shapes \(3, 4\) and \(5, 2\) cannot be multiplied \(4 != 5\)"):
        disttorch.ones(3, 4) @ disttorch.ones(5, 2)
    with pytest.raises(RuntimeError, match="float != double"):
        disttorch.ones(2, 2) @ disttorch.ones(2, 2, dtype=disttorch.float64)
    with pytest.raises(RuntimeError, match="at least 1D"):
        disttorch.matmul(disttorch.tensor(1.), disttorch.ones(2))
    with pytest.raises(RuntimeError, match="batch dimensions"):
        disttorch.ones(2, 3, 4) @ disttorch.ones(3, 4, 5)
    with pytest.raises(TypeError, match="matmul"):
        disttorch.matmul(np.ones((2, 2)), disttorch.ones(2, 2))


def test_matmul_out():
    out = disttorch.empty(0)
    r = disttorch.matmul(disttorch.ones(2, 3), disttorch.ones(3, 2), out=out)
    assert r is out
    assert_close(out, np.full((2, 2), 3.0))


@pytest.mark.parametrize("fn,sa,sb,ref", [
    (disttorch.mm, (2, 3), (3, 4), np.matmul), (disttorch.bmm, (2, 2, 3), (2, 3, 4), np.matmul),
    (disttorch.mv, (2, 3), (3,), np.matmul), (disttorch.dot, (3,), (3,), np.dot),
    (disttorch.vdot, (3,), (3,), np.vdot), (disttorch.inner, (2, 3), (4, 3), np.inner),
    (disttorch.inner, (3,), (3,), np.inner), (disttorch.outer, (3,), (2,), np.outer),
    (disttorch.ger, (2,), (2,), np.outer),
])
def test_products_forward_and_grad(fn, sa, sb, ref):
    a, b = rand_array(sa), rand_array(sb)
    assert_close(fn(disttorch.tensor(a), disttorch.tensor(b)), ref(a, b))
    check_grad(fn, a, b)


def test_inner_with_scalar():
    a = rand_array((2, 3))
    assert_close(disttorch.inner(disttorch.tensor(a), disttorch.tensor(2.0, dtype=disttorch.float64)), a * 2)


def test_methods():
    a, b = disttorch.tensor(rand_array((2, 3))), disttorch.tensor(rand_array((3, 2)))
    assert_close(a.mm(b), a.numpy() @ b.numpy())
    assert_close(a.matmul(b), a.numpy() @ b.numpy())
    v = disttorch.tensor(rand_array((3,)))
    assert_close(a.mv(v), a.numpy() @ v.numpy())
    assert_close(v.dot(v), v.numpy() @ v.numpy())
    assert_close(v.outer(v), np.outer(v.numpy(), v.numpy()))


@pytest.mark.parametrize("call,match", [
    (lambda: disttorch.mm(disttorch.ones(3), disttorch.ones(3, 2)), r"mm: expected 2-D matrices"),
    (lambda: disttorch.mm(disttorch.ones(3, 4), disttorch.ones(5, 2)), r"mm: shapes \(3, 4\) and \(5, 2\)"),
    (lambda: disttorch.bmm(disttorch.ones(2, 3, 4), disttorch.ones(3, 4, 5)), r"bmm: batch sizes .* \(2 != 3\)"),
    (lambda: disttorch.bmm(disttorch.ones(3, 4), disttorch.ones(4, 5)), r"bmm: expected 3-D"),
    (lambda: disttorch.mv(disttorch.ones(2, 3), disttorch.ones(2)), r"mv: shapes"),
    (lambda: disttorch.dot(disttorch.ones(3), disttorch.ones(4)), r"inconsistent tensor size"),
    (lambda: disttorch.dot(disttorch.ones(2, 2), disttorch.ones(2)), r"1D tensors expected"),
    (lambda: disttorch.dot(disttorch.ones(2), disttorch.ones(2, dtype=disttorch.float64)),
     r"same dtype, but found Float32 and Float64"),
    (lambda: disttorch.outer(disttorch.ones(2, 2), disttorch.ones(2)), r"outer: Expected 1-D"),
    (lambda: disttorch.inner(disttorch.ones(2, 3), disttorch.ones(2)),
     r"^inner\(\) the last dimension must match on both input tensors but got shapes \[2, 3\] and \[2\]$"),
])
def test_product_errors(call, match):
    with pytest.raises(RuntimeError, match=match):
        call()


ADD_CASES = [
    (disttorch.addmm, (2, 4), (2, 3), (3, 4), lambda x, a, b: a @ b),
    (disttorch.addmm, (4,), (2, 3), (3, 4), lambda x, a, b: a @ b),
    (disttorch.addmv, (2,), (2, 3), (3,), lambda x, a, b: a @ b),
    (disttorch.baddbmm, (2, 2, 4), (2, 2, 3), (2, 3, 4), lambda x, a, b: a @ b),
    (disttorch.addbmm, (2, 4), (2, 2, 3), (2, 3, 4), lambda x, a, b: (a @ b).sum(0)),
    (disttorch.addr, (2, 3), (2,), (3,), lambda x, a, b: np.outer(a, b)),
]


@pytest.mark.parametrize("fn,sx,sa,sb,prod", ADD_CASES)
@pytest.mark.parametrize("beta,alpha", [(1, 1), (0.5, 2.0)])
def test_add_products(fn, sx, sa, sb, prod, beta, alpha):
    x, a, b = rand_array(sx), rand_array(sa), rand_array(sb)
    out = fn(disttorch.tensor(x), disttorch.tensor(a), disttorch.tensor(b), beta=beta, alpha=alpha)
    assert_close(out, beta * x + alpha * prod(x, a, b))
    check_grad(lambda x, a, b: fn(x, a, b, beta=beta, alpha=alpha), x, a, b)


@pytest.mark.parametrize("fn,sx,sa,sb,prod", ADD_CASES)
def test_add_products_beta_zero_ignores_nan(fn, sx, sa, sb, prod):
    x, a, b = np.full(sx, np.nan), rand_array(sa), rand_array(sb)
    out = fn(disttorch.tensor(x), disttorch.tensor(a), disttorch.tensor(b), beta=0)
    assert_close(out, prod(x, a, b))


def test_add_products_inplace_and_errors():
    x = disttorch.zeros(2, 2, dtype=disttorch.float64)
    a = disttorch.tensor(rand_array((2, 3)))
    b = disttorch.tensor(rand_array((3, 2)))
    assert x.addmm_(a, b, alpha=2) is x
    assert_close(x, 2 * a.numpy() @ b.numpy())
    with pytest.raises(RuntimeError, match="addmm"):
        disttorch.addmm(disttorch.ones(3, 3), disttorch.ones(2, 3), disttorch.ones(3, 2))
    with pytest.raises(RuntimeError, match="addmm: expected self and mat1 to have the same dtype"):
        disttorch.addmm(disttorch.ones(2, 2, dtype=disttorch.float64), disttorch.ones(2, 3), disttorch.ones(3, 2))


EINSUM_CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
    ("ii->", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("ii->i", [(3, 3)]),
    ("i,j->ij", [(3,), (2,)]),
    ("ij->ji", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("...ij,...jk->...ik", [(2, 2, 3), (3, 2)]),
    ("...ij,...jk", [(2, 1, 2, 3), (3, 3, 2)]),
    ("i...->...", [(3, 2, 2)]),
    ("ij,ij->i", [(1, 3), (4, 3)]),
    ("ijk,ikl,l->ij", [(2, 3, 2), (2, 2, 3), (3,)]),
    ("iji->j", [(2, 3, 2)]),
    ("bn,anm,bm->ba", [(2, 3), (2, 3, 3), (2, 3)]),
]


@pytest.mark.parametrize("eq,shapes", EINSUM_CASES)
def test_einsum(eq, shapes):
    arrays = [rand_array(s) for s in shapes]
    out = disttorch.einsum(eq, *[disttorch.tensor(a) for a in arrays])
    assert_close(out, np.einsum(eq, *arrays), rtol=1e-10)
    check_grad(lambda *ts: disttorch.einsum(eq, *ts), *arrays)


def test_einsum_list_and_sublist_forms():
    a, b = rand_array((2, 3)), rand_array((3, 4))
    ta, tb = disttorch.tensor(a), disttorch.tensor(b)
    assert_close(disttorch.einsum("ij,jk->ik", [ta, tb]), a @ b)
    assert_close(disttorch.einsum(ta, [0, 1], tb, [1, 2], [0, 2]), a @ b)
    assert_close(disttorch.einsum(" i j , j k -> i k ", ta, tb), a @ b)


def test_einsum_double_backward_and_float32():
    check_grad(lambda a, b: disttorch.einsum("ij,jk->ik", a, b), rand_array((2, 3)), rand_array((3, 2)),
               gradgrad=True)
    out = disttorch.einsum("ij,jk->ik", disttorch.ones(2, 3), disttorch.ones(3, 2))
    assert out.dtype is disttorch.float32
    half = disttorch.einsum("i,i->", disttorch.ones(4, dtype=disttorch.float16), disttorch.ones(4, dtype=disttorch.float16))
    assert half.dtype is disttorch.float16 and half.item() == 4.0


def test_einsum_output_owns_memory():
    x = disttorch.tensor(rand_array((2, 3)))
    y = disttorch.einsum("ij->ji", x)
    y.numpy()[0, 0] = 100.0
    assert x.numpy()[0, 0] != 100.0


@pytest.mark.parametrize("eq,shapes,match", [
    ("ij,jk->ik", [(2, 3), (4, 2)], r"^einsum\(\): subscript j has size 4 for operand 1 which does not broadcast with "
                                    r"previously seen size 3$"),
    ("ij->ik", [(2, 3)], "output subscript k does not appear"),
    ("ij->ii", [(2, 2)], "appears more than once"),
    ("ij,jk", [(2, 3)], r"^einsum\(\): fewer operands were provided than specified in the equation$"),
    ("ij", [(2, 3), (2, 3)], r"^einsum\(\): more operands were provided than specified in the equation$"),
    ("ijk", [(2, 3)], "number of subscripts in the equation"),
    ("i1", [(2, 3)], "invalid subscript"),
    ("ij->j->i", [(2, 3)], "invalid equation"),
    ("ii", [(2, 3)], r"^einsum\(\): subscript i is repeated for operand 0 but the sizes don't match, 3 != 2$"),
])
def test_einsum_errors(eq, shapes, match):
    with pytest.raises(RuntimeError, match=match):
        disttorch.einsum(eq, *[disttorch.ones(*s) for s in shapes])


def test_einsum_dtype_mismatch():
    with pytest.raises(RuntimeError, match="expected scalar type Float but found Double"):
        disttorch.einsum("i,i", disttorch.ones(2), disttorch.ones(2, dtype=disttorch.float64))


@pytest.mark.parametrize("sa,sb,dims", [((2, 3, 4), (3, 4, 2), 2), ((2, 3), (3, 2), 1), ((2, 3), (4,), 0),
                                        ((2, 3, 4), (4, 3), ([1, 2], [1, 0])), ((3, 2), (3, 4), ([0], [0])),
                                        ((2, 3), (3, 2), ([-1], [0]))])
def test_tensordot(sa, sb, dims):
    a, b = rand_array(sa), rand_array(sb)
    assert_close(disttorch.tensordot(disttorch.tensor(a), disttorch.tensor(b), dims), np.tensordot(a, b, dims))
    check_grad(lambda x, y: disttorch.tensordot(x, y, dims), a, b)


def test_tensordot_errors():
    with pytest.raises(RuntimeError, match="contracted dimensions need to match"):
        disttorch.tensordot(disttorch.ones(2, 3), disttorch.ones(4, 2), 1)
    with pytest.raises(RuntimeError, match="dims >= 0"):
        disttorch.tensordot(disttorch.ones(2, 3), disttorch.ones(3, 2), -1)


@pytest.mark.parametrize("sa,sb", [((2, 3), (2, 2)), ((2,), (3,)), ((2, 2), (3,)), ((1, 2, 2), (2, 1))])
def test_kron(sa, sb):
    a, b = rand_array(sa), rand_array(sb)
    assert_close(disttorch.kron(disttorch.tensor(a), disttorch.tensor(b)), np.kron(a, b))
    check_grad(disttorch.kron, a, b)


@pytest.mark.parametrize("sa,sb,dim", [((3,), (3,), 0), ((2, 3), (2, 3), 1), ((3, 2), (3, 1), 0),
                                       ((4, 3), (1, 3), -1)])
def test_cross(sa, sb, dim):
    a, b = rand_array(sa), rand_array(sb)
    assert_close(disttorch.cross(disttorch.tensor(a), disttorch.tensor(b), dim=dim), np.cross(a, b, axis=dim))
    check_grad(lambda x, y: disttorch.cross(x, y, dim=dim), a, b)
    with pytest.raises(RuntimeError, match="must have length 3"):
        disttorch.cross(disttorch.ones(2, 2), disttorch.ones(2, 2), dim=1)


def test_cross_default_dim_warns_once(monkeypatch):
    monkeypatch.setitem(linalg_ops._warned, "cross", False)
    a, b = rand_array((3, 2)), rand_array((3, 2))
    with pytest.warns(UserWarning, match="without specifying the dim"):
        out = disttorch.cross(disttorch.tensor(a), disttorch.tensor(b))
    assert_close(out, np.cross(a, b, axis=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        disttorch.cross(disttorch.tensor(a), disttorch.tensor(b))


@pytest.mark.parametrize("shape", [(3, 3), (2, 4), (4, 2), (0, 0)])
def test_trace(shape):
    a = rand_array(shape)
    out = disttorch.trace(disttorch.tensor(a))
    assert_close(out, np.trace(a))
    if a.size:
        check_grad(disttorch.trace, a)


def test_trace_int_and_errors():
    out = disttorch.tensor([[1, 2], [3, 4]], dtype=disttorch.int32).trace()
    assert out.dtype is disttorch.int64 and out.item() == 5
    with pytest.raises(RuntimeError, match="trace: expected a matrix"):
        disttorch.trace(disttorch.ones(3))


def test_bfloat16_types_are_ml_dtypes():
    # The low-precision path casts back: the array dtype is ml_dtypes' bfloat16.
    t = disttorch.ones(2, 2, dtype=disttorch.bfloat16)
    assert (t @ t).numpy().dtype == ml_dtypes.bfloat16


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_cdist_forward_and_grad(p):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((2, 4))
    got = disttorch.cdist(disttorch.tensor(a), disttorch.tensor(b), p=p)
    expected = (np.abs(a[:, None] - b[None]) ** p).sum(-1) ** (1 / p)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)
    check_grad(lambda x, y: disttorch.cdist(x, y, p=p), a, b)
    with pytest.raises(RuntimeError, match="same number of columns"):
        disttorch.cdist(disttorch.ones(2, 3), disttorch.ones(2, 4))


def test_math_constants():
    import math

    assert disttorch.pi == math.pi and disttorch.e == math.e and disttorch.inf == math.inf
    assert math.isnan(disttorch.nan)


# ---- complex gradients: grad_a = g @ b^H, grad_b = a^H @ g (PyTorch's convention) ------------------------------
_CRNG = np.random.default_rng(13)


def _cplx(*shape):
    return _CRNG.standard_normal(shape) + 1j * _CRNG.standard_normal(shape)


@pytest.mark.parametrize("sa,sb", [((2, 3), (3, 4)), ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)),
                                   ((2, 2, 3), (3, 4)), ((2, 2, 3), (2, 3, 2))])
def test_complex_matmul_gradients_conjugate(sa, sb):
    a, b = _cplx(*sa), _cplx(*sb)
    ta, tb = disttorch.tensor(a, requires_grad=True), disttorch.tensor(b, requires_grad=True)
    out = disttorch.matmul(ta, tb)
    assert_close(out, np.matmul(a, b), rtol=1e-12, atol=1e-12)
    up = _cplx(*out.shape)
    ga, gb = disttorch.autograd.grad(out, [ta, tb], disttorch.tensor(up))
    # Reference: the real loss Re(sum(conj(up) * a @ b)) differentiated as d/dRe + i d/dIm, in closed form.
    a2, b2, up2 = (np.atleast_2d(a), b.reshape(-1, 1) if b.ndim == 1 else b,
                   np.asarray(up).reshape(np.matmul(np.atleast_2d(a), b.reshape(-1, 1) if b.ndim == 1 else b).shape))
    ref_a = np.matmul(up2, np.conj(np.swapaxes(b2, -1, -2)))
    ref_b = np.matmul(np.conj(np.swapaxes(a2, -1, -2)), up2)
    while ref_b.ndim > b2.ndim:
        ref_b = ref_b.sum(0)
    assert_close(ga, ref_a.reshape(a.shape), rtol=1e-10, atol=1e-12)
    assert_close(gb, ref_b.reshape(b.shape), rtol=1e-10, atol=1e-12)


def test_complex_matrix_products_gradcheck():
    a, b, v, w = _cplx(2, 3), _cplx(3, 2), _cplx(3), _cplx(2)
    check_complex_grad(disttorch.matmul, a, b, gradgrad=True)
    check_complex_grad(disttorch.mv, a, v)
    check_complex_grad(disttorch.dot, v, _cplx(3))
    check_complex_grad(lambda x, y: disttorch.bmm(x.unsqueeze(0), y.unsqueeze(0)), a, b)
    check_complex_grad(lambda x, y, u, s: disttorch.addmm(x, y, u) + disttorch.addr(x, s, s * 2j),
                       _cplx(2, 2), a, b, w)
    check_complex_grad(lambda x, y: disttorch.einsum("ij,jk->ik", x, y), a, b)
    check_complex_grad(lambda x, y: disttorch.cross(x, y, dim=1), _cplx(2, 3), _cplx(2, 3))


def test_complex_vector_norm_gradcheck():
    z = _cplx(2, 3)
    for p in (1, 2, 3, 0.5, math.inf):
        check_complex_grad(lambda x, p=p: disttorch.linalg.vector_norm(x, p, dim=1), z)
