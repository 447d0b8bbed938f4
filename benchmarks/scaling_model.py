"""Alpha-beta scaling model of data-parallel training past this machine: ring all-reduce, DDP, parameter server.

    python benchmarks/scaling_model.py [--calibrate [--quick | --rounds N --max-mb MB]] [--no-host-cap]
                                       [--out-dir docs/img] [--no-plot]

The model (docs/scaling.md explains it and its limits):

- a message of ``n`` bytes costs ``alpha + n / B``: ``alpha`` the per-message latency, ``B`` the bandwidth;
- ring all-reduce over ``p`` workers: ``2 (p-1)/p * n/B + 2 (p-1) * alpha`` (reduce-scatter then all-gather);
  recursive halving-doubling (Rabenseifner, the "tree-like" schedule MPI libraries use):
  ``2 (p-1)/p * n/B + 2 log2(p) * alpha``;
- DDP: backward produces ``k`` equal gradient buckets at even intervals, each all-reduced as soon as it is
  ready, one at a time; the step is ``fwd + max(bwd + c, bwd/k + k*c)`` with ``c`` one bucket's all-reduce
  (the exact finish time of that pipeline);
- parameter server (sync mode, ``S`` servers, the plan of ``ps.plan_shards``: bytes spread evenly): pushes
  leave during backward as in DDP, every server receives ``W * n/S`` bytes and sends as many back, so a
  transfer takes ``max(1, W/S) * (alpha + n/B)``; the pull waits for the last push; step = push pipeline + pull.

Efficiency is the single worker's compute time over the step time at ``p`` workers (weak scaling: the
per-worker batch is fixed), so 1.0 means communication costs nothing.

Calibration: ``alpha`` and the host's own bandwidth come from this machine's all-reduce benchmark
(``benchmarks/allreduce.py``, 2 ranks, the zmq backend and raw mpi4py, alternated). ``--calibrate`` runs it
and rewrites ``scaling_calibration.json`` beside this script; otherwise that file is read. The network
bandwidth is the link's (10/25/100 Gb/s), capped by the measured host bandwidth (a CPU backend cannot move
bytes faster than it copies and reduces them); ``--no-host-cap`` drops the cap (a GPU/NCCL-like endpoint).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))
ALLREDUCE = os.path.join(os.path.dirname(HERE), "allreduce.py")
CALIBRATION = os.path.join(os.path.dirname(HERE), "scaling_calibration.json")
GBIT = 1e9 / 8  # bytes/s in one Gb/s
MIB = 1 << 20
BUCKET_BYTES = 25 * MIB  # DDP's default bucket_cap_mb (PyTorch's): 25 MiB
WIRE_LATENCY_S = 5e-6  # assumed one-hop switch + NIC latency added to the measured software alpha
WORKERS = (8, 16, 32, 64, 128, 256, 512)
NETWORKS_GBIT = (10, 25, 100)
HOROVOD = {"workers": 512, "efficiency": 0.90,
           "source": "Horovod paper, Sergeev & Del Balso 2018 (~90% for Inception V3 / ResNet-101 at 512 GPUs)"}

# Per-step compute times are ASSUMPTIONS, not measurements: V100-class fp32 throughput.
# ResNet-50: ~360 images/s fp32 on one V100 at batch 64 -> 64 / 360 s. BERT: the 6 * params * tokens FLOP rule
# (forward 2, backward 4 FLOP per parameter per token) at 7 TFLOP/s sustained (half of a V100's 14 TFLOP/s fp32
# peak), sequence 128, batch 32 per worker. Backward takes 2/3 of the step (twice the forward's work).
TFLOPS = 7e12
MODELS = {
    "ResNet-50": {"params": 25.6e6, "step_s": 64 / 360, "note": "batch 64, ~360 img/s (V100-class fp32)"},
    "BERT-base": {"params": 110e6, "step_s": 6 * 110e6 * 32 * 128 / TFLOPS,
                  "note": "seq 128, batch 32, 6*N*tokens at 7 TFLOP/s"},
    "BERT-large": {"params": 340e6, "step_s": 6 * 340e6 * 32 * 128 / TFLOPS,
                   "note": "seq 128, batch 32, 6*N*tokens at 7 TFLOP/s"},
}
BWD_SHARE = 2 / 3


@dataclass(frozen=True)
class Network:
    """One message costs ``alpha_s + bytes / bandwidth_Bps``."""
    alpha_s: float
    bandwidth_Bps: float


# ---- the model ------------------------------------------------------------------------------------------------
def ring_allreduce_time(nbytes: float, p: int, net: Network) -> float:
    """Ring all-reduce of ``nbytes`` over ``p`` workers: ``2(p-1)/p * n/B + 2(p-1) * alpha``."""
    if p < 1:
        raise ValueError(f"ring_allreduce_time: p must be >= 1, got {p}")
    if p == 1:
        return 0.0
    return 2 * (p - 1) / p * nbytes / net.bandwidth_Bps + 2 * (p - 1) * net.alpha_s


def rhd_allreduce_time(nbytes: float, p: int, net: Network) -> float:
    """Recursive halving-doubling all-reduce (Rabenseifner): ``2(p-1)/p * n/B + 2 log2(p) * alpha``.

    Exact for a power of two; for other ``p`` it uses ``ceil(log2 p)`` rounds, a lower bound on real schedules.
    """
    if p < 1:
        raise ValueError(f"rhd_allreduce_time: p must be >= 1, got {p}")
    if p == 1:
        return 0.0
    return 2 * (p - 1) / p * nbytes / net.bandwidth_Bps + 2 * math.ceil(math.log2(p)) * net.alpha_s


ALGORITHMS = {"ring": ring_allreduce_time, "rhd": rhd_allreduce_time}


def num_buckets(nbytes: float, bucket_bytes: float = BUCKET_BYTES) -> int:
    """How many buckets DDP fills for ``nbytes`` of gradients (at least one)."""
    return max(1, math.ceil(nbytes / bucket_bytes))


def overlapped_tail(bwd_s: float, k: int, per_bucket_s: float) -> float:
    """Time from the start of backward until the last of ``k`` serial transfers ends.

    Bucket ``j`` (1..k) is ready at ``j * bwd/k``; transfers run one at a time. The finish time is
    ``max_j(j*bwd/k + (k-j+1)*c)``, linear in ``j``, so the maximum sits at an end: ``max(bwd + c, bwd/k + k*c)``.
    """
    return max(bwd_s + per_bucket_s, bwd_s / k + k * per_bucket_s)


def ddp_step_time(fwd_s: float, bwd_s: float, nbytes: float, p: int, net: Network,
                  bucket_bytes: float = BUCKET_BYTES, algorithm: str = "ring") -> float:
    """One DDP step at ``p`` workers: forward, then backward overlapped with bucketed all-reduces."""
    if p == 1:
        return fwd_s + bwd_s
    k = num_buckets(nbytes, bucket_bytes)
    c = ALGORITHMS[algorithm](nbytes / k, p, net)
    return fwd_s + overlapped_tail(bwd_s, k, c)


def ps_step_time(fwd_s: float, bwd_s: float, nbytes: float, workers: int, servers: int, net: Network,
                 bucket_bytes: float = BUCKET_BYTES) -> float:
    """One synchronous parameter-server step: pushes overlap backward, then every worker pulls its shards.

    Servers hold ``nbytes / servers`` each; with ``workers`` pushing at once a server's link carries
    ``workers * nbytes / servers`` bytes each way and handles ``workers/servers`` messages per transfer in turn, so
    a transfer costs ``max(1, workers/servers) * (alpha + n/B)`` (the worker's own link when servers outnumber
    workers). Server-side optimizer time is not modelled.
    """
    if servers < 1 or workers < 1:
        raise ValueError(f"ps_step_time: workers and servers must be >= 1, got {workers} and {servers}")
    k = num_buckets(nbytes, bucket_bytes)
    load = max(1.0, workers / servers)
    push = load * (net.alpha_s + (nbytes / k) / net.bandwidth_Bps)  # a server handles W/S messages in turn
    pull = load * (net.alpha_s + nbytes / net.bandwidth_Bps)
    return fwd_s + overlapped_tail(bwd_s, k, push) + pull


def efficiency(compute_s: float, step_s: float) -> float:
    """Weak-scaling efficiency: compute time over step time, in [0, 1]."""
    return min(1.0, max(0.0, compute_s / step_s))


def network_for(link_gbit: float, calib: Optional[dict], host_cap: bool = True,
                wire_latency_s: float = WIRE_LATENCY_S) -> Network:
    """The modelled network: the calibrated alpha plus a wire hop; the link's bandwidth, capped by the host's."""
    bw = link_gbit * GBIT
    alpha = wire_latency_s
    if calib is not None:
        alpha += calib["alpha_s"]
        if host_cap:
            bw = min(bw, calib["bandwidth_Bps"])
    return Network(alpha, bw)


def predict(model: str, p: int, net: Network, kind: str = "ddp", servers: int = 8, algorithm: str = "ring") -> float:
    """Predicted efficiency of ``model`` (a key of MODELS) at ``p`` workers on ``net``."""
    m = MODELS[model]
    step = m["step_s"]
    fwd, bwd = step * (1 - BWD_SHARE), step * BWD_SHARE
    nbytes = m["params"] * 4  # fp32 gradients
    if kind == "ddp":
        t = ddp_step_time(fwd, bwd, nbytes, p, net, algorithm=algorithm)
    elif kind == "ps":
        t = ps_step_time(fwd, bwd, nbytes, p, servers, net)
    else:
        raise ValueError(f"predict: kind must be 'ddp' or 'ps', got {kind!r}")
    return efficiency(step, t)


# ---- calibration ----------------------------------------------------------------------------------------------
def fit_alpha_beta(points: Sequence[tuple], reject: float = 2.0) -> dict:
    """Fit 2-rank all-reduce times ``T(n) = 2*alpha + n/B`` (the ring formula at p=2) to (bytes, seconds) points.

    Least squares on the relative error, so small messages (which fix alpha) weigh as much as large ones.
    Under load a size can come out many times too slow: points more than a factor ``reject`` off the first
    fit (either way), the worst first and at most a third of them, are dropped and the fit is redone once;
    the dropped sizes are returned. Extra fields after (bytes, seconds) are ignored.
    """
    pts = [(float(p[0]), float(p[1])) for p in points]
    if len(pts) < 2 or any(s <= 0 for _, s in pts):
        raise ValueError(f"fit_alpha_beta: need >= 2 points with positive times, got {list(points)}")
    c0, c1 = _rel_lstsq(pts)

    def misfit(pt):
        model = c0 + c1 * pt[0]
        return math.inf if model <= 0 else max(pt[1] / model, model / pt[1])

    worst = sorted((pt for pt in pts if misfit(pt) > reject), key=misfit, reverse=True)[:len(pts) // 3]
    if worst:
        c0, c1 = _rel_lstsq([pt for pt in pts if pt not in worst])
    if c1 <= 0:
        raise ValueError(f"fit_alpha_beta: the fitted per-byte time is {c1:g} s (not positive); points {list(points)}")
    return {"alpha_s": max(0.0, c0 / 2), "bandwidth_Bps": 1 / c1, "excluded_bytes": sorted(int(b) for b, _ in worst)}


def _rel_lstsq(pts: List[tuple]) -> tuple:
    n = np.array([b for b, _ in pts])
    t = np.array([s for _, s in pts])
    a = np.stack([np.ones_like(n), n], 1) / t[:, None]
    (c0, c1), *_ = np.linalg.lstsq(a, np.ones_like(t), rcond=None)
    return float(c0), float(c1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_json(cmds: List[list], env: dict, timeout: float) -> list:
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, text=True) for c in cmds]
    try:
        outs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:  # only the processes started here, by their handle
            if p.poll() is None:
                p.kill()
                p.wait()
    if any(p.returncode for p in procs):
        raise RuntimeError(f"scaling_model --calibrate: benchmark workers {cmds[0][:3]} exited "
                           f"{[p.returncode for p in procs]}")
    return json.loads(next(o for o in outs if o.strip()).strip().splitlines()[-1])


def calibrate(max_mb: float, rounds: int, timeout: float = 600) -> dict:
    """Run benchmarks/allreduce.py's zmq pair and mpi4py job ``rounds`` times, alternated; fit each."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    mpiexec = shutil.which("mpiexec") or shutil.which("mpiexec", path=os.path.dirname(sys.executable))
    times: Dict[str, Dict[int, list]] = {"zmq": {}, "mpi": {}}
    for _ in range(rounds):
        port = _free_port()
        for row in _run_json([[sys.executable, ALLREDUCE, "--worker", str(r), str(port), "--max-mb", str(max_mb)]
                              for r in range(2)], env, timeout):
            times["zmq"].setdefault(row["bytes"], []).append(row["allreduce_s"])
        if mpiexec:
            menv = dict(env, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
            for row in _run_json([[mpiexec, "-n", "2", "--oversubscribe", sys.executable, ALLREDUCE, "--mpi-worker",
                                   "--max-mb", str(max_mb)]], menv, timeout):
                times["mpi"].setdefault(row["bytes"], []).append(row["mpi_s"])
    out = {"measured_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "how": (f"python benchmarks/scaling_model.py --calibrate: benchmarks/allreduce.py, 2 ranks on one host, "
                   f"float32 SUM, sizes 1 KiB..{max_mb:g} MiB, {rounds} alternated zmq/mpi rounds; points are "
                   f"[bytes, median s, min s, max s] over the rounds; fit T(n) = 2*alpha + n/B to the medians"),
           "host": f"{socket.gethostname()}, {os.cpu_count()} CPUs"}
    for backend, per_size in times.items():
        if not per_size:
            continue
        pts = sorted((b, float(np.median(v)), float(min(v)), float(max(v))) for b, v in per_size.items())
        out[backend] = dict(fit_alpha_beta(pts), points=[list(p) for p in pts])
    return out


