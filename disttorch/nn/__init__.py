"""Neural-network layers, losses and functional ops (`disttorch.nn`), as `torch.nn`.

Layers live at PyTorch's module paths (``disttorch.nn.modules.linear.Linear``) and are re-exported here;
``disttorch.nn.functional`` holds the functional forms, ``disttorch.nn.init`` the initialisers and
``disttorch.nn.utils`` gradient clipping and sequence packing.
"""
from .._missing import not_implemented_getattr
from . import functional, init, modules, parameter, utils  # noqa: F401
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules_all
from .parameter import Buffer, Parameter

__all__ = ["Parameter", "Buffer", "functional", "init", "utils"] + list(_modules_all)

_missing = not_implemented_getattr("disttorch.nn")


def __getattr__(name: str):
    # nn.parallel pulls in disttorch.distributed; load it on first use so `import disttorch.nn` stays light.
    if name in ("parallel", "attention"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    return _missing(name)
