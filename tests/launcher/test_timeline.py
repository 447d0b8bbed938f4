"""`disttorch launch --timeline FILE`: every rank's events merged into one Chrome trace, one row per rank."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from launch_helpers import launch  # noqa: E402

WORKER = os.path.join(os.path.dirname(__file__), "timeline_worker.py")


@pytest.mark.timeout(90)
def test_two_ranks_merge_into_one_trace_with_a_step_summary(tmp_path):
    out = tmp_path / "job.json"
    rc, _, err = launch("--nproc-per-node", "2", "--timeline", str(out), WORKER)
    assert rc == 0, err
    doc = json.loads(out.read_text())
    events = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    by_rank = {r: [e for e in events if e["pid"] == r] for r in (0, 1)}
    for r, evs in by_rank.items():
        names = [e["name"] for e in evs]
        assert names.count("Optimizer.step#SGD.step") == 3, r
        assert "aten::linear" in names and "autograd::engine::evaluate_function: LinearBackward0" in names
        assert any(e["cat"] == "data" for e in evs)
        assert any(e["cat"] == "comm" and e["name"].startswith("c10d::all_reduce") for e in evs), r
    # one clock: the ranks' rows start within a second of each other, times from 0
    starts = [min(e["ts"] for e in evs) for evs in by_rank.values()]
    assert min(starts) == 0 and max(starts) < 1e6
    meta = {e["pid"]: e["args"]["name"] for e in doc["traceEvents"] if e.get("name") == "process_name"}
    assert meta[0].startswith("rank 0") and meta[1].startswith("rank 1")
    assert "timeline of 2 rank(s) written to" in err and "2 ranks, 3 steps" in err
    assert not os.path.exists(str(out) + ".ranks")  # the per-rank files are removed once merged


def test_summary_names_the_rank_that_arrived_last():
    from disttorch.launcher.timeline import summary

    def ev(pid, name, cat, ts, dur):
        return {"ph": "X", "pid": pid, "name": name, "cat": cat, "ts": ts, "dur": dur}
    # rank 1 computes 900 us then joins the all-reduce; rank 0 computes 100 us and waits 800 us for it
    doc = {"traceEvents": [
        ev(0, "aten::mm", "cpu_op", 0, 100), ev(0, "c10d::all_reduce", "comm", 100, 850),
        ev(0, "Optimizer.step#SGD.step", "optimizer", 950, 50),
        ev(1, "enumerate(DataLoader)#_SingleProcessDataLoaderIter.__next__", "data", 0, 300),
        ev(1, "aten::mm", "cpu_op", 300, 600), ev(1, "c10d::all_reduce", "comm", 900, 50),
        ev(1, "Optimizer.step#SGD.step", "optimizer", 950, 50),
    ]}
    text = summary(doc)
    row = text.splitlines()[2].split()
    assert row[0] == "0" and row[2] == "1"  # step 0, slowest rank 1
    assert row[3] == "30.0%" and row[5] == "5.0%"  # its data and wait shares of the 1000 us step


def test_merge_and_summary_survive_malformed_rank_files(tmp_path):
    from disttorch.launcher.timeline import merge, summary

    (tmp_path / "rank0.json").write_text('{"traceEvents": [{"ph": "X", "pid": 0, "name": "Optimizer.step#S.step", '
                                         '"cat": "optimizer", "ts": 5, "dur": 1}, {"ph": "X"}, 7, '
                                         '{"ph": "X", "pid": 0, "name": 3, "ts": "x", "dur": null}]}')
    doc = merge(str(tmp_path), str(tmp_path / "out.json"))
    assert "1 ranks, 1 steps" in summary(doc)
    (tmp_path / "rank1.json").write_text("not json")
    with pytest.raises(RuntimeError, match="cannot read the rank trace .*rank1.json"):
        merge(str(tmp_path), str(tmp_path / "out.json"))


@pytest.mark.timeout(90)
def test_parameter_server_calls_are_communication_ranges(tmp_path):
    out = tmp_path / "ps.json"
    rc, _, err = launch("--mode", "ps", "--num-servers", "1", "--nproc-per-node", "1", "--timeline", str(out),
                        "-m", "disttorch.testing._doctor_job", "ps")
    assert rc == 0, err
    events = [e for e in json.loads(out.read_text())["traceEvents"] if e["ph"] == "X"]
    comm = {e["name"] for e in events if e["cat"] == "comm"}
    assert {"ps::init", "ps::push", "ps::pull"} <= comm, comm
