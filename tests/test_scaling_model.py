"""benchmarks/scaling_model.py: the alpha-beta formulas against hand-derived values and a step-by-step simulation."""
import importlib.util
import itertools
import json
import math
import pathlib
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "scaling_model.py"
_spec = importlib.util.spec_from_file_location("_scaling_model", SCRIPT)
M = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = M  # dataclasses look their module up while the class is built
_spec.loader.exec_module(M)

NET = M.Network(alpha_s=1e-5, bandwidth_Bps=1e9)


def test_ring_allreduce_hand_values():
    # p=4, 1 MB: 2*3/4 * 1e6/1e9 = 1.5 ms of bytes, 2*3 = 6 latencies of 10 us
    assert M.ring_allreduce_time(1e6, 4, NET) == pytest.approx(1.5e-3 + 6e-5, rel=1e-12)
    # p=2: each rank sends n in total and pays two latencies
    assert M.ring_allreduce_time(8e6, 2, NET) == pytest.approx(8e-3 + 2e-5, rel=1e-12)
    # p=512, 102.4 MB (ResNet-50's gradient): 2*511/512 * 0.1024 s + 1022 * 10 us
    assert M.ring_allreduce_time(102.4e6, 512, NET) == pytest.approx(0.2044 + 0.01022, rel=1e-12)
    assert M.ring_allreduce_time(1e6, 1, NET) == 0.0
    with pytest.raises(ValueError, match="p must be >= 1"):
        M.ring_allreduce_time(1e6, 0, NET)


def test_halving_doubling_hand_values():
    # same bytes as the ring, 2*log2(p) latencies: p=8 -> 2*7/8 ms + 6 * 10 us
    assert M.rhd_allreduce_time(1e6, 8, NET) == pytest.approx(1.75e-3 + 6e-5, rel=1e-12)
    assert M.rhd_allreduce_time(1e6, 512, NET) == pytest.approx(2 * 511 / 512 * 1e-3 + 18e-5, rel=1e-12)
    assert M.rhd_allreduce_time(1e6, 8, NET) < M.ring_allreduce_time(1e6, 8, NET)


def _simulate(bwd, k, c):
    """Event by event: bucket j is ready at j*bwd/k; one transfer at a time."""
    free = 0.0
    for j in range(1, k + 1):
        free = max(free, j * bwd / k) + c
    return free


@pytest.mark.parametrize("bwd,k,c", [(0.1, 1, 0.02), (0.1, 4, 0.001), (0.1, 4, 0.05), (0.3, 14, 0.02),
                                     (0.3, 14, 0.0214), (1.0, 52, 1e-4), (1.0, 52, 0.5)])
def test_overlap_closed_form_matches_simulation(bwd, k, c):
    assert M.overlapped_tail(bwd, k, c) == pytest.approx(_simulate(bwd, k, c), rel=1e-12)


def test_ddp_step_hand_values():
    # 100 MB in 25 MiB buckets -> 4 buckets of 25 MB; p=2 -> each bucket 25 ms + 20 us
    assert M.num_buckets(100e6) == 4
    c = 25e-3 + 2e-5
    # backward 0.3 s hides all but the last bucket: fwd + bwd + c
    assert M.ddp_step_time(0.1, 0.3, 100e6, 2, NET) == pytest.approx(0.1 + 0.3 + c, rel=1e-12)
    # a slow network (1e8 B/s): c = 0.25 s + 20 us, communication bound: fwd + bwd/4 + 4c
    slow = M.Network(1e-5, 1e8)
    c = 0.25 + 2e-5
    assert M.ddp_step_time(0.1, 0.3, 100e6, 2, slow) == pytest.approx(0.1 + 0.075 + 4 * c, rel=1e-12)
    assert M.ddp_step_time(0.1, 0.3, 100e6, 1, slow) == 0.4


def test_ps_step_hand_values():
    # 16 workers, 4 servers: a server's link carries 4x a worker's bytes. 100 MB in 4 pushes of 25 MB:
    # push = 4 * (10 us + 25 ms), bound by communication: fwd + bwd/4 + 4 * push; pull = 4 * (10 us + 100 ms)
    push, pull = 4e-5 + 0.1, 4e-5 + 0.4
    assert M.ps_step_time(0.1, 0.3, 100e6, 16, 4, NET) == pytest.approx(0.1 + 0.075 + 4 * push + pull, rel=1e-12)
    # more servers than workers: the worker's own link bounds it (load 1)
    push, pull = 1e-5 + 0.025, 1e-5 + 0.1
    assert M.ps_step_time(0.1, 0.3, 100e6, 4, 16, NET) == pytest.approx(0.1 + 0.3 + push + pull, rel=1e-12)
    with pytest.raises(ValueError, match="servers must be >= 1"):
        M.ps_step_time(0.1, 0.3, 1e6, 4, 0, NET)


