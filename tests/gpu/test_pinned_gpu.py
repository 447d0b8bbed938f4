"""Pinned host memory on a real GPU: pin_memory lands in page-locked memory the driver knows, a non_blocking copy
from it is right after a synchronize, and DataLoader(pin_memory=True) pins batches."""
import numpy as np
import pytest

import disttorch
from disttorch.utils.data import DataLoader, TensorDataset

pytestmark = pytest.mark.gpu


def test_pin_memory_and_non_blocking_copy(cp):
    src = disttorch.randn(1024, 257).pin_memory()
    attrs = cp.cuda.runtime.pointerGetAttributes(src.numpy().ctypes.data)
    assert int(attrs.type) == 1 and src.is_pinned()  # cudaMemoryTypeHost
    d = src.to("cuda", non_blocking=True)
    disttorch.cuda.synchronize()
    np.testing.assert_array_equal(cp.asnumpy(d._data), src.numpy())


def test_dataloader_pins_batches(cp):
    ds = TensorDataset(disttorch.arange(12.0).reshape(6, 2))
    for (b,) in DataLoader(ds, batch_size=4, pin_memory=True):
        assert b.is_pinned()
