"""autocast's context manager, state functions, weight cache and deprecated aliases, as PyTorch 2.13 behaves
on a machine without CUDA (messages and warnings checked against PyTorch's)."""
from __future__ import annotations

import threading
import warnings

import pytest

import disttorch as torch

NOT_SUPPORTED = ("In CPU autocast, but the target dtype is not supported. Disabling autocast.\n"
                 "CPU Autocast only supports dtypes of disttorch.bfloat16, disttorch.float16 currently.")


def test_defaults_and_state_functions():
    assert torch.get_autocast_dtype("cpu") is torch.bfloat16
    assert torch.get_autocast_dtype("cuda") is torch.float16
    assert torch.is_autocast_enabled() is False and torch.is_autocast_enabled("cpu") is False
    assert torch.is_autocast_cache_enabled() is True
    assert torch.amp.is_autocast_available("cpu") and torch.amp.is_autocast_available("cuda")
    assert not torch.amp.is_autocast_available("meta")
    with pytest.raises(RuntimeError, match="Expected one of cpu, cuda, .* device string: foo"):
        torch.is_autocast_enabled("foo")
    with pytest.raises(RuntimeError, match="unknown device type for autocast"):
        torch.is_autocast_enabled("meta")
    with pytest.raises(TypeError, match="must be bool, not int"):
        torch.set_autocast_enabled(1)
    with pytest.raises(TypeError, match="enabled must be a bool"):
        torch.set_autocast_cache_enabled(1)
    torch.set_autocast_enabled("cpu", True)
    try:
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype is torch.bfloat16
    finally:
        torch.set_autocast_enabled("cpu", False)
    assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype is torch.float32
    assert torch.autocast_increment_nesting() == 1 and torch.autocast_decrement_nesting() == 0
    with pytest.warns(DeprecationWarning, match=r"torch.get_autocast_cpu_dtype\(\) is deprecated"):
        assert torch.get_autocast_cpu_dtype() is torch.bfloat16
    with pytest.warns(DeprecationWarning, match=r"is_autocast_cpu_enabled\(\) is deprecated"):
        assert torch.is_autocast_cpu_enabled() is False


def test_constructor_checks_and_warnings():
    with pytest.raises(ValueError, match="Expected `device_type` of type `str`"):
        torch.autocast(torch.device("cpu"))
    with pytest.raises(TypeError, match="requires a callable, but got int"):
        torch.autocast("cpu")(5)
    with pytest.warns(UserWarning, match="CUDA is not available or torch_xla is imported. Disabling autocast."):
        ac = torch.autocast("cuda")
    with ac:
        assert torch.is_autocast_enabled("cuda") is False
    with pytest.warns(UserWarning) as rec:
        ac = torch.autocast("cpu", dtype=torch.float32)
    assert str(rec[0].message) == NOT_SUPPORTED
    with ac:
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype is torch.float32
    assert torch.autocast is torch.amp.autocast


def test_nesting_restores_state():
    x = torch.randn(3, 3)
    with torch.autocast("cpu"):
        assert torch.is_autocast_enabled("cpu")
        with torch.autocast("cpu", enabled=False):
            assert not torch.is_autocast_enabled("cpu")
            assert torch.mm(x, x).dtype is torch.float32
        assert torch.mm(x, x).dtype is torch.bfloat16
        with torch.autocast("cpu", dtype=torch.float16):
            assert torch.get_autocast_dtype("cpu") is torch.float16
            assert torch.mm(x, x).dtype is torch.float16
        assert torch.get_autocast_dtype("cpu") is torch.bfloat16
    assert not torch.is_autocast_enabled("cpu") and torch.mm(x, x).dtype is torch.float32

    @torch.autocast("cpu")
    def f(a):
        return torch.mm(a, a)

    assert f(x).dtype is torch.bfloat16 and torch.mm(x, x).dtype is torch.float32


def test_state_is_per_thread():
    seen = []
    with torch.autocast("cpu"):
        t = threading.Thread(target=lambda: seen.append(torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype))
        t.start()
        t.join(timeout=30)
    assert seen == [torch.float32]


def test_weight_cache_semantics():
    lin = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with torch.autocast("cpu"):
        a = lin(x)
        b = lin(x)
        # the weight is cast once: both products use the same cast (one node in the graph)
        assert a.grad_fn.next_functions[1][0] is b.grad_fn.next_functions[1][0]
        with torch.no_grad():
            lin.weight.add_(1.0)
        stale = lin(x)  # the cached cast is used until the outermost region exits, as in PyTorch
        assert torch.equal(a, stale)
        with torch.autocast("cpu", enabled=False):
            pass
        assert torch.equal(a, lin(x))  # leaving an inner region keeps the cache
    with torch.autocast("cpu"):
        assert not torch.equal(a, lin(x))  # a new outermost region casts again
    with torch.autocast("cpu", cache_enabled=False):
        c = lin(x)
        with torch.no_grad():
            lin.weight.add_(1.0)
        assert not torch.equal(c, lin(x))


def test_cast_cached_in_no_grad_still_reaches_the_weight():
    lin = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with torch.autocast("cpu"):
        with torch.no_grad():
            lin(x)
        y = lin(x)
    assert y.requires_grad
    y.float().sum().backward()
    assert lin.weight.grad is not None and lin.weight.grad.dtype is torch.float32


def test_deprecated_aliases_warn_as_pytorch():
    with pytest.warns(FutureWarning, match=r"`torch.cpu.amp.autocast\(args...\)` is deprecated"):
        ac = torch.cpu.amp.autocast()
    with ac:
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype is torch.bfloat16
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ac = torch.cuda.amp.autocast()
    messages = [str(w.message) for w in rec]
    assert any("`torch.cuda.amp.autocast(args...)` is deprecated" in m for m in messages)
    assert "CUDA is not available or torch_xla is imported. Disabling autocast." in messages
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        torch.cuda.amp.autocast(enabled=False)
    assert [w.category for w in rec] == [FutureWarning]


def test_custom_fwd_bwd():
    seen = {}

    class Square(torch.autograd.Function):
        @staticmethod
        @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)
        def forward(ctx, x):
            seen["fwd"] = (x.dtype, torch.is_autocast_enabled("cpu"))
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @torch.amp.custom_bwd(device_type="cpu")
        def backward(ctx, g):
            seen["bwd"] = torch.is_autocast_enabled("cpu")
            (x,) = ctx.saved_tensors
            return 2 * x * g

    x = torch.ones(3, dtype=torch.bfloat16, requires_grad=True)
    with torch.autocast("cpu"):
        y = Square.apply(x)
    y.sum().backward()
    assert seen["fwd"] == (torch.float32, False)  # inputs cast, autocast off inside forward
    assert seen["bwd"] is False
    assert x.grad.dtype is torch.bfloat16 and x.grad.tolist() == [2.0, 2.0, 2.0]
