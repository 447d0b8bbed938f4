"""NAdam (Adam with Nesterov momentum), as ``torch.optim.NAdam``."""
from __future__ import annotations

from .. import _internals as E
from ._common import bump_step, check_options, new_scalar, new_state_like, restore_group_defaults
from ._functional_extra import nadam_update
from .optimizer import Optimizer

__all__ = ["NAdam"]


class NAdam(Optimizer):
    """NAdam, as ``torch.optim.NAdam``.

    Per parameter with gradient ``g`` at step ``t``: ``g = -g`` if ``maximize``; weight decay
    (``g += wd * p``, or ``p *= 1 - lr * wd`` when ``decoupled_weight_decay``);
    ``mu_t = beta1 * (1 - 0.5 * 0.96**(t * momentum_decay))``; ``m = lerp(m, g, 1 - beta1)``;
    ``v = beta2 * v + (1 - beta2) * g * g``; with ``denom = sqrt(v / (1 - beta2**t)) + eps``:
    ``p -= lr * (1 - mu_t) / (1 - prod mu_1..t) * g / denom + lr * mu_{t+1} / (1 - prod mu_1..t+1) * m / denom``.
    The state is ``step``, ``mu_product`` (both 0-d float32 tensors), ``exp_avg`` and ``exp_avg_sq``.

    Args:
        params: tensors or param-group dicts to optimize.
        lr: learning rate (default 2e-3).
        betas: coefficients of the running averages of the gradient and its square.
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: weight decay (default 0).
        momentum_decay: momentum decay (default 4e-3).
        decoupled_weight_decay: apply weight decay to the parameter directly (NAdamW).
        maximize: maximize the objective instead of minimizing it.
        foreach, capturable: accepted for compatibility.
        differentiable: not supported (the update runs on raw arrays, outside autograd).

    Example:
        >>> opt = disttorch.optim.NAdam(model.parameters(), lr=2e-3)
    """

    def __init__(self, params, lr: float = 2e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False, *,
                 foreach=None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False) -> None:
        check_options("NAdam", lr, eps=eps, betas=betas, weight_decay=weight_decay, momentum_decay=momentum_decay,
                      differentiable=differentiable)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        restore_group_defaults(self, ("step", "mu_product"), maximize=False, foreach=None,
                               capturable=False, differentiable=False, decoupled_weight_decay=False)

    def step(self, closure=None):
        """One NAdam step over every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._closure_loss(closure)
        state = self.state
        for group in self.param_groups:
            lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
            beta1, beta2 = (float(b) for b in group["betas"])
            momentum_decay = float(group["momentum_decay"])
            decoupled, maximize = group["decoupled_weight_decay"], group["maximize"]
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                st = state[p]
                if not st:
                    st["step"] = new_scalar()
                    st["mu_product"] = new_scalar(1.0)
                    st["exp_avg"] = new_state_like(p)
                    st["exp_avg_sq"] = new_state_like(p)
                step = bump_step(st["step"])
                mu_product = E.array(st["mu_product"])
                new = nadam_update(E.array_module(p), E.array(p), E.array(g), E.array(st["exp_avg"]),
                                   E.array(st["exp_avg_sq"]), step, float(mu_product), lr, beta1, beta2, eps,
                                   weight_decay, momentum_decay, decoupled, maximize)
                mu_product.fill(new)
                E.bump_version(p)
        return loss
