"""The parity sweep on the stand-in CUDA device: every case of the shared op/layer/loss list (tests/parity_cases.py,
also run against PyTorch by tests/parity/test_torch_parity.py) and every optimizer there runs on ``cuda`` and must
give the CPU's forward values and gradients, making no host transfer in forward + backward (after one warm-up run:
first calls upload shape-derived index tables once). The transfers a case genuinely needs are allow-listed below
with the reason, as on CUDA; any other transfer fails the case with where it came from."""
import numpy as np
import pytest
from parity_cases import CASES, LAYER_CASES, LOSS_CASES, OPTIMIZERS

import disttorch

ALL = {**CASES, **LAYER_CASES, **LOSS_CASES}

# name -> (host transfers allowed in one forward + backward, why)
ALLOWED = {
    "getitem": (3, "a[[0, 2, 2]] uploads the Python list index (as on CUDA); a[a > 0] has a data-dependent "
                   "shape (nonzero: one size copy, in forward and again in the backward's scatter)"),
    "index_select_masked": (1, "L.tensor([3, 0, 0]) uploads Python data"),
}


class _OnDevice:
    """disttorch with ``tensor()`` making device tensors (the cases build small index tensors from lists)."""

    def __getattr__(self, name):
        return getattr(disttorch, name)

    @staticmethod
    def tensor(data, **kw):
        kw.setdefault("device", "cuda")
        return disttorch.tensor(data, **kw)


def _inputs(arrays, device):
    return [disttorch.tensor(a, device=device) if a.dtype.kind in "iu" else
            disttorch.tensor(a, device=device, requires_grad=True) for a in arrays]


def _run(L, fn, ts):
    out = fn(L, *ts)
    out.sum().backward()
    return out


@pytest.mark.parametrize("name", sorted(ALL))
def test_case_matches_cpu_without_host_transfers(standin_cuda, name):
    fn, arrays = ALL[name]
    cpu_in = _inputs(arrays, "cpu")
    want = _run(disttorch, fn, cpu_in)
    dev = _OnDevice()
    _run(dev, fn, _inputs(arrays, "cuda"))  # warm-up: shape-derived tables are uploaded once and cached
    dev_in = _inputs(arrays, "cuda")
    standin_cuda.reset()
    got = _run(dev, fn, dev_in)
    allowed, why = ALLOWED.get(name, (0, ""))
    assert standin_cuda.total <= allowed, f"{name}: unexpected host transfers ({why or 'none allowed'}):\n" \
                                          f"{standin_cuda.summary()}"
    assert got.is_cuda
    np.testing.assert_allclose(got.detach().cpu().numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-6,
                               err_msg=name)
    for c, g in zip(cpu_in, dev_in):
        if c.grad is None:
            assert g.grad is None, name
        else:
            assert g.grad.is_cuda
            np.testing.assert_allclose(g.grad.cpu().numpy(), c.grad.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def _train(device, make_opt, steps):
    disttorch.manual_seed(1)
    model = disttorch.nn.Sequential(disttorch.nn.Linear(6, 8), disttorch.nn.Tanh(), disttorch.nn.Linear(8, 3))
    model.to(device)
    opt = make_opt(disttorch, model.parameters())
    rng = np.random.default_rng(2)
    x = disttorch.tensor(rng.standard_normal((10, 6)), dtype=disttorch.float32, device=device)
    y = disttorch.tensor(rng.integers(0, 3, 10), device=device)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = disttorch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return model, losses


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_matches_cpu_without_host_transfers(standin_cuda, name):
    cpu_model, cpu_losses = _train("cpu", OPTIMIZERS[name], 3)
    _train("cuda", OPTIMIZERS[name], 1)  # warm-up
    standin_cuda.reset()
    model, losses = _train("cuda", OPTIMIZERS[name], 3)
    uploads = standin_cuda.to_device
    assert standin_cuda.to_host == 0, standin_cuda.summary()
    assert uploads == 2 + len(list(model.parameters())), standin_cuda.summary()  # model.to, x and y: host data
    np.testing.assert_allclose([v.cpu().item() for v in losses], [v.item() for v in cpu_losses], rtol=1e-5)
    assert not np.isclose(cpu_losses[0].item(), cpu_losses[-1].item())  # the steps moved the parameters
    for p, q in zip(cpu_model.parameters(), model.parameters()):
        np.testing.assert_allclose(q.detach().cpu().numpy(), p.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
