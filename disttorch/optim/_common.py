"""Small helpers shared by the optimizer classes: argument checks and the float32 ``step`` counter."""
from __future__ import annotations

import numpy as np

from .. import _tensor as T

__all__ = ["check_lr", "check_nonneg", "no_differentiable", "new_scalar", "bump_step", "tensorize_scalars"]


def check_lr(lr) -> None:
    if isinstance(lr, T.Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")


def check_nonneg(value, what: str) -> None:
    """PyTorch's ``Invalid <what> value: <value>`` ValueError for a negative option."""
    if not 0.0 <= value:
        raise ValueError(f"Invalid {what} value: {value}")


def no_differentiable(name: str, differentiable: bool) -> None:
    if differentiable:
        raise NotImplementedError(f"{name}(differentiable=True) is not supported by disttorch: the update runs in "
                                  "place on raw arrays, outside autograd")


def new_scalar(value: float = 0.0) -> T.Tensor:
    """A 0-d float32 tensor (PyTorch keeps ``step`` and NAdam's ``mu_product`` as these on the CPU)."""
    return T._wrap(np.array(value, np.float32))


def bump_step(step: T.Tensor) -> float:
    """``step += 1`` on a 0-d float32 counter; returns the new count as a Python float."""
    arr = step._data
    arr.fill(float(arr) + 1.0)  # fill() rounds to float32 as the add would, and is much faster
    return float(arr)


def tensorize_scalars(optimizer, keys=("step",)) -> None:
    """Turn plain-number state entries ``keys`` (old checkpoints) into 0-d float32 tensors, as PyTorch does."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            st = optimizer.state.get(p)
            if not st:
                continue
            for key in keys:
                if key in st and not isinstance(st[key], T.Tensor):
                    st[key] = new_scalar(float(st[key]))


def restore_group_defaults(optimizer, scalar_keys=("step",), **defaults) -> None:
    """For ``__setstate__`` of an optimizer pickled by an older version: fill the option keys its param groups
    lack with ``defaults`` and turn the plain-number state entries ``scalar_keys`` into tensors (PyTorch's way)."""
    for group in optimizer.param_groups:
        for key, value in defaults.items():
            group.setdefault(key, value)
    if scalar_keys:
        tensorize_scalars(optimizer, scalar_keys)
