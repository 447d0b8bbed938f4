"""Utilities (`disttorch.utils`): ``data`` (datasets and the DataLoader) loads on first use."""
import importlib as _importlib

from .._missing import not_implemented_getattr

_missing = not_implemented_getattr("disttorch.utils")
_SUBMODULES = {"data"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        mod = _importlib.import_module(f"{__name__}.{name}")
        globals()[name] = mod
        return mod
    return _missing(name)
