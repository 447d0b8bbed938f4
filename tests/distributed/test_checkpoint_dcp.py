"""torch.distributed.checkpoint (DCP): single-process save/load, errors, atomic replacement, and a 2-rank zmq job.

The multi-process job (tests/distributed/dcp_worker.py) trains a DDP model on both ranks, saves with DCP,
restores into freshly initialised models and checks the restored training continues bit for bit; each
rank reports digests that this test compares across ranks.
"""
import os
import pickle
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import disttorch as torch
import disttorch.distributed.checkpoint as dcp
from disttorch import nn
from disttorch.distributed.checkpoint import CheckpointException, DefaultLoadPlanner, FileSystemWriter
from disttorch.distributed.checkpoint.format_utils import dcp_to_torch_save
from disttorch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict, get_state_dict,
                                                         set_optimizer_state_dict, set_state_dict)
from disttorch.serialization import CheckpointError

sys.path.insert(0, os.path.dirname(__file__))
import _procs  # noqa: E402

WORKER = str(Path(__file__).with_name("dcp_worker.py"))


@pytest.fixture(autouse=True)
def _quiet_single_process_warning():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
        yield


def arr(t):
    return t.detach().numpy().copy()


def state():
    return {"w": torch.arange(6.0).reshape(2, 3), "step": 7, "nested": {"a": torch.tensor([1.5, -2.0]),
            "items": [torch.ones(1), 3, {"name": "x"}], "tup": (1, 2)}, "lst": [1, 2]}


def blank():
    return {"w": torch.zeros(2, 3), "step": 0, "nested": {"a": torch.zeros(2), "items": [torch.zeros(1), 0, {"name": ""}],
            "tup": None}, "lst": []}