def test_efficiency_bounded_and_monotone():
    calib = M.load_calibration()
    for model, kind, backend in itertools.product(M.MODELS, ("ddp", "ps"), ("mpi", "zmq")):
        for p in M.WORKERS:
            effs = [M.predict(model, p, M.network_for(g, calib[backend], host_cap=False), kind)
                    for g in (1, 10, 25, 100, 400)]
            assert all(0.0 <= e <= 1.0 for e in effs), (model, kind, p, effs)
            assert all(a <= b for a, b in zip(effs, effs[1:])), (model, kind, p, effs)  # more bandwidth helps
        # more workers never help (weak scaling, fixed per-worker work)
        net = M.network_for(25, calib[backend])
        by_p = [M.predict(model, p, net, kind) for p in M.WORKERS]
        assert all(a >= b for a, b in zip(by_p, by_p[1:])), (model, kind, by_p)
    # more latency hurts
    lo, hi = M.Network(1e-6, 3e9), M.Network(1e-3, 3e9)
    assert M.predict("ResNet-50", 512, hi) < M.predict("ResNet-50", 512, lo)


def test_host_cap_and_wire_latency():
    calib = {"alpha_s": 2e-5, "bandwidth_Bps": 1e9}
    net = M.network_for(100, calib)  # 100 Gb/s = 12.5 GB/s, capped to the measured 1 GB/s
    assert net.bandwidth_Bps == 1e9 and net.alpha_s == pytest.approx(2e-5 + M.WIRE_LATENCY_S)
    assert M.network_for(100, calib, host_cap=False).bandwidth_Bps == pytest.approx(12.5e9)
    assert M.network_for(5, calib).bandwidth_Bps == pytest.approx(0.625e9)  # a slower link than the host: the link
    assert M.network_for(5, None).alpha_s == M.WIRE_LATENCY_S


def test_fit_recovers_constants_and_drops_outlier():
    alpha, bw = 3e-5, 2e9
    pts = [(n, 2 * alpha + n / bw) for n in (1 << 10, 1 << 14, 1 << 18, 1 << 22, 1 << 26)]
    fit = M.fit_alpha_beta(pts)
    assert fit["alpha_s"] == pytest.approx(alpha, rel=1e-9) and fit["bandwidth_Bps"] == pytest.approx(bw, rel=1e-9)
    assert fit["excluded_bytes"] == []
    bad = pts[:3] + [(1 << 22, 20 * pts[3][1])] + pts[4:]  # one size 20x too slow (a descheduled rank)
    fit = M.fit_alpha_beta(bad)
    assert fit["excluded_bytes"] == [1 << 22]
    assert fit["alpha_s"] == pytest.approx(alpha, rel=1e-6) and fit["bandwidth_Bps"] == pytest.approx(bw, rel=1e-6)
    with pytest.raises(ValueError, match="need >= 2 points"):
        M.fit_alpha_beta([(1024, 1e-5)])


def test_committed_calibration_and_bad_file(tmp_path):
    calib = M.load_calibration()
    assert calib["measured_utc"] and calib["how"]
    for backend in ("mpi", "zmq"):
        assert math.isfinite(calib[backend]["alpha_s"]) and calib[backend]["bandwidth_Bps"] > 0
    broken = dict(calib, zmq=dict(calib["zmq"], bandwidth_Bps=0))
    path = tmp_path / "calib.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"zmq\.bandwidth_Bps is 0"):
        M.load_calibration(str(path))
    with pytest.raises(FileNotFoundError, match="--calibrate"):
        M.load_calibration(str(tmp_path / "missing.json"))


def test_plots_are_small_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    paths = M.plot(M.load_calibration(), str(tmp_path), host_cap=True)
    assert [pathlib.Path(p).name for p in paths] == ["scaling_ddp.png", "scaling_ps.png"]
    for p in paths:
        data = pathlib.Path(p).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and 10_000 < len(data) < 150_000
