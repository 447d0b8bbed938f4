"""grad_fn names match PyTorch's (they show in reprs and users match on them in hooks and debugging)."""
import pytest

import disttorch as torch

# Names as PyTorch 2.x reports them for the same expressions.
CASES = {
    "x + y": ("AddBackward0", lambda x, y: x + y),
    "x * y": ("MulBackward0", lambda x, y: x * y),
    "x / y": ("DivBackward0", lambda x, y: x / y),
    "x - y": ("SubBackward0", lambda x, y: x - y),
    "x @ y.t()": ("MmBackward0", lambda x, y: x @ y.t()),
    "x.t()": ("TBackward0", lambda x, y: x.t()),
    "x.transpose(0, 1)": ("TransposeBackward0", lambda x, y: x.transpose(0, 1)),
    "x.unsqueeze(0)": ("UnsqueezeBackward0", lambda x, y: x.unsqueeze(0)),
    "x.reshape(6)": ("ViewBackward0", lambda x, y: x.reshape(6)),
    "x.sum()": ("SumBackward0", lambda x, y: x.sum()),
    "x.sum(0)": ("SumBackward1", lambda x, y: x.sum(0)),
    "x.mean()": ("MeanBackward0", lambda x, y: x.mean()),
    "x.mean(1)": ("MeanBackward1", lambda x, y: x.mean(1)),
    "x.exp()": ("ExpBackward0", lambda x, y: x.exp()),
    "x.relu()": ("ReluBackward0", lambda x, y: x.relu()),
    "x.clone()": ("CloneBackward0", lambda x, y: x.clone()),
    "-x": ("NegBackward0", lambda x, y: -x),
}


@pytest.mark.parametrize("expr", sorted(CASES))
def test_grad_fn_name_matches_pytorch(expr):
    name, fn = CASES[expr]
    x = torch.ones(2, 3, requires_grad=True)
    y = torch.ones(2, 3, requires_grad=True)
    assert fn(x, y).grad_fn.name() == name
