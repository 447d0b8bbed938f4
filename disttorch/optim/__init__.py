"""Optimizers and learning-rate schedulers (`disttorch.optim`), as `torch.optim`. They arrive with the nn issue."""
from .._missing import not_implemented_getattr

__getattr__ = not_implemented_getattr("disttorch.optim")
