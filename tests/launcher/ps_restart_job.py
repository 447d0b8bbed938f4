"""The user script of the launcher's per-process restart tests (tests/launcher/test_ps_restarts.py):
``disttorch launch --mode ps ... ps_restart_job.py OUT server|worker``.

``server``: sync training of a small linear model (Adam, float64) over the servers; each rank uses its half of
a global batch. After step PAUSE rank 0 writes OUT/reached and waits (polling, with a deadline) for OUT/killed,
which the test writes once it has SIGKILLed server 0; the launcher restarts that server from its snapshot.
Every rank prints ``RESULT {json}`` with its final parameters and the single-process reference (the plain
optimizer on the whole batch, from rank 0's initial values): no acknowledged update lost, none applied twice.

``worker``: async SGD on w (3 values, from 0) where rank r's gradient is the constant C[r] (exact in binary), so
the servers' final value is -LR * (sum of every applied push), whatever their order. Rank 1 writes OUT/reached1
after K steps and waits for a SIGKILL; the launcher restarts it alone (TORCHELASTIC_RESTART_COUNT > 0), and the
restarted rank 1 trains all STEPS steps, then writes OUT/rank1_done. Rank 0 trains STEPS steps, waits for that
file, pulls and prints the final value: -LR * (STEPS * C[0] + (K + STEPS) * C[1]).

``late-failure``: async SGD as in ``worker``; rank 0 trains STEPS steps and leaves the job, then rank 1 (after its
STEPS steps) raises. The restarted rank 1 finds the scheduler and servers still there (a failing worker with a
restart left does not tell the scheduler it is done), trains STEPS more steps and prints the final value:
-LR * STEPS * (C[0] + 2 * C[1]).

``sync-worker``: sync SGD with momentum; rank 1 SIGKILLs itself after K steps. The other rank waits for its
gradient of the next step (no heartbeat timeout: nobody is declared dead) until the launcher's restart of
rank 1 rejoins, starts at the job's step (``opt.clock``) and pushes it: both end with the single-process result.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time

import disttorch as torch
import disttorch.distributed.ps as ps

STEPS, PAUSE, K, LR = 6, 3, 2, 0.125
C = ([1.0, 2.0, 3.0], [0.5, 0.25, 4.0])
HALF = 8


def wait_for(path: str, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {seconds} s")
        time.sleep(0.02)


def batch(step: int):
    g = torch.Generator().manual_seed(700 + step)
    x = torch.randn(2 * HALF, 5, generator=g, dtype=torch.float64)
    return x, torch.sin(x[:, :2]) + 0.1 * x[:, 2:4]


def linear(seed: int):
    torch.manual_seed(seed)
    return torch.nn.Linear(5, 2).double()


def train(model, opt, rank: int, out: str | None, whole: bool = False) -> None:
    for step in range(getattr(opt, "clock", 0), STEPS):
        x, y = batch(step)
        if not whole:
            x, y = x[rank * HALF:(rank + 1) * HALF], y[rank * HALF:(rank + 1) * HALF]
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        if out is not None and rank == 0 and step + 1 == PAUSE:
            open(os.path.join(out, "reached"), "w").close()
            wait_for(os.path.join(out, "killed"))


def server_scenario(out: str, rank: int, restart: int) -> dict:
    model = linear(seed=100 + rank)  # rank 0's values seed the servers
    opt = ps.DistributedOptimizer(model.parameters(), "adam", mode="sync", lr=0.01, min_slice_bytes=64)
    train(model, opt, rank, out)
    opt.synchronize()
    ref = linear(seed=100)
    train(ref, torch.optim.Adam(ref.parameters(), lr=0.01), 0, None, whole=True)
    return {"final": [p.detach().numpy().reshape(-1).tolist() for p in model.parameters()],
            "ref": [p.detach().numpy().reshape(-1).tolist() for p in ref.parameters()]}


def worker_scenario(out: str, rank: int, restart: int) -> dict:
    w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = ps.DistributedOptimizer([w], "sgd", mode="async", lr=LR)
    c = torch.tensor(C[rank], dtype=torch.float64)
    for step in range(STEPS):
        opt.zero_grad()
        (w * c).sum().backward()  # gradient C[rank], whatever w is
        opt.step()
        if rank == 1 and restart == 0 and step + 1 == K:
            opt.synchronize()  # its K pushes are applied: the total below is exact
            open(os.path.join(out, "reached1"), "w").close()
            wait_for(os.path.join(out, "never"))  # the test SIGKILLs this process here
    opt.synchronize()
    if rank == 1:
        open(os.path.join(out, "rank1_done"), "w").close()
    else:
        wait_for(os.path.join(out, "rank1_done"))
        opt.synchronize()
    return {"w": w.detach().tolist()}


def sync_worker_scenario(out: str, rank: int, restart: int) -> dict:
    model = linear(seed=100 + rank)
    opt = ps.DistributedOptimizer(model.parameters(), "sgd", mode="sync", lr=0.1, momentum=0.9)
    start = opt.clock
    for step in range(opt.clock, STEPS):  # a restarted worker goes on at the job's step
        x, y = batch(step)
        x, y = x[rank * HALF:(rank + 1) * HALF], y[rank * HALF:(rank + 1) * HALF]
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        if rank == 1 and restart == 0 and step + 1 == K:
            os.kill(os.getpid(), signal.SIGKILL)
    opt.synchronize()
    ref = linear(seed=100)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    train(ref, ref_opt, 0, None, whole=True)
    return {"start": start, "final": [p.detach().numpy().reshape(-1).tolist() for p in model.parameters()],
            "ref": [p.detach().numpy().reshape(-1).tolist() for p in ref.parameters()]}


def late_failure_scenario(out: str, rank: int, restart: int) -> dict:
    w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = ps.DistributedOptimizer([w], "sgd", mode="async", lr=LR)
    c = torch.tensor(C[rank], dtype=torch.float64)
    for _ in range(STEPS):
        opt.zero_grad()
        (w * c).sum().backward()
        opt.step()
    opt.synchronize()
    if rank == 0:
        ps.shutdown()  # rank 0 has left the job before rank 1 fails
        open(os.path.join(out, "rank0_left"), "w").close()
    elif restart == 0:
        wait_for(os.path.join(out, "rank0_left"))
        raise RuntimeError("rank 1 fails after every other worker has finished")
    return {"w": w.detach().tolist()}


SCENARIOS = {"server": server_scenario, "worker": worker_scenario, "sync-worker": sync_worker_scenario,
             "late-failure": late_failure_scenario}


def main() -> None:
    out, scenario = sys.argv[1], sys.argv[2]
    restart = int(os.environ["TORCHELASTIC_RESTART_COUNT"])
    ps.init()
    rank = ps.get_rank()
    result = {"rank": rank, "restart": restart, "pid": os.getpid()}
    result.update(SCENARIOS[scenario](out, rank, restart))
    print("RESULT " + json.dumps(result), flush=True)
    ps.shutdown()


if __name__ == "__main__":
    main()
