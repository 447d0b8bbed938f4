"""The backward engine: an iterative walk of the graph in dependency order.

Nodes run when every node that feeds them has run; among ready nodes the most recently
created runs first (PyTorch's order), so gradient hooks fire in reverse order of the forward
pass, which is what bucketed all-reduce in DDP relies on.
"""
from __future__ import annotations

import heapq
from time import perf_counter_ns

from . import anomaly as _anomaly
from . import op as _op
from .function import AccumulateGrad, edge
from .grad_mode import STATE as _GRAD

__all__ = ["backward", "grad", "run_backward"]


_T = None


def _tensor_mod():
    global _T
    if _T is None:
        from .. import _tensor

        _T = _tensor
    return _T


def _make_root_grads(outputs, grad_outputs, op: str):
    T = _tensor_mod()
    roots, grads = [], []
    for i, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if not isinstance(out, T.Tensor):
            raise TypeError(f"{op}: expected a Tensor as output {i}, got {type(out).__name__}")
        if not out._requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
        if g is None:
            if out._data.size != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs (output {i} has "
                                   f"shape {list(out.shape)})")
            if not out.dtype.is_floating_point and not out.dtype.is_complex:
                raise RuntimeError(f"grad can be implicitly created only for real scalar outputs but got {out.dtype}")
            g = T._wrap(out._xp.ones(out._data.shape, dtype=out._data.dtype))
        else:
            if not isinstance(g, T.Tensor):
                g = T.tensor(g, dtype=out.dtype)
            if tuple(g._data.shape) != tuple(out._data.shape):
                raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of {list(g.shape)} and "
                                   f"output[{i}] has a shape of {list(out.shape)}.")
            if not _GRAD.enabled or not g._requires_grad:
                g = T._wrap(g._data.copy())  # never hand the caller's buffer to a leaf's .grad
        roots.append(edge(out))
        grads.append(g)
    return roots, grads


def _normalize(tensors):
    T = _tensor_mod()
    if isinstance(tensors, T.Tensor):
        return (tensors,)
    return tuple(tensors)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, grad_variables=None,
             inputs=None) -> None:
    """Compute the sum of gradients of ``tensors`` w.r.t. graph leaves, accumulating into ``.grad``."""
    tensors = _normalize(tensors)
    if grad_tensors is None:
        grad_tensors = grad_variables
    grad_tensors = (None,) * len(tensors) if grad_tensors is None else _normalize(grad_tensors)
    if len(grad_tensors) != len(tensors):
        raise RuntimeError(f"got {len(grad_tensors)} gradients for {len(tensors)} tensors")
    if retain_graph is None:
        retain_graph = create_graph
    roots, grads = _make_root_grads(tensors, grad_tensors, "backward")
    targets = None
    if inputs is not None:
        inputs = _normalize(inputs)
        if not inputs:
            raise RuntimeError("`inputs` argument to `backward()` cannot be empty.")
        targets = {}
        for t in inputs:
            if t.grad_fn is not None:
                # Non-leaf inputs accumulate into .grad like leaves do (PyTorch's behaviour).
                targets[(t.grad_fn, t._output_nr)] = t
            else:
                if not t._requires_grad:
                    raise RuntimeError("One of the differentiated Tensors does not require grad")
                targets[(t._grad_accumulator(), 0)] = t
    run_backward(roots, grads, retain_graph, create_graph, targets, accumulate=True)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, only_inputs=True,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """Return the gradients of ``outputs`` w.r.t. ``inputs`` without touching ``.grad``.

    Example:
        >>> x = disttorch.tensor(3.0, requires_grad=True)
        >>> (g,) = disttorch.autograd.grad(x ** 3, x, create_graph=True)   # 27.
        >>> disttorch.autograd.grad(g, x)                                   # (tensor(18.),)
    """
    if is_grads_batched:
        raise NotImplementedError("autograd.grad(is_grads_batched=True) is not implemented yet")
    outputs = _normalize(outputs)
    inputs = _normalize(inputs)
    if allow_unused is None:
        allow_unused = materialize_grads
    grad_outputs = (None,) * len(outputs) if grad_outputs is None else _normalize(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"grad requires one grad_output per output: got {len(grad_outputs)} for "
                           f"{len(outputs)} outputs")
    if retain_graph is None:
        retain_graph = create_graph
    for i, t in enumerate(inputs):
        if not t._requires_grad:
            raise RuntimeError(f"One of the differentiated Tensors (input {i}) does not require grad")
    roots, grads = _make_root_grads(outputs, grad_outputs, "grad")
    targets = {}
    for t in inputs:
        key = (t.grad_fn, t._output_nr) if t.grad_fn is not None else (t._grad_accumulator(), 0)
        targets[key] = t
    captured = run_backward(roots, grads, retain_graph, create_graph, targets, accumulate=False)
    result = []
    T = _tensor_mod()
    for i, t in enumerate(inputs):
        key = (t.grad_fn, t._output_nr) if t.grad_fn is not None else (t._grad_accumulator(), 0)
        g = captured.get(key)
        if g is None:
            if not allow_unused:
                raise RuntimeError(f"One of the differentiated Tensors (input {i}) appears to not have been "
                                   "used in the graph. Set allow_unused=True if this is the desired behavior.")
            if materialize_grads:
                g = T._wrap(t._xp.zeros_like(t._data))
        result.append(g)
    return tuple(result)


