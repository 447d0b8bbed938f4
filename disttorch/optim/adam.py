"""Adam (and, with decoupled weight decay, AdamW's rule), as ``torch.optim.Adam``."""
from __future__ import annotations

import numpy as np

from .. import _compiled as C
from .. import _internals as E
from .. import _parallel as P
from ._common import bump_step, check_options, new_scalar, new_state_like, tensorize_scalars
from ._functional import adam_fused_launcher, adam_multi_tensor, adam_update, run_small
from .optimizer import Optimizer

__all__ = ["Adam"]


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam``.

    Per parameter with gradient ``g`` at step ``t``: ``g = -g`` if ``maximize``; weight decay
    (``g += wd * p``, or ``p *= 1 - lr * wd`` when ``decoupled_weight_decay``);
    ``m = lerp(m, g, 1 - beta1)``; ``v = beta2 * v + (1 - beta2) * g * g`` (AMSGrad keeps the
    running max of ``v``); ``p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``.
    The state of each parameter is ``step`` (a 0-d float32 tensor), ``exp_avg``, ``exp_avg_sq`` and,
    with AMSGrad, ``max_exp_avg_sq``.

    Args:
        params: tensors or param-group dicts to optimize.
        lr: learning rate (default 1e-3).
        betas: coefficients of the running averages of the gradient and its square.
        eps: added to the denominator for numerical stability.
        weight_decay: L2 penalty (default 0).
        amsgrad: use the AMSGrad variant.
        maximize: maximize the objective instead of minimizing it.
        decoupled_weight_decay: apply weight decay to the parameter directly (AdamW).
        foreach, fused, capturable: accepted for compatibility; the update is always a fused, chunked one. On a
            CUDA device (float32/float16 parameters, amsgrad and capturable off) each param group's parameters
            of one dtype are updated by one multi-tensor kernel launch (kernels/adam.cu).
        differentiable: not supported (the update runs on raw arrays, outside autograd).

    Example:
        >>> opt = disttorch.optim.Adam(model.parameters(), lr=1e-3)
        >>> opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, foreach=None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False, fused=None,
                 decoupled_weight_decay: bool = False) -> None:
        check_options(type(self).__name__, lr, eps=eps, betas=betas, weight_decay=weight_decay,
                      differentiable=differentiable, fused=fused, foreach=foreach)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                        foreach=foreach, capturable=capturable, differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("capturable", False)
            group.setdefault("differentiable", False)
            group.setdefault("decoupled_weight_decay", False)
            group.setdefault("fused", None)
        tensorize_scalars(self)

    def step(self, closure=None):
        """One Adam step over every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._closure_loss(closure)
        state = self.state
        for group in self.param_groups:
            lr = float(group["lr"])
            beta1, beta2 = group["betas"]
            beta1, beta2 = float(beta1), float(beta2)
            eps = float(group["eps"])
            weight_decay = float(group["weight_decay"])
            amsgrad, maximize = group["amsgrad"], group["maximize"]
            decoupled = group["decoupled_weight_decay"]
            small = []  # NumPy parameters below the pool's threshold: updated together at the end of the group
            fused: dict = {}  # (dtype, step) -> (launch, [params], [grads], [exp_avgs], [exp_avg_sqs]): one launch each
            capturable = group.get("capturable", False)
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                st = state[p]
                if not st:
                    _init_state(st, p, amsgrad)
                step = bump_step(st["step"])
                vmax = None
                if amsgrad:
                    vmax = st.get("max_exp_avg_sq")
                    if vmax is None:  # amsgrad switched on after the state was made
                        vmax = st["max_exp_avg_sq"] = new_state_like(p)
                    vmax = E.array(vmax)
                args = (E.array_module(p), E.array(p), E.array(g), E.array(st["exp_avg"]), E.array(st["exp_avg_sq"]),
                        vmax, step, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled)
                run = adam_fused_launcher(*args[:5], amsgrad, capturable)
                if run is not None:
                    lists = fused.setdefault((args[1].dtype, step), (run, [], [], [], []))
                    for lst, a in zip(lists[1:], args[1:5]):
                        lst.append(a)
                elif args[1].size < P.MIN_SIZE and args[0] is np:
                    small.append((args[1].size, args))
                else:
                    adam_update(*args)
                E.bump_version(p)
            # compiled updates (one GIL-free call each) are worth splitting over the pool from fewer elements
            run_small(adam_update, small, C.SPLIT_MIN if C.loaded("adam") else 0)
            for (_, step), (run, *lists) in fused.items():
                adam_multi_tensor(run, *lists, step, lr, beta1, beta2, eps, weight_decay, maximize, decoupled)
        return loss


def _init_state(st: dict, p, amsgrad: bool) -> None:
    st["step"] = new_scalar()
    st["exp_avg"] = new_state_like(p)
    st["exp_avg_sq"] = new_state_like(p)
    if amsgrad:
        st["max_exp_avg_sq"] = new_state_like(p)
