"""Convert between a distributed checkpoint directory and a single ``disttorch.save`` file."""
from __future__ import annotations

import os

from ._nested import set_element
from .filesystem import FileSystemReader, FileSystemWriter

__all__ = ["dcp_to_torch_save", "torch_save_to_dcp"]


def dcp_to_torch_save(dcp_checkpoint_dir: str | os.PathLike, torch_save_path: str | os.PathLike) -> None:
    """Read the whole distributed checkpoint and write it, nested as saved, to one file with ``disttorch.save``."""
    from ... import serialization

    reader = FileSystemReader(dcp_checkpoint_dir)
    md = reader.read_metadata()
    by_file: dict = {}
    for fqn, name in md.storage_data.items():
        by_file.setdefault(name, []).append(fqn)
    out: dict = {}
    for name, fqns in by_file.items():
        for fqn, value in reader.read_file(name, fqns, md).items():
            set_element(out, md.planner_data[fqn], value)
    serialization.save(out, torch_save_path)


def torch_save_to_dcp(torch_save_path: str | os.PathLike, dcp_checkpoint_dir: str | os.PathLike) -> None:
    """Write the state dict in a ``disttorch.save`` / PyTorch ``.pt`` file as a distributed checkpoint (one process)."""
    from ... import serialization
    from ._coordination import Coordinator
    from .default_planner import DefaultSavePlanner
    from .state_dict_saver import _save

    state = serialization.load(torch_save_path)
    if not isinstance(state, dict):
        raise TypeError(f"torch_save_to_dcp: {torch_save_path} holds a {type(state).__name__}, expected a dict")
    _save(state, FileSystemWriter(dcp_checkpoint_dir), DefaultSavePlanner(), Coordinator(None, use_dist=False))