def _own_grad(g, seen: dict):
    """A gradient safe to store in ``.grad``: writable, contiguous and not shared with another leaf."""
    arr = g._data
    base = arr if arr.base is None else arr.base
    flags = arr.flags
    if (g._requires_grad or id(base) in seen or not flags.c_contiguous or not flags.owndata
            or not getattr(flags, "writeable", True)):
        from .._tensor import _wrap

        # arr.copy() is C-ordered, and also copies a sparse tensor's array (SparseCOO.copy)
        return _wrap(arr.copy()) if not g._requires_grad else g
    seen[id(base)] = base
    return g


def _accumulate(node: AccumulateGrad, g, create_graph: bool, seen: dict) -> None:
    var = node.variable
    if g._data.dtype != var._data.dtype:  # as PyTorch: a leaf's gradient has the leaf's dtype
        g = g.to(var.dtype)
    hooks = var._aux.get("hooks") if var._aux else None
    if hooks:
        for h in list(hooks.values()):
            r = h(g)
            if r is not None:
                g = r
    if var._grad is None:
        if not create_graph:
            g = g.detach() if g._requires_grad else g
        var._grad = _own_grad(g, seen)
    elif create_graph or var._grad._requires_grad:
        var._grad = var._grad + g
    else:
        cur = var._grad._data
        gd = g._data
        if cur.shape != gd.shape:
            raise RuntimeError(f"accumulating gradient of shape {list(gd.shape)} into .grad of shape "
                               f"{list(cur.shape)} for a tensor of shape {list(var.shape)}")
        var._grad._xp.add(cur, gd, out=cur)
        var._grad._vc[0] += 1
    post = var._aux.get("post_hooks") if var._aux else None
    if post:
        for h in list(post.values()):
            h(var)


def _collect(roots, targets):
    """Dependency counts of every node reachable from the roots (pruned to those that reach targets)."""
    if targets is None:
        # Plain backward: every reachable node runs; count each edge once.
        deps = {}
        stack = [fn for fn, _ in roots if fn is not None]
        seen = set(stack)
        while stack:
            for nxt, _ in stack.pop().next_functions:
                if nxt is not None:
                    deps[nxt] = deps.get(nxt, 0) + 1
                    if nxt not in seen:
                        seen.add(nxt)
                        stack.append(nxt)
        return deps, None
    # autograd.grad / backward(inputs=...): a post-order walk decides which nodes reach a target.
    order = []
    work = [(fn, False) for fn, _ in roots if fn is not None]
    visited = set()
    while work:
        fn, expanded = work.pop()
        if expanded:
            order.append(fn)
            continue
        if fn in visited:
            continue
        visited.add(fn)
        work.append((fn, True))
        for nxt, _ in fn.next_functions:
            if nxt is not None and nxt not in visited:
                work.append((nxt, False))
    target_nodes = {fn for fn, _ in targets}
    useful = set()
    for fn in order:  # children come first in post-order
        if fn in target_nodes or any(n in useful for n, _ in fn.next_functions if n is not None):
            useful.add(fn)
    deps = {}
    for fn in order:
        if fn not in useful:
            continue
        for nxt, _ in fn.next_functions:
            if nxt is not None and nxt in useful:
                deps[nxt] = deps.get(nxt, 0) + 1
    return deps, useful


