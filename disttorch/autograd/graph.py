"""``disttorch.autograd.graph``: hooks on saved tensors (``saved_tensors_hooks``, ``save_on_cpu``).

Inside ``saved_tensors_hooks(pack, unpack)`` every tensor an op saves for backward is passed to
``pack`` and what it returns is stored; backward calls ``unpack`` on it to get a tensor back. This
is how activations are offloaded or compressed (PyTorch's API; the tensor given to ``pack`` is
detached, and the graph around it is unchanged).
"""
from __future__ import annotations

import threading

__all__ = ["saved_tensors_hooks", "save_on_cpu", "disable_saved_tensors_hooks"]


class _Hooks(threading.local):
    def __init__(self) -> None:
        self.stack = []


HOOKS = _Hooks()


class saved_tensors_hooks:
    """Context manager installing ``pack_hook(tensor) -> obj`` and ``unpack_hook(obj) -> tensor``.

    Example:
        >>> with disttorch.autograd.graph.saved_tensors_hooks(lambda t: t.numpy().copy(),
        ...                                                    lambda a: disttorch.from_numpy(a)):
        ...     y = (x * x).sum()
    """

    def __init__(self, pack_hook, unpack_hook) -> None:
        self.pack_hook, self.unpack_hook = pack_hook, unpack_hook

    def __enter__(self):
        HOOKS.stack.append((self.pack_hook, self.unpack_hook))
        return self

    def __exit__(self, *exc) -> None:
        HOOKS.stack.pop()


class save_on_cpu(saved_tensors_hooks):
    """Keep saved tensors in host memory and move them back to their device in backward."""

    def __init__(self, pin_memory: bool = False, device_type: str = "cuda") -> None:
        def pack(t):
            return (t.device, t.cpu())

        def unpack(packed):
            dev, t = packed
            return t.to(dev)

        super().__init__(pack, unpack)


class disable_saved_tensors_hooks:
    """Raise inside the block if code tries to install saved-tensor hooks (``error_message`` explains why)."""

    def __init__(self, error_message: str) -> None:
        self.error_message = error_message

    def __enter__(self):
        self._prev = HOOKS.stack
        outer = self

        class _Refuse(list):
            def append(self, item):
                raise RuntimeError(outer.error_message)

        HOOKS.stack = _Refuse(self._prev)
        return self

    def __exit__(self, *exc) -> None:
        HOOKS.stack = self._prev


def __getattr__(name: str):
    if name == "Node":
        from .function import Node

        return Node
    from .._missing import not_implemented_getattr

    return not_implemented_getattr("disttorch.autograd.graph")(name)
