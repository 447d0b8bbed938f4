"""``disttorch.distributed``, as ``torch.distributed``: process groups, collectives, object collectives.

Backends (``zmq``, alias ``gloo``; ``mpi``; ``nccl``) load on first use, so importing this package imports
neither mpi4py nor zmq. The store classes (``TCPStore``...) and the submodules (``nn``, ``algorithms``...)
load on first attribute access too.

Example:
    >>> import disttorch as torch, disttorch.distributed as dist
    >>> dist.init_process_group()                    # RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT from the launcher
    >>> t = torch.ones(3) * dist.get_rank()
    >>> dist.all_reduce(t, op=dist.ReduceOp.SUM)
    >>> dist.destroy_process_group()
"""
from .._missing import not_implemented_getattr
from .distributed_c10d import *  # noqa: F401,F403
from .distributed_c10d import __all__ as _c10d_all

__all__ = list(_c10d_all) + [  # noqa: F405 - the store names load lazily (__getattr__)
    "Store", "TCPStore", "PrefixStore", "HashStore", "DistStoreError", "DistNetworkError", "DistError",
    "DistBackendError"]

_STORE_NAMES = {"Store", "TCPStore", "PrefixStore", "HashStore", "DistStoreError", "DistNetworkError"}
_missing = not_implemented_getattr("disttorch.distributed")


class DistError(RuntimeError):
    """Base of distributed errors (``torch.distributed.DistError``)."""


class DistBackendError(DistError):
    """A backend failed (``torch.distributed.DistBackendError``)."""


def __getattr__(name: str):
    if name in _STORE_NAMES:
        from . import store

        return getattr(store, name)
    if not name.startswith("_"):
        import importlib
        import importlib.util

        full = f"{__name__}.{name}"
        try:
            found = importlib.util.find_spec(full) is not None
        except (ImportError, ValueError):
            found = False
        if found:
            return importlib.import_module(full)
    return _missing(name)