def run_backward(roots, grads, retain_graph: bool, create_graph: bool, targets=None, accumulate=True):
    """Propagate ``grads`` from the ``roots`` edges through the graph.

    ``targets`` maps (node, output_nr) to the input tensor whose gradient is wanted. With
    ``accumulate`` the targets' gradients go into ``.grad``; otherwise they are returned.
    """
    deps, useful = _collect(roots, targets)
    buffers = {}
    for (fn, nr), g in zip(roots, grads):
        if fn is None:
            continue
        _add_to_buffer(buffers, fn, nr, g)
    ready = []
    for fn in {fn for fn, _ in roots if fn is not None}:
        if deps.get(fn, 0) == 0:
            heapq.heappush(ready, (-fn._seq, id(fn), fn))
    captured = {}
    seen_grads = {}
    check_nan = _anomaly.STATE.enabled and _anomaly.STATE.check_nan
    acc_cls = AccumulateGrad
    heappop, heappush = heapq.heappop, heapq.heappush
    spans = _op.SPANS[0]  # a profiler's range sink, or None
    prev = _GRAD.enabled
    _GRAD.enabled = create_graph
    try:
        while ready:
            fn = heappop(ready)[2]
            grads_in = buffers.pop(fn, None) or []
            is_acc = fn.__class__ is acc_cls
            fd = fn.__dict__
            if not is_acc and ("_tpre" in fd or "_retain" in fd):
                _tensor_hooks(fn, grads_in, create_graph)
            if targets is not None:
                _capture(fn, grads_in, targets, captured, accumulate, is_acc, create_graph)
            if is_acc:
                if accumulate and grads_in and grads_in[0] is not None:
                    _accumulate(fn, grads_in[0], create_graph, seen_grads)
                continue
            nexts = fn.next_functions
            # not list.count(None): that compares every gradient with None through Tensor.__eq__
            if (grads_in[0] is None if len(grads_in) == 1 else all(g is None for g in grads_in)) or \
                    (useful is not None and not any(n in useful for n, _ in nexts if n is not None)):
                outs = (None,) * len(nexts)
            else:
                pre = fd.get("_node_pre_hooks")
                if pre:
                    for h in pre:
                        r = h(tuple(grads_in))
                        if r is not None:
                            grads_in = list(r)
                if fn._multi and len(grads_in) < len(fn._out_meta):
                    grads_in = grads_in + [None] * (len(fn._out_meta) - len(grads_in))
                try:
                    if spans is None:
                        outs = fn.run_backward(grads_in)
                    else:
                        t0 = perf_counter_ns()
                        outs = fn.run_backward(grads_in)
                        spans(f"autograd::engine::evaluate_function: {fn.name()}", "cpu_op", t0,
                              perf_counter_ns(), None)
                except Exception as e:
                    trace = fd.get("_trace")
                    if trace and hasattr(e, "add_note"):
                        e.add_note(f"Error detected in {fn.name()}. Traceback of forward call that caused "
                                   f"the error:\n{trace}")
                    raise
                if check_nan:
                    _anomaly.check_outputs(fn, outs)
                post = fd.get("_post_hooks")
                if post:
                    for h in post:
                        r = h(outs, tuple(grads_in))
                        if r is not None:
                            outs = tuple(r)
                if not retain_graph and fn._saved:
                    fn._saved = ()
                    fn._released = True
            for (nxt, nr), g in zip(nexts, outs):
                if nxt is None or (useful is not None and nxt not in useful):
                    continue
                if g is not None:
                    buf = buffers.get(nxt)
                    if buf is None:
                        buffers[nxt] = [g] if nr == 0 else [None] * nr + [g]
                    else:
                        _add_to_buffer(buffers, nxt, nr, g)
                d = deps[nxt] - 1
                deps[nxt] = d
                if d == 0:
                    heappush(ready, (-nxt._seq, id(nxt), nxt))
    finally:
        _GRAD.enabled = prev
    return captured


def _tensor_hooks(fn, grads_in: list, create_graph: bool) -> None:
    """Hooks registered on non-leaf tensors (register_hook, retain_grad) see the gradient first."""
    tpre = fn.__dict__.get("_tpre")
    if tpre:
        for nr, hooks in tpre.items():
            if nr < len(grads_in) and grads_in[nr] is not None:
                for h in list(hooks):
                    r = h(grads_in[nr])
                    if r is not None:
                        grads_in[nr] = r
    retain = fn.__dict__.get("_retain")
    if retain:
        for nr, ref in retain.items():
            t = ref()
            if t is not None and nr < len(grads_in) and grads_in[nr] is not None:
                g = grads_in[nr]
                if t._grad is None:
                    t._grad = g.detach().clone() if not create_graph else g.clone()
                else:
                    t._grad = t._grad + g


def _capture(fn, grads_in: list, targets: dict, captured: dict, accumulate: bool, is_acc: bool,
             create_graph: bool) -> None:
    """Record gradients flowing into requested inputs (autograd.grad, or backward(inputs=...))."""
    for nr, g in enumerate(grads_in):
        key = (fn, nr)
        if g is None or key not in targets:
            continue
        if accumulate:
            if not is_acc:  # non-leaf inputs of backward(inputs=...) accumulate into .grad
                t = targets[key]
                t._grad = (g if create_graph else g.detach().clone()) if t._grad is None else t._grad + g
            continue
        if is_acc:
            var = fn.variable
            hooks = var._aux.get("hooks") if var._aux else None
            if hooks:
                for h in list(hooks.values()):
                    r = h(g)
                    if r is not None:
                        g = r
        captured[key] = g


def _add_to_buffer(buffers: dict, fn, nr: int, g) -> None:
    buf = buffers.get(fn)
    if buf is None:
        buf = buffers[fn] = []
    while len(buf) <= nr:
        buf.append(None)
    cur = buf[nr]
    buf[nr] = g if cur is None else cur + g
