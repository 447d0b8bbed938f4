"""``disttorch.distributed.nn``: differentiable collectives (``functional``), as ``torch.distributed.nn``."""
from . import functional  # noqa: F401
from .functional import all_gather, all_reduce, all_to_all, broadcast, reduce_scatter  # noqa: F401
