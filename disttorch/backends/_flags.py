"""Module objects whose flags are type-checked on assignment, as PyTorch's ``torch.backends.PropModule``."""
from __future__ import annotations

import contextlib
import sys
import types


class FlagModule(types.ModuleType):
    """A module whose ``_BOOL_FLAGS`` only accept bools (PyTorch raises for ``cudnn.benchmark = "yes"``)."""

    _BOOL_FLAGS: dict = {}

    def __setattr__(self, name: str, value) -> None:
        setter = self._BOOL_FLAGS.get(name)
        if setter is not None and not isinstance(value, bool):
            raise RuntimeError(f"{setter} expects a bool, but got {type(value).__name__}")
        super().__setattr__(name, value)


def install(module_name: str, cls: type) -> None:
    """Give the (already executing) module ``module_name`` the class ``cls`` so its flags are checked."""
    sys.modules[module_name].__class__ = cls


@contextlib.contextmanager
def temporarily(module, **values):
    """Set ``values`` on ``module`` for the duration of the block, restoring the previous values after."""
    old = {k: getattr(module, k) for k in values}
    try:
        for k, v in values.items():
            setattr(module, k, v)
        yield
    finally:
        for k, v in old.items():
            setattr(module, k, v)
