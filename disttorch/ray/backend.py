"""The Ray Train backend: every Ray Train worker becomes one rank of a disttorch process group.

``DisttorchConfig`` is a ``ray.train.backend.BackendConfig`` (the hook Ray's own TorchTrainer uses for
torch.distributed). Its backend's ``on_start`` gives every worker the environment ``disttorch launch`` gives
(RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT, a fresh
DISTTORCH_JOB_SECRET per start) and calls ``disttorch.distributed.init_process_group``; ``on_shutdown``
destroys the group.
"""
from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from typing import Optional

from ray.train.backend import Backend, BackendConfig

_BACKENDS = ("zmq", "gloo", "mpi", "nccl")


@dataclass
class DisttorchConfig(BackendConfig):
    """How Ray Train workers form a disttorch process group (``ray.train.torch.TorchConfig``'s counterpart).

    Args:
        backend: ``"zmq"`` (CPU ring collectives; ``"gloo"`` is an alias), ``"nccl"`` (CUDA tensors) or None:
            nccl when the workers have GPUs, else zmq. ``"mpi"`` is refused: Ray starts its workers itself, and
            the MPI backend needs processes started by mpiexec (use ``disttorch launch --backend mpi``).
        timeout_s: collective and rendezvous timeout in seconds.
        init_group: False sets only the environment, for torchrun-style scripts that call
            ``init_process_group()`` themselves (``disttorch ray submit`` uses this).
    """

    backend: Optional[str] = None
    timeout_s: int = 1800
    init_group: bool = True

    def __post_init__(self) -> None:
        if self.backend is not None and self.backend not in _BACKENDS:
            raise ValueError(f"DisttorchConfig(backend={self.backend!r}): expected one of {_BACKENDS} or None")
        if self.backend == "mpi":
            raise ValueError("DisttorchConfig(backend='mpi'): Ray starts its workers itself, and the MPI backend "
                             "needs processes started by mpiexec; use backend='zmq' (CPU) or 'nccl' (GPU) on Ray, "
                             "or `disttorch launch --backend mpi` outside Ray")
        if self.timeout_s <= 0:
            raise ValueError(f"DisttorchConfig(timeout_s={self.timeout_s}): must be positive")

    @property
    def backend_cls(self):
        return _DisttorchBackend

    def to_dict(self) -> dict:
        return {"backend": self.backend, "timeout_s": self.timeout_s, "init_group": self.init_group}


# --- run on the workers (module-level so Ray ships them by reference) ------------------------------------------

def _node_and_address() -> tuple:
    import ray

    ctx = ray.get_runtime_context()
    return ctx.get_node_id(), ray.util.get_node_ip_address()


def _free_port(addr: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def _setup_worker(env: dict, backend: str, timeout_s: int, init_group: bool = True) -> None:
    from datetime import timedelta

    os.environ.update(env)
    import disttorch.distributed as dist

    if dist.is_initialized():  # a replaced group on a reused actor
        dist.destroy_process_group()
    if not init_group:
        return
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))


def _shutdown_worker() -> None:
    import disttorch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def worker_environments(nodes: list, master_addr: str, master_port: int, backend: str, secret: str,
                        addresses: Optional[list] = None) -> list:
    """The ``disttorch launch`` environment of each worker, from the node of each (in rank order).

    Args:
        nodes: the node id of each worker, indexed by rank.
        master_addr, master_port: rank 0's node address and the rendezvous port there.
        backend: the disttorch backend name.
        secret: the job secret (hex).
        addresses: each worker's node address (Ray's node IP); with several nodes it becomes DISTTORCH_INTERFACE,
            the address the worker binds, as ``disttorch launch --interface`` sets it.

    Returns:
        One dict of environment variables per rank.
    """
    order = list(dict.fromkeys(nodes))  # nodes in order of first appearance: GROUP_RANK
    envs = []
    for rank, node in enumerate(nodes):
        same = [r for r, n in enumerate(nodes) if n == node]
        envs.append({
            "RANK": str(rank), "LOCAL_RANK": str(same.index(rank)), "WORLD_SIZE": str(len(nodes)),
            "LOCAL_WORLD_SIZE": str(len(same)), "GROUP_RANK": str(order.index(node)),
            "GROUP_WORLD_SIZE": str(len(order)), "ROLE_RANK": str(rank), "ROLE_WORLD_SIZE": str(len(nodes)),
            "ROLE_NAME": "default", "MASTER_ADDR": master_addr, "MASTER_PORT": str(master_port),
            "DISTTORCH_BACKEND": backend, "DISTTORCH_JOB_SECRET": secret,
        })
        if addresses is not None and len(order) > 1:
            envs[-1]["DISTTORCH_INTERFACE"] = addresses[rank]
    return envs


class _DisttorchBackend(Backend):
    share_cuda_visible_devices: bool = True

    def on_start(self, worker_group, backend_config: DisttorchConfig) -> None:
        import ray

        backend = backend_config.backend
        if backend is None:
            gpus = worker_group.get_resources_per_worker().get("GPU", 0)
            backend = "nccl" if gpus > 0 else "zmq"
        placed = worker_group.execute(_node_and_address)
        nodes = [node for node, _ in placed]
        # One node: rendezvous over loopback (nothing leaves the host); else rank 0's node address.
        master_addr = "127.0.0.1" if len(set(nodes)) == 1 else placed[0][1]
        master_port = worker_group.execute_single(0, _free_port, master_addr)
        # A fresh secret per start: a replaced worker group never shares MAC keys with the one it replaces.
        envs = worker_environments(nodes, master_addr, master_port, backend, secrets.token_hex(16),
                                   [address for _, address in placed])
        ray.get([worker_group.execute_single_async(i, _setup_worker, envs[i], backend, backend_config.timeout_s,
                                                  backend_config.init_group)
                 for i in range(len(worker_group))])

    def on_shutdown(self, worker_group, backend_config: DisttorchConfig) -> None:
        worker_group.execute(_shutdown_worker)
