"""``grad``, ``grad_and_value``, ``vjp``, ``jvp``, ``jacrev``, ``jacfwd``, ``hessian``, ``linearize``.

Each transform runs the function on fresh stand-ins for the differentiated inputs and asks the
ordinary autograd engine for gradients, so it composes with itself (``grad(grad(f))``,
``jacfwd(jacrev(f))``) and with ``vmap``. A stand-in for an input that already requires grad is a view
of it, so the results stay differentiable with respect to it, as PyTorch's transforms compose with
regular autograd. The gradients themselves carry a graph only when the function reaches a tensor
from outside (an input that requires grad, or a captured parameter) and grad mode is on; otherwise
no double-backward graph is built.

``jvp`` is the double-vjp trick (differentiating ``u -> J^T u`` with respect to ``u``), and ``jacfwd``
computes the same Jacobian as ``jacrev`` by reverse mode: disttorch has no forward-mode AD (see
docs/differences.md).
"""
from __future__ import annotations

import functools
from typing import Callable

from ..autograd.engine import grad as _autograd_grad
from ..autograd.function import AccumulateGrad
from ..autograd.grad_mode import enable_grad, is_grad_enabled
from ._pytree import tree_flatten, tree_unflatten

__all__ = ["grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "linearize"]


def _tensor_cls():
    from .._tensor import Tensor

    return Tensor


# ---- shared helpers -------------------------------------------------------------------------------
def _check_argnums(argnums, nargs: int) -> tuple:
    """The argnums as a tuple of non-negative positions, with PyTorch's checks and messages."""
    if isinstance(argnums, bool) or not isinstance(argnums, (int, tuple)):
        raise RuntimeError(f"argnums must be int or Tuple[int, ...], got: {type(argnums)}")
    nums = argnums if isinstance(argnums, tuple) else (argnums,)
    if isinstance(argnums, tuple):
        if len(argnums) == 0:
            raise RuntimeError("argnums must be non-empty")
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in argnums):
            raise RuntimeError(f"argnums must be int or Tuple[int, ...], got: {argnums}")
        if len(set(argnums)) != len(argnums):
            raise RuntimeError(f"argnums elements must be unique, got {argnums}")
    out = []
    for a in nums:
        if not -nargs <= a < nargs:
            raise RuntimeError(f"Got argnum={a}, but only {nargs} positional inputs")
        out.append(a % nargs)
    return tuple(out)


def _stand_in(x):
    """A fresh differentiable tensor standing for input ``x`` (a view of it when it requires grad)."""
    Tensor = _tensor_cls()
    if not isinstance(x, Tensor):
        raise ValueError(f"Thing passed to transform API must be Tensor, got {type(x)}")
    if x.requires_grad:
        return x.view_as(x)
    return x.detach().requires_grad_(True)


def _stand_ins(trees: list) -> tuple:
    """Stand-ins for every leaf of every tree: ``(new_trees, flat_stand_ins)``."""
    new_trees, flat = [], []
    for tree in trees:
        leaves, spec = tree_flatten(tree)
        subs = [_stand_in(x) for x in leaves]
        flat.extend(subs)
        new_trees.append(tree_unflatten(subs, spec))
    return new_trees, flat


def _reaches_outside(tensors, own: list) -> bool:
    """Whether the graph of ``tensors`` reaches a leaf that is not one of our stand-ins ``own``."""
    own_ids = {id(t) for t in own}
    stack, seen = [], set()
    for t in tensors:
        if t is not None and t.requires_grad:
            if t.grad_fn is None:
                if id(t) not in own_ids:
                    return True
            else:
                stack.append(t.grad_fn)
    while stack:
        fn = stack.pop()
        if fn in seen:
            continue
        seen.add(fn)
        if isinstance(fn, AccumulateGrad):
            if id(fn.variable) not in own_ids:
                return True
            continue
        for nxt, _ in fn.next_functions:
            if nxt is not None and nxt not in seen:
                stack.append(nxt)
    return False


def _grads(outputs, inputs, grad_outputs, create_graph: bool) -> list:
    """Gradients of ``outputs`` w.r.t. ``inputs``, zeros where an input is unused."""
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if o.requires_grad]
    if pairs:
        gs = _autograd_grad([o for o, _ in pairs], inputs, [g for _, g in pairs], retain_graph=True,
                            create_graph=create_graph, allow_unused=True)
    else:
        gs = (None,) * len(inputs)
    return [x.new_zeros(x.shape) if g is None else g for g, x in zip(gs, inputs)]


def _detach_tree(tree):
    Tensor = _tensor_cls()
    leaves, spec = tree_flatten(tree)
    return tree_unflatten([x.detach() if isinstance(x, Tensor) else x for x in leaves], spec)


