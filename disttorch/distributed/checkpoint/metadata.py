"""What a distributed checkpoint's ``.metadata`` file describes (``torch.distributed.checkpoint.metadata``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ChunkStorageMetadata", "TensorProperties", "TensorStorageMetadata", "BytesStorageMetadata", "Metadata",
           "MetadataIndex", "STATE_DICT_TYPE"]

STATE_DICT_TYPE = dict


@dataclass
class ChunkStorageMetadata:
    """One stored chunk of a tensor (disttorch stores whole tensors: one chunk at offset 0)."""

    offsets: Any
    sizes: Any


@dataclass
class TensorProperties:
    """The saved tensor's dtype (and PyTorch's other properties, kept for compatibility)."""

    dtype: Any = None
    layout: Any = None
    requires_grad: bool = False
    memory_format: Any = None
    pin_memory: bool = False


@dataclass
class TensorStorageMetadata:
    """A saved tensor: properties, global size and its chunks."""

    properties: TensorProperties
    size: Any
    chunks: list = field(default_factory=list)


@dataclass
class BytesStorageMetadata:
    """A saved non-tensor value (numbers, strings, containers: anything ``disttorch.save`` stores)."""


@dataclass(frozen=True)
class MetadataIndex:
    """Names one item of a checkpoint: its fully qualified name (``model.fc.weight``)."""

    fqn: str
    offset: Any = None
    index: Any = None


@dataclass
class Metadata:
    """The checkpoint's table of contents.

    Attributes:
        state_dict_metadata: ``{fqn: TensorStorageMetadata | BytesStorageMetadata}``.
        planner_data: ``{fqn: path}``, the keys (and list indexes) leading to the value in the nested
            state dict.
        storage_data: ``{fqn: file name}``, which file of the checkpoint holds the value.
    """

    state_dict_metadata: dict
    planner_data: Any = None
    storage_data: Any = None
    storage_meta: Any = None
    version: Any = None
