"""utils.checkpoint: recomputation gives the same gradients as a plain backward."""
import numpy as np
import pytest

import disttorch
from disttorch.utils.checkpoint import checkpoint, checkpoint_sequential


def _setup():
    disttorch.manual_seed(0)
    w = disttorch.randn(4, 4, dtype=disttorch.float64, requires_grad=True)
    x = disttorch.randn(3, 4, dtype=disttorch.float64, requires_grad=True)
    return w, x


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_checkpoint_matches_plain_backward_and_recomputes(use_reentrant):
    w, x = _setup()
    calls = []

    def block(inp):
        calls.append(1)
        return ((inp @ w).tanh() * inp).exp().sum(1)
    block(x).sum().backward()
    gw, gx = w.grad.numpy().copy(), x.grad.numpy().copy()
    w.grad = x.grad = None
    calls.clear()
    out = checkpoint(block, x, use_reentrant=use_reentrant)
    assert len(calls) == 1
    out.sum().backward()
    assert len(calls) == 2
    np.testing.assert_allclose(w.grad.numpy(), gw)
    np.testing.assert_allclose(x.grad.numpy(), gx)


def test_checkpoint_reaches_parameters_without_input_grad_and_replays_rng():
    w, _ = _setup()
    x = disttorch.randn(3, 4, dtype=disttorch.float64)

    def block(inp):
        mask = (disttorch.rand(3, 4, dtype=disttorch.float64) > 0.5).to(inp.dtype)
        return (inp @ w * mask).sum()
    disttorch.manual_seed(5)
    block(x).backward()
    ref = w.grad.numpy().copy()
    w.grad = None
    disttorch.manual_seed(5)
    checkpoint(block, x, use_reentrant=False).backward()
    np.testing.assert_allclose(w.grad.numpy(), ref)


def test_checkpoint_no_grad_mode_just_runs():
    w, x = _setup()
    with disttorch.no_grad():
        out = checkpoint(lambda a: a @ w, x, use_reentrant=False)
    assert out.grad_fn is None


def test_checkpoint_sequential_matches():
    w, x = _setup()
    fns = [lambda a: a @ w, disttorch.tanh, lambda a: a * 2, disttorch.sin]
    y = x
    for f in fns:
        y = f(y)
    y.sum().backward()
    ref = w.grad.numpy().copy()
    w.grad = None
    checkpoint_sequential(fns, 2, x, use_reentrant=False).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), ref)