def _split_aux(out, has_aux: bool, api: str):
    if not has_aux:
        return out, None
    if not (isinstance(out, tuple) and len(out) == 2):
        raise RuntimeError(f"{api}: output of function f should be a tuple: (output, aux) if has_aux is True")
    return out


def _output_leaves(out, api: str) -> tuple:
    Tensor = _tensor_cls()
    leaves, spec = tree_flatten(out)
    for x in leaves:
        if not isinstance(x, Tensor):
            raise RuntimeError(f"{api}: expected f(*primals) to return only tensors, got unsupported type {type(x)}")
    return leaves, spec


def _rng_state():
    from ..ops.random import default_generator

    return default_generator.get_state()


def _random_called(before) -> bool:
    import numpy as np

    return not np.array_equal(before.numpy(), _rng_state().numpy())


_RANDOM_ERROR = ("vmap: called random operation while in randomness error mode. Please either use the 'same' or "
                 "'different' randomness flags on vmap or perform the randomness operation out of vmap")


# ---- grad --------------------------------------------------------------------------------------------
def grad_and_value(func: Callable, argnums: int | tuple = 0, has_aux: bool = False) -> Callable:
    """Like :func:`grad`, but the returned function gives ``(gradient, value)``.

    With ``has_aux=True`` it gives ``(gradient, (value, aux))``.

    Example:
        >>> g, v = grad_and_value(lambda x: (x ** 2).sum())(disttorch.tensor([1.0, 2.0]))
        >>> g, v
        (tensor([2., 4.]), tensor(5.))
    """
    api = "grad_and_value(f)(*args)"

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        Tensor = _tensor_cls()
        nums = _check_argnums(argnums, len(args))
        outer_grad = is_grad_enabled()
        with enable_grad():
            args = list(args)
            new_trees, flat = _stand_ins([args[i] for i in nums])
            for i, tree in zip(nums, new_trees):
                args[i] = tree
            out = func(*args, **kwargs)
            value, aux = _split_aux(out, has_aux, api)
            if not isinstance(value, Tensor):
                raise RuntimeError(f"{api}: Expected f(*args) to return a Tensor, got {type(value)}")
            if value.dim() != 0:
                raise RuntimeError(f"{api}: Expected f(*args) to return a scalar Tensor, got tensor with "
                                   f"{value.dim()} dims. Maybe you wanted to use the vjp or jacrev APIs instead?")
            create = outer_grad and _reaches_outside([value], flat)
            gs = _grads([value], flat, [None], create)
        if not create:
            gs = [g.detach() for g in gs]
            value = value.detach()
            aux = _detach_tree(aux)
        per_arg, k = [], 0
        for tree in new_trees:
            leaves, spec = tree_flatten(tree)
            per_arg.append(tree_unflatten(gs[k:k + len(leaves)], spec))
            k += len(leaves)
        result = per_arg[0] if isinstance(argnums, int) else tuple(per_arg)
        return (result, (value, aux)) if has_aux else (result, value)

    return wrapper


def grad(func: Callable, argnums: int | tuple = 0, has_aux: bool = False) -> Callable:
    """The gradient transform: ``grad(f)(*args)`` is the gradient of scalar ``f`` w.r.t. ``args[argnums]``.

    Args:
        func: a function returning a 0-d tensor (or ``(tensor, aux)`` with ``has_aux``).
        argnums: which positional argument(s) to differentiate; each may be a pytree of tensors
            (e.g. a dict of parameters), and the gradient has the same structure.
        has_aux: whether ``func`` returns ``(output, aux)``; then the result is ``(gradient, aux)``.

    Example:
        >>> grad(lambda x: x.sin().sum())(x)          # cos(x)
        >>> grad(grad(lambda x: x ** 3))(disttorch.tensor(2.0))   # 6 * 2
        tensor(12.)
    """
    gv = grad_and_value(func, argnums, has_aux)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        g, value = gv(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return wrapper


# ---- vjp / jvp -------------------------------------------------------------------------------------
def vjp(func: Callable, *primals, has_aux: bool = False):
    """``(func(*primals), vjp_fn)``: ``vjp_fn(cotangents)`` gives the vector-Jacobian products.

    ``vjp_fn`` takes cotangents with the structure of the output and returns a tuple with one entry per
    primal (each with that primal's structure); it may be called several times. With ``has_aux`` the
    result is ``(output, vjp_fn, aux)``.
    """
    api = "vjp(f, *primals)"
    Tensor = _tensor_cls()
    outer_grad = is_grad_enabled()
    with enable_grad():
        new_trees, flat = _stand_ins(list(primals))
        out = func(*new_trees)
        out, aux = _split_aux(out, has_aux, api)
        out_leaves, out_spec = _output_leaves(out, api)
        reaches = outer_grad and _reaches_outside(out_leaves, flat)
    specs = [tree_flatten(t)[1] for t in new_trees]

    def vjp_fn(cotangents, *, retain_graph: bool = True, create_graph: bool | None = None):
        ct_leaves, ct_spec = tree_flatten(cotangents)
        if ct_spec != out_spec:
            raise RuntimeError("Expected pytree structure of cotangents to be the same as pytree structure of outputs "
                               f"to the function. cotangents: {ct_spec}, primal output: {out_spec}")
        for i, (c, o) in enumerate(zip(ct_leaves, out_leaves)):
            if not isinstance(c, Tensor):
                raise RuntimeError(f"vjp_fn: expected cotangents to be tensors, got {type(c)} at position {i}")
            if tuple(c.shape) != tuple(o.shape):
                raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of {c.shape} and output[{i}] has "
                                   f"a shape of {o.shape}.")
        create = create_graph
        if create is None:
            create = is_grad_enabled() and (reaches or any(c.requires_grad for c in ct_leaves))
        with enable_grad():
            gs = _grads(out_leaves, flat, ct_leaves, create)
        if not create:
            gs = [g.detach() for g in gs]
        result, k = [], 0
        for spec in specs:
            result.append(tree_unflatten(gs[k:k + spec.num_leaves], spec))
            k += spec.num_leaves
        return tuple(result)

    shown = out if reaches else _detach_tree(out)
    if has_aux:
        return shown, vjp_fn, (aux if reaches else _detach_tree(aux))
    return shown, vjp_fn


