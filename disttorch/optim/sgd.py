"""Stochastic gradient descent (optionally with momentum), as ``torch.optim.SGD``."""
from __future__ import annotations

from .. import _internals as E
from ._common import check_options
from ._functional import sgd_update
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD``.

    For each parameter with a gradient ``g``: ``g = -g`` if ``maximize``; ``g += weight_decay * p``;
    with momentum, ``buf = g`` on the first step, else ``buf = momentum * buf + (1 - dampening) * g``,
    then ``g = g + momentum * buf`` (nesterov) or ``g = buf``; finally ``p -= lr * g``.

    Args:
        params: tensors or param-group dicts to optimize.
        lr: learning rate (default 1e-3).
        momentum: momentum factor (default 0).
        dampening: dampening for momentum (default 0).
        weight_decay: L2 penalty (default 0).
        nesterov: Nesterov momentum (needs ``momentum > 0`` and zero dampening).
        maximize: maximize the objective instead of minimizing it.
        foreach, fused: accepted for compatibility; the update is always a fused, chunked one.
        differentiable: not supported (the update runs on raw arrays, outside autograd).

    Example:
        >>> opt = disttorch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False, foreach=None,
                 differentiable: bool = False, fused=None) -> None:
        check_options("SGD", lr, momentum=momentum, weight_decay=weight_decay, differentiable=differentiable)
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach, differentiable=differentiable,
                        fused=fused)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("nesterov", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("differentiable", False)
            group.setdefault("fused", False)

    def step(self, closure=None):
        """One SGD step over every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._closure_loss(closure)
        state = self.state
        for group in self.param_groups:
            lr = float(group["lr"])
            momentum = float(group["momentum"])
            dampening = float(group["dampening"])
            weight_decay = float(group["weight_decay"])
            nesterov, maximize = group["nesterov"], group["maximize"]
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                if momentum != 0:
                    st = state[p]
                    buf = st.get("momentum_buffer")
                    new = sgd_update(E.array_module(p), E.array(p), E.array(g), None if buf is None else E.array(buf),
                                     lr, momentum, dampening, weight_decay, nesterov, maximize)
                    if buf is None:
                        st["momentum_buffer"] = E.wrap(new)
                else:
                    sgd_update(E.array_module(p), E.array(p), E.array(g), None, lr, 0.0, dampening, weight_decay,
                               nesterov, maximize)
                E.bump_version(p)
        return loss
