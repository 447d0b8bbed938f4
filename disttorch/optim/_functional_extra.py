"""Update rules of RMSprop, Adagrad, Adadelta, Adamax, NAdam and RAdam, over raw arrays of any array module.

They follow ``_functional``'s conventions: each rule updates ``param`` and its state arrays in place
through ``_apply`` (chunked in cache on NumPy, float32 scratch for float16/bfloat16, whole arrays
elsewhere), the gradient is only read, complex parameters are updated as their real views, and the
operation order is that of PyTorch's single-tensor CPU implementations (``lerp``'s two branches,
``addcmul``/``addcdiv`` as ``self + (value * a) * b`` and ``self + (value * a) / b``, ``float / tensor``
as ``tensor.reciprocal() * float``). Results agree with PyTorch 2.13's to about one ulp per step
(ATen's vectorised kernels contract some multiply-adds into FMAs, which NumPy does not).

Every kernel gets two scratch arrays ``t`` and ``u``; the effective gradient (negated for
``maximize``, plus ``weight_decay * param``) lives in ``u`` when it differs from the raw gradient.
"""
from __future__ import annotations

import numpy as np

from ._functional import _apply, _as_real

__all__ = ["rmsprop_update", "adagrad_update", "adadelta_update", "adamax_update", "nadam_update", "radam_update"]


def _effective_grad(xp, p, g, u, t, l2, maximize):
    """``-g`` if ``maximize``, then ``+ l2 * p`` (PyTorch's ``grad.add(param, alpha=weight_decay)``), into ``u``."""
    if maximize:
        xp.negative(g, out=u)
        g = u
    if l2:
        xp.multiply(p, l2, out=t)
        xp.add(g, t, out=u)
        g = u
    return g


def _lerp(xp, a, b, w, t) -> None:
    """``a.lerp_(b, w)`` with PyTorch's two branches (``t`` is scratch)."""
    xp.subtract(b, a, out=t)
    if w < 0.5:
        xp.multiply(t, w, out=t)
        xp.add(a, t, out=a)
    else:
        xp.multiply(t, 1 - w, out=t)
        xp.subtract(b, t, out=a)


def _ema_sq(xp, v, g, beta, t) -> None:
    """``v.mul_(beta).addcmul_(g, g, value=1 - beta)``."""
    xp.multiply(v, beta, out=v)
    xp.multiply(g, 1 - beta, out=t)
    xp.multiply(t, g, out=t)
    xp.add(v, t, out=v)


def _real(arrays: tuple, param) -> tuple:
    return tuple(_as_real(a) for a in arrays) if param.dtype.kind == "c" else arrays


# ---- RMSprop -------------------------------------------------------------------------------------
def _rmsprop_kernel(xp, p, g, sq, gavg, buf, t, u, alpha, eps, l2, momentum, neg_lr, maximize):
    g = _effective_grad(xp, p, g, u, t, l2, maximize)
    _ema_sq(xp, sq, g, alpha, t)
    if gavg is not None:  # centered: avg = sqrt(square_avg - grad_avg**2)
        _lerp(xp, gavg, g, 1 - alpha, t)
        xp.negative(gavg, out=t)
        xp.multiply(t, gavg, out=t)
        xp.add(sq, t, out=t)
        xp.sqrt(t, out=t)
    else:
        xp.sqrt(sq, out=t)
    xp.add(t, eps, out=t)
    if buf is not None:  # buf.mul_(momentum).addcdiv_(grad, avg); param.add_(buf, alpha=-lr)
        xp.divide(g, t, out=t)
        xp.multiply(buf, momentum, out=buf)
        xp.add(buf, t, out=buf)
        xp.multiply(buf, neg_lr, out=t)
        xp.add(p, t, out=p)
    else:  # param.addcdiv_(grad, avg, value=-lr)
        xp.multiply(g, neg_lr, out=u)
        xp.divide(u, t, out=u)
        xp.add(p, u, out=p)


def rmsprop_update(xp, param, grad, square_avg, grad_avg, momentum_buffer, lr: float, alpha: float, eps: float,
                   weight_decay: float, momentum: float, maximize: bool) -> None:
    """One RMSprop step for one parameter, in place (PyTorch's ``torch.optim.RMSprop`` formulas).

    Args:
        xp: the array module of the arrays.
        param, grad, square_avg: arrays of one shape; ``grad`` is only read.
        grad_avg: the running mean of the gradient when ``centered``, else ``None``.
        momentum_buffer: the momentum buffer when ``momentum > 0``, else ``None``.
        lr, alpha, eps, weight_decay, momentum, maximize: the group's options.
    """
    arrays = _real((param, grad, square_avg, grad_avg, momentum_buffer if momentum > 0 else None), param)
    _apply(xp, _rmsprop_kernel, arrays, (alpha, eps, weight_decay if weight_decay != 0 else None, momentum, -lr,
                                         maximize))


