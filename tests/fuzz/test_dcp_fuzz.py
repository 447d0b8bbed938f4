"""Fuzz the distributed-checkpoint reader: hostile ``.metadata`` structures and damaged checkpoint files.

Every outcome must be a clean load or a ``CheckpointError`` (wrapped in ``CheckpointException`` by ``dcp.load``),
and a failed load must leave the caller's tensors untouched. The byte-level reader underneath
(``disttorch.load``) has its own fuzz test (test_checkpoint_fuzz.py); this one covers the DCP layer on top.
"""
from __future__ import annotations

import os
import shutil
import warnings

import numpy as np
from fuzz_support import settings_for
from hypothesis import given
from hypothesis import strategies as st

import disttorch as torch
import disttorch.distributed.checkpoint as dcp
from disttorch.distributed.checkpoint.filesystem import decode_metadata
from disttorch.serialization import CheckpointError

_leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 2 ** 63), st.text(max_size=12),
                  st.sampled_from([torch.float32, torch.int64, "tensor", "bytes", "__0_ab.distcp", "../x.distcp"]))
_tree = st.recursive(_leaf, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                   st.dictionaries(st.text(max_size=6), kids, max_size=4)),
                     max_leaves=20)


def _valid() -> dict:
    return {"format": "disttorch-dcp", "version": 1,
            "items": {"w": ["tensor", torch.float32, [2, 3]], "s": ["bytes"]},
            "planner_data": {"w": ["w"], "s": ["s"]},
            "storage_data": {"w": "__0_ab.distcp", "s": "__0_ab.distcp"}}


@settings_for(200)
@given(st.data())
def test_hostile_metadata_structures_raise_checkpoint_error(data):
    raw = _valid()
    # Replace one field (at any depth of the valid structure) by an arbitrary tree.
    path = data.draw(st.sampled_from([("format",), ("version",), ("items",), ("items", "w"), ("items", "s"),
                                      ("planner_data",), ("planner_data", "w"), ("storage_data", "w"),
                                      ("storage_data",), ("extra",)]))
    node = raw
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = data.draw(_tree)
    try:
        md = decode_metadata(raw, "fuzz/.metadata")
    except CheckpointError:
        return
    for name in md.storage_data.values():  # whatever is accepted names plain data files only
        assert "/" not in name and not name.startswith("..")


@settings_for(40)
@given(st.data())
def test_damaged_checkpoint_files_fail_cleanly_and_change_nothing(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("dcp_fuzz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({"w": torch.arange(6.0).reshape(2, 3), "s": {"k": [1, "x"]}}, checkpoint_id=root)
        victim = data.draw(st.sampled_from(sorted(os.listdir(root))))
        blob = bytearray((root / victim).read_bytes())
        for _ in range(data.draw(st.integers(1, 8))):
            kind = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
            pos = data.draw(st.integers(0, max(0, len(blob) - 1)))
            if kind == "flip" and blob:
                blob[pos] ^= data.draw(st.integers(1, 255))
            elif kind == "truncate":
                del blob[pos:]
            else:
                blob[pos:pos] = bytes(data.draw(st.binary(min_size=1, max_size=16)))
        (root / victim).write_bytes(bytes(blob))
        target = {"w": torch.full((2, 3), -1.0), "s": None}
        try:
            dcp.load(target, checkpoint_id=root)
        except dcp.CheckpointException as e:
            for err, _ in e.failures.values():
                # The checks of the load itself may fire when a flip lands in a shape or a key of .metadata.
                expected = isinstance(err, CheckpointError) or (
                    isinstance(err, (ValueError, RuntimeError))
                    and str(err).startswith(("Size mismatch", "Invalid checkpoint metadata", "Missing key")))
                assert expected, repr(err)
            np.testing.assert_array_equal(target["w"].numpy(), np.full((2, 3), -1.0))
    shutil.rmtree(root, ignore_errors=True)
