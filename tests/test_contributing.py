"""CONTRIBUTING.md's "Adding an op" example is real code: run it, then check the op it defines."""
import re
from pathlib import Path

import numpy as np

import disttorch as torch

DOC = Path(__file__).resolve().parent.parent / "CONTRIBUTING.md"


def _example() -> str:
    section = DOC.read_text().split("## Adding an op", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "CONTRIBUTING.md lost its 'Adding an op' example"
    return blocks[0]


def test_adding_an_op_example_runs_and_its_op_is_right():
    code = _example()
    assert 15 <= len(code.strip().splitlines()) <= 30
    ns: dict = {}
    exec(compile(code, str(DOC), "exec"), ns)  # the example's own gradcheck/gradgradcheck asserts run here
    softsign = ns["softsign"]
    v = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    x = torch.tensor(v, requires_grad=True)
    y = softsign(x)
    np.testing.assert_allclose(y.detach().numpy(), v / (1 + np.abs(v)))
    assert y.grad_fn.name() == "SoftsignBackward0"
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1 / (1 + np.abs(v)) ** 2)
    out = torch.empty(5, dtype=torch.float64)
    assert softsign(torch.tensor(v), out=out) is out
