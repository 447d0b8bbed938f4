"""saved_tensors_hooks: every saved tensor goes through pack/unpack; gradients stay right."""
import numpy as np
import pytest

import disttorch as torch
from disttorch.autograd.graph import disable_saved_tensors_hooks, save_on_cpu, saved_tensors_hooks
from helpers import assert_close


def test_pack_and_unpack_see_every_saved_tensor():
    packed, unpacked = [], []

    def pack(t):
        packed.append(tuple(t.shape))
        return t.numpy().copy()  # an opaque copy, as an offloading hook would keep

    def unpack(a):
        unpacked.append(a.shape)
        return torch.from_numpy(a)

    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with saved_tensors_hooks(pack, unpack):
        y = (x * x).exp().sum()
    assert packed  # mul saved both operands, exp its result
    y.backward()
    assert len(unpacked) == len(packed)
    xv = np.array([1.0, 2.0, 3.0])
    assert_close(x.grad, 2 * xv * np.exp(xv * xv), rtol=1e-5)


def test_hooks_end_with_the_block():
    calls = []
    x = torch.ones(2, requires_grad=True)
    with saved_tensors_hooks(lambda t: calls.append(1) or t, lambda t: t):
        pass
    (x * x).sum().backward()
    assert calls == []


def test_save_on_cpu_gives_same_gradients():
    x = torch.tensor([0.5, -1.0], requires_grad=True)
    with save_on_cpu():
        (x.sin() * x).sum().backward()
    xv = np.array([0.5, -1.0])
    assert_close(x.grad, np.cos(xv) * xv + np.sin(xv), rtol=1e-6)


def test_disable_saved_tensors_hooks():
    with disable_saved_tensors_hooks("hooks are off here"):
        with pytest.raises(RuntimeError, match="hooks are off here"):
            with saved_tensors_hooks(lambda t: t, lambda t: t):
                pass
