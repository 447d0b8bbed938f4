"""RMSprop, as ``torch.optim.RMSprop``."""
from __future__ import annotations

from .. import _internals as E
from ._common import bump_step, check_options, new_scalar, new_state_like, restore_group_defaults
from ._functional_extra import rmsprop_update
from .optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop``.

    Per parameter with gradient ``g``: ``g = -g`` if ``maximize``; ``g += weight_decay * p``;
    ``v = alpha * v + (1 - alpha) * g * g``; centered: ``m = lerp(m, g, 1 - alpha)`` and
    ``avg = sqrt(v - m * m) + eps``, else ``avg = sqrt(v) + eps``; with momentum
    ``buf = momentum * buf + g / avg`` and ``p -= lr * buf``, else ``p -= lr * g / avg``. The state
    is ``step``, ``square_avg`` and, when used, ``momentum_buffer`` and ``grad_avg``.

    Args:
        params: tensors or param-group dicts to optimize.
        lr: learning rate (default 1e-2).
        alpha: smoothing constant (default 0.99).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: L2 penalty (default 0).
        momentum: momentum factor (default 0).
        centered: normalize by an estimate of the gradient's variance.
        maximize: maximize the objective instead of minimizing it.
        capturable, foreach: accepted for compatibility.
        differentiable: not supported (the update runs on raw arrays, outside autograd).

    Example:
        >>> opt = disttorch.optim.RMSprop(model.parameters(), lr=1e-2, momentum=0.9)
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0,
                 momentum: float = 0, centered: bool = False, capturable: bool = False, foreach=None,
                 maximize: bool = False, differentiable: bool = False) -> None:
        check_options("RMSprop", lr, eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha,
                      differentiable=differentiable)
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered, weight_decay=weight_decay,
                        capturable=capturable, foreach=foreach, maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        restore_group_defaults(self, momentum=0, centered=False, foreach=None,
                               maximize=False, differentiable=False, capturable=False)

    def step(self, closure=None):
        """One RMSprop step over every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._closure_loss(closure)
        state = self.state
        for group in self.param_groups:
            lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
            weight_decay, momentum = float(group["weight_decay"]), float(group["momentum"])
            centered, maximize = group["centered"], group["maximize"]
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                st = state[p]
                if not st:
                    st["step"] = new_scalar()
                    st["square_avg"] = new_state_like(p)
                bump_step(st["step"])
                buf = gavg = None
                if momentum > 0:
                    buf = st.get("momentum_buffer")
                    if buf is None:  # a new state, or momentum switched on after the state was made
                        buf = st["momentum_buffer"] = new_state_like(p)
                    buf = E.array(buf)
                if centered:
                    gavg = st.get("grad_avg")
                    if gavg is None:
                        gavg = st["grad_avg"] = new_state_like(p)
                    gavg = E.array(gavg)
                rmsprop_update(E.array_module(p), E.array(p), E.array(g), E.array(st["square_avg"]), gavg, buf, lr,
                               alpha, eps, weight_decay, momentum, maximize)
                E.bump_version(p)
        return loss
