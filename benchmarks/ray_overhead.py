"""Ray overhead: start-up of a 2-worker disttorch TorchTrainer, and DDP step time on Ray vs ``disttorch launch``.

    python benchmarks/ray_overhead.py [--steps 60] [--warmup 150]

Needs the ray extra. It starts a local Ray (``ray.init(num_cpus=2)``) and measures:

  ray.init          seconds to start the local Ray;
  startup           seconds for ``TorchTrainer(trivial loop, 2 workers).fit()`` (worker actors, process group);
  step (ray)        median DDP step (forward + backward + SGD step) of the MLP 784-512-512-10, batch 128 per
                    rank, on 2 Ray Train workers (the slower rank's median);
  step (launch)     the same loop in 2 workers started by ``disttorch launch --nproc-per-node 2 --backend zmq``.

Both jobs use one BLAS thread per rank (OMP_NUM_THREADS=1, ``disttorch.set_num_threads(1)``), and the launch job
runs before and after the Ray job (the median of its two runs is the peer). Target from the issue: ray/launch
steady-state ratio <= 1.1.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.abspath(__file__)
MARK = "RAY_OVERHEAD_RESULT "


def step_times(steps: int, warmup: int) -> list:
    """Per-step seconds of the DDP MLP in this rank (the group must be initialised)."""
    import numpy as np

    import disttorch
    import disttorch.distributed as dist
    from disttorch import nn

    disttorch.set_num_threads(1)
    gen = np.random.default_rng(1000 + dist.get_rank())
    disttorch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = disttorch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
    x = disttorch.tensor(gen.standard_normal((128, 784)).astype(np.float32))
    y = disttorch.tensor(gen.integers(0, 10, 128))
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for i in range(warmup + steps):
        dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad()
        loss_fn(ddp(x), y).backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def _ray_rank(steps: int, warmup: int) -> float:
    return statistics.median(step_times(steps, warmup))


def _launch_worker(steps: int, warmup: int) -> None:
    import disttorch.distributed as dist

    dist.init_process_group(backend="zmq")
    med = statistics.median(step_times(steps, warmup))
    print(MARK + json.dumps({"rank": dist.get_rank(), "median": med}), flush=True)
    dist.destroy_process_group()


def _launch_job(steps: int, warmup: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "disttorch.launcher.cli", "launch", "--nproc-per-node", "2", "--backend", "zmq",
           HERE, "--worker", "--steps", str(steps), "--warmup", str(warmup)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"disttorch launch failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    meds = [json.loads(line.split(MARK, 1)[1])["median"] for line in out.stdout.splitlines() if MARK in line]
    if len(meds) != 2:
        raise RuntimeError(f"expected 2 results from disttorch launch, got {len(meds)}:\n{out.stdout[-2000:]}")
    return max(meds)


def _trivial(config) -> None:
    import disttorch.distributed as dist

    dist.barrier()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=150,
                   help="untimed steps first: Ray Train keeps the CPUs busy for ~2 s after start-up")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _launch_worker(args.steps, args.warmup)
        return 0
    import ray
    import ray.train

    import disttorch.ray as dray

    launch_before = _launch_job(args.steps, args.warmup)
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    t_init = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        dray.TorchTrainer(_trivial, scaling_config=ray.train.ScalingConfig(num_workers=2)).fit()
        t_start = time.perf_counter() - t0
        ray_step = max(dray.run(_ray_rank, num_workers=2, args=(args.steps, args.warmup)))
    finally:
        ray.shutdown()
    launch_after = _launch_job(args.steps, args.warmup)
    launch_step = statistics.median([launch_before, launch_after])
    print(f"ray.init (local, 2 CPUs)           {t_init:8.2f} s")
    print(f"TorchTrainer 2 workers, fit()      {t_start:8.2f} s   (trivial loop: start-up and teardown)")
    print(f"DDP MLP step, 2 Ray workers        {ray_step * 1e3:8.2f} ms")
    print(f"DDP MLP step, disttorch launch     {launch_step * 1e3:8.2f} ms   (runs: {launch_before * 1e3:.2f}, "
          f"{launch_after * 1e3:.2f})")
    print(f"ratio ray / launch                 {ray_step / launch_step:8.3f}   (target <= 1.1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
