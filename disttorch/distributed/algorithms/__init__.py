"""``disttorch.distributed.algorithms``: ``Join`` for uneven inputs and the DDP communication hooks."""
from .join import Join, Joinable, JoinHook

__all__ = ["Join", "Joinable", "JoinHook"]
