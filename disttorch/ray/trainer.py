"""``TorchTrainer`` on disttorch, and the helpers that prepare a model and a DataLoader for it.

Mirrors ``ray.train.torch.TorchTrainer``: a Ray Train ``DataParallelTrainer`` whose backend is
:class:`DisttorchConfig`. Inside ``train_loop_per_worker`` disttorch.distributed is initialised, and
``ray.train.report`` / ``ray.train.get_checkpoint`` carry checkpoints written with ``disttorch.save``.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Optional

from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

from .backend import DisttorchConfig


def _offer_checkpoint(checkpoint) -> None:
    """Make ``ray.train.get_checkpoint()`` return ``checkpoint`` in this worker while Ray Train has none of its own.

    Ray Train V2 keeps the worker's latest checkpoint in its train context (restored by Ray after a failure,
    replaced by every ``ray.train.report`` with a checkpoint); only an empty slot is filled, so Ray's own
    checkpoints always win.
    """
    try:
        from ray.train.v2._internal.execution.context import get_train_context
    except ImportError as e:  # pragma: no cover - a Ray whose Train V2 moved its context
        raise RuntimeError(f"TorchTrainer(resume_from_checkpoint=...): this Ray's Train V2 has no train context "
                           f"where the checkpoint could be offered ({e}); tested with Ray 2.60") from e
    ctx = get_train_context()
    with ctx.report_order_condition:
        if ctx.checkpoint is None:
            ctx.checkpoint = checkpoint


def _resuming(loop: Callable, checkpoint) -> Callable:
    """``loop`` with ``checkpoint`` offered to ``ray.train.get_checkpoint()`` first (same arity: Ray inspects it)."""
    if len(inspect.signature(loop).parameters) == 0:
        def resume_loop():
            _offer_checkpoint(checkpoint)
            return loop()
    else:
        def resume_loop(config):
            _offer_checkpoint(checkpoint)
            return loop(config)
    resume_loop.__name__ = getattr(loop, "__name__", "train_loop_per_worker")
    return resume_loop


class TorchTrainer(DataParallelTrainer):
    """A Ray Train data-parallel trainer whose workers form one disttorch process group.

    Args:
        train_loop_per_worker: run on every worker; takes no argument or the ``train_loop_config`` dict.
        train_loop_config: passed to ``train_loop_per_worker``.
        scaling_config: ``ray.train.ScalingConfig`` (num_workers, use_gpu, resources_per_worker,
            placement_strategy).
        run_config: ``ray.train.RunConfig`` (storage_path, failure_config, checkpoint_config).
        backend_config: a :class:`DisttorchConfig` (default: zmq on CPU, nccl with GPUs).
        datasets: Ray Datasets by name, read with ``ray.train.get_dataset_shard(name)``.
        resume_from_checkpoint: a ``ray.train.Checkpoint`` (e.g. an earlier ``Result.checkpoint``) that
            ``ray.train.get_checkpoint()`` returns inside the loop until this run reports a checkpoint of its own
            (also after a worker-group restart that has none yet). Ray Train V2 refuses the argument; this
            trainer implements it itself.
        **kwargs: further ``DataParallelTrainer`` arguments (``dataset_config``, ``validation_config``).

    Example:
        >>> trainer = TorchTrainer(loop, scaling_config=ray.train.ScalingConfig(num_workers=2))
        >>> result = trainer.fit()
    """

    def __init__(self, train_loop_per_worker: Callable, *, train_loop_config: Optional[Dict] = None,
                 scaling_config=None, run_config=None, backend_config: Optional[DisttorchConfig] = None,
                 datasets: Optional[Dict[str, Any]] = None, resume_from_checkpoint=None, **kwargs) -> None:
        if resume_from_checkpoint is not None:
            from ray.train import Checkpoint

            if not isinstance(resume_from_checkpoint, Checkpoint):
                raise TypeError(f"TorchTrainer(resume_from_checkpoint=...): expected a ray.train.Checkpoint, got "
                                f"{type(resume_from_checkpoint).__name__}")
            train_loop_per_worker = _resuming(train_loop_per_worker, resume_from_checkpoint)
        backend_config = backend_config if backend_config is not None else DisttorchConfig()
        if not isinstance(backend_config, DisttorchConfig):
            raise TypeError(f"TorchTrainer(backend_config=...): expected a disttorch.ray.DisttorchConfig, got "
                            f"{type(backend_config).__name__}")
        super().__init__(train_loop_per_worker, train_loop_config=train_loop_config, backend_config=backend_config,
                         scaling_config=scaling_config, run_config=run_config, datasets=datasets, **kwargs)


def prepare_model(model, *, move_to_device: bool = True, parallel_strategy: Optional[str] = "ddp",
                  parallel_strategy_kwargs: Optional[Dict[str, Any]] = None):
    """Move ``model`` to this worker's device and wrap it in DistributedDataParallel (``ray.train.torch``'s helper).

    Args:
        model: a ``disttorch.nn.Module``.
        move_to_device: move the model to ``cuda:LOCAL_RANK`` when the group's backend is nccl.
        parallel_strategy: ``"ddp"`` or None (no wrapping).
        parallel_strategy_kwargs: keyword arguments for DistributedDataParallel.

    Returns:
        The wrapped model (unchanged when the world has one worker or ``parallel_strategy`` is None).
    """
    import disttorch.distributed as dist

    if parallel_strategy not in ("ddp", None):
        raise ValueError(f"prepare_model(parallel_strategy={parallel_strategy!r}): disttorch supports 'ddp' or None")
    if not dist.is_initialized():
        raise RuntimeError("prepare_model: disttorch.distributed is not initialised; call it inside a "
                           "disttorch.ray.TorchTrainer training loop")
    kwargs = dict(parallel_strategy_kwargs or {})
    if move_to_device and dist.get_backend() == "nccl":
        import os

        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        model = model.to(device)
    if parallel_strategy is None or dist.get_world_size() == 1:
        return model
    from disttorch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, **kwargs)


def prepare_data_loader(data_loader, add_dist_sampler: bool = True):
    """Give ``data_loader`` a DistributedSampler so each worker reads its own shard (``ray.train.torch``'s helper).

    A loader that shuffled (RandomSampler) gets a shuffling sampler; call ``loader.sampler.set_epoch(epoch)``
    each epoch as with PyTorch. Iterable datasets and a world of one are returned unchanged.

    Args:
        data_loader: a ``disttorch.utils.data.DataLoader`` with automatic batching.
        add_dist_sampler: False returns the loader unchanged.

    Returns:
        A new DataLoader over the same dataset with the same batch size, collate_fn, workers and drop_last.
    """
    import disttorch.distributed as dist
    from disttorch.utils.data import DataLoader, IterableDataset, RandomSampler
    from disttorch.utils.data.distributed import DistributedSampler

    if not add_dist_sampler or not dist.is_initialized() or dist.get_world_size() == 1:
        return data_loader
    if isinstance(data_loader.dataset, IterableDataset):
        return data_loader
    if data_loader.batch_size is None:
        raise ValueError("prepare_data_loader: the loader has batch_size=None (or a batch_sampler); give it a "
                         "batch_size so a DistributedSampler can be added")
    shuffle = isinstance(data_loader.sampler, RandomSampler)
    sampler = DistributedSampler(data_loader.dataset, shuffle=shuffle)
    return DataLoader(data_loader.dataset, batch_size=data_loader.batch_size, sampler=sampler,
                      num_workers=data_loader.num_workers, collate_fn=data_loader.collate_fn,
                      pin_memory=data_loader.pin_memory, drop_last=data_loader.drop_last,
                      timeout=data_loader.timeout, worker_init_fn=data_loader.worker_init_fn)
