"""DLPack exchange: zero-copy both ways with NumPy (and PyTorch's CPU tensors when installed)."""
import numpy as np
import pytest

import disttorch
from disttorch.utils import dlpack


def test_numpy_reads_and_writes_through_a_tensor():
    t = disttorch.arange(6.0).reshape(2, 3)
    a = np.from_dlpack(t)
    assert a.shape == (2, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, np.arange(6.0).reshape(2, 3))
    a[1, 2] = -1.0
    assert t[1, 2].item() == -1.0
    t[0, 0] = 42.0
    assert a[0, 0] == 42.0


def test_tensor_from_numpy_shares_memory():
    x = np.arange(5, dtype=np.int64)
    for make in (disttorch.from_dlpack, dlpack.from_dlpack):
        t = make(x)
        assert t.dtype is disttorch.int64 and t.shape == (5,)
        t[2] = 100
        assert x[2] == 100
        x[3] = -7
        assert t[3].item() == -7


def test_copy_keyword_and_capsules():
    x = np.arange(3.0)
    t = disttorch.from_dlpack(x, copy=True)
    t[0] = 5.0
    assert x[0] == 0.0
    src = disttorch.tensor([1.0, 2.0, 3.0])
    back = dlpack.from_dlpack(dlpack.to_dlpack(src))  # a bare capsule, as torch.utils.dlpack
    back[1] = 9.0
    assert src.tolist() == [1.0, 9.0, 3.0]
    c = np.from_dlpack(src, copy=True)
    c[0] = 0.0
    assert src[0].item() == 1.0


def test_export_checks():
    with pytest.raises(BufferError, match="Can't export tensors that require gradient, use tensor.detach()"):
        disttorch.ones(2, requires_grad=True).__dlpack__()
    assert tuple(disttorch.ones(2).__dlpack_device__()) == (1, 0)
    with pytest.raises(TypeError, match="expected an object with __dlpack__"):
        disttorch.from_dlpack([1, 2])


def test_torch_cpu_tensors_share_memory_both_ways():
    torch = pytest.importorskip("torch")
    pt = torch.arange(4.0)
    t = disttorch.from_dlpack(pt)
    t[0] = 11.0
    assert pt[0].item() == 11.0
    d = disttorch.arange(3.0)
    back = torch.from_dlpack(d)
    back[2] = -3.0
    assert d[2].item() == -3.0
    cap = torch.utils.dlpack.to_dlpack(pt)  # PyTorch's legacy capsule: writeable here as in PyTorch
    u = dlpack.from_dlpack(cap)
    u[1] = 8.0
    assert pt[1].item() == 8.0
