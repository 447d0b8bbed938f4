"""``disttorch.ray``: train with disttorch on Ray (Ray Train backend, trainer, one-call ``run``).

Ray is an optional extra (``pip install disttorch[ray]``); ``import disttorch`` never imports it, and importing
this module without it raises ImportError saying how to install it.

Example:
    >>> import disttorch.ray as dray
    >>> def train(config):
    ...     import disttorch.distributed as dist
    ...     return dist.get_rank()
    >>> dray.run(train, num_workers=2, args=({},))      # embedded local Ray when no address is known
    [0, 1]
"""
try:
    import ray  # noqa: F401
    import ray.train  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("disttorch.ray needs Ray Train: install it with `pip install disttorch[ray]` "
                      f"({e})") from e

from .backend import DisttorchConfig
from .local import ray_session
from .runner import RankError, run
from .trainer import TorchTrainer, prepare_data_loader, prepare_model

__all__ = ["DisttorchConfig", "TorchTrainer", "prepare_model", "prepare_data_loader", "run", "RankError",
           "ray_session"]
