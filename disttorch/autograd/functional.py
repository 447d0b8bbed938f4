"""Higher-level autograd: jacobian, hessian, vjp, jvp, hvp, vhp (``torch.autograd.functional``).

Built on ``autograd.grad``: one backward pass per output element for the Jacobian, and the
double-backward trick for forward-mode products (``jvp``), so they work for every op that has a
differentiable backward.
"""
from __future__ import annotations

from .engine import grad as _grad
from .grad_mode import enable_grad

__all__ = ["jacobian", "hessian", "vjp", "jvp", "hvp", "vhp"]


def _as_tuple(x):
    return (tuple(x), True) if isinstance(x, (tuple, list)) else ((x,), False)


def _prepare(inputs, create_graph: bool):
    # Fresh leaves so that gradients never leak into the caller's tensors.
    out = []
    for t in inputs:
        leaf = t if create_graph and t.requires_grad else t.detach()
        out.append(leaf.requires_grad_(True) if not leaf.requires_grad else leaf)
    return tuple(out)


def _zeros_like_or(g, like):
    from .._tensor import _wrap

    return _wrap(like._xp.zeros_like(like._data)) if g is None else g


def _grads(outputs, inputs, grad_outputs, create_graph: bool, strict: bool, what: str):
    gs = _grad(outputs, inputs, grad_outputs, retain_graph=True, create_graph=create_graph, allow_unused=True)
    if strict and any(g is None for g in gs):
        raise RuntimeError(f"{what}: the output of the function is independent of input "
                           f"{next(i for i, g in enumerate(gs) if g is None)}, which is not allowed in strict mode")
    return tuple(_zeros_like_or(g, x) for g, x in zip(gs, inputs))


def jacobian(func, inputs, create_graph: bool = False, strict: bool = False, vectorize: bool = False,
             strategy: str = "reverse-mode"):
    """The Jacobian of ``func`` at ``inputs``: for output shape O and input shape I, a tensor of shape O + I.

    Example:
        >>> jacobian(lambda x: x ** 2, disttorch.tensor([1.0, 2.0]))
        tensor([[2., 0.],
                [0., 4.]])
    """
    from .. import ops

    ins, multi_in = _as_tuple(inputs)
    with enable_grad():
        ins = _prepare(ins, create_graph)
        outs, multi_out = _as_tuple(func(*ins))
        result = []
        for o in outs:
            rows = [[] for _ in ins]
            flat = o.reshape(-1)
            for k in range(flat.numel()):
                gs = _grads([flat[k]], ins, None, create_graph, strict, "jacobian")
                for i, g in enumerate(gs):
                    rows[i].append(g)
            per_input = []
            for i, x in enumerate(ins):
                if rows[i]:
                    j = ops.stack(rows[i]).reshape(tuple(o.shape) + tuple(x.shape))
                else:
                    j = x.new_zeros(tuple(o.shape) + tuple(x.shape))
                per_input.append(j if create_graph else j.detach())
            result.append(tuple(per_input) if multi_in else per_input[0])
    return tuple(result) if multi_out else result[0]


def hessian(func, inputs, create_graph: bool = False, strict: bool = False, vectorize: bool = False,
            outer_jacobian_strategy: str = "reverse-mode"):
    """The Hessian of a scalar ``func`` at ``inputs`` (shape I + I for one input)."""
    ins, multi_in = _as_tuple(inputs)

    def grad_fn(*xs):
        out = func(*xs)
        if out.numel() != 1:
            raise RuntimeError("The Tensor returned by the function given to hessian should contain a single element "
                               f"(got shape {list(out.shape)})")
        gs = _grads([out.reshape(())], xs, None, True, strict, "hessian")
        return gs if multi_in else gs[0]

    return jacobian(grad_fn, ins if multi_in else ins[0], create_graph=create_graph, strict=strict)


def vjp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), v^T J)``: the vector-Jacobian product."""
    ins, multi_in = _as_tuple(inputs)
    with enable_grad():
        ins = _prepare(ins, create_graph)
        outs, multi_out = _as_tuple(func(*ins))
        vs = None if v is None else _as_tuple(v)[0]
        gs = _grads(outs, ins, vs, create_graph, strict, "vjp")
    outs = tuple(o if create_graph else o.detach() for o in outs)
    gs = tuple(g if create_graph else g.detach() for g in gs)
    return (outs if multi_out else outs[0]), (gs if multi_in else gs[0])


def jvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), J v)``: the Jacobian-vector product, by differentiating a vjp (double backward)."""
    ins, multi_in = _as_tuple(inputs)
    with enable_grad():
        ins = _prepare(ins, create_graph)
        outs, multi_out = _as_tuple(func(*ins))
        vs = _as_tuple(v)[0] if v is not None else tuple(x.new_ones(x.shape) for x in ins)
        us = tuple(o.new_zeros(o.shape).requires_grad_(True) for o in outs)
        gs = _grad(outs, ins, us, retain_graph=True, create_graph=True, allow_unused=True)
        pairs = [(g, vv) for g, vv in zip(gs, vs) if g is not None and g.requires_grad]
        if pairs:
            jv = _grad([g for g, _ in pairs], us, [vv for _, vv in pairs], retain_graph=True,
                       create_graph=create_graph, allow_unused=True)
        else:
            jv = (None,) * len(us)
        jv = tuple(_zeros_like_or(j, o) for j, o in zip(jv, outs))
    outs = tuple(o if create_graph else o.detach() for o in outs)
    jv = tuple(j if create_graph else j.detach() for j in jv)
    return (outs if multi_out else outs[0]), (jv if multi_out else jv[0])


def vhp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), v^T H)`` for a scalar ``func``."""
    ins, multi_in = _as_tuple(inputs)
    with enable_grad():
        ins = _prepare(ins, create_graph)
        out = func(*ins)
        gs = _grads([out.reshape(())], ins, None, True, strict, "vhp")
        vs = _as_tuple(v)[0] if v is not None else tuple(x.new_ones(x.shape) for x in ins)
        hv = _grads(list(gs), ins, list(vs), create_graph, strict, "vhp")
    hv = tuple(h if create_graph else h.detach() for h in hv)
    return (out if create_graph else out.detach()), (hv if multi_in else hv[0])


def hvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), H v)``; equal to vhp because the Hessian is symmetric."""
    return vhp(func, inputs, v, create_graph, strict)
