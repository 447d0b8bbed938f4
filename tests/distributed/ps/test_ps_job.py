"""A whole parameter-server job of real processes (scheduler, 2 servers, 2 workers) started with the launcher's
environment contract: sync equals single-process training, ssp(0) equals sync, async converges, and every
process exits 0 by itself when the workers call ps.shutdown()."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ps_support import Job  # noqa: E402

pytest.importorskip("zmq")
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    job = Job(os.path.join(HERE, "ps_worker.py"), tmp_path_factory.mktemp("psjob"))
    codes = job.finish(timeout=120)
    res = job.results()
    assert all(c == 0 for c in codes.values()), f"exit codes {codes}\n{job.logs()}"
    for r in (0, 1):
        assert r in res and "error" not in res[r], res.get(r, {}).get("error") or job.logs()
    return res


def _maxdiff(a, b) -> float:
    return max(float(np.max(np.abs(np.array(x) - np.array(y)), initial=0.0)) for x, y in zip(a, b))


@pytest.mark.parametrize("scenario", ["sync", "sync_adam"])
def test_sync_equals_single_process_on_the_whole_batch(results, scenario):
    r0, r1 = results[0][scenario], results[1][scenario]
    assert r0["servers"] == [0, 1]  # the tensors were sliced across both servers
    assert _maxdiff(r0["start"], r0["ref_start"]) == 0  # rank 0 seeded the servers ...
    assert _maxdiff(r1["start"], r0["ref_start"]) == 0  # ... and rank 1 (another seed) pulled its values
    assert _maxdiff(r0["final"], r0["ref_final"]) < 1e-10
    assert _maxdiff(r1["final"], r0["final"]) == 0
    assert _maxdiff(r0["final"], r0["start"]) > 1e-3  # it trained
    # the server-side optimizer state, gathered from the slices, is the single-process optimizer's
    assert r0["state"].keys() == r0["ref_state"].keys() and r0["state"]
    for k, st in r0["ref_state"].items():
        assert st.keys() == r0["state"][k].keys()
        assert _maxdiff([r0["state"][k][n] for n in st], [st[n] for n in st]) < 1e-10


def test_ssp_staleness_zero_equals_sync(results):
    for r in (0, 1):
        assert _maxdiff(results[r]["ssp0"]["final"], results[r]["sync_adam"]["final"]) == 0


def test_ssp_workers_agree_after_synchronize(results):
    assert _maxdiff(results[0]["ssp2"]["final"], results[1]["ssp2"]["final"]) == 0
    assert results[0]["ssp2"]["clock"] == results[1]["ssp2"]["clock"] == 6


def test_async_converges(results):
    for r in (0, 1):
        a = results[r]["async"]
        assert a["eval_final"] < 0.5 * a["eval_start"], (a["eval_start"], a["eval_final"])
