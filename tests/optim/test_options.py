"""Every optimizer checks its constructor options through one place (optim/_common.check_options), with
PyTorch's messages; the expected strings below are PyTorch's wording, typed from its optimizers."""
from __future__ import annotations

import pathlib
import re

import pytest

import disttorch
from disttorch import optim

ALL = [optim.SGD, optim.Adam, optim.AdamW, optim.Adadelta, optim.Adagrad, optim.Adamax, optim.NAdam, optim.RAdam,
       optim.RMSprop, optim.LBFGS]
# optimizer -> the options it checks (besides lr), in PyTorch's checking order
CHECKED = {
    optim.SGD: ["momentum", "weight_decay"],
    optim.Adam: ["eps", "betas", "weight_decay"],
    optim.AdamW: ["eps", "betas", "weight_decay"],
    optim.Adadelta: ["rho", "eps", "weight_decay"],
    optim.Adagrad: ["lr_decay", "weight_decay", "initial_accumulator_value", "eps"],
    optim.Adamax: ["eps", "betas", "weight_decay"],
    optim.NAdam: ["eps", "betas", "weight_decay", "momentum_decay"],
    optim.RAdam: ["eps", "betas", "weight_decay"],
    optim.RMSprop: ["eps", "momentum", "weight_decay", "alpha"],
    optim.LBFGS: [],
}
BAD = {  # option -> (bad value, PyTorch's message)
    "momentum": (-0.5, "Invalid momentum value: -0.5"),
    "weight_decay": (-0.25, "Invalid weight_decay value: -0.25"),
    "eps": (-1e-3, "Invalid epsilon value: -0.001"),
    "lr_decay": (-2, "Invalid lr_decay value: -2"),
    "initial_accumulator_value": (-1, "Invalid initial_accumulator_value value: -1"),
    "alpha": (-0.5, "Invalid alpha value: -0.5"),
    "momentum_decay": (-0.1, "Invalid momentum_decay value: -0.1"),
    "rho": (1.5, "Invalid rho value: 1.5"),
}


def params():
    return [disttorch.zeros(3, requires_grad=True)]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_learning_rate(cls):
    with pytest.raises(ValueError, match=re.escape("Invalid learning rate: -0.01")):
        cls(params(), lr=-0.01)
    with pytest.raises(ValueError, match="Tensor lr must be 1-element"):
        cls(params(), lr=disttorch.tensor([0.1, 0.2]))
    cls(params(), lr=0.0)  # zero is a valid rate


@pytest.mark.parametrize("cls,option", [(c, o) for c in ALL for o in CHECKED[c] if o != "betas"],
                         ids=lambda v: getattr(v, "__name__", v))
def test_option_ranges(cls, option):
    value, message = BAD[option]
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        cls(params(), **{option: value})


@pytest.mark.parametrize("cls", [c for c in ALL if "betas" in CHECKED[c]], ids=lambda c: c.__name__)
def test_betas(cls):
    with pytest.raises(ValueError, match=re.escape("Invalid beta parameter at index 0: 1.0")):
        cls(params(), betas=(1.0, 0.9))
    with pytest.raises(ValueError, match=re.escape("Invalid beta parameter at index 1: -0.1")):
        cls(params(), betas=(0.9, -0.1))


def test_order_follows_pytorch():
    # Two bad options: the first one PyTorch checks is the one reported.
    with pytest.raises(ValueError, match="Invalid epsilon value"):
        optim.Adam(params(), eps=-1.0, weight_decay=-1.0)
    with pytest.raises(ValueError, match="Invalid lr_decay value"):
        optim.Adagrad(params(), eps=-1.0, lr_decay=-1.0)
    with pytest.raises(ValueError, match="Invalid rho value"):
        optim.Adadelta(params(), eps=-1.0, rho=2.0)


@pytest.mark.parametrize("cls", [c for c in ALL if c is not optim.LBFGS], ids=lambda c: c.__name__)
def test_differentiable_is_refused(cls):
    with pytest.raises(NotImplementedError, match=rf"{cls.__name__}\(differentiable=True\) is not supported"):
        cls(params(), differentiable=True)


@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW, optim.Adagrad], ids=lambda c: c.__name__)
def test_fused_flags(cls):
    with pytest.raises(RuntimeError, match="`fused` does not support `differentiable`"):
        cls(params(), fused=True, differentiable=True)
    with pytest.raises(RuntimeError, match=re.escape("`fused` and `foreach` cannot be `True` together.")):
        cls(params(), fused=True, foreach=True)


def test_one_place_writes_the_messages():
    optim_dir = pathlib.Path(optim.__file__).parent
    writers = sorted(p.name for p in optim_dir.glob("*.py") if "Invalid learning rate" in p.read_text())
    assert writers == ["_common.py"]