def load_calibration(path: str = CALIBRATION) -> dict:
    """The committed measured constants (see ``calibrate``); a clear error names the file and the field."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"scaling_model: {path} is missing; run `python benchmarks/scaling_model.py "
                                f"--calibrate` to measure it") from None
    for backend in ("zmq", "mpi"):
        for field in ("alpha_s", "bandwidth_Bps"):
            v = data.get(backend, {}).get(field)
            if not isinstance(v, (int, float)) or v < 0 or (field == "bandwidth_Bps" and v == 0):
                raise ValueError(f"scaling_model: {path}: {backend}.{field} is {v!r}; expected a positive number")
    return data


# ---- report ---------------------------------------------------------------------------------------------------
def _curves(calib: dict, host_cap: bool):
    """The DDP rows of the table and the figure: (label, link Gb/s -> Network)."""
    return [("mpi", lambda g: network_for(g, calib["mpi"], host_cap)),
            ("zmq", lambda g: network_for(g, calib["zmq"], host_cap)),
            ("link", lambda g: network_for(g, calib["mpi"], host_cap=False))]


def table(calib: dict, host_cap: bool) -> str:
    """Efficiency table: model x network x calibration rows, worker counts as columns."""
    head = "model       net       row         " + " ".join(f"{p:>6}" for p in WORKERS)
    lines = [head, "-" * len(head)]
    for model in MODELS:
        for g in NETWORKS_GBIT:
            for label, net_of in _curves(calib, host_cap):
                effs = [predict(model, p, net_of(g)) for p in WORKERS]
                lines.append(f"{model:<11} {g:>3} Gb/s  ddp {label:<7} " + " ".join(f"{e:6.2f}" for e in effs))
        link = network_for(25, calib["mpi"], host_cap=False)
        lines.append(f"{model:<11}  25 Gb/s  ddp l-rhd   " + " ".join(f"{predict(model, p, link, algorithm='rhd'):6.2f}"
                                                                   for p in WORKERS))
        net = network_for(25, calib["zmq"], host_cap)
        for s in (8, None):
            lines.append(f"{model:<11}  25 Gb/s  ps S={'W' if s is None else s:<5}  "
                         + " ".join(f"{predict(model, p, net, 'ps', s or p):6.2f}" for p in WORKERS))
    return "\n".join(lines)


def plot(calib: dict, out_dir: str, host_cap: bool) -> List[str]:
    """Write scaling_ddp.png and scaling_ps.png (Agg backend, small) into ``out_dir``; return the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    colours = {10: "tab:red", 25: "tab:orange", 100: "tab:blue"}
    styles = {"mpi": ("-", "mpi calibration"), "zmq": ("--", "zmq calibration"),
              "link": (":", "link-bound (no host cap)")}
    paths = []
    fig, axes = plt.subplots(1, len(MODELS), figsize=(11, 3.6), sharey=True)
    for ax, model in zip(axes, MODELS):
        for g in NETWORKS_GBIT:
            for label, net_of in _curves(calib, host_cap):
                style, text = styles[label]
                ax.plot(WORKERS, [predict(model, p, net_of(g)) for p in WORKERS], style, color=colours[g],
                        marker=".", label=f"{g} Gb/s, {text}")
        ax.plot([HOROVOD["workers"]], [HOROVOD["efficiency"]], "k*", markersize=11,
                label="Horovod paper 2018: ~90% at 512 GPUs (Inception V3 / ResNet-101)")
        _axes(ax, f"DDP ring, {model} ({MODELS[model]['params'] / 1e6:.0f} M params, "
                  f"step {MODELS[model]['step_s']:.2f} s)")
    axes[0].set_ylabel("scaling efficiency")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.17, 1, 1))
    paths.append(_save(fig, os.path.join(out_dir, "scaling_ddp.png")))
    plt.close(fig)

    fig, axes = plt.subplots(1, len(MODELS), figsize=(11, 3.4), sharey=True)
    net = network_for(25, calib["zmq"], host_cap)  # the parameter server speaks ZeroMQ
    for ax, model in zip(axes, MODELS):
        ax.plot(WORKERS, [predict(model, p, net) for p in WORKERS], "-", color="k", marker=".",
                label="DDP ring")
        for s, c in ((1, "tab:red"), (8, "tab:orange"), (32, "tab:green")):
            ax.plot(WORKERS, [predict(model, p, net, "ps", s) for p in WORKERS], "--", color=c, marker=".",
                    label=f"ps sync, {s} server{'s' if s > 1 else ''}")
        ax.plot(WORKERS, [predict(model, p, net, "ps", p) for p in WORKERS], ":", color="tab:blue", marker=".",
                label="ps sync, servers = workers")
        _axes(ax, f"{model}, 25 Gb/s, zmq calibration")
    axes[0].set_ylabel("scaling efficiency")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    paths.append(_save(fig, os.path.join(out_dir, "scaling_ps.png")))
    plt.close(fig)
    return paths


