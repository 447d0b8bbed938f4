"""Parameter-server training over ZeroMQ (``disttorch launch --mode ps``): a scheduler, S servers, W workers.

Servers own shards of the parameters and run the optimizer; workers compute gradients, push them and pull the
updated parameters. Three modes: ``sync`` (one averaged gradient per worker per step: W workers on batches b
train exactly as one process on batch W*b), ``ssp`` (bounded staleness: a worker runs at most ``staleness``
steps ahead of the slowest) and ``async`` (each push applied as it arrives).

Environment (set by the launcher): ``DISTTORCH_PS_ROLE`` (scheduler | server | worker), ``DISTTORCH_PS_SCHEDULER``
(host:port), ``DISTTORCH_PS_NUM_SERVERS``, ``DISTTORCH_PS_NUM_WORKERS``, ``DISTTORCH_PS_SERVER_ID`` (servers),
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (workers), ``DISTTORCH_JOB_SECRET``, ``DISTTORCH_INTERFACE`` (bind address,
default 127.0.0.1), ``DISTTORCH_PS_SECURE`` ("curve" or unset), ``DISTTORCH_PS_HEARTBEAT_TIMEOUT`` (seconds),
``DISTTORCH_PS_SNAPSHOT_DIR`` (server snapshots; with it a restarted server resumes and workers reconnect).

Example:
    >>> import disttorch.distributed.ps as ps
    >>> ps.init()
    >>> opt = ps.DistributedOptimizer(model.parameters(), "sgd", lr=0.1, momentum=0.9, mode="sync")
    >>> opt.zero_grad(); loss.backward(); opt.step()
    >>> opt.synchronize(); ps.shutdown()

The wire protocol is described in docs/ps-protocol.md. ZeroMQ and msgpack load only when a function needs them.
"""
from .client import KVClient, barrier, get_rank, get_world_size, init, is_initialized, shutdown
from .optimizer import DistributedOptimizer, plan_shards
from .rules import register_update_rule

__all__ = ["init", "shutdown", "get_rank", "get_world_size", "barrier", "is_initialized", "KVClient",
           "DistributedOptimizer", "plan_shards", "register_update_rule"]
