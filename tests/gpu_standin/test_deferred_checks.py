"""Device-side value checks (disttorch.cuda._checks): on the device an out-of-range index makes no host sync at the
op and raises at the next synchronisation, as a CUDA device-side assert, with the error the CPU path raises at once
(the CPU run is the reference for the type and the message)."""
import numpy as np
import pytest

import disttorch
import disttorch.nn.functional as F
from disttorch.cuda import _checks

_W = np.arange(12, dtype=np.float32).reshape(4, 3)


def _bad_cases():
    return [
        ("cross_entropy", lambda d: F.cross_entropy(disttorch.zeros(2, 3, device=d), disttorch.tensor([1, 5], device=d))),
        ("nll_loss", lambda d: F.nll_loss(disttorch.zeros(2, 3, device=d), disttorch.tensor([-2, 0], device=d))),
        ("bce", lambda d: F.binary_cross_entropy(disttorch.tensor([0.5, 1.5], device=d), disttorch.ones(2, device=d))),
        ("gather", lambda d: disttorch.tensor(_W, device=d).gather(1, disttorch.tensor([[0], [3], [1], [2]], device=d))),
        ("index_select", lambda d: disttorch.tensor(_W, device=d).index_select(0, disttorch.tensor([0, 4], device=d))),
        ("take", lambda d: disttorch.take(disttorch.tensor(_W, device=d), disttorch.tensor([-13], device=d))),
        ("getitem", lambda d: disttorch.tensor(_W, device=d)[disttorch.tensor([1, 7], device=d)]),
        ("embedding", lambda d: F.embedding(disttorch.tensor([[0, 4]], device=d), disttorch.tensor(_W, device=d))),
        ("one_hot", lambda d: F.one_hot(disttorch.tensor([0, 3], device=d), 3)),
        ("scatter_add", lambda d: disttorch.zeros(2, 3, device=d).scatter_add(
            1, disttorch.tensor([[0, 3]], device=d), disttorch.ones(1, 2, device=d))),
    ]


@pytest.mark.parametrize("name, fn", _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_out_of_range_raises_at_the_next_sync_as_the_cpu_does(standin_cuda, name, fn):
    with pytest.raises(Exception) as cpu:
        fn("cpu")
    standin_cuda.reset()
    out = fn("cuda")  # no raise and no device-to-host copy at the op itself (the test data is uploaded)
    assert standin_cuda.to_host == 0, standin_cuda.summary()
    assert _checks.pending() >= 1
    with pytest.raises(type(cpu.value)) as dev:
        out.cpu()
    assert str(dev.value) == str(cpu.value), name
    assert _checks.pending() == 0
    out.cpu()  # reported once: the failed check is gone


def test_synchronize_reports_a_failed_check(standin_cuda):
    F.cross_entropy(disttorch.zeros(2, 3, device="cuda"), disttorch.tensor([0, 3], device="cuda"))
    with pytest.raises(IndexError, match="Target 3 is out of bounds"):
        disttorch.cuda.synchronize()
    disttorch.cuda.synchronize()


def test_pending_checks_cost_one_copy_at_the_sync(standin_cuda):
    w = disttorch.tensor(_W, device="cuda")
    i = disttorch.tensor([3, 0], device="cuda")
    y = w.index_select(0, i) + w[i] + F.embedding(i, w)
    assert _checks.pending() == 3
    standin_cuda.reset()
    host = y.cpu()
    assert standin_cuda.to_host == 2, standin_cuda.summary()  # the combined flag, then the values
    np.testing.assert_array_equal(host.numpy(), 3 * _W[[3, 0]])


def test_first_failure_in_op_order_wins(standin_cuda):
    w = disttorch.tensor(_W, device="cuda")
    w.index_select(0, disttorch.tensor([1], device="cuda"))
    w.index_select(0, disttorch.tensor([9], device="cuda"))
    F.cross_entropy(disttorch.zeros(1, 3, device="cuda"), disttorch.tensor([7], device="cuda"))
    with pytest.raises(IndexError, match="index out of range in self"):
        disttorch.cuda.synchronize()


def test_limit_bounds_the_pending_list(standin_cuda, monkeypatch):
    monkeypatch.setattr(_checks, "LIMIT", 4)
    w = disttorch.tensor(_W, device="cuda")
    i = disttorch.tensor([1], device="cuda")
    standin_cuda.reset()
    for _ in range(9):
        w.index_select(0, i)
    assert _checks.pending() <= 4 and standin_cuda.to_host == 2  # flushed at the 5th and 9th check


def test_cpu_path_raises_at_once():
    with pytest.raises(IndexError, match="Target 5 is out of bounds"):
        F.cross_entropy(disttorch.zeros(2, 3), disttorch.tensor([1, 5]))
    assert _checks.pending() == 0


@pytest.mark.parametrize("read", [lambda t: t.item(), float, bool, lambda t: [0, 1][t.long()]],
                         ids=["item", "float", "bool", "index"])
def test_scalar_reads_report_a_failed_check(standin_cuda, read):
    """A one-element device tensor read as a Python value is a synchronisation too."""
    loss = F.cross_entropy(disttorch.zeros(2, 3, device="cuda"), disttorch.tensor([0, 3], device="cuda"))
    with pytest.raises(IndexError, match="Target 3 is out of bounds"):
        read(loss * 0)
    assert _checks.pending() == 0
