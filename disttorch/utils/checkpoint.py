"""Activation checkpointing (`disttorch.utils.checkpoint`), as `torch.utils.checkpoint`.

``checkpoint(fn, *args)`` runs ``fn`` keeping none of the tensors its ops save for backward; when
backward first needs one, ``fn`` is run again on the same inputs (with the random state it saw the
first time) and the recomputed tensors are used. This is PyTorch's non-reentrant variant, built on
``saved_tensors_hooks``: gradients reach parameters used inside ``fn`` even when no input requires
grad, and ``disttorch.autograd.grad`` works through it. ``use_reentrant=True`` is accepted and takes the
same path (documented in docs/differences.md).
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

from .. import _tensor as T
from ..autograd.grad_mode import enable_grad, is_grad_enabled
from ..autograd.graph import saved_tensors_hooks
from ..ops.random import default_generator

__all__ = ["checkpoint", "checkpoint_sequential"]


class _Recompute:
    """Holds the inputs and RNG state of one checkpointed call and, after the first unpack, its saved tensors."""

    def __init__(self, fn, args, kwargs, rng_state) -> None:
        self.fn, self.args, self.kwargs, self.rng_state = fn, args, kwargs, rng_state
        self.count = 0
        self.saved = None

    def pack(self, _tensor) -> int:
        idx = self.count
        self.count += 1
        return idx

    def unpack(self, idx: int) -> T.Tensor:
        if self.saved is None:
            self._recompute()
        if idx >= len(self.saved):
            raise RuntimeError("torch.utils.checkpoint: the recomputed forward saved fewer tensors "
                               f"({len(self.saved)}) than the original one ({self.count}); the checkpointed "
                               "function must be deterministic in which ops it runs")
        return self.saved[idx]

    def _recompute(self) -> None:
        saved = []

        def keep(t):
            saved.append(t)
            return t
        args = [a.detach().requires_grad_(a.requires_grad) if isinstance(a, T.Tensor) else a for a in self.args]
        state = default_generator.get_state()
        try:
            if self.rng_state is not None:
                default_generator.set_state(self.rng_state)
            with enable_grad(), saved_tensors_hooks(keep, lambda t: t):
                self.fn(*args, **self.kwargs)
        finally:
            default_generator.set_state(state)
        self.saved = saved
        self.fn = self.args = self.kwargs = None  # recomputed once: drop the references


def checkpoint(function: Callable, *args, use_reentrant: bool | None = None, context_fn=None,
               determinism_check: str = "default", debug: bool = False, preserve_rng_state: bool = True,
               **kwargs) -> Any:
    """Run ``function(*args, **kwargs)`` without keeping its activations; recompute them in backward.

    Example:
        >>> out = checkpoint(block, x, use_reentrant=False)
        >>> out.sum().backward()  # block's forward runs a second time here
    """
    if context_fn is not None and context_fn is not _noop_context:
        raise NotImplementedError("checkpoint: context_fn is not supported")
    if use_reentrant and kwargs:
        raise ValueError("Unexpected keyword arguments: " + ",".join(kwargs))
    if not is_grad_enabled():
        return function(*args, **kwargs)
    rec = _Recompute(function, args, kwargs, default_generator.get_state() if preserve_rng_state else None)
    with saved_tensors_hooks(rec.pack, rec.unpack):
        out = function(*args, **kwargs)
    if use_reentrant and not any(isinstance(a, T.Tensor) and a.requires_grad for a in args):
        warnings.warn("None of the inputs have requires_grad=True. Gradients will be None", stacklevel=2)
    return out


def _noop_context():
    return None


def checkpoint_sequential(functions, segments: int, input, use_reentrant: bool | None = None, **kwargs):
    """Split a Sequential (or list of modules) into ``segments`` chunks and checkpoint all but the last."""
    if isinstance(functions, (list, tuple)):
        funcs = list(functions)
    else:
        funcs = list(functions.children())
    if segments <= 0:
        raise ValueError(f"checkpoint_sequential: segments must be positive, got {segments}")
    size = max(len(funcs) // segments, 1)

    def run(start, end):
        def forward(x):
            for f in funcs[start:end + 1]:
                x = f(x)
            return x
        return forward
    end = -1
    for start in range(0, size * (segments - 1), size):
        end = start + size - 1
        input = checkpoint(run(start, end), input, use_reentrant=use_reentrant, **kwargs)
    return run(end + 1, len(funcs) - 1)(input)
