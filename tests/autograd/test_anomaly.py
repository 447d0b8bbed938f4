"""detect_anomaly: NaN in backward names the forward op and shows where it was created."""
import pytest

import disttorch as torch


class NanGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1

    @staticmethod
    def backward(ctx, g):
        return g * float("nan")


def make_bad_output(x):
    return NanGrad.apply(x)  # this line must appear in the reported traceback


def test_nan_in_backward_names_op_and_forward_traceback():
    x = torch.ones(2, requires_grad=True)
    with pytest.warns(UserWarning, match="Anomaly Detection has been enabled"):
        ctx = torch.autograd.detect_anomaly()
    with ctx:
        y = make_bad_output(x).sum()
        with pytest.raises(RuntimeError) as info:
            y.backward()
    msg = str(info.value)
    assert "NanGradBackward" in msg and "returned nan values in its 0th output" in msg
    assert "make_bad_output" in msg and "test_anomaly.py" in msg


def test_without_anomaly_mode_nan_passes_silently():
    x = torch.ones(2, requires_grad=True)
    make_bad_output(x).sum().backward()
    assert x.grad.isnan().all() if hasattr(x.grad, "isnan") else x.grad.numpy().tolist() != [1.0, 1.0]


def test_set_detect_anomaly_switch():
    torch.autograd.set_detect_anomaly(True)
    try:
        assert torch.autograd.is_anomaly_enabled()
    finally:
        torch.autograd.set_detect_anomaly(False)
    assert not torch.autograd.is_anomaly_enabled()
