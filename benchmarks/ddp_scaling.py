"""DDP weak scaling: samples/s at 1 and 2 ranks, and where a 2-rank step's time goes.

    python benchmarks/ddp_scaling.py [--backends zmq,mpi] [--models mlp,cnn] [--steps 30] [--repeats 2]
                                     [--bucket-cap-mb MB] [--env NAME=VALUE ...] [--quick]

The script starts its own jobs, one per (backend, world size), through ``disttorch launch -n N --backend B``
(itself again, in worker mode), with OMP_NUM_THREADS=1 and ``disttorch.set_num_threads(1)`` in every rank, so
each rank uses one BLAS thread and 2 ranks use the 2 cores. The per-rank batch is fixed (weak scaling). The
1-rank and 2-rank jobs alternate ``--repeats`` times and each figure is the median over the repeats, so that
both see the same machine state. ``--env`` adds variables to the jobs' environment (for example
``OMPI_MCA_mpi_yield_when_idle=1`` or ``DISTTORCH_CHECK_COLLECTIVES=0`` to compare wait strategies).

Models: the MLP 784-512-512-10 with batch 128, and the CNN of benchmarks/train_step.py (Conv2d 1->16 3x3, ReLU,
MaxPool 2, Conv2d 16->32 3x3, ReLU, MaxPool 2, Linear -> 10 on 28x28 inputs) with batch 64, on random data;
cross-entropy, SGD with momentum. Per job and model, every rank measures, in interleaved rounds (median per step):

  plain   forward + backward + step of the bare module (no DDP: the 1-rank baseline);
  ddp     the same through DDP: total, backward+step alone (``t_ddp``, which includes finishing the
          all-reduces), the time the last gradient hook spends waiting for the all-reduces (``wait``), the
          main thread's CPU time and the whole process's CPU time (``cpu``: a communication thread that spins
          shows up as process CPU above the main thread's);
  nocomm  DDP under ``no_sync()``: backward+step with no communication (``t_nocomm``);
  ar      the all-reduces alone: every bucket's buffer launched async in bucket order, then all waited
          (``t_allreduce``, after a barrier).

Efficiency ``eff`` = the bare module's step time over the DDP step time, both in the 2-rank job (interleaved):
the share of the 2-rank machine that DDP keeps, independent of how much of the 2 cores the job got (on a loaded
machine the 1-rank baseline runs alone, so ``speedup`` is capped by 2 x the bare module's own 2-rank slowdown).
Hidden share = 1 - (t_ddp - t_nocomm) / t_allreduce, clipped to [0, 1]: 1 means backward hid all
communication. Throughput = world size * batch / (median ddp step time, the slowest rank's); speedup = 2-rank
DDP throughput over the 1-rank bare module. Targets from issue 14: >= 1.7x with mpi and >= 1.6x with zmq.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))
MARK = "DDP_SCALING_RESULT "
BATCH = {"mlp": 128, "cnn": 64}
TARGET = {"mpi": 1.7, "zmq": 1.6}


def _build(name: str, torch, nn):
    """(model, inputs, targets) for one rank; inputs differ between ranks, the model starts equal."""
    rank = int(os.environ.get("RANK", "0"))
    gen = np.random.default_rng(1000 + rank)
    torch.manual_seed(0)
    b = BATCH[name]
    if name == "mlp":
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
        x = gen.standard_normal((b, 784)).astype(np.float32)
    elif name == "cnn":  # the CNN of benchmarks/train_step.py
        model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
        x = gen.random((b, 1, 28, 28), dtype=np.float32)
    else:
        raise SystemExit(f"ddp_scaling: unknown model {name!r} (choose from {', '.join(BATCH)})")
    y = gen.integers(0, 10, b)
    return model, torch.from_numpy(x), torch.from_numpy(y)


def worker(args) -> None:
    import disttorch as torch
    import disttorch.distributed as dist
    import disttorch.nn.functional as F
    from disttorch import nn
    from disttorch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group(args.backend)
    world, rank = dist.get_world_size(), dist.get_rank()
    results = {}

    for name in args.models.split(","):
        model, x, y = _build(name, torch, nn)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        ddp = DDP(model, bucket_cap_mb=args.bucket_cap_mb, gradient_as_bucket_view=args.gradient_as_bucket_view)
        ddp_opt = torch.optim.SGD(ddp.parameters(), lr=1e-3, momentum=0.9)
        waited = [0.0]
        finalize = ddp._finalize

        def timed_finalize(*a, **k):  # the last hook's wait for the all-reduces (and the copy back)
            t = time.perf_counter()
            try:
                return finalize(*a, **k)
            finally:
                waited[0] += time.perf_counter() - t

        ddp._finalize = timed_finalize

        def step(m, o):
            o.zero_grad()
            waited[0] = 0.0
            c0, p0 = time.thread_time(), time.process_time()
            t0 = time.perf_counter()
            loss = F.cross_entropy(m(x), y)
            t1 = time.perf_counter()
            loss.backward()
            o.step()
            t2 = time.perf_counter()
            return t2 - t0, t2 - t1, waited[0], time.thread_time() - c0, time.process_time() - p0

        bufs = [torch.from_numpy(b.buffer) for b in ddp._buckets]

        def allreduce_only():
            t0 = time.perf_counter()
            works = [dist.all_reduce(t, async_op=True) for t in bufs]
            for w in works:
                w.wait()
            return time.perf_counter() - t0, 0.0, 0.0, 0.0, 0.0

        def nocomm():
            with ddp.no_sync():
                return step(ddp, ddp_opt)

        variants = {"plain": lambda: step(model, opt), "ddp": lambda: step(ddp, ddp_opt), "nocomm": nocomm,
                    "ar": allreduce_only}
        for fn in variants.values():  # warm-up
            for _ in range(3):
                fn()
        times = {k: [] for k in variants}
        per_round = max(1, args.steps // args.rounds)
        for _ in range(args.rounds):
            for k, fn in variants.items():
                dist.barrier()
                for _ in range(per_round):
                    if k == "ar":
                        dist.barrier()  # the pure all-reduce starts together on all ranks
                    times[k].append(fn())
        med = {k: np.median(np.array(v, np.float64), axis=0) for k, v in times.items()}
        # the slowest rank decides throughput: take the max of every median over the ranks
        keys = list(med)
        t = torch.from_numpy(np.concatenate([med[k] for k in keys]))
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        flat = t.numpy().reshape(len(keys), -1)
        med = {k: flat[i] for i, k in enumerate(keys)}
        nparams = sum(p.numel() for p in model.parameters())
        results[name] = {"world": world, "batch": BATCH[name], "params": nparams, "buckets": len(bufs),
                         "plain_s": med["plain"][0], "ddp_s": med["ddp"][0], "ddp_bs_s": med["ddp"][1],
                         "ddp_wait_s": med["ddp"][2], "ddp_cpu_main_s": med["ddp"][3], "ddp_cpu_s": med["ddp"][4],
                         "nocomm_s": med["nocomm"][0], "nocomm_bs_s": med["nocomm"][1], "ar_s": med["ar"][0],
                         "plain_cpu_main_s": med["plain"][3]}
        results[name] = {k: float(v) if isinstance(v, np.floating) else v for k, v in results[name].items()}
    if rank == 0:
        print(MARK + json.dumps(results), flush=True)
    dist.destroy_process_group()


def run_job(backend: str, n: int, args) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in [ROOT, os.environ.get("PYTHONPATH", "")] if p))
    for item in args.env:
        k, _, v = item.partition("=")
        env[k] = v
    exe = os.path.join(os.path.dirname(sys.executable), "disttorch")
    launcher = [exe] if os.access(exe, os.X_OK) else [sys.executable, "-m", "disttorch.launcher.cli"]
    cmd = launcher + ["launch", "-n", str(n), "--backend", backend, HERE, "--worker", "--backend", backend,
                      "--models", args.models, "--steps", str(args.steps), "--rounds", str(args.rounds)]
    if args.bucket_cap_mb is not None:
        cmd += ["--bucket-cap-mb", str(args.bucket_cap_mb)]
    if args.gradient_as_bucket_view:
        cmd += ["--gradient-as-bucket-view"]
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=args.timeout)
    for line in p.stdout.splitlines():
        if MARK in line:
            return json.loads(line.split(MARK, 1)[1])
    raise SystemExit(f"ddp_scaling: job {backend} -n {n} failed (exit {p.returncode}):\n{p.stdout[-3000:]}")


def _median_runs(runs: list) -> dict:
    """Per model and field, the median over the repeated jobs."""
    out = {}
    for name in runs[0]:
        out[name] = {k: (float(np.median([r[name][k] for r in runs])) if isinstance(v, float) else v)
                     for k, v in runs[0][name].items()}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="zmq,mpi")
    ap.add_argument("--backend", default="zmq", help=argparse.SUPPRESS)
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per variant (over all rounds)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2, help="alternated 1-rank/2-rank job pairs per backend")
    ap.add_argument("--bucket-cap-mb", type=float, default=None,
                    help="DDP bucket_cap_mb (default: DDP's, a 1 MiB first bucket then 25 MiB)")
    ap.add_argument("--gradient-as-bucket-view", action="store_true",
                    help="DDP(gradient_as_bucket_view=True): .grad tensors are views of the buckets (no copies)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="extra environment variable for the jobs (repeatable)")
    ap.add_argument("--quick", action="store_true", help="fewer steps and one repeat (about a minute)")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.quick:
        args.steps, args.rounds, args.repeats = 12, 2, 1
    t_start = time.perf_counter()
    rows = []
    for backend in args.backends.split(","):
        if backend == "mpi":
            try:
                import mpi4py  # noqa: F401
            except ImportError:
                print("# mpi4py not installed: skipping the mpi backend")
                continue
        ones, twos = [], []
        for _ in range(args.repeats):
            ones.append(run_job(backend, 1, args))
            twos.append(run_job(backend, 2, args))
        one, two = _median_runs(ones), _median_runs(twos)
        for name in args.models.split(","):
            rows.append((backend, name, one[name], two[name]))
    print(f"# per-rank batch {BATCH}; 1 BLAS thread per rank; medians per step, slowest rank; {args.repeats} "
          f"alternated job pair(s); env {' '.join(args.env) or '-'} ({time.perf_counter() - t_start:.0f} s)")
    print(f"{'backend':>7} {'model':>5} {'params':>8} {'1-rank/s':>8} {'2-rank/s':>8} {'speedup':>7} {'eff':>5}"
          f" {'t_ddp':>6} {'nocomm':>6} {'t_ar':>6} {'wait':>6} {'cpu':>6} {'main':>6} {'main0':>6} {'hidden':>6}"
          "  target")
    for backend, name, one, two in rows:
        base = one["batch"] / one["plain_s"]
        thr = 2 * two["batch"] / two["ddp_s"]
        hidden = 1.0 - (two["ddp_bs_s"] - two["nocomm_bs_s"]) / two["ar_s"] if two["ar_s"] > 0 else 1.0
        hidden = min(1.0, max(0.0, hidden))
        target = TARGET.get(backend, 1.7)
        mark = ("ok" if thr / base >= target else "MISS") + f" (>= {target}x)"
        ms = [two[k] * 1e3 for k in ("ddp_bs_s", "nocomm_bs_s", "ar_s", "ddp_wait_s", "ddp_cpu_s",
                                          "ddp_cpu_main_s", "plain_cpu_main_s")]
        eff = two["plain_s"] / two["ddp_s"]
        print(f"{backend:>7} {name:>5} {two['params']:>8} {base:8.0f} {thr:8.0f} {thr / base:7.2f} {eff:5.2f} "
              + " ".join(f"{m:6.2f}" for m in ms) + f" {hidden:6.2f}  {mark}")
        print(f"{'':>7} {'':>5} {'':>8} (1-rank DDP: {one['batch'] / one['ddp_s']:.0f}/s; 2-rank bare module per "
              f"rank: {two['batch'] / two['plain_s']:.0f}/s; {two['buckets']} buckets; times in ms: backward+step "
              "with DDP, without comm, all-reduces alone, waiting in the last hook, process and main-thread CPU "
              "of the whole DDP step, main-thread CPU of the bare module's step)")


if __name__ == "__main__":
    main()
