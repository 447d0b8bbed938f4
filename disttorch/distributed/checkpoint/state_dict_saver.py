"""``save`` / ``async_save``: write a distributed checkpoint (``torch.distributed.checkpoint.state_dict_saver``).

Every rank calls ``save`` with its state dict (SPMD). Plain tensors are replicated values: each is
written once, by the rank the coordinator assigns it to (balanced by bytes); every rank writes its
share into its own file, and the coordinator (rank 0 of the group) writes ``.metadata`` last. Without
an initialised process group, ``save`` is a single-process save, as in PyTorch.
"""
from __future__ import annotations

import concurrent.futures
import copy
import os
import secrets
import warnings

from ._common import check_planner, storage_for, use_distributed
from .api import CheckpointException
from ._coordination import Coordinator
from ._nested import flatten_state_dict, set_element
from .default_planner import DefaultSavePlanner
from .filesystem import FileSystemWriter, _decode_path, _encode_path
from .metadata import BytesStorageMetadata, ChunkStorageMetadata, Metadata, TensorProperties, TensorStorageMetadata
from .stateful import Stateful

__all__ = ["save", "async_save", "save_state_dict"]


def _tensor_cls():
    from ..._tensor import Tensor

    return Tensor


def _local_plan(flat: dict, mappings: dict) -> dict:
    Tensor = _tensor_cls()
    items = []
    for fqn, v in flat.items():
        if isinstance(v, Tensor):
            items.append([fqn, "tensor", v.dtype, [int(s) for s in v.shape], int(v.numel()) * v.element_size()])
        else:
            items.append([fqn, "bytes", None, None, 64])
    return {"items": items, "paths": {fqn: _encode_path(p) for fqn, p in mappings.items()}}


def _describe(kind, dtype, shape) -> str:
    return f"a tensor of shape {shape} and dtype {dtype}" if kind == "tensor" else "a non-tensor"


def _global_plan(plans: list, lowest_rank: bool) -> dict:
    """Assign every item to one rank and describe the checkpoint (run by the coordinator)."""
    info: dict = {}
    holders: dict = {}
    for rank, plan in enumerate(plans):
        for fqn, kind, dtype, shape, nbytes in plan["items"]:
            path = plan["paths"][fqn]
            if fqn not in info:
                info[fqn] = (kind, dtype, shape, nbytes, path, rank)
                holders[fqn] = []
            else:
                k0, d0, s0, _, p0, r0 = info[fqn]
                if (kind, dtype, shape) != (k0, d0, s0) or path != p0:
                    raise ValueError(f"{fqn!r} is {_describe(k0, d0, s0)} on rank {r0} but "
                                     f"{_describe(kind, dtype, shape)} on rank {rank}: plain tensors in a distributed "
                                     "checkpoint are replicated values and must agree on every rank")
            holders[fqn].append(rank)
    load = [0] * len(plans)
    assignment: dict = {r: [] for r in range(len(plans))}
    for fqn, ranks in holders.items():
        rank = ranks[0] if lowest_rank else min(ranks, key=lambda r: (load[r], r))
        load[rank] += info[fqn][3]
        assignment[rank].append(fqn)
    items = {fqn: [kind, dtype, shape] for fqn, (kind, dtype, shape, _, _, _) in info.items()}
    paths = {fqn: info[fqn][4] for fqn in info}
    return {"save_id": secrets.token_hex(8), "assignment": [assignment[r] for r in range(len(plans))],
            "items": items, "paths": paths}


def _metadata(central: dict, files: list) -> Metadata:
    from ..._size import Size

    sdm, storage = {}, {}
    for fqn, (kind, dtype, shape) in central["items"].items():
        if kind == "tensor":
            size = Size(shape)
            sdm[fqn] = TensorStorageMetadata(TensorProperties(dtype=dtype), size,
                                             [ChunkStorageMetadata(Size([0] * len(shape)), size)])
        else:
            sdm[fqn] = BytesStorageMetadata()
    for rank, fqns in enumerate(central["assignment"]):
        for fqn in fqns:
            storage[fqn] = files[rank]
    paths = {fqn: _decode_path("save", fqn, p) for fqn, p in central["paths"].items()}
    return Metadata(state_dict_metadata=sdm, planner_data=paths, storage_data=storage, version="1")


