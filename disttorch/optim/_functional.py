"""Pure per-parameter update rules of the optimizers, over raw arrays of any array module.

Each rule updates ``param`` and its state arrays in place and allocates nothing per step on the
NumPy fast path, so the stateful classes in this package, the GPU backend and the parameter-server
shards all share one implementation of PyTorch's formulas (DESIGN rule 4).

How the work is done:

- NumPy float arrays that are C-contiguous and of one dtype are processed in chunks of about
  128 KB: every pass of the rule (Adam has 13) runs on one chunk while it sits in cache, through
  a per-thread scratch buffer, before the next chunk. Whole-array passes would stream every
  operand through memory once per pass.
- float16 and bfloat16 chunks are copied into float32 scratch, updated there and written back, so
  the intermediate values are not rounded to 16 bits.
- Anything else (CuPy arrays, non-contiguous or mixed-dtype arrays) runs the same rule once over
  the whole arrays with ``out=`` into two temporaries.

The operation order follows PyTorch's single-tensor CPU implementations (``lerp`` for the first
moment, ``addcmul``/``addcdiv`` as ``self + (value * a) * b`` and ``self + (value * a) / b``).
"""
from __future__ import annotations

import threading

import numpy as np

from .. import _compiled as C
from .. import _dtype as D
from .. import _parallel as P
from ..ops._helpers import quiet_slow

__all__ = ["adam_update", "adamw_update", "adam_fused_launcher", "adam_multi_tensor", "sgd_update", "run_small"]

# Bytes of one chunk of one operand: five operands plus two scratch buffers stay well inside L2.
_CHUNK_BYTES = 1 << 17
# Split over the intra-op pool, each thread takes chunks this many times larger: fewer NumPy calls, so fewer
# GIL hand-offs between the threads (4 Mi-element Adam, 2 threads: 5.4 ms with 8x chunks, 11.0 ms with 1x,
# 9.0 ms on one thread, in one run). Element-wise rules give the same bits whatever the chunk size.
_PAR_CHUNK_FACTOR = 8
_F32 = np.dtype(np.float32)
_LOW = (np.dtype(np.float16), D.bfloat16.np)


class _Scratch(threading.local):
    def __init__(self) -> None:
        self.bufs = {}


_SCRATCH = _Scratch()


def _scratch(dtype, k: int, n: int) -> list:
    """``k`` per-thread scratch arrays of ``dtype`` with at least ``n`` elements each (reused across calls)."""
    bufs = _SCRATCH.bufs.get(dtype)
    if bufs is None or len(bufs) < k or bufs[0].size < n:
        size = max(n, bufs[0].size if bufs else 0)
        bufs = _SCRATCH.bufs[dtype] = [np.empty(size, dtype) for _ in range(max(k, len(bufs or ())))]
    return bufs


def _fusable(arrays) -> bool:
    """True when the chunked path applies: same-shape, same-dtype, C-contiguous NumPy float arrays."""
    p = arrays[0]
    dt = p.dtype
    if p.__class__ is not np.ndarray or not p.flags.c_contiguous or (dt.kind != "f" and dt not in _LOW):
        return False
    shape = p.shape
    for a in arrays[1:]:
        if a is not None and (a.__class__ is not np.ndarray or a.dtype != dt or a.shape != shape
                              or not a.flags.c_contiguous):
            return False
    return True


def _apply(xp, kernel, arrays: tuple, consts: tuple) -> None:
    """Run ``kernel(xp, *arrays, t, u, *consts)`` over ``arrays`` = (param, grad, *state), in place.

    ``arrays[1]`` (the gradient) is only read; the others are written. ``None`` entries are passed
    through (state the rule does not use).
    """
    quiet_slow(_run, xp, kernel, arrays, consts)  # PyTorch returns inf/nan silently (e.g. eps=0, zero grad)


def _run(xp, kernel, arrays: tuple, consts: tuple) -> None:
    if xp is np and _fusable(arrays):
        _chunked(kernel, arrays, consts)
    else:
        _whole(xp, kernel, arrays, consts)


