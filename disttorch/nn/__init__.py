"""Neural-network layers, losses and functional ops (`disttorch.nn`), as `torch.nn`. Layers arrive with the nn issue."""
from .._missing import not_implemented_getattr

__getattr__ = not_implemented_getattr("disttorch.nn")