def _save(state_dict: dict, writer: FileSystemWriter, planner: DefaultSavePlanner, co: Coordinator) -> Metadata:
    Tensor = _tensor_cls()
    flat: dict = {}

    def plan():
        writer.prepare()
        f, mappings = flatten_state_dict(state_dict)
        flat.update(f)
        return _local_plan(f, mappings)

    plans = co.step("save (planning)", plan)
    central = co.step("save (global plan)",
                      lambda: _global_plan(plans, planner.dedup_save_to_lowest_rank) if co.is_coordinator else None)[0]

    def write():
        mine = {fqn: (flat[fqn].detach() if isinstance(flat[fqn], Tensor) else flat[fqn])
                for fqn in central["assignment"][co.rank]}
        return writer.write_items(co.rank, central["save_id"], mine)

    files = co.step("save (writing)", write)
    metadata = _metadata(central, files)
    co.step("save (metadata)", lambda: writer.finish(metadata) if co.is_coordinator else None)
    return metadata


def _prepare(state_dict: dict) -> dict:
    if not isinstance(state_dict, dict):
        raise TypeError(f"distributed checkpoint save: state_dict must be a dict, got {type(state_dict).__name__}")
    return {k: (v.state_dict() if isinstance(v, Stateful) else v) for k, v in state_dict.items()}


def save(state_dict: dict, *, checkpoint_id: str | os.PathLike | None = None, storage_writer=None, planner=None,
         process_group=None, no_dist: bool = False, use_collectives: bool = True) -> Metadata:
    """Save ``state_dict`` as a distributed checkpoint in the directory ``checkpoint_id``.

    Call it on every rank of ``process_group`` (default: the world) with that rank's state dict.
    Values with ``state_dict()``/``load_state_dict()`` (modules, optimizers, app state) are saved
    through ``state_dict()``. Nested dicts become dotted keys (``model.fc.weight``).

    Args:
        state_dict: the state to save.
        checkpoint_id: the checkpoint directory (needed unless ``storage_writer`` is given).
        storage_writer: a :class:`FileSystemWriter` (for its options, e.g. ``overwrite=False``).
        planner: None or a :class:`DefaultSavePlanner`.
        process_group: the ranks that save together.
        no_dist: save from this process alone even if a process group is initialised.
        use_collectives: accepted for compatibility.

    Returns:
        The checkpoint's :class:`Metadata`.

    Example:
        >>> import disttorch.distributed.checkpoint as dcp
        >>> dcp.save({"model": model.state_dict(), "step": 10}, checkpoint_id="ckpt/step10")
    """
    use_dist = use_distributed(no_dist, "save")
    writer = storage_for(storage_writer, checkpoint_id, reader=False)
    planner = check_planner(planner, DefaultSavePlanner, "save")
    return _save(_prepare(state_dict), writer, planner, Coordinator(process_group, use_dist))


def _staged(state_dict: dict) -> dict:
    """A copy of the state whose tensors are snapshots, so training may go on while it is written."""
    Tensor = _tensor_cls()
    flat, mappings = flatten_state_dict(state_dict)
    out: dict = {}
    for fqn, v in flat.items():
        set_element(out, mappings[fqn], v.detach().clone() if isinstance(v, Tensor) else copy.deepcopy(v))
    return out


def async_save(state_dict: dict, *, checkpoint_id: str | os.PathLike | None = None, storage_writer=None, planner=None,
               process_group=None, async_checkpointer_type=None, async_stager=None, no_dist: bool = False,
               use_collectives: bool = True) -> concurrent.futures.Future:
    """Like :func:`save`, returning a Future of the :class:`Metadata`; the state is copied before returning.

    In a single process the files are written by a background thread. With a process group the save
    completes before the call returns (its collectives must not interleave with the training's), and
    the returned Future is already done (see docs/differences.md).
    """
    use_dist = use_distributed(no_dist, "save")
    writer = storage_for(storage_writer, checkpoint_id, reader=False)
    planner = check_planner(planner, DefaultSavePlanner, "save")
    staged = _staged(_prepare(state_dict))
    co = Coordinator(process_group, use_dist)
    if use_dist:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        try:
            fut.set_result(_save(staged, writer, planner, co))
        except (Exception, CheckpointException) as e:
            fut.set_exception(e)
        return fut
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="dcp_async_save")
    fut = pool.submit(_save, staged, writer, planner, co)
    pool.shutdown(wait=False)
    return fut


def save_state_dict(state_dict: dict, storage_writer, process_group=None, coordinator_rank: int = 0,
                    no_dist: bool = False, planner=None) -> Metadata:
    """Deprecated form of :func:`save`."""
    warnings.warn("'save_state_dict' is deprecated and will be removed in future versions.Please use 'save' instead.",
                  FutureWarning, stacklevel=2)
    return save(state_dict, storage_writer=storage_writer, planner=planner, process_group=process_group,
                no_dist=no_dist)