# ---- Adagrad -------------------------------------------------------------------------------------
def _adagrad_kernel(xp, p, g, s, t, u, l2, eps, neg_clr, maximize):
    g = _effective_grad(xp, p, g, u, t, l2, maximize)
    xp.multiply(g, g, out=t)  # state_sum.addcmul_(grad, grad, value=1)
    xp.add(s, t, out=s)
    xp.sqrt(s, out=t)
    xp.add(t, eps, out=t)
    xp.multiply(g, neg_clr, out=u)  # param.addcdiv_(grad, std, value=-clr)
    xp.divide(u, t, out=u)
    xp.add(p, u, out=p)


def adagrad_update(xp, param, grad, state_sum, step: float, lr: float, lr_decay: float, weight_decay: float,
                   eps: float, maximize: bool) -> None:
    """One Adagrad step for one parameter, in place (PyTorch's ``torch.optim.Adagrad`` formulas).

    ``step`` is the count after this step's increment; the step size is
    ``lr / (1 + (step - 1) * lr_decay)``.
    """
    clr = lr / (1 + (step - 1) * lr_decay)
    _apply(xp, _adagrad_kernel, _real((param, grad, state_sum), param),
           (weight_decay if weight_decay != 0 else None, eps, -clr, maximize))


# ---- Adadelta ------------------------------------------------------------------------------------
def _adadelta_grad(xp, p, g, out, l2, maximize):
    """The effective gradient into ``out`` (``(-g) + l2 * p`` computed as ``l2 * p - g``, bitwise equal)."""
    if l2:
        xp.multiply(p, l2, out=out)
        (xp.subtract(out, g, out=out) if maximize else xp.add(g, out, out=out))
        return out
    if maximize:
        xp.negative(g, out=out)
        return out
    return g


def _adadelta_kernel(xp, p, g, sq, acc, t, u, rho, eps, l2, neg_lr, maximize):
    # Three values are live at once (grad, std, delta) with two scratch arrays: the effective
    # gradient is rebuilt from param and grad (param does not change until the end).
    geff = _adadelta_grad(xp, p, g, t, l2, maximize)
    _ema_sq(xp, sq, geff, rho, u)
    xp.add(sq, eps, out=t)  # std = square_avg.add(eps).sqrt_()
    xp.sqrt(t, out=t)
    xp.add(acc, eps, out=u)  # delta = acc_delta.add(eps).sqrt_().div_(std).mul_(grad)
    xp.sqrt(u, out=u)
    xp.divide(u, t, out=u)
    geff = _adadelta_grad(xp, p, g, t, l2, maximize)
    xp.multiply(u, geff, out=u)
    _ema_sq(xp, acc, u, rho, t)
    xp.multiply(u, neg_lr, out=t)  # param.add_(delta, alpha=-lr)
    xp.add(p, t, out=p)


def adadelta_update(xp, param, grad, square_avg, acc_delta, lr: float, rho: float, eps: float, weight_decay: float,
                    maximize: bool) -> None:
    """One Adadelta step for one parameter, in place (PyTorch's ``torch.optim.Adadelta`` formulas)."""
    _apply(xp, _adadelta_kernel, _real((param, grad, square_avg, acc_delta), param),
           (rho, eps, weight_decay if weight_decay != 0 else None, -lr, maximize))


# ---- Adamax --------------------------------------------------------------------------------------
def _adamax_kernel(xp, p, g, m, inf, t, u, beta1, beta2, eps, l2, neg_clr, maximize):
    g = _effective_grad(xp, p, g, u, t, l2, maximize)
    _lerp(xp, m, g, 1 - beta1, t)
    xp.multiply(inf, beta2, out=inf)  # exp_inf = max(exp_inf * beta2, |grad| + eps)
    xp.abs(g, out=t)
    xp.add(t, eps, out=t)
    xp.maximum(inf, t, out=inf)
    xp.multiply(m, neg_clr, out=t)  # param.addcdiv_(exp_avg, exp_inf, value=-clr)
    xp.divide(t, inf, out=t)
    xp.add(p, t, out=p)


def adamax_update(xp, param, grad, exp_avg, exp_inf, step: float, lr: float, beta1: float, beta2: float, eps: float,
                  weight_decay: float, maximize: bool) -> None:
    """One Adamax step for one parameter, in place (PyTorch's ``torch.optim.Adamax`` formulas)."""
    clr = lr / (1 - beta1 ** step)
    _apply(xp, _adamax_kernel, _real((param, grad, exp_avg, exp_inf), param),
           (beta1, beta2, eps, weight_decay if weight_decay != 0 else None, -clr, maximize))