def test_round_trip_fills_tensors_in_place_and_replaces_values(tmp_path):
    md = dcp.save(state(), checkpoint_id=tmp_path)
    assert sorted(md.state_dict_metadata) == ["lst", "nested.a", "nested.items.0", "nested.items.1",
                                              "nested.items.2.name", "nested.tup", "step", "w"]
    assert list(md.state_dict_metadata["w"].size) == [2, 3]
    target = blank()
    w = target["w"]
    dcp.load(target, checkpoint_id=tmp_path)
    assert target["w"] is w  # in place
    np.testing.assert_array_equal(arr(w), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(arr(target["nested"]["a"]), [1.5, -2.0])
    assert target["step"] == 7 and target["lst"] == [1, 2] and target["nested"]["tup"] == (1, 2)
    assert target["nested"]["items"][1] == 3 and target["nested"]["items"][2] == {"name": "x"}
    # Only what is asked for is read; dtype follows the destination.
    d64 = {"w": torch.zeros(2, 3, dtype=torch.float64)}
    dcp.load(d64, checkpoint_id=tmp_path)
    assert d64["w"].dtype == torch.float64 and d64["w"][1, 2].item() == 5.0


def test_files_are_disttorch_format_never_pickle(tmp_path):
    dcp.save(state(), checkpoint_id=tmp_path)
    names = sorted(os.listdir(tmp_path))
    assert names[0] == ".metadata" and len(names) == 2 and names[1].startswith("__0_") and names[1].endswith(".distcp")
    for name in names:
        head = (tmp_path / name).read_bytes()[:9]
        assert head[8:9] == b"{" and head[:1] != b"\x80"  # safetensors header, not a pickle stream


def test_load_errors_are_pytorchs(tmp_path):
    dcp.save(state(), checkpoint_id=tmp_path)
    cases = [({"missing": torch.zeros(1)}, RuntimeError, "Missing key in checkpoint state_dict: missing."),
             ({"w": torch.zeros(3, 3)}, ValueError, "Size mismatch between saved"),
             ({"w": 3}, ValueError, "Invalid checkpoint metadata for w, expected BytesStorageMetadata")]
    for sd, exc, msg in cases:
        with pytest.raises(CheckpointException) as info:
            dcp.load(sd, checkpoint_id=tmp_path)
        (err, _), = info.value.failures.values()
        assert isinstance(err, exc) and msg in str(err)
    partial = {"missing": torch.zeros(1), "w": torch.zeros(2, 3)}
    dcp.load(partial, checkpoint_id=tmp_path, planner=DefaultLoadPlanner(allow_partial_load=True))
    assert partial["w"][1, 2].item() == 5.0 and partial["missing"].item() == 0.0
    with pytest.raises(RuntimeError, match="`checkpoint_id` must be specified"):
        dcp.load({}, checkpoint_id=None)
    with pytest.raises(TypeError, match="supports FileSystemReader"):
        dcp.load({}, storage_reader=FileSystemWriter(tmp_path))


def test_damaged_or_foreign_checkpoints_are_refused_before_any_write(tmp_path):
    dcp.save(state(), checkpoint_id=tmp_path)
    data = next(p for p in tmp_path.iterdir() if p.name.endswith(".distcp"))
    # A data file whose tensor disagrees with .metadata: nothing is copied into the caller's tensors.
    content = torch.load(data)
    content["w"] = torch.zeros(3, 2)
    torch.save(content, data)
    target = blank()
    with pytest.raises(CheckpointException) as info:
        dcp.load(target, checkpoint_id=tmp_path)
    (err, _), = info.value.failures.values()
    assert isinstance(err, CheckpointError) and "has shape [3, 2]" in str(err)
    assert target["nested"]["a"].abs().sum().item() == 0.0
    # A metadata file naming a path outside the checkpoint.
    md = torch.load(tmp_path / ".metadata")
    md["storage_data"]["w"] = "../../etc/passwd"
    torch.save(md, tmp_path / ".metadata")
    with pytest.raises(CheckpointException, match="data file name"):
        dcp.load({"w": torch.zeros(2, 3)}, checkpoint_id=tmp_path)
    # PyTorch's DCP writes a pickled .metadata: refused with the way to convert it.
    (tmp_path / ".metadata").write_bytes(pickle.dumps({"not": "read"}))
    with pytest.raises(CheckpointException, match="dcp_to_torch_save"):
        dcp.load({"w": torch.zeros(2, 3)}, checkpoint_id=tmp_path)
    with pytest.raises(CheckpointException, match="does not exist"):
        dcp.load({"w": torch.zeros(2, 3)}, checkpoint_id=tmp_path / "nowhere")


def test_resave_replaces_atomically_and_a_failed_save_keeps_the_old_checkpoint(tmp_path):
    dcp.save(state(), checkpoint_id=tmp_path)
    old_files = {p.name for p in tmp_path.iterdir()}
    newer = state()
    newer["w"] = newer["w"] * 10
    dcp.save(newer, checkpoint_id=tmp_path)
    new_files = {p.name for p in tmp_path.iterdir()}
    assert len(new_files) == 2 and not (old_files - {".metadata"}) & new_files  # old data files removed
    broken = state()
    broken["w"] = broken["w"] * 100
    broken["bad"] = threading.Lock()  # cannot be stored: the save fails while writing the data
    with pytest.raises(CheckpointException):
        dcp.save(broken, checkpoint_id=tmp_path)
    target = {"w": torch.zeros(2, 3)}
    dcp.load(target, checkpoint_id=tmp_path)
    assert target["w"][1, 2].item() == 50.0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(CheckpointException, match="Checkpoint already exists"):
        dcp.save(state(), storage_writer=FileSystemWriter(tmp_path, overwrite=False))


def test_async_save_snapshots_the_state(tmp_path):
    sd = state()
    fut = dcp.async_save(sd, checkpoint_id=tmp_path)
    sd["w"].add_(1000.0)  # after the call: must not reach the checkpoint
    md = fut.result(timeout=30)
    assert "w" in md.state_dict_metadata
    target = {"w": torch.zeros(2, 3)}
    dcp.load(target, checkpoint_id=tmp_path)
    np.testing.assert_array_equal(arr(target["w"]), np.arange(6.0).reshape(2, 3))


class AppState:
    """The Stateful wrapper of PyTorch's DCP recipe."""

    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer

    def state_dict(self):
        model_sd, optim_sd = get_state_dict(self.model, self.optimizer)
        return {"model": model_sd, "optim": optim_sd}

    def load_state_dict(self, sd):
        set_state_dict(self.model, self.optimizer, model_state_dict=sd["model"], optim_state_dict=sd["optim"])


def _net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def _train(model, opt, steps, seed):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = torch.randn(6, 4, generator=g), torch.randn(6, 2, generator=g)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def test_training_resumes_bit_for_bit_from_a_stateful_checkpoint(tmp_path):
    model = _net(0)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    _train(model, opt, 3, seed=1)
    dcp.save({"app": AppState(model, opt), "epoch": 3}, checkpoint_id=tmp_path)
    restored = _net(99)
    ropt = torch.optim.AdamW(restored.parameters(), lr=0.5)  # different lr: restored from the checkpoint too
    sd = {"app": AppState(restored, ropt), "epoch": 0}
    dcp.load(sd, checkpoint_id=tmp_path)
    assert sd["epoch"] == 3 and ropt.param_groups[0]["lr"] == 0.01
    for (k, a), (_, b) in zip(model.state_dict().items(), restored.state_dict().items()):
        np.testing.assert_array_equal(arr(a), arr(b), err_msg=k)
    _train(model, opt, 2, seed=5)
    _train(restored, ropt, 2, seed=5)
    for a, b in zip(model.parameters(), restored.parameters()):
        np.testing.assert_array_equal(arr(a), arr(b))


def test_state_dict_helpers_strip_wrappers_and_flatten(tmp_path):
    class Compiled(nn.Module):  # what torch.compile's wrapper looks like: the model under `_orig_mod`
        def __init__(self, inner):
            super().__init__()
            self._orig_mod = inner

    inner = _net(0)
    inner[0].weight.requires_grad_(False)
    wrapped = Compiled(inner)
    assert sorted(get_model_state_dict(wrapped)) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert "0.weight" not in get_model_state_dict(wrapped, options=StateDictOptions(ignore_frozen_params=True))
    opt = torch.optim.SGD([p for p in inner.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    flat = get_optimizer_state_dict(wrapped, opt, options=StateDictOptions(flatten_optimizer_state_dict=True))
    assert "state.2.weight.momentum_buffer" in flat and flat["param_groups.0.bias.lr"] == 0.1
    nested = get_optimizer_state_dict(wrapped, opt)
    assert nested["param_groups"][0]["params"] == ["0.bias", "2.weight", "2.bias"]
    opt2 = torch.optim.SGD([p for p in inner.parameters() if p.requires_grad], lr=0.7, momentum=0.9)
    set_optimizer_state_dict(wrapped, opt2, flat)
    assert opt2.param_groups[0]["lr"] == 0.1


def test_dcp_to_single_file(tmp_path):
    dcp.save(state(), checkpoint_id=tmp_path / "ck")
    dcp_to_torch_save(tmp_path / "ck", tmp_path / "one.pt")
    one = torch.load(tmp_path / "one.pt")
    np.testing.assert_array_equal(arr(one["w"]), np.arange(6.0).reshape(2, 3))
    assert one["nested"]["items"][2] == {"name": "x"} and one["step"] == 7 and isinstance(one["nested"]["items"], list)


def test_two_rank_zmq_job_saves_each_value_once_and_restores_exactly(tmp_path):
    job = _procs.run_job(WORKER, 2, "zmq", tmp_path, timeout=120)
    assert not job.timed_out and job.returncodes == [0, 0], job.logs
    res = job.results(2)
    assert set(res) == {0, 1}, job.logs
    for r in (0, 1):
        assert res[r]["errors"] == [], res[r]["errors"]
    r0, r1 = res[0], res[1]
    # Replicated tensors: every key stored exactly once, spread over both ranks' files.
    assert r0["files"] == r1["files"] and len(r0["files"]) == 3  # .metadata + one data file per rank
    assert sum(r0["keys_per_file"].values()) == r0["n_keys"] and min(r0["keys_per_file"].values()) > 0
    # The rank-local value was stored once (by one rank) and both ranks read that one back.
    assert r0["rank_local_loaded"] == r1["rank_local_loaded"] in (0, 1)
    # Identical training on both ranks (DDP), identical restore, identical continuation.
    assert r0["trained"] == r1["trained"] == r0["restored"] == r1["restored"]
    assert r0["continued"] == r1["continued"] == r0["continued_restored"] == r1["continued_restored"]
    # A failure on one rank (rank 1 asks for a key the checkpoint lacks) is raised on both.
    assert "Missing key in checkpoint state_dict: nope." in r1["remote_failure"]
    assert "failed on rank 1" in r0["remote_failure"]


def test_global_plan_writes_each_replicated_item_once_balanced_by_bytes():
    from disttorch.distributed.checkpoint.state_dict_saver import _global_plan

    f32 = torch.float32
    items = [["a", "tensor", f32, [100], 400], ["b", "tensor", f32, [10], 40], ["c", "tensor", f32, [90], 360],
             ["n", "bytes", None, None, 64]]
    paths = {"a": ["a"], "b": ["b"], "c": ["c"], "n": ["n"]}
    plan = _global_plan([{"items": items, "paths": paths}, {"items": items, "paths": paths}], lowest_rank=False)
    assert plan["assignment"] == [["a", "n"], ["b", "c"]]  # greedy: each item to the rank with fewer bytes so far
    lowest = _global_plan([{"items": items, "paths": paths}] * 2, lowest_rank=True)
    assert lowest["assignment"] == [["a", "b", "c", "n"], []]
    other = [["a", "tensor", f32, [99], 396]] + items[1:]
    with pytest.raises(ValueError, match=r"'a' is a tensor of shape \[100\] .* on rank 0 but a tensor of shape \[99\]"):
        _global_plan([{"items": items, "paths": paths}, {"items": other, "paths": paths}], lowest_rank=False)
