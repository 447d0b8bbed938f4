"""``disttorch.ray.run``: run one function on N Ray Train workers and return every rank's value."""
from __future__ import annotations

import traceback
from typing import Any, Callable, Optional, Sequence


class RankError(RuntimeError):
    """A rank's exception in :func:`run`, with the rank and the remote traceback.

    Attributes:
        rank: the rank that failed (the lowest one when several did).
        remote_traceback: the traceback text from that worker.
        failures: every failed rank's exception, by rank.
    """

    def __init__(self, rank: int, remote_traceback: str, failures: dict) -> None:
        others = sorted(r for r in failures if r != rank)
        tail = f" (ranks {others} failed too)" if others else ""
        super().__init__(f"disttorch.ray.run: rank {rank} failed{tail}:\n{remote_traceback}")
        self.rank = rank
        self.remote_traceback = remote_traceback
        self.failures = failures


def _traceback_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _make_collector():
    import ray

    @ray.remote(num_cpus=0)
    class _Results:
        def __init__(self) -> None:
            self.values = {}

        def put(self, rank: int, value: Any) -> None:
            self.values[rank] = value

        def get(self) -> dict:
            return self.values

    return _Results.remote()


def _run_loop(config: dict) -> None:
    import ray

    import disttorch.distributed as dist

    try:
        value = config["fn"](*config["args"], **config["kwargs"])
    except BaseException as e:
        # Ray returns the exception without its traceback; the attribute travels in the pickled __dict__.
        e.disttorch_traceback = _traceback_text(e)
        raise
    ray.get(config["results"].put.remote(dist.get_rank(), value))


def _run_ps_loop(config: dict) -> None:
    """A ps-mode worker of :func:`run`: join the ps job, run the function, leave the job (so the servers end)."""
    import os

    import ray

    import disttorch.distributed.ps as ps

    ps.init()
    try:
        try:
            value = config["fn"](*config["args"], **config["kwargs"])
        except BaseException as e:
            e.disttorch_traceback = _traceback_text(e)
            raise
        ray.get(config["results"].put.remote(int(os.environ["RANK"]), value))
    finally:
        ps.shutdown()


def run(train_fn: Callable, *, num_workers: int, use_gpu: bool = False, backend: Optional[str] = None,
        address: Optional[str] = None, args: Sequence = (), kwargs: Optional[dict] = None,
        resources_per_worker: Optional[dict] = None, timeout_s: int = 1800, mode: str = "ddp",
        num_servers: Optional[int] = None) -> list:
    """Run ``train_fn(*args, **kwargs)`` on ``num_workers`` Ray Train workers forming one disttorch group.

    With ``mode="ps"`` the workers are the workers of a parameter-server job instead (``disttorch.ray.ps``): a
    scheduler and ``num_servers`` servers run as Ray actors, every worker has joined the job (``ps.init()``)
    before ``train_fn`` runs and leaves it (``ps.shutdown()``) after; ``disttorch.distributed`` is then not
    initialised (the torchrun variables are set, so ``init_process_group()`` works).

    Args:
        train_fn: the function; inside it ``disttorch.distributed`` is initialised (ddp mode).
        num_workers: number of workers (ranks).
        use_gpu: give each worker one GPU (backend nccl unless ``backend`` says otherwise).
        backend: ``"zmq"``, ``"nccl"`` or None (see :class:`DisttorchConfig`).
        address: a Ray address; default RAY_ADDRESS, a Ray running here, else an embedded local Ray.
        args, kwargs: the function's arguments (shipped to each worker by Ray).
        resources_per_worker: Ray resources per worker (default one CPU, plus one GPU with ``use_gpu``).
        timeout_s: collective and rendezvous timeout.
        mode: ``"ddp"`` (a process group) or ``"ps"`` (a parameter-server job).
        num_servers: parameter servers in ps mode (default 1).

    Returns:
        Every rank's return value, indexed by rank.

    Raises:
        RankError: a rank raised; the message names the rank and carries its remote traceback.
        disttorch.ray.ps.RoleError: ps mode: the scheduler or a server failed.
        ValueError: ``num_workers`` or ``num_servers`` is not positive, or ``mode`` is unknown.
    """
    import ray
    import ray.train

    from .backend import DisttorchConfig
    from .local import ray_session
    from .trainer import TorchTrainer

    if num_workers < 1:
        raise ValueError(f"disttorch.ray.run(num_workers={num_workers}): must be at least 1")
    if mode not in ("ddp", "ps"):
        raise ValueError(f"disttorch.ray.run(mode={mode!r}): expected 'ddp' or 'ps'")
    if num_servers is not None and mode != "ps":
        raise ValueError(f"disttorch.ray.run(num_servers={num_servers}): applies to mode='ps' only")
    with ray_session(address, num_cpus=None):
        results = _make_collector()
        config = {"fn": train_fn, "args": tuple(args), "kwargs": dict(kwargs or {}), "results": results}
        try:
            if mode == "ps":
                from .ps import run_ps_job

                run_ps_job(_run_ps_loop, config, num_workers=num_workers, num_servers=num_servers or 1,
                           use_gpu=use_gpu, backend=backend, resources_per_worker=resources_per_worker)
            else:
                TorchTrainer(
                    _run_loop, train_loop_config=config,
                    backend_config=DisttorchConfig(backend=backend, timeout_s=timeout_s),
                    scaling_config=ray.train.ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                                           resources_per_worker=resources_per_worker)).fit()
        except ray.train.WorkerGroupError as e:
            ray.kill(results)
            failures = dict(e.worker_failures)
            rank = min(failures)
            exc = failures[rank]
            text = getattr(exc, "disttorch_traceback", None) or getattr(exc, "_traceback_str", None)
            raise RankError(rank, text or _traceback_text(exc), failures) from None
        values = ray.get(results.get.remote())
        ray.kill(results)
    missing = [r for r in range(num_workers) if r not in values]
    if missing:
        raise RuntimeError(f"disttorch.ray.run: ranks {missing} finished without returning a value")
    return [values[r] for r in range(num_workers)]
