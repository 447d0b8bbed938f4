"""Hook handles and the module backward-hook helper, as ``torch.utils.hooks``."""
from __future__ import annotations

import functools
import weakref
from collections import OrderedDict
from typing import Any, Callable

__all__ = ["RemovableHandle", "BackwardHook", "unserializable_hook", "warn_if_has_hooks"]


class RemovableHandle:
    """A handle which provides the capability to remove a hook.

    Args:
        hooks_dict: the dictionary of hooks, indexed by hook id.
        extra_dict: an additional dictionary (or list of them) whose keys are hook ids; the
            handle's id is removed from them too.
    """

    id: int
    next_id: int = 0

    def __init__(self, hooks_dict: Any, *, extra_dict: Any = None) -> None:
        self.hooks_dict_ref = weakref.ref(hooks_dict)
        self.id = RemovableHandle.next_id
        RemovableHandle.next_id += 1
        self.extra_dict_ref: tuple = ()
        if isinstance(extra_dict, dict):
            self.extra_dict_ref = (weakref.ref(extra_dict),)
        elif isinstance(extra_dict, list):
            self.extra_dict_ref = tuple(weakref.ref(d) for d in extra_dict)

    def remove(self) -> None:
        """Unregister the hook (a no-op when it is already gone)."""
        hooks_dict = self.hooks_dict_ref()
        if hooks_dict is not None and self.id in hooks_dict:
            del hooks_dict[self.id]
        for ref in self.extra_dict_ref:
            extra = ref()
            if extra is not None and self.id in extra:
                del extra[self.id]

    def __getstate__(self):
        return (self.hooks_dict_ref(), self.id, tuple(ref() for ref in self.extra_dict_ref))

    def __setstate__(self, state) -> None:
        # A dead weak reference pickles as None: point at a fresh dict so remove() stays a no-op.
        self.hooks_dict_ref = weakref.ref(OrderedDict() if state[0] is None else state[0])
        self.id = state[1]
        RemovableHandle.next_id = max(RemovableHandle.next_id, self.id + 1)
        extras = state[2] if len(state) > 2 else ()
        self.extra_dict_ref = tuple(weakref.ref(d) for d in extras if d is not None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _add_hook(hooks: dict, hook, prepend: bool = False, extra=None, flags=()) -> RemovableHandle:
    """Store ``hook`` in ``hooks`` (first if ``prepend``), mark it in each dict of ``flags``."""
    handle = RemovableHandle(hooks, extra_dict=extra)
    hooks[handle.id] = hook
    for d in flags:
        d[handle.id] = True
    if prepend:
        hooks.move_to_end(handle.id, last=False)
    return handle


class _WrappedHook:
    """A hook called as ``hook(module, *args)``; holds the module weakly (no reference cycle)."""

    def __init__(self, hook: Callable, module=None) -> None:
        self.hook = hook
        functools.update_wrapper(self, hook)
        self.with_module = module is not None
        if module is not None:
            self.module = weakref.ref(module)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.with_module:
            module = self.module()
            if module is None:
                raise RuntimeError("You are trying to call the hook of a dead Module!")
            return self.hook(module, *args, **kwargs)
        return self.hook(*args, **kwargs)

    def __getstate__(self) -> dict:
        # A strong reference here lets deepcopy/pickle map the module to its copy.
        state = {"hook": self.hook, "with_module": self.with_module}
        if self.with_module:
            state["module"] = self.module()
        return state

    def __setstate__(self, state: dict) -> None:
        self.hook = state["hook"]
        self.with_module = state["with_module"]
        if self.with_module:
            if state["module"] is None:
                raise RuntimeError("You are trying to revive the hook of a dead Module!")
            self.module = weakref.ref(state["module"])


def unserializable_hook(f):
    """Mark a function as a hook that is not serialised (kept for API compatibility)."""
    f.__torch_unserializable__ = True
    return f


def warn_if_has_hooks(tensor) -> None:
    """Kept for API compatibility: disttorch never pickles tensor hooks, so there is nothing to warn about."""


class _HookNode:
    """Factory for the identity graph node that gives the module hooks their gradients."""

    cls = None

    @classmethod
    def get(cls):
        if cls.cls is None:
            from ..autograd.function import Node

            class BackwardHookFunctionBackward(Node):
                def backward(self, *grads):
                    out = self.on_grads(grads)
                    return tuple(out) if len(out) > 1 else out[0]

            cls.cls = BackwardHookFunctionBackward
        return cls.cls


class BackwardHook:
    """Runs a module's full backward (pre-)hooks: the helper ``Module.__call__`` uses.

    Each tensor input and output goes through an identity graph node. The node on the outputs
    receives ``grad_output`` (and runs the backward pre-hooks, which may replace it); the node on
    the inputs receives ``grad_input`` and runs ``hook(module, grad_input, grad_output)``, whose
    result replaces ``grad_input``. When no input requires grad, the hooks run at the output node
    with ``grad_input`` all None.

    Limits: only tensors passed directly as positional arguments or returned directly (or in a
    tuple) are seen; tensors nested in lists or dicts are not.
    """

    def __init__(self, module, user_hooks: list, user_pre_hooks: list) -> None:
        self.module = module
        self.user_hooks = user_hooks
        self.user_pre_hooks = user_pre_hooks
        self.grad_outputs = None
        self.n_inputs = 0
        self.input_tensors_index = None

    def _wrap(self, tensors: list, on_grads):
        """Route the tensors that require grad through one identity node; returns (new list, their indices)."""
        from .._tensor import Tensor, _view_of
        from ..autograd.grad_mode import STATE

        idx = [i for i, t in enumerate(tensors) if isinstance(t, Tensor) and t._requires_grad]
        if not STATE.enabled or not idx:
            return tensors, []
        node = _HookNode.get()(*[tensors[i] for i in idx])
        node.on_grads = on_grads
        outs = [_view_of(tensors[i], tensors[i]._data) for i in idx]
        if len(outs) == 1:
            outs[0]._requires_grad = True
            outs[0].grad_fn = node
        else:
            node.set_outputs(*outs)
        new = list(tensors)
        for i, o in zip(idx, outs):
            new[i] = o
        return new, idx

    def setup_input_hook(self, args: tuple) -> tuple:
        """Route the tensor ``args`` through a node whose backward runs the user hooks."""
        self.n_inputs = len(args)

        def on_grads(grads):
            res = self._run_hooks(self._expand(grads, self.n_inputs, self.input_tensors_index))
            return [res[i] for i in self.input_tensors_index]

        new, idx = self._wrap(list(args), on_grads)
        self.input_tensors_index = idx or None
        return tuple(new)

    def setup_output_hook(self, result):
        """Route the tensor outputs through a node that records ``grad_output``."""
        from .._tensor import Tensor

        single = isinstance(result, Tensor)
        outs = [result] if single else list(result) if isinstance(result, tuple) else None
        if outs is None:
            return result
        index: list = []

        def on_grads(grads):
            full = self._expand(grads, len(outs), index)
            for hook in self.user_pre_hooks:
                r = hook(self.module, full)
                if r is not None:
                    full = tuple(r) if isinstance(r, (tuple, list)) else (r,)
            self.grad_outputs = full
            if self.input_tensors_index is None:
                # No input needs grad: the hooks fire now, with grad_input all None.
                self._run_hooks((None,) * self.n_inputs)
            return [full[i] for i in index]

        new, idx = self._wrap(outs, on_grads)
        index.extend(idx)
        return new[0] if single else tuple(new)

    @staticmethod
    def _expand(grads, n: int, index: list) -> tuple:
        full = [None] * n
        for i, g in zip(index, grads):
            full[i] = g
        return tuple(full)

    def _run_hooks(self, grad_input: tuple) -> tuple:
        for hook in self.user_hooks:
            r = hook(self.module, grad_input, self.grad_outputs)
            if r is None:
                continue
            r = tuple(r) if isinstance(r, (tuple, list)) else (r,)
            if len(r) != len(grad_input):
                raise RuntimeError(f"Backward hook returned an invalid number of grad_input, got {len(r)}, "
                                   f"but expected {len(grad_input)}")
            grad_input = r
        return grad_input
