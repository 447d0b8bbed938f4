"""GradScaler: dynamic loss scaling on the CPU against a hand-computed reference, the disabled pass-through,
and PyTorch 2.13's behaviour without CUDA (warnings and error messages checked against PyTorch's)."""
from __future__ import annotations

import pickle
import warnings

import ml_dtypes
import numpy as np
import pytest

import disttorch as torch


def _model_and_data():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x = torch.randn(8, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.25
    return model, x, y


def test_scaled_training_matches_plain_sgd():
    model, x, y = _model_and_data()
    w0, b0 = model.weight.detach().numpy().astype(np.float64), model.bias.detach().numpy().astype(np.float64)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=2)
    xs, ys = x.numpy().astype(np.float64), y.numpy().astype(np.float64)
    w, b = w0.copy(), b0.copy()
    scales = []
    for _ in range(3):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        scaled = scaler.scale(loss)
        np.testing.assert_allclose(scaled.item(), loss.item() * scaler.get_scale(), rtol=1e-6)
        scaled.backward()
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
        # reference: plain gradient descent on the mean squared error
        err = xs @ w.T + b - ys
        gw, gb = 2 * err.T @ xs / len(xs), 2 * err.sum(0) / len(xs)
        w, b = w - 0.1 * gw, b - 0.1 * gb
    np.testing.assert_allclose(model.weight.detach().numpy(), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.bias.detach().numpy(), b, rtol=1e-5, atol=1e-6)
    assert scales == [1024.0, 2048.0, 2048.0]  # grows after growth_interval=2 clean steps


def test_inf_gradient_skips_step_and_backs_off():
    model, x, y = _model_and_data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0, backoff_factor=0.25)
    before = [p.detach().clone() for p in model.parameters()]
    scaler.scale(torch.nn.functional.mse_loss(model(x), y)).backward()
    model.weight.grad[0, 1] = float("inf")
    assert scaler.step(opt) is None
    scaler.update()
    for p, q in zip(model.parameters(), before):
        assert torch.equal(p, q)
    assert scaler.get_scale() == 2.0 and scaler._get_growth_tracker() == 0


def test_unscale_then_clip():
    model, x, y = _model_and_data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    loss = torch.nn.functional.mse_loss(model(x), y)
    scaler.scale(loss).backward()
    scaled_grad = model.weight.grad.clone()
    scaler.unscale_(opt)
    np.testing.assert_allclose(model.weight.grad.numpy(), scaled_grad.numpy() / 256.0, rtol=1e-6)
    with pytest.raises(RuntimeError, match=r"unscale_\(\) has already been called on this optimizer since the last "
                                           r"update\(\)\."):
        scaler.unscale_(opt)
    scaler.step(opt)  # does not unscale again
    with pytest.raises(RuntimeError, match=r"step\(\) has already been called since the last update\(\)\."):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match=r"unscale_\(\) is being called after step\(\)\."):
        scaler.unscale_(opt)
    scaler.update()


def test_bfloat16_gradients_unscale_in_float32():
    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.bfloat16))
    p.grad = torch.tensor([3.0, 5.0, 7.0], dtype=torch.bfloat16)
    opt = torch.optim.SGD([p], lr=1.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=3.0)
    scaler.scale(torch.ones(()))
    scaler.unscale_(opt)
    inv = np.float32(1.0 / np.float64(3.0))
    assert p.grad.dtype is torch.bfloat16
    np.testing.assert_array_equal(p.grad.float().numpy(),
                                  (np.array([3, 5, 7], np.float32) * inv).astype(ml_dtypes.bfloat16).astype(np.float32))


def test_errors_and_checks():
    model, x, y = _model_and_data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    fix = "This may indicate your script did not use scaler.scale(loss or outputs) earlier in the iteration."
    with pytest.raises(AssertionError) as e:
        scaler.step(opt)
    assert str(e.value) == "Attempted step but _scale is None.  " + fix
    with pytest.raises(AssertionError, match="The growth factor must be > 1.0."):
        torch.amp.GradScaler("cpu", growth_factor=1.0)
    with pytest.raises(AssertionError, match="The backoff factor must be < 1.0."):
        torch.amp.GradScaler("cpu", backoff_factor=1.0)
    scaler.scale(torch.ones(()))
    with pytest.raises(AssertionError, match="No inf checks were recorded prior to update."):
        scaler.update()
    with pytest.raises(RuntimeError, match="Closure use is not currently supported if GradScaler is enabled."):
        scaler.step(opt, closure=lambda: 0.0)
    with pytest.raises(ValueError, match="outputs must be a Tensor or an iterable of Tensors"):
        scaler.scale(3)
    half = torch.nn.Parameter(torch.zeros(2, dtype=torch.float16))
    half.grad = torch.ones(2, dtype=torch.float16)
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients."):
        scaler.unscale_(torch.optim.SGD([half], lr=0.1))
    out = scaler.scale([torch.ones(1), (torch.ones(2),)])
    assert isinstance(out, list) and isinstance(out[1], tuple) and out[1][0].tolist() == [65536.0, 65536.0]


def test_state_dict_round_trip_and_update_with_new_scale():
    scaler = torch.amp.GradScaler("cpu", init_scale=16.0, growth_interval=7)
    scaler.scale(torch.ones(()))
    scaler.update(4.0)
    assert scaler.get_scale() == 4.0
    sd = scaler.state_dict()
    assert sd == {"scale": 4.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 7,
                  "_growth_tracker": 0}
    other = torch.amp.GradScaler("cpu")
    other.load_state_dict(sd)
    assert other.get_scale() == 4.0 and other.get_growth_interval() == 7
    with pytest.raises(RuntimeError, match="The source state dict is empty"):
        torch.amp.GradScaler("cpu").load_state_dict({})
    copy = pickle.loads(pickle.dumps(scaler))
    assert copy.get_scale() == 4.0


def test_disabled_scaler_is_a_pass_through():
    model, x, y = _model_and_data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler(enabled=False)
    loss = torch.nn.functional.mse_loss(model(x), y)
    assert scaler.scale(loss) is loss
    loss.backward()
    before = model.weight.detach().clone()
    scaler.unscale_(opt)
    scaler.step(opt)
    scaler.update()
    assert not torch.equal(before, model.weight)  # the optimizer stepped
    assert scaler.get_scale() == 1.0 and scaler.state_dict() == {} and not scaler.is_enabled()
    scaler.load_state_dict({})  # no-op when disabled


def test_cuda_scaler_without_cuda_disables_itself_as_pytorch():
    with pytest.warns(UserWarning, match=r"torch.cuda.amp.GradScaler is enabled, but CUDA is not available.  "
                                         r"Disabling."):
        assert not torch.amp.GradScaler().is_enabled()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        s = torch.cuda.amp.GradScaler(enabled=False)
    assert [str(w.message) for w in rec] == [
        "`torch.cuda.amp.GradScaler(args...)` is deprecated. Please use `torch.amp.GradScaler('cuda', args...)` "
        "instead."]
    assert not s.is_enabled()
    with pytest.warns(FutureWarning, match=r"`torch.cpu.amp.GradScaler\(args...\)` is deprecated"):
        assert torch.cpu.amp.GradScaler().is_enabled()
