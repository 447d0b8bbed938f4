"""RAdam (rectified Adam), as ``torch.optim.RAdam``."""
from __future__ import annotations

from .. import _internals as E
from ._common import bump_step, check_options, new_scalar, new_state_like, restore_group_defaults
from ._functional_extra import radam_update
from .optimizer import Optimizer

__all__ = ["RAdam"]


class RAdam(Optimizer):
    """RAdam, as ``torch.optim.RAdam``.

    Per parameter with gradient ``g`` at step ``t``: ``g = -g`` if ``maximize``; weight decay
    (``g += wd * p``, or ``p *= 1 - lr * wd`` when ``decoupled_weight_decay``);
    ``m = lerp(m, g, 1 - beta1)``; ``v = beta2 * v + (1 - beta2) * g * g``;
    ``rho_inf = 2 / (1 - beta2) - 1``; ``rho_t = rho_inf - 2 t beta2**t / (1 - beta2**t)``; with
    ``m_hat = m / (1 - beta1**t)``: if ``rho_t > 5``, ``p -= lr * m_hat * r_t * sqrt(1 - beta2**t) / (sqrt(v) + eps)``
    with the rectification ``r_t = sqrt((rho_t-4)(rho_t-2) rho_inf / ((rho_inf-4)(rho_inf-2) rho_t))``,
    else ``p -= lr * m_hat``. The state is ``step``, ``exp_avg`` and ``exp_avg_sq``.

    Args:
        params: tensors or param-group dicts to optimize.
        lr: learning rate (default 1e-3).
        betas: coefficients of the running averages of the gradient and its square.
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: weight decay (default 0).
        decoupled_weight_decay: apply weight decay to the parameter directly (RAdamW).
        maximize: maximize the objective instead of minimizing it.
        foreach, capturable: accepted for compatibility.
        differentiable: not supported (the update runs on raw arrays, outside autograd).

    Example:
        >>> opt = disttorch.optim.RAdam(model.parameters(), lr=1e-3)
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, decoupled_weight_decay: bool = False, *, foreach=None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False) -> None:
        check_options("RAdam", lr, eps=eps, betas=betas, weight_decay=weight_decay, differentiable=differentiable)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize, foreach=foreach,
                        capturable=capturable, decoupled_weight_decay=decoupled_weight_decay,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        restore_group_defaults(self, foreach=None, maximize=False, differentiable=False,
                               decoupled_weight_decay=False, capturable=False)

    def step(self, closure=None):
        """One RAdam step over every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._closure_loss(closure)
        state = self.state
        for group in self.param_groups:
            lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
            beta1, beta2 = (float(b) for b in group["betas"])
            decoupled, maximize = group["decoupled_weight_decay"], group["maximize"]
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                st = state[p]
                if not st:
                    st["step"] = new_scalar()
                    st["exp_avg"] = new_state_like(p)
                    st["exp_avg_sq"] = new_state_like(p)
                step = bump_step(st["step"])
                radam_update(E.array_module(p), E.array(p), E.array(g), E.array(st["exp_avg"]),
                             E.array(st["exp_avg_sq"]), step, lr, beta1, beta2, eps, weight_decay, decoupled, maximize)
                E.bump_version(p)
        return loss