def _jvp_core(func, primals, tangents, has_aux: bool, api: str):
    Tensor = _tensor_cls()
    if not isinstance(primals, tuple):
        raise RuntimeError(f"{api}: Expected primals to be a tuple. E.g. it should be valid to call f(*primals).")
    p_leaves, p_spec = tree_flatten(primals)
    t_leaves, t_spec = tree_flatten(tangents)
    if p_spec != t_spec:
        raise RuntimeError(f"{api}: Expected primals and tangents to have the same python structure. For example, "
                           f"if primals is a tuple of 3 tensors, tangents also must be. Got primals with structure "
                           f"{p_spec} and tangents with structure {t_spec}")
    for p, t in zip(p_leaves, t_leaves):
        if not isinstance(p, Tensor) or not isinstance(t, Tensor):
            raise ValueError(f"Thing passed to transform API must be Tensor, got {type(t if isinstance(p, Tensor) else p)}")
        if tuple(p.shape) != tuple(t.shape):
            raise RuntimeError("Trying to set a forward gradient that has a different size than that of the original "
                               f"Tensor, this is not supported. Tensor is of size {list(p.shape)} while the given "
                               f"forward gradient is of size {list(t.shape)}.")
    outer_grad = is_grad_enabled()
    with enable_grad():
        new_trees, flat = _stand_ins(list(primals))
        out = func(*new_trees)
        out, aux = _split_aux(out, has_aux, api)
        out_leaves, out_spec = _output_leaves(out, api)
        reaches = outer_grad and (_reaches_outside(out_leaves, flat) or any(t.requires_grad for t in t_leaves))
        # u -> J^T u is linear in u; differentiating it w.r.t. u in the direction of the tangents gives J t.
        us = [o.new_zeros(o.shape).requires_grad_(True) if o.is_floating_point() else None for o in out_leaves]
        pairs = [(o, u) for o, u in zip(out_leaves, us) if u is not None and o.requires_grad]
        jts = _autograd_grad([o for o, _ in pairs], flat, [u for _, u in pairs], retain_graph=True,
                             create_graph=True, allow_unused=True) if pairs else (None,) * len(flat)
        used = [(g, t) for g, t in zip(jts, t_leaves) if g is not None and g.requires_grad]
        live_us = [u for u in us if u is not None]
        if used and live_us:
            jv = _autograd_grad([g for g, _ in used], live_us, [t for _, t in used], retain_graph=True,
                                create_graph=reaches, allow_unused=True)
        else:
            jv = (None,) * len(live_us)
        it = iter(jv)
        jv_full = [next(it) if u is not None else None for u in us]
        jv_full = [o.new_zeros(o.shape) if j is None else j for j, o in zip(jv_full, out_leaves)]
    if not reaches:
        out = _detach_tree(out)
        jv_full = [j.detach() for j in jv_full]
        aux = _detach_tree(aux)
    return out, tree_unflatten(jv_full, out_spec), aux


