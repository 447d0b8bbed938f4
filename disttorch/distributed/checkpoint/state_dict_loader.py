"""``load``: read a distributed checkpoint into a state dict, in place (``torch.distributed.checkpoint.state_dict_loader``).

Tensors of the given state dict are filled in place (``copy_``, casting to their dtype and device);
other values are replaced in the (nested) dict. Every requested key must be in the checkpoint with the
same shape (unless ``DefaultLoadPlanner(allow_partial_load=True)``); keys of the checkpoint that the
state dict does not ask for are ignored. Everything is read and checked before the first tensor is
written, so a bad checkpoint leaves the state dict as it was.
"""
from __future__ import annotations

import os
import warnings

from ...autograd.grad_mode import no_grad
from ._common import check_planner, storage_for, use_distributed
from ._coordination import Coordinator
from ._nested import flatten_state_dict, set_element
from .default_planner import DefaultLoadPlanner
from .filesystem import FileSystemReader
from .metadata import TensorStorageMetadata
from .stateful import Stateful

__all__ = ["load", "load_state_dict"]


def _load_local(state_dict: dict, reader: FileSystemReader, planner: DefaultLoadPlanner) -> None:
    from ..._tensor import Tensor

    md = reader.read_metadata()
    flat, mappings = flatten_state_dict(state_dict)
    by_file: dict = {}
    for fqn, dest in flat.items():
        m = md.state_dict_metadata.get(fqn)
        if m is None:
            if planner.allow_partial_load:
                continue
            raise RuntimeError(f"Missing key in checkpoint state_dict: {fqn}.")
        if isinstance(dest, Tensor):
            if isinstance(m, TensorStorageMetadata) and tuple(m.size) != tuple(dest.shape):
                raise ValueError(f"Size mismatch between saved {m.size} and current: {dest.shape} for {fqn}")
        elif isinstance(m, TensorStorageMetadata):
            raise ValueError(f"Invalid checkpoint metadata for {fqn}, expected BytesStorageMetadata but found "
                             f"{type(m)}")
        by_file.setdefault(md.storage_data[fqn], []).append(fqn)
    loaded: dict = {}
    for name, fqns in by_file.items():
        loaded.update(reader.read_file(name, fqns, md))
    with no_grad():
        for fqn, value in loaded.items():
            dest = flat[fqn]
            if isinstance(dest, Tensor) and isinstance(value, Tensor):
                dest.copy_(value)
            else:
                set_element(state_dict, mappings[fqn], value)


def load(state_dict: dict, *, checkpoint_id: str | os.PathLike | None = None, storage_reader=None, planner=None,
         process_group=None, no_dist: bool = False) -> None:
    """Load a distributed checkpoint into ``state_dict`` in place.

    Call it on every rank (SPMD) with the state dict to fill: its tensors must already have their
    final shapes. Values with ``state_dict()``/``load_state_dict()`` are loaded through them.

    Args:
        state_dict: what to load (tensors are filled in place, other values replaced).
        checkpoint_id: the checkpoint directory (needed unless ``storage_reader`` is given).
        storage_reader: a :class:`FileSystemReader`.
        planner: None or a :class:`DefaultLoadPlanner`.
        process_group: the ranks that load together (a failure on one is raised on all).
        no_dist: load in this process alone.

    Raises:
        CheckpointException: on every rank, if a key is missing, a shape differs or a file is damaged.

    Example:
        >>> state = {"model": model.state_dict(), "step": 0}
        >>> dcp.load(state, checkpoint_id="ckpt/step10")
        >>> model.load_state_dict(state["model"])
    """
    use_dist = use_distributed(no_dist, "load")
    reader = storage_for(storage_reader, checkpoint_id, reader=True)
    planner = check_planner(planner, DefaultLoadPlanner, "load")
    if not isinstance(state_dict, dict):
        raise TypeError(f"distributed checkpoint load: state_dict must be a dict, got {type(state_dict).__name__}")
    keys = list(state_dict.keys())
    stateful_sd = {k: (state_dict[k].state_dict() if isinstance(state_dict[k], Stateful) else state_dict[k])
                   for k in keys}
    Coordinator(process_group, use_dist).step("load", lambda: _load_local(stateful_sd, reader, planner))
    for key in keys:
        elem = state_dict[key]
        if isinstance(elem, Stateful):
            elem.load_state_dict(stateful_sd[key])
        else:
            state_dict[key] = stateful_sd[key]


def load_state_dict(state_dict: dict, storage_reader, process_group=None, coordinator_rank: int = 0,
                    no_dist: bool = False, planner=None) -> None:
    """Deprecated form of :func:`load`."""
    warnings.warn("'load_state_dict' is deprecated and will be removed in future versions. Please use 'load' instead.",
                  FutureWarning, stacklevel=2)
    load(state_dict, storage_reader=storage_reader, planner=planner, process_group=process_group, no_dist=no_dist)
