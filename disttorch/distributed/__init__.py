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
from .distributed_c10d import *  # noqa: F401,F403,I001 - first: it loads the collectives
from ._objects import (all_gather_object, broadcast_object_list, gather_object, recv_object_list,  # noqa: F401
                       scatter_object_list, send_object_list)
from .distributed_c10d import __all__ as _c10d_all
from .process_group import Work  # noqa: F401

__all__ = list(_c10d_all) + [  # noqa: F405 - the store names load lazily (__getattr__)"all_gather_object", "broadcast_object_list", "gather_object", "recv_object_list",
                             "scatter_object_list", "send_object_list", "Store", "TCPStore", "PrefixStore",
                             "HashStore", "DistStoreError", "DistNetworkError", "DistError", "DistBackendError",
                             "get_default_backend_for_device"]

def get_default_backend_for_device(device) -> str:
    """The backend ``init_process_group`` would pick for tensors on ``device``, as PyTorch's function.

    ``"cuda"`` gives ``"nccl"``; ``"cpu"`` gives disttorch's default CPU backend, the one ``backend=None``
    picks: ``"mpi"`` in a process an MPI launcher started (with mpi4py installed), else ``"zmq"`` (PyTorch
    answers ``"gloo"``, which disttorch runs on ``zmq``).

    Args:
        device: a device type or device (``"cpu"``, ``"cuda:1"``, ``disttorch.device("cuda")``).

    Raises:
        ValueError: no backend is registered for that device type.
    """
    from .._device import device as _device
    from .distributed_c10d import _choose_backend

    kind = device.type if isinstance(device, _device) else _device(device).type
    if kind == "cpu":
        return _choose_backend(None)
    if kind == "cuda":
        return "nccl"
    raise ValueError(f"Default backend not registered for device : {device}")


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
