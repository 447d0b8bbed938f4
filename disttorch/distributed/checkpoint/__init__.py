"""Distributed checkpoints (``disttorch.distributed.checkpoint``), as ``torch.distributed.checkpoint`` (DCP).

Every rank calls ``save`` / ``load`` with its state dict. A checkpoint is a directory: one data file
per writing rank plus ``.metadata``, written with ``disttorch.save`` (safetensors + msgpack, never
pickle) and atomically; replicated tensors are written once. ``load`` fills the given state dict in
place and checks keys and shapes first. ``state_dict.get_state_dict`` / ``set_state_dict`` give
model and optimizer state keyed by parameter names. Works without a process group (one process).

Example:
    >>> import disttorch.distributed.checkpoint as dcp
    >>> from disttorch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    >>> model_sd, optim_sd = get_state_dict(model, optimizer)
    >>> dcp.save({"model": model_sd, "optim": optim_sd, "step": step}, checkpoint_id="ckpt")
    >>> state = {"model": model_sd, "optim": optim_sd, "step": 0}
    >>> dcp.load(state, checkpoint_id="ckpt")
    >>> set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])

PyTorch-written DCP directories (pickled ``.metadata``) are not read; see docs/differences.md.
"""
from . import state_dict  # noqa: F401
from .api import CheckpointException
from .default_planner import DefaultLoadPlanner, DefaultSavePlanner
from .filesystem import FileSystemReader, FileSystemWriter
from .metadata import BytesStorageMetadata, ChunkStorageMetadata, Metadata, TensorStorageMetadata
from .planner import LoadPlan, LoadPlanner, ReadItem, SavePlan, SavePlanner, WriteItem
from .state_dict_loader import load, load_state_dict
from .state_dict_saver import async_save, save, save_state_dict
from .storage import StorageReader, StorageWriter

__all__ = ["save", "load", "async_save", "save_state_dict", "load_state_dict", "FileSystemWriter",
           "FileSystemReader", "DefaultSavePlanner", "DefaultLoadPlanner", "SavePlanner", "LoadPlanner", "SavePlan",
           "LoadPlan", "WriteItem", "ReadItem", "StorageWriter", "StorageReader", "Metadata", "TensorStorageMetadata",
           "BytesStorageMetadata", "ChunkStorageMetadata", "CheckpointException"]
