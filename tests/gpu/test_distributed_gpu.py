"""NCCL collectives with one GPU (world size 1) and the digits DDP example's training on a GPU.

World size 1 over a ``tcp://`` rendezvous on loopback, in this process; each test destroys its group.
"""
import pathlib
import socket
import sys

import numpy as np
import pytest

import disttorch
import disttorch.distributed as dist
import disttorch.nn.functional as F

pytestmark = pytest.mark.gpu
EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def group(request):
    """A world-size-1 default group for ``request.param`` (a backend name or None), destroyed afterwards."""
    dist.init_process_group(backend=request.param, init_method=f"tcp://127.0.0.1:{_free_port()}", world_size=1,
                            rank=0)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.fixture
def nccl(cp):
    if not dist.is_nccl_available():
        pytest.skip("the nccl backend is not available (CuPy without NCCL, or no "
                    "disttorch/distributed/backends/nccl.py)")


@pytest.mark.parametrize("group", ["nccl"], indirect=True)
def test_nccl_world_size_one_all_reduce_and_broadcast(nccl, group):
    t = disttorch.arange(6, dtype=disttorch.float32, device="cuda") - 2.5
    want = t.cpu().numpy().copy()
    dist.all_reduce(t)  # SUM over one rank: unchanged, and still on the GPU
    assert t.is_cuda
    np.testing.assert_array_equal(t.cpu().numpy(), want)
    t.mul_(3)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    np.testing.assert_array_equal(t.cpu().numpy(), want * 3)
    b = disttorch.full((2, 3), 7.0, device="cuda", dtype=disttorch.float16)
    dist.broadcast(b, src=0)
    assert b.is_cuda and b.dtype == disttorch.float16
    np.testing.assert_array_equal(b.cpu().numpy(), np.full((2, 3), 7.0, np.float16))
    work = dist.all_reduce(t, async_op=True)
    work.wait()
    np.testing.assert_array_equal(t.cpu().numpy(), want * 3)


def _digits():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import train_digits
    finally:
        sys.path.remove(str(EXAMPLES))
    return train_digits


def _steps(model, x, y, opt, steps):
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("group", [None], indirect=True)
def test_ddp_digits_on_gpu_matches_cpu_and_learns(nccl, group):
    """examples/ddp_digits.py's model, data and optimizer under DDP on cuda (world size 1; the default backend picks
    nccl for CUDA tensors)."""
    td = _digits()
    train, test = td.load_digits_tensors(0)
    x, y = train.tensors[0][:256], train.tensors[1][:256]
    models = []
    for dev in ("cpu", "cuda"):
        disttorch.manual_seed(0)
        m = td.DigitsCNN()
        m.classifier[3].p = 0.0  # dropout draws differ per device: off for the step-by-step comparison
        models.append(m.to(dev))
    ddp = disttorch.nn.parallel.DistributedDataParallel(models[1])
    opts = [disttorch.optim.Adam(m.parameters(), lr=2e-3) for m in (models[0], ddp)]
    cpu_losses = _steps(models[0], x, y, opts[0], 5)
    gpu_losses = _steps(ddp, x.cuda(), y.cuda(), opts[1], 5)
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-4)
    for p, q in zip(models[0].parameters(), models[1].parameters()):
        assert q.is_cuda
        np.testing.assert_allclose(q.detach().cpu().numpy(), p.detach().numpy(), rtol=1e-3, atol=1e-5)
    # then train on the whole training set for a few epochs (dropout on), as the example does
    models[1].classifier[3].p = 0.2
    loader = disttorch.utils.data.DataLoader(train, batch_size=32, shuffle=True)
    for _ in range(3):
        for xb, yb in loader:
            _steps(ddp, xb.cuda(), yb.cuda(), opts[1], 1)
    ddp.eval()
    with disttorch.no_grad():
        pred = ddp(test.tensors[0].cuda()).argmax(1).cpu().numpy()
    acc = float(np.mean(pred == test.tensors[1].numpy()))
    assert acc > 0.9, f"test accuracy {acc:.3f} after 3 epochs on the GPU (the CPU run reaches > 0.9)"
