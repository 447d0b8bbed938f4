"""Optional parity with PyTorch itself (the `bench` extra): same inputs, same outputs and gradients.

Skipped when PyTorch is not installed (CI does not install it); run with `make bench`'s venv or any
environment that has torch.
"""
import numpy as np
import pytest

import disttorch

torch = pytest.importorskip("torch")

from parity_cases import CASES  # noqa: E402 - the op list shared with the stand-in device sweep


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