def jvp(func: Callable, primals: tuple, tangents: tuple, *, strict: bool = False, has_aux: bool = False):
    """``(func(*primals), J @ tangents)``: the Jacobian-vector product (forward-mode semantics).

    ``primals`` and ``tangents`` are tuples with the same structure. With ``has_aux`` the result is
    ``(output, jvp_out, aux)``. Computed by differentiating a vector-Jacobian product (double backward).
    """
    if strict:
        raise RuntimeError("jvp(f, primals, tangents, strict=True): strict=True is not implemented yet")
    out, jv, aux = _jvp_core(func, primals, tangents, has_aux, "jvp(f, primals, tangents)")
    return (out, jv, aux) if has_aux else (out, jv)


def linearize(func: Callable, *primals) -> tuple:
    """``(func(*primals), jvp_fn)`` where ``jvp_fn(*tangents)`` evaluates the Jacobian-vector product."""
    out, _, _ = _jvp_core(func, primals, tuple(p.new_zeros(p.shape) for p in primals), False, "linearize")

    def jvp_fn(*tangents):
        return _jvp_core(func, primals, tangents, False, "linearize")[1]

    return out, jvp_fn


# ---- Jacobians ---------------------------------------------------------------------------------------
def _jacobian(func, argnums, has_aux: bool, api: str, randomness: str | None, args, kwargs):
    from .. import ops

    nums = _check_argnums(argnums, len(args))
    outer_grad = is_grad_enabled()
    before = _rng_state() if randomness == "error" else None
    with enable_grad():
        args = list(args)
        new_trees, flat = _stand_ins([args[i] for i in nums])
        for i, tree in zip(nums, new_trees):
            args[i] = tree
        out = func(*args, **kwargs)
        if before is not None and _random_called(before):
            raise RuntimeError(_RANDOM_ERROR)
        # PyTorch's jacrev runs on vjp, so its messages name vjp.
        out, aux = _split_aux(out, has_aux, "vjp(f, *primals)" if api == "jacrev" else f"{api}(f, ...)(*args)")
        out_leaves, out_spec = _output_leaves(out, "vjp(f, *primals)")
        create = outer_grad and _reaches_outside(out_leaves, flat)
        per_output = []
        for o in out_leaves:
            rows = [[] for _ in flat]
            flat_o = o.reshape(-1)
            if o.requires_grad:
                for k in range(flat_o.numel()):
                    for i, g in enumerate(_grads([flat_o[k]], flat, [None], create)):
                        rows[i].append(g)
            jac = []
            for i, x in enumerate(flat):
                if rows[i]:
                    j = ops.stack(rows[i]).reshape(tuple(o.shape) + tuple(x.shape))
                else:
                    j = x.new_zeros(tuple(o.shape) + tuple(x.shape))
                jac.append(j if create else j.detach())
            structured, k = [], 0
            for tree in new_trees:
                leaves, spec = tree_flatten(tree)
                structured.append(tree_unflatten(jac[k:k + len(leaves)], spec))
                k += len(leaves)
            per_output.append(structured[0] if isinstance(argnums, int) else tuple(structured))
    result = tree_unflatten(per_output, out_spec)
    if has_aux:
        return result, (aux if create else _detach_tree(aux))
    return result


def jacrev(func: Callable, argnums: int | tuple = 0, *, has_aux: bool = False, chunk_size: int | None = None,
           _preallocate_and_copy: bool = False) -> Callable:
    """The Jacobian of ``func`` w.r.t. ``args[argnums]`` by reverse mode (one backward pass per output element).

    For an output of shape O and an input of shape I the Jacobian has shape O + I; pytree outputs give a
    pytree of Jacobians, and ``argnums`` tuples a tuple per output.
    """
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size <= 0):
        raise ValueError(f"jacrev: `chunk_size` should be greater than 0. (got {chunk_size})")

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return _jacobian(func, argnums, has_aux, "jacrev", None, args, kwargs)

    return wrapper


def jacfwd(func: Callable, argnums: int | tuple = 0, has_aux: bool = False, *, randomness: str = "error") -> Callable:
    """The Jacobian of ``func`` w.r.t. ``args[argnums]``, as ``torch.func.jacfwd``.

    The values are computed by reverse mode (disttorch has no forward-mode AD); ``randomness`` behaves as
    in PyTorch, where jacfwd runs ``func`` under vmap: ``'error'`` rejects random operations in ``func``.
    """
    if randomness not in ("error", "different", "same"):
        raise RuntimeError(f"Only allowed values for randomness are 'error', 'different', or 'same'. Got {randomness}")

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return _jacobian(func, argnums, has_aux, "jacfwd", randomness, args, kwargs)

    return wrapper


def hessian(func: Callable, argnums: int | tuple = 0) -> Callable:
    """The Hessian of scalar ``func`` w.r.t. ``args[argnums]``: ``jacfwd(jacrev(func, argnums), argnums)``."""
    return jacfwd(jacrev(func, argnums), argnums)
