"""Checkpoints in a directory: ``FileSystemWriter`` / ``FileSystemReader`` (``torch.distributed.checkpoint.filesystem``).

A checkpoint directory holds one data file per writing rank, ``__<rank>_<save id>.distcp``, and the
table of contents ``.metadata``, all written with ``disttorch.save`` (safetensors + msgpack, never
pickle) and atomically (temporary file, fsync, rename). The data files of a save carry a fresh save id,
and ``.metadata`` is replaced last: until then the previous checkpoint in the directory stays complete
and readable; after it, the previous save's data files are removed. Reading checks the metadata's
structure, the file names (no paths), and that each file holds the promised keys with the promised
shapes and dtypes, before anything is copied into the caller's tensors.

PyTorch's own DCP checkpoints store a pickled ``.metadata``, which disttorch does not unpickle; convert
them in PyTorch with ``torch.distributed.checkpoint.format_utils.dcp_to_torch_save`` and read the result
with ``disttorch.load`` (or :func:`~.format_utils.torch_save_to_dcp` it).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ... import _dtype as D
from ..._size import Size
from ...serialization import CheckpointError
from ._nested import ListIndex
from .metadata import (BytesStorageMetadata, ChunkStorageMetadata, Metadata, TensorProperties,
                       TensorStorageMetadata)
from .storage import StorageReader, StorageWriter

__all__ = ["FileSystemWriter", "FileSystemReader"]

METADATA_FILE = ".metadata"
FORMAT, VERSION = "disttorch-dcp", 1
DATA_FILE = re.compile(r"^__(\d{1,9})_([0-9a-f]{1,32})\.distcp$")
_MAX_NDIM = 64


def data_file_name(rank: int, save_id: str) -> str:
    return f"__{rank}_{save_id}.distcp"


class _Directory:
    """What the file-system writer and reader share: the checkpoint is the directory ``self.path``."""

    path: Path

    @property
    def checkpoint_id(self) -> str:
        return str(self.path)

    def reset(self, checkpoint_id: str | os.PathLike | None = None) -> None:
        if checkpoint_id is not None:
            self.path = Path(checkpoint_id)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike) -> bool:
        return isinstance(checkpoint_id, (str, os.PathLike))


class FileSystemWriter(_Directory, StorageWriter):
    """Write a checkpoint into the directory ``path`` (created if needed).

    Args:
        path: the checkpoint directory.
        single_file_per_rank: accepted for compatibility (disttorch always writes one file per rank).
        sync_files: accepted for compatibility (files are always fsynced).
        thread_count, per_thread_copy_ahead, cache_staged_state_dict: accepted for compatibility.
        overwrite: allow replacing an existing checkpoint in ``path``.
    """

    def __init__(self, path: str | os.PathLike, single_file_per_rank: bool = True, sync_files: bool = True,
                 thread_count: int = 1, per_thread_copy_ahead: int = 10_000_000, cache_staged_state_dict: bool = False,
                 overwrite: bool = True, _extensions=None, serialization_format=None) -> None:
        self.path = Path(path)
        self.single_file_per_rank = single_file_per_rank
        self.sync_files = sync_files
        self.thread_count = thread_count
        self.overwrite = overwrite

    def prepare(self) -> None:
        """Create the directory; refuse an existing checkpoint unless ``overwrite``."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.overwrite and (self.path / METADATA_FILE).exists():
            raise RuntimeError(f"Checkpoint already exists and self.overwrite={self.overwrite} "
                               f"({self.path / METADATA_FILE}).")

    def write_items(self, rank: int, save_id: str, items: dict) -> str | None:
        """Write ``{fqn: value}`` into this rank's data file; its name (None if nothing to write)."""
        from ... import serialization

        if not items:
            return None
        name = data_file_name(rank, save_id)
        serialization.save(items, self.path / name)
        return name

    def finish(self, metadata: Metadata) -> None:
        """Write ``.metadata`` (the commit point), then remove data files no longer referenced."""
        from ... import serialization

        serialization.save(encode_metadata(metadata), self.path / METADATA_FILE)
        keep = set(metadata.storage_data.values())
        for entry in os.listdir(self.path):
            if DATA_FILE.match(entry) and entry not in keep:
                try:
                    os.unlink(self.path / entry)
                except FileNotFoundError:
                    pass


