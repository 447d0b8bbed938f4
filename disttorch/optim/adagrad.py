"""Adagrad, as ``torch.optim.Adagrad``."""
from __future__ import annotations

from .. import _internals as E
from ._common import bump_step, check_options, new_scalar, restore_group_defaults
from ._functional_extra import adagrad_update
from .optimizer import Optimizer

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad, as ``torch.optim.Adagrad``.

    Per parameter with gradient ``g`` at step ``t``: ``g = -g`` if ``maximize``;
    ``g += weight_decay * p``; ``sum += g * g``;
    ``p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)``. As in PyTorch the state
    (``step`` and ``sum``, filled with ``initial_accumulator_value``) is made by the constructor.

    Args:
        params: tensors or param-group dicts to optimize.
        lr: learning rate (default 1e-2).
        lr_decay: learning rate decay (default 0).
        weight_decay: L2 penalty (default 0).
        initial_accumulator_value: initial value of the sum of squared gradients (default 0).
        eps: added to the denominator for numerical stability (default 1e-10).
        maximize: maximize the objective instead of minimizing it.
        foreach, fused: accepted for compatibility.
        differentiable: not supported (the update runs on raw arrays, outside autograd).

    Example:
        >>> opt = disttorch.optim.Adagrad(model.parameters(), lr=0.1)
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, foreach=None, *, maximize: bool = False,
                 differentiable: bool = False, fused=None) -> None:
        check_options("Adagrad", lr, lr_decay=lr_decay, weight_decay=weight_decay,
                      initial_accumulator_value=initial_accumulator_value, eps=eps)
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)
        # PyTorch checks the flags after the param groups exist (an empty parameter list fails first).
        check_options("Adagrad", lr, differentiable=differentiable, fused=fused, foreach=foreach)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(self.state[p], p, initial_accumulator_value)

    @staticmethod
    def _init_state(st: dict, p, value: float) -> None:
        st["step"] = new_scalar()
        # a complex parameter's accumulator starts at value + value*j (both halves of its real view)
        data = E.array(p)
        fill = complex(value, value) if data.dtype.kind == "c" else value
        st["sum"] = E.wrap(E.array_module(p).full_like(data, fill))

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        restore_group_defaults(self, foreach=None, maximize=False, differentiable=False, fused=None)

    def share_memory(self) -> None:
        """Move each parameter's accumulated squared-gradient sum to shared memory (Hogwild with Adagrad)."""
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["sum"].share_memory_()

    def step(self, closure=None):
        """One Adagrad step over every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._closure_loss(closure)
        state = self.state
        for group in self.param_groups:
            lr, lr_decay, eps = float(group["lr"]), float(group["lr_decay"]), float(group["eps"])
            weight_decay, maximize = float(group["weight_decay"]), group["maximize"]
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                st = state[p]
                if not st:  # a parameter added with add_param_group
                    self._init_state(st, p, float(self.defaults["initial_accumulator_value"]))
                step = bump_step(st["step"])
                adagrad_update(E.array_module(p), E.array(p), E.array(g), E.array(st["sum"]), step, lr, lr_decay,
                               weight_decay, eps, maximize)
                E.bump_version(p)
        return loss
