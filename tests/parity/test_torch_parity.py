"""Optional parity with PyTorch itself (the `bench` extra): same inputs, same outputs and gradients.

Skipped when PyTorch is not installed (CI does not install it); run with `make bench`'s venv or any
environment that has torch.
"""
import numpy as np
import pytest

import disttorch

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 4))
B = RNG.standard_normal((3, 4))
POS = RNG.uniform(0.5, 2.0, (3, 4))
M = RNG.standard_normal((4, 5))
V = RNG.standard_normal(4)
IDX = np.array([[0, 2, 1, 3], [3, 3, 0, 1], [1, 0, 2, 2]])

# name -> (function of the library module and tensors, input arrays)
CASES = {
    "add_alpha": (lambda L, a, b: L.add(a, b, alpha=0.5), [A, B]),
    "sub_rsub": (lambda L, a, b: 2 - a - b * 3, [A, B]),
    "div": (lambda L, a, b: a / (b.abs() + 1), [A, B]),
    "pow": (lambda L, a, b: a.abs() ** 1.5 + 2 ** b, [A, B]),
    "floor_div_rem": (lambda L, a, b: (a.detach() * 5) // 2 + (a * 5) % 3 + b, [A, B]),
    "exp_log": (lambda L, a: a.exp() + a.abs().log1p() + a.abs().sqrt(), [A]),
    "trig": (lambda L, a: a.sin() * a.cos() + a.tanh() + a.sigmoid() + a.atan(), [A]),
    "erf_family": (lambda L, a: L.erf(a) + L.erfc(a) + L.special.erfinv(a.tanh() * 0.9)
                   if L is torch else L.erf(a) + L.erfc(a) + L.erfinv(a.tanh() * 0.9), [A]),
    "clamp_where": (lambda L, a, b: a.clamp(-0.5, 0.7) + L.where(a > b, a, b), [A, B]),
    "max_min_pair": (lambda L, a, b: L.maximum(a, b) - L.minimum(a, b), [A, B]),
    "lerp_addcmul": (lambda L, a, b: L.lerp(a, b, 0.3) + L.addcmul(a, a, b, value=0.5), [A, B]),
    "sum_mean": (lambda L, a: a.sum(0) * 2 + a.mean(1).sum() + a.sum((0, 1), keepdim=True), [A]),
    "var_std": (lambda L, a: a.var(1) + a.std(0).sum() + a.var(correction=0), [A]),
    "prod_norm": (lambda L, a: a.prod(1) + a.norm() + a.norm(p=1, dim=0).sum(), [A]),
    "amax_logsumexp": (lambda L, a: a.amax(1) + a.logsumexp(1), [A]),
    "max_dim": (lambda L, a: a.max(1).values + a.min(0).values.sum(), [A]),
    "softmax": (lambda L, a: a.softmax(1) + a.log_softmax(0), [A]),
    "cumsum_cumprod": (lambda L, a: a.cumsum(1) + a.cumprod(0), [A]),
    "sort_topk": (lambda L, a: a.sort(1).values + a.topk(2, dim=1).values.sum(), [A]),
    "matmul_family": (lambda L, a, m, v: (a @ m).sum(1) + a @ v, [A, M, V]),
    "einsum": (lambda L, a, m: L.einsum("ij,jk->ik", a, m), [A, M]),
    "addmm_bmm": (lambda L, a, m: L.addmm(a @ m, a, m, beta=0.5, alpha=2)
                  + L.bmm(a.unsqueeze(0), m.unsqueeze(0))[0], [A, M]),
    "shape_ops": (lambda L, a: a.t().reshape(2, 6).flip(0).roll(1, 1).repeat(2, 1).tril(), [A]),
    "cat_stack_split": (lambda L, a, b: L.cat([a, b], 1).split(4, 1)[1] + L.stack([a, b]).sum(0), [A, B]),
    "chunk_unbind": (lambda L, a: a.chunk(2, 1)[0].sum() + sum(r.sum() for r in a.unbind(0)), [A]),
    "expand_permute": (lambda L, a: a.unsqueeze(2).expand(3, 4, 2).permute(2, 0, 1) * 2, [A]),
    "getitem": (lambda L, a: a[1:, ::2] * 2 + a[[0, 2, 2]][:, 1:3].sum() + a[a > 0].sum(), [A]),
    "gather_scatter": (lambda L, a, i: a.gather(1, i) + a.scatter_add(1, i, a * 2), [A, IDX]),
    "index_select_masked": (lambda L, a: a.index_select(1, L.tensor([3, 0, 0])).sum()
                            + a.masked_fill(a < 0, 0.5), [A]),
    "diagonal_diag": (lambda L, m: m.diagonal().sum() + L.diag(m[:, 0]).sum(), [M]),
}


def _run(lib, fn, arrays):
    ts = [lib.tensor(a) if a.dtype.kind in "iu" else lib.tensor(a, requires_grad=True) for a in arrays]
    out = fn(lib, *ts)
    out.sum().backward()
    grads = [t.grad.detach().numpy() if t.grad is not None else None for t in ts]
    return out.detach().numpy(), grads


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_and_gradients_match_pytorch(name):
    fn, arrays = CASES[name]
    ours, our_grads = _run(disttorch, fn, arrays)
    ref, ref_grads = _run(torch, fn, arrays)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
    for g, r in zip(our_grads, ref_grads):
        if r is None:
            assert g is None
        else:
            np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("values,dtype", [([1, 2, 3], "int32"), ([1.5, 2.0], "float16"), ([True], "bool")])
def test_promotion_matches_pytorch(values, dtype):
    ours = getattr(disttorch, dtype)
    ref = getattr(torch, dtype)
    for other in (2, 2.5, True):
        a = disttorch.tensor(values, dtype=ours) * other
        b = torch.tensor(values, dtype=ref) * other
        assert a.dtype.name == str(b.dtype).split(".")[-1]


DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64"]


@pytest.mark.parametrize("left", DTYPES)
def test_binary_result_dtypes_match_pytorch_for_every_pair(left):
    for right in DTYPES:
        for lshape, rshape in [((2,), (2,)), ((2,), ()), ((), (2,))]:
            a = disttorch.ones(lshape, dtype=getattr(disttorch, left))
            b = disttorch.ones(rshape, dtype=getattr(disttorch, right))
            ta = torch.ones(lshape, dtype=getattr(torch, left))
            tb = torch.ones(rshape, dtype=getattr(torch, right))
            for op in ("add", "mul", "maximum"):
                ours = getattr(disttorch, op)(a, b).dtype.name
                ref = str(getattr(torch, op)(ta, tb).dtype).split(".")[-1]
                assert ours == ref, (op, left, lshape, right, rshape)
            assert (a / b).dtype.name == str((ta / tb).dtype).split(".")[-1], ("div", left, right)
        for scalar in (True, 3, 2.5):
            ours = (disttorch.ones(2, dtype=getattr(disttorch, left)) + scalar).dtype.name
            ref = str((torch.ones(2, dtype=getattr(torch, left)) + scalar).dtype).split(".")[-1]
            assert ours == ref, (left, scalar)
