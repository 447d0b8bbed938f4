"""Pinned host memory on the stand-in CUDA device: Tensor.pin_memory/is_pinned, non_blocking copies from pinned
memory, and DataLoader(pin_memory=True) pinning each batch."""
import collections
import warnings

import numpy as np
import pytest

import disttorch
from disttorch.utils.data import DataLoader


def test_pin_memory_copies_into_pinned_memory(standin_cuda):
    t = disttorch.arange(6.0).reshape(2, 3)
    p = t.pin_memory()
    assert p is not t and p.is_pinned() and not t.is_pinned()
    assert p.device.type == "cpu"
    np.testing.assert_array_equal(p.numpy(), np.arange(6.0).reshape(2, 3))
    assert p.pin_memory() is p  # already pinned: itself, as PyTorch
    assert p[1:].is_pinned() and p.t().is_pinned()  # views share the pinned buffer
    t.add_(1)
    assert p[0, 0].item() == 0.0  # a copy, not a view of the source


def test_pin_memory_is_differentiable(standin_cuda):
    x = disttorch.ones(3, requires_grad=True)
    (x.pin_memory() * disttorch.tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 2.0, 3.0])


def test_cuda_tensor_cannot_be_pinned(standin_cuda):
    with pytest.raises(RuntimeError, match="only dense CPU tensors can be pinned"):
        disttorch.ones(2, device="cuda").pin_memory()
    assert disttorch.ones(2, device="cuda").is_pinned() is False


@pytest.mark.parametrize("move", [lambda t: t.to("cuda", non_blocking=True), lambda t: t.cuda(non_blocking=True),
                                  lambda t: t.to("cuda", None, True)])
def test_non_blocking_copy_from_pinned_memory_goes_through_the_stream_copy(standin_cuda, move):
    src = disttorch.randn(4, 5).pin_memory()
    standin_cuda.reset()
    d = move(src)
    assert d.device.type == "cuda"
    assert [what for _, what, _ in standin_cuda.events] == ["set"]  # ndarray.set(arr, stream): the async copy
    np.testing.assert_array_equal(d.cpu().numpy(), src.numpy())


def test_blocking_or_unpinned_copies_stay_synchronous(standin_cuda):
    pinned, plain = disttorch.randn(3).pin_memory(), disttorch.randn(3)
    for t, nb in ((pinned, False), (plain, True)):
        standin_cuda.reset()
        d = t.to("cuda", non_blocking=nb)
        assert [what for _, what, _ in standin_cuda.events] != ["set"]
        np.testing.assert_array_equal(d.cpu().numpy(), t.numpy())


Pair = collections.namedtuple("Pair", "x y")


class _Data:
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return {"x": disttorch.full((2,), float(i)), "pair": Pair(disttorch.tensor(i), "label"), "n": i}


def test_dataloader_pins_every_tensor_of_each_batch(standin_cuda):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an accelerator is present: no warning
        batches = list(DataLoader(_Data(), batch_size=2, pin_memory=True))
    assert len(batches) == 2
    for k, b in enumerate(batches):
        assert b["x"].is_pinned() and b["pair"].x.is_pinned() and isinstance(b["pair"], Pair)
        assert list(b["pair"].y) == ["label", "label"]
        np.testing.assert_array_equal(b["x"].numpy(), [[2 * k] * 2, [2 * k + 1] * 2])
        np.testing.assert_array_equal(b["n"].numpy(), [2 * k, 2 * k + 1])
    plain = next(iter(DataLoader(_Data(), batch_size=2)))
    assert not plain["x"].is_pinned()


def test_staging_buffers_are_pinned(standin_cuda):
    from disttorch.distributed._staging import HostPool

    buf = HostPool().take((3, 4), np.float32)
    assert disttorch.from_numpy(buf).is_pinned() and buf.shape == (3, 4) and buf.dtype == np.float32
