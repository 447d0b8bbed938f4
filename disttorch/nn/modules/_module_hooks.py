"""``Module``'s hook machinery (a mixin, to keep module.py readable): registering forward, forward-pre and
backward hooks, and ``__call__``, which runs them around ``forward`` as ``torch.nn.Module._call_impl`` does.

The hook dicts themselves are created by ``Module.__init__`` (their names are :data:`_HOOK_DICTS`); the
state-dict hooks among them are run by ``_state_dict.StateDictMixin``.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from ..._tensor import Tensor
from ...utils.hooks import BackwardHook, RemovableHandle, _add_hook, _WrappedHook

__all__ = ["HooksMixin"]

_HOOK_DICTS = ("_backward_pre_hooks", "_backward_hooks", "_forward_hooks", "_forward_hooks_with_kwargs",
               "_forward_hooks_always_called", "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs",
               "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
               "_load_state_dict_post_hooks")


class HooksMixin:
    """The hook half of ``Module``: forward/backward hook registration and ``__call__``."""

    __slots__ = ()

    def register_forward_pre_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False) -> RemovableHandle:
        """Run ``hook(module, args)`` (or ``hook(module, args, kwargs)``) before every ``forward``.

        A non-None return replaces the inputs: a value or tuple for ``args``, or a
        ``(args, kwargs)`` pair when ``with_kwargs``. ``prepend`` runs it before existing hooks.
        """
        flags = [self._forward_pre_hooks_with_kwargs] if with_kwargs else []
        return _add_hook(self._forward_pre_hooks, hook, prepend, self._forward_pre_hooks_with_kwargs, flags)

    def register_forward_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False) -> RemovableHandle:
        """Run ``hook(module, args, output)`` (or ``hook(module, args, kwargs, output)``) after ``forward``.

        A non-None return replaces the output. ``always_call`` runs the hook even when forward
        raises; ``prepend`` runs it before existing hooks.
        """
        extra = [self._forward_hooks_with_kwargs, self._forward_hooks_always_called]
        flags = [d for d, on in zip(extra, (with_kwargs, always_call)) if on]
        return _add_hook(self._forward_hooks, hook, prepend, extra, flags)

    def register_full_backward_pre_hook(self, hook, prepend: bool = False) -> RemovableHandle:
        """Run ``hook(module, grad_output)`` when the gradients of the module's outputs are ready.

        A non-None return replaces ``grad_output``. See ``disttorch.utils.hooks.BackwardHook`` for
        what is covered.
        """
        return _add_hook(self._backward_pre_hooks, hook, prepend)

    def register_full_backward_hook(self, hook, prepend: bool = False) -> RemovableHandle:
        """Run ``hook(module, grad_input, grad_output)`` when the gradients of the inputs are computed.

        A non-None return replaces ``grad_input``. Only tensors passed directly as positional
        arguments (and returned directly or in a tuple) are tracked; keyword tensors give no grads.
        """
        self._set_backward_hook_kind(True)
        return _add_hook(self._backward_hooks, hook, prepend)

    def register_backward_hook(self, hook) -> RemovableHandle:
        """Deprecated: ``hook(module, grad_input, grad_output)`` on the grad_fn of the first output.

        ``grad_input`` holds the gradients of that one graph node's inputs, which are the module's
        inputs only for single-op modules; prefer :meth:`register_full_backward_hook`.
        """
        self._set_backward_hook_kind(False)
        return _add_hook(self._backward_hooks, hook)

    def _set_backward_hook_kind(self, full: bool) -> None:
        if self._is_full_backward_hook is (not full):
            raise RuntimeError("Cannot use both regular backward hooks and full backward hooks on a single "
                               "Module. Please use only one of them.")
        self._is_full_backward_hook = full

    def _run_forward_hook(self, hook_id, hook, args, kwargs, result):
        if hook_id in self._forward_hooks_with_kwargs:
            out = hook(self, args, kwargs, result)
        else:
            out = hook(self, args, result)
        return result if out is None else out

    def _call_impl(self, *args, **kwargs):
        forward_call = self.forward
        if not (self._forward_hooks or self._forward_pre_hooks or self._backward_hooks or self._backward_pre_hooks):
            return forward_call(*args, **kwargs)
        result = None
        called_always = set()
        try:
            for hook_id, hook in list(self._forward_pre_hooks.items()):
                if hook_id in self._forward_pre_hooks_with_kwargs:
                    out = hook(self, args, kwargs)
                    if out is not None:
                        if not (isinstance(out, tuple) and len(out) == 2):
                            raise RuntimeError("forward pre-hook must return None or a tuple of (new_args, "
                                               f"new_kwargs), but got {out}.")
                        args, kwargs = out
                else:
                    out = hook(self, args)
                    if out is not None:
                        args = out if isinstance(out, tuple) else (out,)
            bw_hook = None
            if self._backward_pre_hooks or (self._backward_hooks and self._is_full_backward_hook):
                bw_hook = BackwardHook(self, list(self._backward_hooks.values()),
                                       list(self._backward_pre_hooks.values()))
                args = bw_hook.setup_input_hook(args)
            result = forward_call(*args, **kwargs)
            for hook_id, hook in list(self._forward_hooks.items()):
                if hook_id in self._forward_hooks_always_called:
                    called_always.add(hook_id)
                result = self._run_forward_hook(hook_id, hook, args, kwargs, result)
            if bw_hook is not None:
                result = bw_hook.setup_output_hook(result)
            elif self._backward_hooks:
                var = result
                while not isinstance(var, Tensor):
                    var = next(v for v in var.values() if isinstance(v, Tensor)) if isinstance(var, dict) else var[0]
                if var.grad_fn is not None:
                    for hook in self._backward_hooks.values():
                        var.grad_fn.register_hook(_WrappedHook(hook, self))
            return result
        except Exception:
            for hook_id, hook in list(self._forward_hooks.items()):
                if hook_id in self._forward_hooks_always_called and hook_id not in called_always:
                    try:
                        result = self._run_forward_hook(hook_id, hook, args, kwargs, result)
                    except Exception as e:
                        warnings.warn("module forward hook with ``always_call=True`` raised an exception that was "
                                      f"silenced as another error was raised in forward: {e}", stacklevel=2)
            raise

    __call__: Callable[..., Any] = _call_impl
