"""Small helpers shared by the optimizer classes: option checks and the float32 ``step`` counter."""
from __future__ import annotations

import numpy as np

from .. import _internals as E
from .. import _tensor as T

__all__ = ["check_options", "new_scalar", "new_state_like", "bump_step", "tensorize_scalars",
           "restore_group_defaults"]

# Option names whose message PyTorch words differently from "Invalid <name> value: <value>".
_WORDS = {"eps": "epsilon"}


def check_options(name: str, lr, *, differentiable: bool = False, fused=None, foreach=None, **options) -> None:
    """PyTorch's checks of an optimizer's constructor arguments, in the order the options are given.

    ``lr`` must be a non-negative number (or a 1-element tensor): ``Invalid learning rate: {lr}``.
    ``betas`` must lie in [0, 1): ``Invalid beta parameter at index {i}: {beta}``; ``rho`` in [0, 1]:
    ``Invalid rho value: {rho}``; every other option must be non-negative: ``Invalid {option} value: {value}``
    (``eps`` is worded ``epsilon``). ``fused`` excludes ``differentiable`` and ``foreach`` (RuntimeError, as
    PyTorch), and ``differentiable=True`` is refused because the updates run on raw arrays, outside autograd.

    Args:
        name: the optimizer's class name (for the ``differentiable`` error).
        lr: the learning rate.
        differentiable, fused, foreach: the constructor's flags of those names.
        **options: the numeric options to check, as keyword arguments in PyTorch's checking order.

    Raises:
        ValueError: an option out of its range.
        RuntimeError: ``fused`` together with ``differentiable`` or ``foreach``.
        NotImplementedError: ``differentiable=True``.

    Example:
        >>> check_options("Adam", lr, eps=eps, betas=betas, weight_decay=weight_decay)
    """
    if isinstance(lr, T.Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    for key, value in options.items():
        if key == "betas":
            for i, beta in enumerate(value):
                if not 0.0 <= beta < 1.0:
                    raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        elif key == "rho":
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Invalid rho value: {value}")
        elif not 0.0 <= value:
            raise ValueError(f"Invalid {_WORDS.get(key, key)} value: {value}")
    if fused:
        if differentiable:
            raise RuntimeError("`fused` does not support `differentiable`")
        if foreach:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
    if differentiable:
        raise NotImplementedError(f"{name}(differentiable=True) is not supported by disttorch: the update runs in "
                                  "place on raw arrays, outside autograd")


def new_scalar(value: float = 0.0) -> T.Tensor:
    """A 0-d float32 tensor (PyTorch keeps ``step`` and NAdam's ``mu_product`` as these on the CPU)."""
    return E.wrap(np.array(value, np.float32))


def new_state_like(p: T.Tensor) -> T.Tensor:
    """A zero-filled state tensor (``exp_avg``, ``square_avg``, ...) with ``p``'s shape, dtype and device."""
    return E.wrap(E.array_module(p).zeros_like(E.array(p)))


def bump_step(step: T.Tensor) -> float:
    """``step += 1`` on a 0-d float32 counter; returns the new count as a Python float."""
    arr = E.array(step)
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