class FileSystemReader(_Directory, StorageReader):
    """Read a checkpoint from the directory ``path``."""

    def __init__(self, path: str | os.PathLike, _extension_registry=None) -> None:
        self.path = Path(path)

    def read_metadata(self) -> Metadata:
        """The checked table of contents of the checkpoint."""
        from ... import serialization

        where = self.path / METADATA_FILE
        if not where.is_file():
            raise FileNotFoundError(f"no distributed checkpoint at {self.path}: {where} does not exist")
        try:
            raw = serialization.load(where)
        except CheckpointError as e:
            if "pickle" in str(e):
                raise CheckpointError(f"{where}: this checkpoint was written by PyTorch's torch.distributed.checkpoint "
                                      "(pickled metadata), which disttorch never unpickles. Convert it in PyTorch with "
                                      "torch.distributed.checkpoint.format_utils.dcp_to_torch_save(dir, 'model.pt') and "
                                      "load that file with disttorch.load.") from None
            raise
        return decode_metadata(raw, str(where))

    def read_file(self, name: str, fqns: list, metadata: Metadata) -> dict:
        """``{fqn: value}`` for ``fqns`` from data file ``name``, each checked against ``metadata``."""
        from ... import serialization
        from ..._tensor import Tensor

        if not DATA_FILE.match(name):
            raise CheckpointError(f"{self.path}: refusing data file name {name!r} (expected __<rank>_<id>.distcp)")
        where = self.path / name
        if not where.is_file():
            raise CheckpointError(f"{where}: data file of the checkpoint is missing (listed in {METADATA_FILE})")
        content = serialization.load(where)
        if not isinstance(content, dict):
            raise CheckpointError(f"{where}: corrupted data file (expected a dict of items, got "
                                  f"{type(content).__name__})")
        out = {}
        for fqn in fqns:
            if fqn not in content:
                raise CheckpointError(f"{where}: corrupted checkpoint: the file does not hold {fqn!r}, which "
                                      f"{METADATA_FILE} places there")
            value = content[fqn]
            md = metadata.state_dict_metadata[fqn]
            if isinstance(md, TensorStorageMetadata):
                if not isinstance(value, Tensor):
                    raise CheckpointError(f"{where}: corrupted checkpoint: {fqn!r} should be a tensor, the file holds "
                                          f"{type(value).__name__}")
                if tuple(value.shape) != tuple(md.size) or value.dtype != md.properties.dtype:
                    raise CheckpointError(f"{where}: corrupted checkpoint: {fqn!r} has shape {list(value.shape)} and "
                                          f"dtype {value.dtype}, {METADATA_FILE} says {list(md.size)} and "
                                          f"{md.properties.dtype}")
            out[fqn] = value
        return out


# ---- .metadata encoding -------------------------------------------------------------------------------
def _encode_path(path: tuple) -> list:
    # A list position is written as a one-element list, to tell it from an integer dict key.
    return [[int(k)] if isinstance(k, ListIndex) else k for k in path]


def encode_metadata(md: Metadata) -> dict:
    items = {}
    for fqn, m in md.state_dict_metadata.items():
        if isinstance(m, TensorStorageMetadata):
            items[fqn] = ["tensor", m.properties.dtype, [int(s) for s in m.size]]
        else:
            items[fqn] = ["bytes"]
    return {"format": FORMAT, "version": VERSION, "items": items,
            "planner_data": {fqn: _encode_path(p) for fqn, p in md.planner_data.items()},
            "storage_data": dict(md.storage_data)}


def _bad(where: str, what: str) -> CheckpointError:
    return CheckpointError(f"{where}: corrupted distributed checkpoint metadata ({what})")


def _decode_path(where: str, fqn: str, raw) -> tuple:
    if not isinstance(raw, list) or not raw or len(raw) > 256:
        raise _bad(where, f"path of {fqn!r} is not a non-empty list")
    out = []
    for k in raw:
        if isinstance(k, list) and len(k) == 1 and type(k[0]) is int and k[0] >= 0:
            out.append(ListIndex(k[0]))
        elif isinstance(k, str) or (type(k) is int):
            out.append(k)
        else:
            raise _bad(where, f"path of {fqn!r} holds {type(k).__name__}")
    if ".".join(map(str, out)) != fqn:
        raise _bad(where, f"path of {fqn!r} does not spell the name")
    return tuple(out)


def decode_metadata(raw, where: str) -> Metadata:
    """Check the structure of a decoded ``.metadata`` and build :class:`Metadata`."""
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise _bad(where, "not a disttorch distributed checkpoint")
    if raw.get("version") != VERSION:
        raise _bad(where, f"version {raw.get('version')!r}, this disttorch reads version {VERSION}")
    items, planner, storage = raw.get("items"), raw.get("planner_data"), raw.get("storage_data")
    if not (isinstance(items, dict) and isinstance(planner, dict) and isinstance(storage, dict)):
        raise _bad(where, "items, planner_data and storage_data must be dicts")
    if set(items) != set(planner) or set(items) != set(storage):
        raise _bad(where, "items, planner_data and storage_data name different keys")
    sdm = {}
    for fqn, item in items.items():
        if not isinstance(fqn, str) or not isinstance(item, list) or not item:
            raise _bad(where, f"entry {fqn!r}")
        if item[0] == "tensor":
            if len(item) != 3 or not isinstance(item[1], D.dtype) or not isinstance(item[2], list):
                raise _bad(where, f"tensor entry {fqn!r}")
            shape = item[2]
            if len(shape) > _MAX_NDIM or not all(type(s) is int and 0 <= s < 2 ** 62 for s in shape):
                raise _bad(where, f"shape of {fqn!r}")
            size = Size(shape)
            sdm[fqn] = TensorStorageMetadata(TensorProperties(dtype=item[1]), size,
                                             [ChunkStorageMetadata(Size([0] * len(shape)), size)])
        elif item[0] == "bytes" and len(item) == 1:
            sdm[fqn] = BytesStorageMetadata()
        else:
            raise _bad(where, f"entry {fqn!r} of kind {item[0]!r}")
        name = storage[fqn]
        if not isinstance(name, str) or not DATA_FILE.match(name):
            raise _bad(where, f"data file name {name!r} for {fqn!r}")
    paths = {fqn: _decode_path(where, fqn, p) for fqn, p in planner.items()}
    return Metadata(state_dict_metadata=sdm, planner_data=paths, storage_data=dict(storage), version=str(VERSION))
