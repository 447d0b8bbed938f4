"""``GradScaler``: dynamic loss scaling, as ``torch.amp.GradScaler``.

``scale(loss)`` multiplies the loss by the scale factor; ``step(optimizer)`` unscales the gradients (unless
``unscale_`` already did), skips ``optimizer.step()`` when any gradient holds an inf or NaN, and
``update()`` halves the scale after a skipped step (``backoff_factor``) or doubles it after
``growth_interval`` clean steps (``growth_factor``). Disabled (``enabled=False``, or ``device="cuda"`` on a
machine without CUDA, which warns as PyTorch does) every method is a pass-through: ``scale`` returns its
argument, ``step`` calls ``optimizer.step()``, ``update`` does nothing.

Example:
    >>> scaler = disttorch.amp.GradScaler("cpu")
    >>> scaler.scale(loss).backward()
    >>> scaler.step(optimizer)
    >>> scaler.update()
"""
from __future__ import annotations

import warnings
from collections import abc, defaultdict
from enum import Enum
from typing import Any, Optional

import numpy as np

from .. import _dtype as D
from .. import _internals as E
from .. import _tensor as T

__all__ = ["OptState", "GradScaler"]


class OptState(Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


def _refresh_per_optimizer_state() -> dict:
    return {"stage": OptState.READY, "found_inf_per_device": {}}


def _cuda_available() -> bool:
    from .. import cuda

    return cuda.is_available()


def _full(value, dtype: D.dtype, device) -> "T.Tensor":
    from ..ops.creation import full

    return full((), value, dtype=dtype, device=device)


def _non_finite_check_and_unscale_(grads: list, found_inf: "T.Tensor", inv_scale: "T.Tensor") -> None:
    """PyTorch's ``_amp_foreach_non_finite_check_and_unscale_``: ``found_inf`` becomes 1 if any gradient holds
    an inf or NaN; every gradient is multiplied by ``inv_scale`` in place (computed in float32 for the half types)."""
    inv = float(inv_scale.item())
    for g in grads:
        a = E.array(g)
        xp = E.array_module(g)
        if not bool(xp.isfinite(a).all()):
            E.array(found_inf)[...] = 1.0
        if a.dtype.itemsize < 4:
            a[...] = (a.astype(np.float32) * np.float32(inv)).astype(a.dtype)
        else:
            xp.multiply(a, a.dtype.type(inv), out=a)
        E.bump_version(g)


def _update_scale_(scale: "T.Tensor", growth_tracker: "T.Tensor", found_inf: "T.Tensor", growth_factor: float,
                   backoff_factor: float, growth_interval: int) -> None:
    """PyTorch's ``_amp_update_scale_`` (in float32): back off on inf/NaN, grow after ``growth_interval`` clean steps."""
    s = np.float32(scale.item())
    if float(found_inf.item()):
        E.array(scale)[...] = s * np.float32(backoff_factor)
        E.array(growth_tracker)[...] = 0
        return
    successful = int(growth_tracker.item()) + 1
    if successful == growth_interval:
        grown = s * np.float32(growth_factor)
        if np.isfinite(grown):
            E.array(scale)[...] = grown
        E.array(growth_tracker)[...] = 0
    else:
        E.array(growth_tracker)[...] = successful


class GradScaler:
    """Dynamic loss scaling for mixed-precision training, as ``torch.amp.GradScaler``.

    Args:
        device: the device type of the gradients (PyTorch's default ``"cuda"``; without CUDA an enabled
            ``"cuda"`` scaler warns and disables itself, as in PyTorch). Use ``"cpu"`` for real scaling on the CPU.
        init_scale: initial scale factor.
        growth_factor: multiplier after ``growth_interval`` consecutive steps without inf/NaN (> 1).
        backoff_factor: multiplier after a step with inf/NaN gradients (< 1).
        growth_interval: clean steps between growths.
        enabled: False makes every method a pass-through.
    """

    def __init__(self, device: str = "cuda", init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True) -> None:
        self._device = device
        self._enabled = enabled
        if self._device == "cuda" and enabled and not _cuda_available():
            warnings.warn("torch.cuda.amp.GradScaler is enabled, but CUDA is not available.  Disabling.", stacklevel=2)
            self._enabled = False
        if self._enabled:
            if growth_factor <= 1.0:
                raise AssertionError("The growth factor must be > 1.0.")
            if backoff_factor >= 1.0:
                raise AssertionError("The backoff factor must be < 1.0.")
            self._init_scale = init_scale
            self._scale: Optional[T.Tensor] = None
            self._growth_factor = growth_factor
            self._backoff_factor = backoff_factor
            self._growth_interval = growth_interval
            self._init_growth_tracker = 0
            self._growth_tracker: Optional[T.Tensor] = None
            self._per_optimizer_states: dict = defaultdict(_refresh_per_optimizer_state)

    def _check_scale_growth_tracker(self, funcname: str):
        fix = "This may indicate your script did not use scaler.scale(loss or outputs) earlier in the iteration."
        if self._scale is None:
            raise AssertionError(f"Attempted {funcname} but _scale is None.  " + fix)
        if self._growth_tracker is None:
            raise AssertionError(f"Attempted {funcname} but _growth_tracker is None.  " + fix)
        return self._scale, self._growth_tracker

    def _lazy_init_scale_growth_tracker(self, dev) -> None:
        self._scale = _full(self._init_scale, D.float32, dev)
        self._growth_tracker = _full(self._init_growth_tracker, D.int32, dev)

    def scale(self, outputs):
        """Multiply ``outputs`` (a tensor, or an iterable of them, nested) by the scale factor."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, T.Tensor):
            if self._scale is None:
                self._lazy_init_scale_growth_tracker(outputs.device)
            return outputs * self._scale.to(device=outputs.device)

        def apply_scale(val):
            if isinstance(val, T.Tensor):
                if self._scale is None:
                    self._lazy_init_scale_growth_tracker(val.device)
                return val * self._scale.to(device=val.device)
            if isinstance(val, abc.Iterable):
                iterable = map(apply_scale, val)
                return type(val)(iterable) if isinstance(val, (list, tuple)) else iterable
            raise ValueError("outputs must be a Tensor or an iterable of Tensors")

        return apply_scale(outputs)

    def _unscale_grads_(self, optimizer, inv_scale: "T.Tensor", found_inf: "T.Tensor", allow_fp16: bool) -> dict:
        per_device: dict = defaultdict(lambda: defaultdict(list))
        for group in optimizer.param_groups:
            for param in group["params"]:
                if not isinstance(param, T.Tensor):
                    raise AssertionError(f"expected param to be torch.Tensor, got {type(param).__name__}")
                if param.grad is None:
                    continue
                if (not allow_fp16) and param.grad.dtype is D.float16:
                    raise ValueError("Attempting to unscale FP16 gradients.")
                per_device[param.grad.device][param.grad.dtype].append(param.grad)
        found = {}
        for dev, per_dtype in per_device.items():
            dev_found = found_inf.to(device=dev, copy=True)
            for grads in per_dtype.values():
                _non_finite_check_and_unscale_(grads, dev_found, inv_scale)
            found[dev] = dev_found
        return found

    def unscale_(self, optimizer) -> None:
        """Divide the gradients of ``optimizer``'s parameters by the scale, in place (at most once per step),
        so they can be clipped or inspected before ``step``."""
        if not self._enabled:
            return
        self._check_scale_growth_tracker("unscale_")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is OptState.UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        # 1/scale in float64, rounded to float32, as PyTorch computes it
        inv_scale = _full(float(np.float32(1.0 / np.float64(self._scale.item()))), D.float32, self._scale.device)
        found_inf = _full(0.0, D.float32, self._scale.device)
        state["found_inf_per_device"] = self._unscale_grads_(optimizer, inv_scale, found_inf, False)
        state["stage"] = OptState.UNSCALED

    def step(self, optimizer, *args: Any, **kwargs: Any):
        """Unscale (if needed) and call ``optimizer.step(*args, **kwargs)`` unless a gradient is inf/NaN.

        Returns what ``optimizer.step`` returned, or None when the step was skipped.
        """
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check_scale_growth_tracker("step")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] is OptState.READY:
            self.unscale_(optimizer)
        if len(state["found_inf_per_device"]) == 0:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        retval = None
        if not sum(float(v.item()) for v in state["found_inf_per_device"].values()):
            retval = optimizer.step(*args, **kwargs)
        state["stage"] = OptState.STEPPED
        return retval

    def update(self, new_scale=None) -> None:
        """Update the scale factor after the iteration's steps (or set it to ``new_scale``, a float or a
        one-element float32 tensor)."""
        if not self._enabled:
            return
        _scale, _growth_tracker = self._check_scale_growth_tracker("update")
        if new_scale is not None:
            if isinstance(new_scale, float):
                E.array(_scale)[...] = new_scale
            else:
                reason = ("new_scale should be a float or a 1-element torch.cuda.FloatTensor or "
                          "torch.FloatTensor with requires_grad=False.")
                if new_scale.device.type != self._device:
                    raise AssertionError(reason)
                if new_scale.numel() != 1:
                    raise AssertionError(reason)
                if new_scale.requires_grad is True:
                    raise AssertionError(reason)
                E.array(_scale)[...] = E.array(new_scale).reshape(())
        else:
            found_infs = [f.to(device=_scale.device) for state in self._per_optimizer_states.values()
                          for f in state["found_inf_per_device"].values()]
            if len(found_infs) == 0:
                raise AssertionError("No inf checks were recorded prior to update.")
            combined = found_infs[0].clone()
            for f in found_infs[1:]:
                E.array(combined)[...] += E.array(f)
            _update_scale_(_scale, _growth_tracker, combined, self._growth_factor, self._backoff_factor,
                           self._growth_interval)
        E.bump_version(_scale)
        self._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)

    def _get_scale_async(self):
        return self._scale

    def get_scale(self) -> float:
        """The current scale factor (1.0 when disabled)."""
        if self._enabled:
            return self._init_scale if self._scale is None else float(self._scale.item())
        return 1.0

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = new_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = new_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = new_interval

    def _get_growth_tracker(self) -> int:
        if self._enabled:
            return self._init_growth_tracker if self._growth_tracker is None else int(self._growth_tracker.item())
        return 0

    def is_enabled(self) -> bool:
        """Whether this scaler scales (False when disabled at construction)."""
        return self._enabled

    def state_dict(self) -> dict:
        """``{"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"}``; ``{}`` when disabled."""
        if self._enabled:
            return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                    "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                    "_growth_tracker": self._get_growth_tracker()}
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what ``state_dict`` returned (a no-op when disabled)."""
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved from a disabled "
                               "instance of GradScaler.")
        self._init_scale = float(state_dict["scale"])
        if self._scale is not None:
            E.array(self._scale)[...] = state_dict["scale"]
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._init_growth_tracker = int(state_dict["_growth_tracker"])
        if self._growth_tracker is not None:
            E.array(self._growth_tracker)[...] = state_dict["_growth_tracker"]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if self._enabled:
            if len(self._per_optimizer_states) != 0:
                raise AssertionError("A GradScaler instance may only be pickled at the beginning of an iteration, "
                                     "or at the end after scaler.update().")
            state["_init_scale"] = self.get_scale()
            state["_init_growth_tracker"] = self._get_growth_tracker()
            state["_scale"] = None
            state["_growth_tracker"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
