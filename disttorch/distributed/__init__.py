"""`disttorch.distributed`, as `torch.distributed`: collectives and DDP arrive with the distributed issue."""
from .._missing import not_implemented_getattr


def is_available() -> bool:
    """False until the distributed backends land."""
    return False


def is_initialized() -> bool:
    return False


__getattr__ = not_implemented_getattr("disttorch.distributed")