def _axes(ax, title: str) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(WORKERS)
    ax.set_xticklabels([str(p) for p in WORKERS], fontsize=7)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("workers")
    ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3)


def _save(fig, path: str) -> str:
    fig.savefig(path, dpi=80)
    return path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calibrate", action="store_true",
                    help=f"measure alpha and bandwidth now and rewrite {os.path.basename(CALIBRATION)}")
    ap.add_argument("--quick", action="store_true", help="with --calibrate: sizes up to 4 MiB, 2 rounds (~1 min)")
    ap.add_argument("--max-mb", type=float, default=64, help="with --calibrate: largest all-reduce size")
    ap.add_argument("--rounds", type=int, default=3, help="with --calibrate: alternated zmq/mpi rounds")
    ap.add_argument("--calibration", default=CALIBRATION, help="the JSON of measured constants to read")
    ap.add_argument("--no-host-cap", action="store_true",
                    help="do not cap the link bandwidth by this machine's measured host bandwidth")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "docs", "img"))
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    if args.calibrate:
        if args.quick:
            args.max_mb, args.rounds = 4, 2
        calib = calibrate(args.max_mb, args.rounds)
        with open(args.calibration, "w") as f:
            json.dump(calib, f, indent=1)
            f.write("\n")
        print(f"wrote {args.calibration}")
    calib = load_calibration(args.calibration)
    for backend in ("mpi", "zmq"):
        c = calib[backend]
        print(f"{backend}: alpha {c['alpha_s'] * 1e6:.1f} us, host bandwidth {c['bandwidth_Bps'] / 1e9:.2f} GB/s "
              f"({c['bandwidth_Bps'] / GBIT:.1f} Gb/s)  [{calib.get('measured_utc', '?')}]")
    print(table(calib, not args.no_host_cap))
    print(f"beside: {HOROVOD['source']}")
    if not args.no_plot:
        for p in plot(calib, args.out_dir, not args.no_host_cap):
            print(f"wrote {p} ({os.path.getsize(p) // 1024} KiB)")


if __name__ == "__main__":
    main()