# ---- NAdam ---------------------------------------------------------------------------------------
def _nadam_kernel(xp, p, g, m, v, t, u, beta1, beta2, eps, l2, decay, bc2, c_grad, c_avg, maximize):
    if decay is not None:  # param.mul_(1 - lr * weight_decay)
        xp.multiply(p, decay, out=p)
    g = _effective_grad(xp, p, g, u, t, l2, maximize)
    _lerp(xp, m, g, 1 - beta1, t)
    _ema_sq(xp, v, g, beta2, t)
    xp.divide(v, bc2, out=t)  # denom = exp_avg_sq.div(bias_correction2).sqrt().add_(eps)
    xp.sqrt(t, out=t)
    xp.add(t, eps, out=t)
    xp.multiply(g, c_grad, out=u)  # param.addcdiv_(grad, denom, value=c_grad)
    xp.divide(u, t, out=u)
    xp.add(p, u, out=p)
    xp.multiply(m, c_avg, out=u)  # param.addcdiv_(exp_avg, denom, value=c_avg)
    xp.divide(u, t, out=u)
    xp.add(p, u, out=p)


def nadam_update(xp, param, grad, exp_avg, exp_avg_sq, step: float, mu_product: float, lr: float, beta1: float,
                 beta2: float, eps: float, weight_decay: float, momentum_decay: float, decoupled_weight_decay: bool,
                 maximize: bool) -> float:
    """One NAdam step for one parameter, in place (PyTorch's ``torch.optim.NAdam`` formulas).

    Args:
        step: the count after this step's increment.
        mu_product: the product of the momentum coefficients of the previous steps.

    Returns:
        ``mu_product * mu_t``, the new product (the caller stores it in its float32 state).
    """
    bias_correction2 = 1 - beta2 ** step
    mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
    mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
    # mu_product is a float32 0-d tensor in PyTorch: mu_product *= mu multiplies in float32
    mu_product = float(np.float32(mu_product) * np.float32(mu))
    mu_product_next = mu_product * mu_next
    c_grad = -lr * (1.0 - mu) / (1.0 - mu_product)
    c_avg = (-lr * mu_next) / (1.0 - mu_product_next)
    decay = l2 = None
    if weight_decay != 0:
        if decoupled_weight_decay:
            decay = 1 - lr * weight_decay
        else:
            l2 = weight_decay
    _apply(xp, _nadam_kernel, _real((param, grad, exp_avg, exp_avg_sq), param),
           (beta1, beta2, eps, l2, decay, bias_correction2, c_grad, c_avg, maximize))
    return mu_product


# ---- RAdam ---------------------------------------------------------------------------------------
def _radam_kernel(xp, p, g, m, v, t, u, beta1, beta2, eps, l2, decay, bc1, lr, bc2_sqrt, rect, maximize):
    if decay is not None:
        xp.multiply(p, decay, out=p)
    g = _effective_grad(xp, p, g, u, t, l2, maximize)
    _lerp(xp, m, g, 1 - beta1, t)
    _ema_sq(xp, v, g, beta2, t)
    xp.divide(m, bc1, out=t)  # bias_corrected_exp_avg * lr [* adaptive_lr * rect]
    xp.multiply(t, lr, out=t)
    if rect is not None:
        xp.sqrt(v, out=u)  # adaptive_lr = bias_correction2 ** 0.5 / (exp_avg_sq.sqrt() + eps)
        xp.add(u, eps, out=u)
        xp.reciprocal(u, out=u)  # float / tensor is tensor.reciprocal() * float in PyTorch
        xp.multiply(u, bc2_sqrt, out=u)
        xp.multiply(t, u, out=t)
        xp.multiply(t, rect, out=t)
    xp.subtract(p, t, out=p)  # param.add_(update, alpha=-1.0)


def radam_update(xp, param, grad, exp_avg, exp_avg_sq, step: float, lr: float, beta1: float, beta2: float,
                 eps: float, weight_decay: float, decoupled_weight_decay: bool, maximize: bool) -> None:
    """One RAdam step for one parameter, in place (PyTorch's ``torch.optim.RAdam`` formulas).

    The adaptive term (with the variance rectification) is used once the approximated SMA length
    ``rho_t`` exceeds 5; before that the step is plain bias-corrected momentum.
    """
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
    rect = None
    if rho_t > 5.0:
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
    decay = l2 = None
    if weight_decay != 0:
        if decoupled_weight_decay:
            decay = 1 - lr * weight_decay
        else:
            l2 = weight_decay
    _apply(xp, _radam_kernel, _real((param, grad, exp_avg, exp_avg_sq), param),
           (beta1, beta2, eps, l2, decay, bias_correction1, lr, bias_correction2 ** 0.5, rect, maximize))
