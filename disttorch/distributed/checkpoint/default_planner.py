"""The default planners (``torch.distributed.checkpoint.default_planner``): their options are honoured.

Saving: every rank lists its items; the coordinator gives each item that several ranks hold
(a replicated tensor) to the rank with the fewest bytes assigned so far (PyTorch's balanced
de-duplication; ``dedup_save_to_lowest_rank=True`` gives it to the lowest rank instead), so each value
is written once. Loading: each rank reads the items of its state dict from the files that hold them;
a key missing from the checkpoint is an error unless ``allow_partial_load=True``.
"""
from __future__ import annotations

from .planner import LoadPlanner, SavePlanner

__all__ = ["DefaultSavePlanner", "DefaultLoadPlanner"]


class DefaultSavePlanner(SavePlanner):
    """Options of a save: ``flatten_state_dict`` (must be True), ``dedup_save_to_lowest_rank``."""

    def __init__(self, flatten_state_dict: bool = True, flatten_sharded_tensors: bool = True, dedup_replicated_tensors=None,
                 dedup_save_to_lowest_rank: bool = False, enable_plan_caching: bool = False) -> None:
        if not flatten_state_dict:
            raise NotImplementedError("DefaultSavePlanner(flatten_state_dict=False) is not implemented in disttorch: "
                                      "nested state dicts are always flattened")
        self.flatten_state_dict = flatten_state_dict
        self.flatten_sharded_tensors = flatten_sharded_tensors
        self.dedup_save_to_lowest_rank = dedup_save_to_lowest_rank


class DefaultLoadPlanner(LoadPlanner):
    """Options of a load: ``allow_partial_load`` (skip keys the checkpoint lacks)."""

    def __init__(self, flatten_state_dict: bool = True, flatten_sharded_tensors: bool = True,
                 allow_partial_load: bool = False) -> None:
        if not flatten_state_dict:
            raise NotImplementedError("DefaultLoadPlanner(flatten_state_dict=False) is not implemented in disttorch: "
                                      "nested state dicts are always flattened")
        self.flatten_state_dict = flatten_state_dict
        self.flatten_sharded_tensors = flatten_sharded_tensors
        self.allow_partial_load = allow_partial_load
