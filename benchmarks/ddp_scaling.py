"""DDP weak scaling: samples/s at 1 and 2 ranks and the share of all-reduce time hidden behind backward.

    python benchmarks/ddp_scaling.py [--backends zmq,mpi] [--models mlp,cnn] [--steps 30] [--bucket-cap-mb MB]

The script starts its own jobs, one per (backend, world size), through ``disttorch launch -n N --backend B``
(itself again, in worker mode), with OMP_NUM_THREADS=1 and ``disttorch.set_num_threads(1)`` in every rank, so
each rank uses one BLAS thread and 2 ranks use the 2 cores. The per-rank batch is fixed (weak scaling).

Models: ``DigitsCNN`` from examples/train_digits.py on the 8x8 digits (sklearn's; random 8x8 images when
sklearn is missing) with batch 64, and the MLP 784-512-512-10 on random data with batch 128; cross-entropy,
SGD with momentum. Per job and model, every rank measures, in interleaved rounds (median per step):

  plain   forward + backward + step of the bare module (no DDP: the 1-rank baseline);
  ddp     the same through DDP: total, and backward+step alone (``t_ddp``, which includes finishing the
          all-reduces);
  nocomm  DDP under ``no_sync()``: backward+step with no communication (``t_nocomm``);
  ar      the all-reduces alone: every bucket's buffer launched async in bucket order, then all waited
          (``t_allreduce``, after a barrier).

Hidden share = 1 - (t_ddp - t_nocomm) / t_allreduce, clipped to [0, 1]: 1 means backward hid all
communication. Throughput = world size * batch / (median ddp step time, the slowest rank's); speedup = 2-rank
DDP throughput over the 1-rank bare module. Target from the issue: MLP speedup >= 1.7.
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


def _build(name: str, torch, nn):
    """(model, inputs, targets) for one rank; inputs differ between ranks, the model starts equal."""
    rank = int(os.environ.get("RANK", "0"))
    gen = np.random.default_rng(1000 + rank)
    torch.manual_seed(0)
    b = BATCH[name]
    if name == "mlp":
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
        x = gen.standard_normal((b, 784)).astype(np.float32)
    else:
        sys.path.insert(0, os.path.join(ROOT, "examples"))
        from train_digits import DigitsCNN

        model = DigitsCNN()
        try:
            from sklearn.datasets import load_digits

            imgs = (load_digits().images / 16.0).astype(np.float32)
            x = imgs[gen.integers(0, len(imgs), b)][:, None]
        except ImportError:
            x = gen.random((b, 1, 8, 8), dtype=np.float32)
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

    def barrier():
        dist.barrier()

    for name in args.models.split(","):
        model, x, y = _build(name, torch, nn)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        ddp = DDP(model, bucket_cap_mb=args.bucket_cap_mb)
        ddp_opt = torch.optim.SGD(ddp.parameters(), lr=1e-3, momentum=0.9)

        def step(m, o):
            o.zero_grad()
            t0 = time.perf_counter()
            loss = F.cross_entropy(m(x), y)
            t1 = time.perf_counter()
            loss.backward()
            o.step()
            t2 = time.perf_counter()
            return t2 - t0, t2 - t1

        bufs = [torch.from_numpy(b.buffer) for b in ddp._buckets]

        def allreduce_only():
            t0 = time.perf_counter()
            works = [dist.all_reduce(t, async_op=True) for t in bufs]
            for w in works:
                w.wait()
            return time.perf_counter() - t0, 0.0

        def nocomm():
            with ddp.no_sync():
                return step(ddp, ddp_opt)

        variants = {"plain": lambda: step(model, opt), "ddp": lambda: step(ddp, ddp_opt), "nocomm": nocomm,
                    "ar": allreduce_only}
        for fn in variants.values():  # warm-up
            for _ in range(3):
                fn()
        times = {k: ([], []) for k in variants}
        per_round = max(1, args.steps // args.rounds)
        for _ in range(args.rounds):
            for k, fn in variants.items():
                barrier()
                for _ in range(per_round):
                    if k == "ar":
                        barrier()  # the pure all-reduce starts together on all ranks
                    total, bs = fn()
                    times[k][0].append(total)
                    times[k][1].append(bs)
        med = {k: (float(np.median(a)), float(np.median(b))) for k, (a, b) in times.items()}
        # the slowest rank decides throughput: take the max of every median over the ranks
        flat = np.array([v for pair in med.values() for v in pair], np.float64)
        t = torch.from_numpy(flat)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        flat = t.numpy()
        med = {k: (float(flat[2 * i]), float(flat[2 * i + 1])) for i, k in enumerate(med)}
        nparams = sum(p.numel() for p in model.parameters())
        results[name] = {"world": world, "batch": BATCH[name], "params": nparams, "buckets": len(bufs),
                         "plain_s": med["plain"][0], "ddp_s": med["ddp"][0], "ddp_bs_s": med["ddp"][1],
                         "nocomm_s": med["nocomm"][0], "nocomm_bs_s": med["nocomm"][1], "ar_s": med["ar"][0]}
    if rank == 0:
        print(MARK + json.dumps(results), flush=True)
    dist.destroy_process_group()


def run_job(backend: str, n: int, args) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in [ROOT, os.environ.get("PYTHONPATH", "")] if p))
    exe = os.path.join(os.path.dirname(sys.executable), "disttorch")
    launcher = [exe] if os.access(exe, os.X_OK) else [sys.executable, "-m", "disttorch.launcher.cli"]
    cmd = launcher + ["launch", "-n", str(n), "--backend", backend, HERE, "--worker", "--backend", backend,
                      "--models", args.models, "--steps", str(args.steps), "--rounds", str(args.rounds)]
    if args.bucket_cap_mb is not None:
        cmd += ["--bucket-cap-mb", str(args.bucket_cap_mb)]
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=args.timeout)
    for line in p.stdout.splitlines():
        if MARK in line:
            return json.loads(line.split(MARK, 1)[1])
    raise SystemExit(f"ddp_scaling: job {backend} -n {n} failed (exit {p.returncode}):\n{p.stdout[-3000:]}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="zmq,mpi")
    ap.add_argument("--backend", default="zmq", help=argparse.SUPPRESS)
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per variant (over all rounds)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bucket-cap-mb", type=float, default=None,
                    help="DDP bucket_cap_mb (default: DDP's, a 1 MiB first bucket then 25 MiB)")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    t_start = time.perf_counter()
    rows = []
    for backend in args.backends.split(","):
        if backend == "mpi":
            try:
                import mpi4py  # noqa: F401
            except ImportError:
                print("# mpi4py not installed: skipping the mpi backend")
                continue
        one, two = run_job(backend, 1, args), run_job(backend, 2, args)
        for name in args.models.split(","):
            rows.append((backend, name, one[name], two[name]))
    print(f"# per-rank batch {BATCH}; 1 BLAS thread per rank; medians per step, slowest rank "
          f"({time.perf_counter() - t_start:.0f} s)")
    print(f"{'backend':>7} {'model':>5} {'params':>8} {'1-rank samples/s':>16} {'2-rank samples/s':>16} {'speedup':>7}"
          f" {'t_ddp ms':>8} {'t_nocomm ms':>11} {'t_ar ms':>7} {'hidden':>6}  target")
    for backend, name, one, two in rows:
        base = one["batch"] / one["plain_s"]
        thr = 2 * two["batch"] / two["ddp_s"]
        hidden = 1.0 - (two["ddp_bs_s"] - two["nocomm_bs_s"]) / two["ar_s"] if two["ar_s"] > 0 else 1.0
        hidden = min(1.0, max(0.0, hidden))
        mark = ("ok" if thr / base >= 1.7 else "MISS") + " (>= 1.7x)" if name == "mlp" else ""
        print(f"{backend:>7} {name:>5} {two['params']:>8} {base:16.0f} {thr:16.0f} {thr / base:7.2f}"
              f" {two['ddp_bs_s'] * 1e3:8.2f} {two['nocomm_bs_s'] * 1e3:11.2f} {two['ar_s'] * 1e3:7.2f} {hidden:6.2f}"
              f"  {mark}")
        print(f"{'':>7} {'':>5} {'':>8} (1-rank DDP: {one['batch'] / one['ddp_s']:.0f} samples/s; 2-rank bare module"
              f" per rank: {two['batch'] / two['plain_s']:.0f} samples/s, {two['buckets']} buckets)")


if __name__ == "__main__":
    main()
