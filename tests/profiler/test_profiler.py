"""disttorch.profiler: PyTorch's profile/record_function/schedule API over the op entry point's observer hook."""
import json

import numpy as np
import pytest

import disttorch as torch
from disttorch.autograd import op as O
from disttorch.profiler import ProfilerAction, ProfilerActivity, profile, record_function, schedule


def _by_key(prof):
    return {e.key: e for e in prof.key_averages()}


def test_counts_shapes_and_the_table():
    a, b = torch.ones(3), torch.ones(4, 3)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(3):
            a + b
        for _ in range(2):
            a * a
    ev = _by_key(prof)
    assert ev["aten::add"].count == 3 and ev["aten::mul"].count == 2
    shapes = {str(e.input_shapes) for e in prof.key_averages(group_by_input_shape=True) if e.key == "aten::add"}
    assert shapes == {"[[3], [4, 3]]"}
    table = prof.key_averages().table(sort_by="cpu_time_total", row_limit=5)
    for col in ("Name", "Self CPU %", "CPU total", "# of Calls"):
        assert col in table
    assert "aten::add" in table and "Self CPU time total:" in table
    assert O.OBSERVERS == {} and O.SPANS[0] is None  # nothing stays installed after the block


def test_ranges_contain_their_ops_and_self_time_excludes_them():
    x = torch.randn(64, 64)
    with profile() as prof:
        with record_function("outer"):
            for _ in range(5):
                x @ x
    outer = next(e for e in prof.events() if e.name == "outer")
    kids = [c for c in outer.cpu_children if c.name == "aten::mm"]
    assert len(kids) == 5
    assert outer.cpu_time_total >= sum(k.cpu_time_total for k in kids)
    assert outer.self_cpu_time_total == pytest.approx(outer.cpu_time_total - sum(k.cpu_time_total for k in kids))
    for k in kids:
        assert outer.start_us <= k.start_us and k.end_us <= outer.end_us


def test_backward_nodes_appear_as_engine_ranges():
    w = torch.randn(5, requires_grad=True)
    with profile() as prof:
        (w * 2).sum().backward()
    names = {e.name for e in prof.events()}
    assert "autograd::engine::evaluate_function: MulBackward0" in names
    assert "autograd::engine::evaluate_function: SumBackward0" in names


def test_profile_memory_counts_new_outputs_not_views():
    x = torch.zeros(1000)
    with profile(profile_memory=True) as prof:
        y = x + 1  # 4000 new bytes
        y.view(10, 100)  # a view: none
    ev = _by_key(prof)
    assert ev["aten::add"].cpu_memory_usage == 1000 * 4
    assert ev["aten::view"].cpu_memory_usage == 0


def test_schedule_matches_pytorch_rules_and_records_only_active_steps():
    s = schedule(wait=1, warmup=1, active=2, repeat=1, skip_first=1)
    got = [s(i) for i in range(7)]
    assert got == [ProfilerAction.NONE, ProfilerAction.NONE, ProfilerAction.WARMUP, ProfilerAction.RECORD,
                   ProfilerAction.RECORD_AND_SAVE, ProfilerAction.NONE, ProfilerAction.NONE]
    saved = []
    x = torch.ones(2)
    with profile(schedule=s, on_trace_ready=lambda p: saved.append(
            sorted(e.name for e in p.events() if e.name.startswith("ProfilerStep")))) as prof:
        for _ in range(7):
            x + x
            prof.step()
    assert saved == [["ProfilerStep#3", "ProfilerStep#4"]]


def test_chrome_trace_is_valid_and_holds_every_event(tmp_path):
    x = torch.ones(8)
    with profile(record_shapes=True) as prof:
        with record_function("block"):
            x + x
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(path))
    doc = json.loads(path.read_text())
    complete = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert {e["name"] for e in complete} >= {"block", "aten::add"}
    add = next(e for e in complete if e["name"] == "aten::add")
    block = next(e for e in complete if e["name"] == "block")
    assert block["ts"] <= add["ts"] and add["ts"] + add["dur"] <= block["ts"] + block["dur"] + 1e-3
    assert add["args"]["Input Dims"] == [[8], [8]]


def test_record_function_as_decorator_and_a_second_profile_refused():
    @record_function("fn")
    def f(t):
        return t + 1

    with profile() as prof:
        f(torch.ones(1))
        with pytest.raises(RuntimeError, match="already enabled"):
            with profile():
                pass
    assert any(e.name == "fn" for e in prof.events())


def test_autograd_profiler_names_are_the_same_objects():
    from disttorch.autograd import profiler as legacy

    assert legacy.record_function is record_function
    with legacy.profile() as prof:
        torch.ones(2) + 1
    assert np.isclose(sum(e.count for e in prof.key_averages() if e.key == "aten::add"), 1)


def test_data_loading_and_optimizer_steps_are_ranges():
    from disttorch.utils.data import DataLoader, TensorDataset

    model = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters())
    loader = DataLoader(TensorDataset(torch.randn(6, 3)), batch_size=2)
    with profile() as prof:
        for (x,) in loader:
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()
    names = [e.name for e in prof.events()]
    assert names.count("Optimizer.step#Adam.step") == 3
    data = [e for e in prof.events() if e.cat == "data"]
    assert len(data) == 4  # three batches and the StopIteration
    assert all(e.name == "enumerate(DataLoader)#_SingleProcessDataLoaderIter.__next__" for e in data)


def test_a_background_recording_runs_beside_a_user_profile():
    from disttorch.profiler import _recorder as R

    bg = R._Recording(False, False, False, background=True, max_events=3)
    R.start(bg)
    try:
        with profile() as prof:
            for _ in range(5):
                torch.ones(2) + 1
        assert _by_key(prof)["aten::add"].count == 5
    finally:
        R.stop(bg)
    assert len(bg.events) == 3 and bg.dropped >= 2  # the cap holds; the rest is counted
    assert O.OBSERVERS == {} and O.SPANS[0] is None
