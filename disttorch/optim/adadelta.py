"""Adadelta, as ``torch.optim.Adadelta``."""
from __future__ import annotations

from .. import _internals as E
from ._common import bump_step, check_options, new_scalar, new_state_like, restore_group_defaults
from ._functional_extra import adadelta_update
from .optimizer import Optimizer

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    """Adadelta, as ``torch.optim.Adadelta``.

    Per parameter with gradient ``g``: ``g = -g`` if ``maximize``; ``g += weight_decay * p``;
    ``v = rho * v + (1 - rho) * g * g``; ``delta = sqrt(u + eps) / sqrt(v + eps) * g``;
    ``u = rho * u + (1 - rho) * delta * delta``; ``p -= lr * delta``. The state is ``step``,
    ``square_avg`` (``v``) and ``acc_delta`` (``u``).

    Args:
        params: tensors or param-group dicts to optimize.
        lr: coefficient that scales delta before it is applied (default 1.0).
        rho: coefficient of the running averages (default 0.9).
        eps: added inside the square roots for numerical stability (default 1e-6).
        weight_decay: L2 penalty (default 0).
        maximize: maximize the objective instead of minimizing it.
        foreach, capturable: accepted for compatibility.
        differentiable: not supported (the update runs on raw arrays, outside autograd).

    Example:
        >>> opt = disttorch.optim.Adadelta(model.parameters())
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0,
                 foreach=None, *, capturable: bool = False, maximize: bool = False,
                 differentiable: bool = False) -> None:
        check_options("Adadelta", lr, rho=rho, eps=eps, weight_decay=weight_decay, differentiable=differentiable)
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize, capturable=capturable,
                        foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        restore_group_defaults(self, foreach=None, maximize=False, differentiable=False, capturable=False)

    def step(self, closure=None):
        """One Adadelta step over every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._closure_loss(closure)
        state = self.state
        for group in self.param_groups:
            lr, rho, eps = float(group["lr"]), float(group["rho"]), float(group["eps"])
            weight_decay, maximize = float(group["weight_decay"]), group["maximize"]
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                st = state[p]
                if not st:
                    st["step"] = new_scalar()
                    st["square_avg"] = new_state_like(p)
                    st["acc_delta"] = new_state_like(p)
                bump_step(st["step"])
                adadelta_update(E.array_module(p), E.array(p), E.array(g), E.array(st["square_avg"]),
                                E.array(st["acc_delta"]), lr, rho, eps, weight_decay, maximize)
                E.bump_version(p)
        return loss
