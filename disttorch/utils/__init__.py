"""Utilities (`disttorch.utils`): data loading and checkpointing arrive with the nn issue."""
from .._missing import not_implemented_getattr

__getattr__ = not_implemented_getattr("disttorch.utils")
