"""Complex gradients against PyTorch: ``torch.autograd.grad`` on complex128 inputs, same upstream gradient.

PyTorch's convention for a holomorphic ``f`` is ``grad_input = grad * conj(f'(z))`` (products conjugate the
other operand); a missing conjugation shows up here as a mismatch. Skipped when PyTorch is not installed.
"""
import numpy as np
import pytest

import disttorch

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(5)


def _c(*shape):
    return RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)


A, B, V, W = _c(3, 3), _c(3, 3), _c(3), _c(3)
X3, Y3 = _c(2, 3), _c(2, 3)

# name -> (function of the library module and tensors, input arrays)
CASES = {
    "exp": (lambda L, a: L.exp(a), [A]),
    "exp2_expm1": (lambda L, a: L.exp2(a) + L.expm1(a), [A]),
    "log_family": (lambda L, a: L.log(a) + L.log2(a) + L.log10(a) + L.log1p(a), [A]),
    "sqrt": (lambda L, a: L.sqrt(a), [A]),
    "rsqrt": (lambda L, a: L.rsqrt(a), [A]),
    "reciprocal": (lambda L, a: L.reciprocal(a), [A]),
    "trig": (lambda L, a: L.sin(a) + L.cos(a) + L.tan(a), [A]),
    "inverse_trig": (lambda L, a: L.asin(a) + L.acos(a) + L.atan(a), [A]),
    "hyperbolic": (lambda L, a: L.sinh(a) + L.cosh(a) + L.tanh(a) + L.sigmoid(a), [A]),
    "inverse_hyperbolic": (lambda L, a: L.asinh(a) + L.acosh(a) + L.atanh(a), [A]),
    "pow_tensor_tensor": (lambda L, a, b: L.pow(a, b), [A, B]),
    "pow_tensor_real": (lambda L, a: L.pow(a, 2.5) + a ** 3 + L.square(a), [A]),
    "pow_tensor_complex": (lambda L, a: L.pow(a, 1.5 + 0.5j), [A]),
    "pow_number_tensor": (lambda L, a: 2.0 ** a + (1.5 - 0.5j) ** a, [A]),
    "mul_div": (lambda L, a, b: a * b + a / b, [A, B]),
    "matmul": (lambda L, a, b: L.matmul(a, b), [A, B]),
    "matmul_vec": (lambda L, a, v: L.matmul(a, v) + L.matmul(v, a), [A, V]),
    "mm_mv_dot": (lambda L, a, b, v, w: L.mm(a, b).sum(0) + L.mv(a, v) + L.dot(v, w), [A, B, V, W]),
    "bmm": (lambda L, a, b: L.bmm(a.unsqueeze(0), b.unsqueeze(0))[0], [A, B]),
    "addmm_addmv_addr": (lambda L, a, b, v, w: L.addmm(a, a, b) + L.addmv(v, a, w) + L.addr(a, v, w),
                         [A, B, V, W]),
    "einsum": (lambda L, a, b: L.einsum("ij,jk->ik", a, b), [A, B]),
    "cross": (lambda L, x, y: L.cross(x, y, dim=1), [X3, Y3]),
    "vector_norm": (lambda L, a: L.linalg.vector_norm(a, 3, dim=1) + L.linalg.vector_norm(a, 1)
                    + L.linalg.vector_norm(a, 0.5, dim=0), [A]),
}


def _grads(lib, fn, arrays, upstream):
    ts = [lib.tensor(a, requires_grad=True) for a in arrays]
    out = fn(lib, *ts)
    up = lib.tensor(upstream(out.shape, out.dtype.is_complex))
    return out.detach().numpy(), [g.numpy() for g in lib.autograd.grad(out, ts, up)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_complex_gradients_match_pytorch(name):
    fn, arrays = CASES[name]
    seed = int(RNG.integers(1 << 30))

    def upstream(shape, is_complex):
        r = np.random.default_rng(seed)
        g = r.standard_normal(tuple(shape))
        return g + 1j * r.standard_normal(tuple(shape)) if is_complex else g

    ours, our_grads = _grads(disttorch, fn, arrays, upstream)
    ref, ref_grads = _grads(torch, fn, arrays, upstream)
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)
    for k, (g, r) in enumerate(zip(our_grads, ref_grads)):
        np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-12, err_msg=f"{name}: gradient of input {k}")
