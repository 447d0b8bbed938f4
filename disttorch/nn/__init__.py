"""Neural-network layers, losses and functional ops (`disttorch.nn`), as `torch.nn`."""
from .._missing import not_implemented_getattr
from . import functional, init, modules, parameter, utils  # noqa: F401
from .modules import Module, ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from .parameter import Buffer, Parameter

__all__ = ["Module", "Parameter", "Buffer", "Sequential", "ModuleList", "ModuleDict", "ParameterList",
           "ParameterDict"]

__getattr__ = not_implemented_getattr("disttorch.nn")