def _chunked(kernel, arrays, consts) -> None:
    p = arrays[0]
    n = p.size
    dt = p.dtype
    if dt in _LOW:
        if n:
            flat = [None if a is None else a.reshape(-1) for a in arrays]
            if n >= P.MIN_SIZE:  # whole chunks per thread, each with its own scratch: as the serial loop
                P.run_ranges(n, lambda a, b: _chunked_low(kernel, flat, b, consts, a), align=_CHUNK_BYTES // 4)
            else:
                _chunked_low(kernel, flat, n, consts)
        return
    c = max(_CHUNK_BYTES // dt.itemsize, 1)
    if n <= c:  # one chunk: the operands keep their shape, the scratch takes it (the common small case)
        bufs = _SCRATCH.bufs.get(dt)
        if bufs is None or bufs[0].size < c:
            bufs = _scratch(dt, 2, c)
        t, u = bufs[0][:n], bufs[1][:n]
        if p.ndim != 1:
            t, u = t.reshape(p.shape), u.reshape(p.shape)
        kernel(np, *arrays, t, u, *consts)
        return
    flat = [None if a is None else a.reshape(-1) for a in arrays]
    if n >= P.MIN_SIZE:  # chunk-aligned ranges per thread: every element sees the same operations
        cp = c * _PAR_CHUNK_FACTOR
        P.run_ranges(n, lambda a, b: _chunk_range(kernel, flat, a, b, cp, consts), align=cp)
    else:
        _chunk_range(kernel, flat, 0, n, c, consts)


def _chunk_range(kernel, flat, start: int, stop: int, c: int, consts) -> None:
    """The rule over elements ``[start, stop)`` of the flat arrays, ``c`` at a time through this thread's scratch."""
    bufs = _SCRATCH.bufs.get(flat[0].dtype)
    if bufs is None or bufs[0].size < c:
        bufs = _scratch(flat[0].dtype, 2, c)
    t, u = bufs[0], bufs[1]
    for i in range(start, stop, c):
        m = min(c, stop - i)
        j = i + m
        kernel(np, *[None if a is None else a[i:j] for a in flat], t[:m], u[:m], *consts)


def _chunked_low(kernel, flat, n: int, consts, start: int = 0) -> None:
    """float16/bfloat16: each chunk of ``[start, n)`` is widened into float32 scratch, updated, and written back."""
    c = max(_CHUNK_BYTES // 4, 1)
    k = len(flat)
    bufs = _scratch(_F32, k + 2, c)
    copyto = np.copyto
    for i in range(start, n, c):
        m = min(c, n - i)
        j = i + m
        work = []
        for a, b in zip(flat, bufs):
            if a is None:
                work.append(None)
            else:
                w = b[:m]
                copyto(w, a[i:j], casting="unsafe")
                work.append(w)
        kernel(np, *work, bufs[k][:m], bufs[k + 1][:m], *consts)
        for idx in range(k):
            if idx != 1 and flat[idx] is not None:
                copyto(flat[idx][i:j], work[idx], casting="unsafe")


def run_small(update, calls: list, min_total: int = 0) -> None:
    """Run ``update(*args)`` for each ``(size, args)`` of ``calls`` (parameters below the pool's threshold).

    Together they may be worth splitting: from ``min_total`` elements (default the pool's ``MIN_SIZE``),
    contiguous groups of about equal total size run on the intra-op pool. Each update touches only its own
    parameter and state, so the result is bitwise that of running them one by one (scratch buffers are per
    thread).
    """
    total = 0
    for size, _ in calls:
        total += size
    if total < (min_total or P.MIN_SIZE) or len(calls) < 2 or P.threads() < 2:
        for _, args in calls:
            update(*args)
        return
    parts = min(len(calls), P.threads() * P.PIECES_PER_THREAD)
    groups, cur, acc, goal = [], [], 0, total / parts
    for size, args in calls:
        cur.append(args)
        acc += size
        if acc >= goal * (len(groups) + 1) and len(groups) < parts - 1:
            groups.append(cur)
            cur = []
    if cur:
        groups.append(cur)
    P.run_tasks([(lambda g=g: [update(*args) for args in g]) for g in groups])


def _whole(xp, kernel, arrays, consts) -> None:
    p = arrays[0]
    low = p.dtype in _LOW
    work = [None if a is None else a.astype(np.float32) for a in arrays] if low else list(arrays)
    t = xp.empty_like(work[0])
    u = xp.empty_like(work[0])
    kernel(xp, *work, t, u, *consts)
    if low:
        for idx, (a, w) in enumerate(zip(arrays, work)):
            if idx != 1 and a is not None:
                xp.copyto(a, w, casting="unsafe")


def _as_real(a):
    """A real view of a complex array (PyTorch's ``view_as_real``: Adam treats re/im as separate values)."""
    if a is None or a.dtype.kind != "c":
        return a
    real = np.float32 if a.dtype.itemsize == 8 else np.float64
    try:
        return (a if a.ndim else a.reshape(1)).view(real)
    except ValueError:
        raise RuntimeError(f"Adam: complex parameters must have a contiguous last dimension (got strides "
                           f"{a.strides} for shape {a.shape})") from None


# ---- Adam / AdamW --------------------------------------------------------------------------------
def _adam_kernel(xp, p, g, m, v, vmax, t, u, beta1, beta2, eps, l2, decay, neg_step_size, bc2_sqrt, maximize):
    mul, add = xp.multiply, xp.add
    if decay is not None:  # AdamW: param.mul_(1 - lr * weight_decay)
        mul(p, decay, out=p)
    if maximize:
        xp.negative(g, out=u)
        g = u
    if l2:  # grad = grad.add(param, alpha=weight_decay)
        mul(p, l2, out=t)
        add(g, t, out=u)
        g = u
    # exp_avg.lerp_(grad, 1 - beta1), with PyTorch's two branches of lerp
    w = 1 - beta1
    xp.subtract(g, m, out=t)
    if w < 0.5:
        mul(t, w, out=t)
        add(m, t, out=m)
    else:
        mul(t, 1 - w, out=t)
        xp.subtract(g, t, out=m)
    # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    mul(v, beta2, out=v)
    mul(g, 1 - beta2, out=t)
    mul(t, g, out=t)
    add(v, t, out=v)
    if vmax is not None:
        xp.maximum(vmax, v, out=vmax)
        v = vmax
    # denom = sqrt(v) / bias_correction2_sqrt + eps; param.addcdiv_(exp_avg, denom, value=-step_size)
    xp.sqrt(v, out=t)
    xp.divide(t, bc2_sqrt, out=t)
    add(t, eps, out=t)
    mul(m, neg_step_size, out=u)
    xp.divide(u, t, out=u)
    add(p, u, out=p)


def adam_update(xp, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step: float, lr: float, beta1: float,
                beta2: float, eps: float, weight_decay: float, amsgrad: bool, maximize: bool,
                decoupled_weight_decay: bool = False) -> None:
    """One Adam step for one parameter, in place (PyTorch's ``torch.optim.Adam`` formulas).

    Args:
        xp: the array module of the arrays (numpy or cupy).
        param, grad, exp_avg, exp_avg_sq: arrays of one shape; ``grad`` is only read.
        max_exp_avg_sq: the AMSGrad running maximum (used only when ``amsgrad``), else ``None``.
        step: the step count *after* this step's increment (1 on the first step).
        lr, beta1, beta2, eps, weight_decay, amsgrad, maximize: the group's options.
        decoupled_weight_decay: AdamW's ``param *= 1 - lr * weight_decay`` instead of L2 on the gradient.
    """
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    step_size = lr / bias_correction1
    bc2_sqrt = bias_correction2 ** 0.5
    decay = l2 = None
    if weight_decay != 0:
        if decoupled_weight_decay:
            decay = 1 - lr * weight_decay
        else:
            l2 = weight_decay
    vmax = max_exp_avg_sq if amsgrad else None
    arrays = (param, grad, exp_avg, exp_avg_sq, vmax)
    if param.dtype.kind == "c":
        arrays = tuple(_as_real(a) for a in arrays)
    consts = (beta1, beta2, eps, l2, decay, -step_size, bc2_sqrt, maximize)
    if not (xp is np and param.size >= C.MIN_ELEMENTS and _compiled_adam(arrays, consts)):
        _apply(xp, _adam_kernel, arrays, consts)


def _compiled_adam(arrays: tuple, consts: tuple) -> bool:
    """Adam through the compiled kernel (one pass per element, bitwise the reference's): False, having done
    nothing, when it does not apply (not float32/float64, not contiguous, or no numba)."""
    if arrays[0].dtype not in C.FLOAT or not _fusable(arrays):
        return False
    k = C.get("adam")
    if k is None:
        return False
    beta1, beta2, eps, l2, decay, neg_step_size, bc2_sqrt, maximize = consts
    p, g, m, v, vmax = (None if a is None else a.reshape(-1) for a in arrays)
    c = p.dtype.type
    w = 1 - beta1
    if vmax is None and not maximize and l2 is None and w < 0.5:
        args = (c(1 if decay is None else decay), c(w), c(beta2), c(1 - beta2), c(bc2_sqrt), c(eps), c(neg_step_size))
        C.run_planes(p.size, p.size, lambda i, j: k.adam_plain(p[i:j], g[i:j], m[i:j], v[i:j], *args))
        return True
    args = (vmax is not None, bool(maximize), decay is not None, c(decay or 0), l2 is not None, c(l2 or 0),
            w < 0.5, c(w), c(1 - w), c(beta2), c(1 - beta2), c(bc2_sqrt), c(eps), c(neg_step_size))
    vmax = p if vmax is None else vmax  # a placeholder of the right type when unused (never touched)
    # (numba raises no floating-point warnings: no error-state context needed)
    C.run_planes(p.size, p.size, lambda i, j: k.adam(p[i:j], g[i:j], m[i:j], v[i:j], vmax[i:j], *args))
    return True


def adam_fused_launcher(xp, param, grad, exp_avg, exp_avg_sq, amsgrad: bool, capturable: bool = False):
    """The launch function of the multi-tensor Adam kernel (kernels/adam.cu) for these arrays, or None.

    The kernel applies to CUDA arrays of one float32/float16 dtype and one shape, C-contiguous, with amsgrad and
    capturable off; anything else keeps ``adam_update`` (the reference).
    """
    if amsgrad or capturable or xp is np:
        return None
    for a in (grad, exp_avg, exp_avg_sq):  # e.g. state loaded in another dtype: the per-parameter rule casts
        if a.dtype != param.dtype or a.shape != param.shape:
            return None
    from ..ops import _fused

    return _fused.launcher(xp, param, grad, exp_avg, exp_avg_sq)


def adam_multi_tensor(run, params: list, grads: list, exp_avgs: list, exp_avg_sqs: list, step: float, lr: float,
                      beta1: float, beta2: float, eps: float, weight_decay: float, maximize: bool,
                      decoupled_weight_decay: bool = False) -> None:
    """One Adam/AdamW step over lists of same-dtype CUDA arrays with one step count: one kernel launch.

    ``run`` is what ``adam_fused_launcher`` returned; the formulas are ``adam_update``'s (amsgrad off).
    """
    from ..kernels import launch as L

    run(L.adam_plan(params, grads, exp_avgs, exp_avg_sqs, step=step, lr=lr, betas=(beta1, beta2), eps=eps,
                    weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay, maximize=maximize))


def adamw_update(xp, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step: float, lr: float, beta1: float,
                 beta2: float, eps: float, weight_decay: float, amsgrad: bool, maximize: bool) -> None:
    """One AdamW step (decoupled weight decay) for one parameter, in place; see ``adam_update``."""
    adam_update(xp, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
                amsgrad, maximize, decoupled_weight_decay=True)


# ---- SGD ---------------------------------------------------------------------------------------
def _sgd_kernel(xp, p, g, buf, t, u, neg_lr, momentum, damp_w, l2, nesterov, maximize, fresh):
    mul, add = xp.multiply, xp.add
    if maximize:
        xp.negative(g, out=u)
        g = u
    if l2:  # grad = grad.add(param, alpha=weight_decay)
        mul(p, l2, out=t)
        add(g, t, out=u)
        g = u
    if buf is not None:
        if fresh:  # buf = torch.clone(grad)
            xp.copyto(buf, g)
        else:  # buf.mul_(momentum).add_(grad, alpha=1 - dampening)
            mul(buf, momentum, out=buf)
            if damp_w != 1:
                mul(g, damp_w, out=t)
                add(buf, t, out=buf)
            else:
                add(buf, g, out=buf)
        if nesterov:  # grad = grad.add(buf, alpha=momentum)
            mul(buf, momentum, out=t)
            add(g, t, out=u)
            g = u
        else:
            g = buf
    # param.add_(grad, alpha=-lr)
    mul(g, neg_lr, out=t)
    add(p, t, out=p)


def sgd_update(xp, param, grad, momentum_buffer, lr: float, momentum: float, dampening: float, weight_decay: float,
               nesterov: bool, maximize: bool):
    """One SGD step for one parameter, in place (PyTorch's ``torch.optim.SGD`` formulas).

    ``momentum_buffer`` is the state array, or ``None`` before the first step: with ``momentum != 0``
    a new buffer is made from the first gradient (as PyTorch clones it). Returns the buffer (``None``
    without momentum).
    """
    fresh = False
    if momentum == 0:
        momentum_buffer = None
    elif momentum_buffer is None:
        momentum_buffer = xp.empty_like(param)
        fresh = True
    arrays = (param, grad, momentum_buffer)
    plain = param.size >= C.MIN_ELEMENTS and xp is np and not (fresh or nesterov or maximize or weight_decay != 0
                                                                 or dampening != 0)
    if not (plain and _compiled_sgd(arrays, -lr, momentum)):
        _apply(xp, _sgd_kernel, arrays,
               (-lr, momentum, 1 - dampening, weight_decay if weight_decay != 0 else None, nesterov, maximize, fresh))
    return momentum_buffer


def _compiled_sgd(arrays: tuple, neg_lr: float, momentum: float) -> bool:
    """Plain SGD (with or without a momentum buffer past its first step) through the compiled kernels; False,
    having done nothing, when they do not apply."""
    if arrays[0].dtype not in C.FLOAT or not _fusable(arrays):
        return False
    k = C.get("sgd")
    if k is None:
        return False
    p, g, buf = (None if a is None else a.reshape(-1) for a in arrays)
    c = p.dtype.type
    if buf is None:
        C.run_planes(p.size, p.size, lambda i, j: k.sgd_plain(p[i:j], g[i:j], c(neg_lr)))
    else:
        C.run_planes(p.size, p.size, lambda i, j: k.sgd_momentum(p[i:j], g[i:j], buf[i:j], c(momentum), c(neg_lr)))
    return True
