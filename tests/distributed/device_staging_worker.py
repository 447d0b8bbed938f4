"""Worker for test_device_staging.py: CUDA tensors (the stand-in device) on the CPU backends, and CPU tensors on a
pure nccl group (the fake NCCL of _fake_nccl.py). Started by _procs.run_job (env:// rendezvous, or mpiexec).

    device_staging_worker.py --out DIR --backend zmq|mpi|nccl [--fake-port P]

Writes DIR/rank<R>.json: collective results with the host<->device copies each one made, and the parameters and
gradients of a 3-step DDP run on ``cuda`` (and, on the CPU backends, of the same run on CPU tensors).
"""
import argparse
import faulthandler
import json
import os
import sys
from datetime import timedelta

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

BATCH, IN, HIDDEN, OUT, STEPS, LR = 4, 3, 5, 2, 3, 0.1


def make_problem():
    """The initial parameters (W1, b1, W2, b2) and, per step, every rank's batch (x, target): rank r's rows are
    ``x[step][r * BATCH:(r + 1) * BATCH]``."""
    rng = np.random.default_rng(1234)
    params = [rng.standard_normal(s).astype(np.float64) * 0.5 for s in ((HIDDEN, IN), (HIDDEN,), (OUT, HIDDEN), (OUT,))]
    data = [(rng.standard_normal((2 * BATCH, IN)), rng.standard_normal((2 * BATCH, OUT))) for _ in range(STEPS)]
    return params, data


def _ddp_run(dist, device, rank):
    """3 SGD steps of DDP(Linear-Tanh-Linear) with MSE on ``device``; returns the gradients of every step and the
    final parameters (as lists)."""
    import disttorch
    from disttorch import nn

    params, data = make_problem()
    model = nn.Sequential(nn.Linear(IN, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, OUT)).to(disttorch.float64)
    with disttorch.no_grad():
        for p, v in zip(model.parameters(), params):
            p.copy_(disttorch.tensor(v))
    model = model.to(device)
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = disttorch.optim.SGD(ddp.parameters(), lr=LR)
    grads = []
    for x, t in data:
        xs = disttorch.tensor(x[rank * BATCH:(rank + 1) * BATCH], device=device)
        ts = disttorch.tensor(t[rank * BATCH:(rank + 1) * BATCH], device=device)
        opt.zero_grad()
        nn.functional.mse_loss(ddp(xs), ts).backward()
        grads.append([p.grad.cpu().tolist() for p in model.parameters()])
        opt.step()
    return grads, [p.detach().cpu().tolist() for p in model.parameters()]


def _ddp_step_copies(dist, S, rank):
    """The host<->device copies of one DDP training step on ``cuda`` with small buckets (each bucket's all-reduce
    is staged: 1 down, 1 up), and the number of buckets."""
    import disttorch
    from disttorch import nn

    params, data = make_problem()
    model = nn.Sequential(nn.Linear(IN, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, OUT)).to(disttorch.float64).to("cuda")
    ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=100 / 2**20)  # ~100-byte buckets: several
    opt = disttorch.optim.SGD(ddp.parameters(), lr=LR)
    x, t = (disttorch.tensor(v[rank * BATCH:(rank + 1) * BATCH], device="cuda") for v in data[0])

    def step():
        opt.zero_grad()
        nn.functional.mse_loss(ddp(x), t).backward()
        opt.step()
    step()  # the first step builds what later steps reuse
    _, copies = _counted(S, step)
    return copies, len(ddp._buckets)


def _counted(S, fn):
    """Run ``fn()``; returns (its result, (device-to-host, host-to-device) copies it made)."""
    S.TRANSFERS.reset()
    r = fn()
    return r, (S.TRANSFERS.to_host, S.TRANSFERS.to_device)


def _collectives(dist, S, rank, n):
    import disttorch

    def cuda(v, dtype=disttorch.float32):
        return disttorch.tensor(v, dtype=dtype, device="cuda")

    out = {}
    t = cuda([1.0 + rank, 2.0 * rank])
    _, out["all_reduce_copies"] = _counted(S, lambda: dist.all_reduce(t))
    out["all_reduce"] = t.cpu().tolist()
    t = cuda([1.0 + rank, 2.0 * rank])
    out["all_reduce_avg"] = (dist.all_reduce(t, op=dist.ReduceOp.AVG), t.cpu().tolist())[1]
    t = cuda([10 * rank + 1, 3], disttorch.int64)
    _, out["async_copies"] = _counted(S, lambda: dist.all_reduce(t, async_op=True).wait())
    out["async_all_reduce"] = t.cpu().tolist()
    t = cuda([float(rank)] * 3)
    _, out["broadcast_copies"] = _counted(S, lambda: dist.broadcast(t, src=1))
    out["broadcast"] = t.cpu().tolist()
    outs = [cuda([0, 0], disttorch.int32) for _ in range(n)]
    src = cuda([rank, -rank], disttorch.int32)
    _, out["all_gather_copies"] = _counted(S, lambda: dist.all_gather(outs, src))
    out["all_gather"] = [o.cpu().tolist() for o in outs]
    o = cuda([0.0, 0.0])
    dist.reduce_scatter_tensor(o, cuda([float(rank + i) for i in range(2 * n)]))
    out["reduce_scatter_tensor"] = o.cpu().tolist()
    o = cuda([0.0] * n)
    dist.all_to_all_single(o, cuda([100.0 * rank + j for j in range(n)]))
    out["all_to_all_single"] = o.cpu().tolist()
    strided = cuda([[1.0, 2.0], [3.0, 4.0]]).t()  # non-contiguous: the result must land in the view's layout
    dist.all_reduce(strided)
    out["all_reduce_strided"] = strided.cpu().tolist()
    if rank == 0:
        s = cuda([7.0, 8.0])
        _, out["send_copies"] = _counted(S, lambda: dist.send(s, dst=1))
    else:
        r = cuda([0.0, 0.0])
        _, out["recv_copies"] = _counted(S, lambda: dist.recv(r, src=0))
        out["recv"] = r.cpu().tolist()
    c = disttorch.tensor([rank + 1.0])
    _, out["cpu_all_reduce_copies"] = _counted(S, lambda: dist.all_reduce(c))
    out["cpu_all_reduce"] = c.tolist()
    from disttorch.distributed import _staging

    before = _staging.POOL.allocated
    for _ in range(3):  # the same shape again: the host buffer is reused
        dist.all_reduce(cuda([1.0, 2.0]))
    out["pool_allocations_for_3_repeats"] = _staging.POOL.allocated - before
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--backend", required=True)
    p.add_argument("--fake-port", type=int, default=0)
    args = p.parse_args()
    faulthandler.dump_traceback_later(40, exit=True)  # a hang shows where in the test's log

    import disttorch.distributed as dist
    from disttorch.testing import _standin_cuda as S

    out = {}
    if args.backend == "nccl":
        import _fake_nccl as F

        from disttorch.distributed.store import TCPStore

        undo = F.install(None)
        dist.init_process_group(backend="nccl", timeout=timedelta(seconds=60))
        rank, n = dist.get_rank(), dist.get_world_size()
        F.STATE["store"] = TCPStore("127.0.0.1", args.fake_port, n, is_master=rank == 0, timeout=timedelta(seconds=60))
        import disttorch

        c = disttorch.tensor([rank + 1.0, 10.0])
        try:
            dist.all_reduce(c)
            out["user_cpu_all_reduce"] = "no error"
        except RuntimeError as e:  # as in PyTorch: a user's CPU tensor on a pure nccl group is an error
            out["user_cpu_all_reduce"] = "error: " + str(e)
        from disttorch.distributed._staging import host_tensors_on_device

        with host_tensors_on_device():  # what object collectives and DDP's checks do: staged through the device
            _, out["cpu_all_reduce_copies"] = _counted(S, lambda: dist.all_reduce(c))
        d = disttorch.tensor([1.0, 2.0], device="cuda")  # the copies every nccl collective makes (its fingerprint)
        _, out["cuda_all_reduce_copies"] = _counted(S, lambda: dist.all_reduce(d))
        out["cpu_all_reduce"] = c.tolist()
        objs = [None] * n
        dist.all_gather_object(objs, {"rank": rank, "tag": ("x", rank)})
        out["objects"] = objs
        lst = [{"from": "rank0"}, 3] if rank == 0 else [None, None]
        dist.broadcast_object_list(lst, src=0)
        out["broadcast_objects"] = lst
        out["ddp_cuda"] = _ddp_run(dist, "cuda", rank)
        out["backend"] = str(dist.get_backend())
    else:
        S.enable()
        dist.init_process_group(backend=args.backend, timeout=timedelta(seconds=60))
        rank, n = dist.get_rank(), dist.get_world_size()
        out.update(_collectives(dist, S, rank, n))
        out["ddp_cuda"] = _ddp_run(dist, "cuda", rank)
        out["ddp_cpu"] = _ddp_run(dist, "cpu", rank)
        out["ddp_step_copies"], out["ddp_buckets"] = _ddp_step_copies(dist, S, rank)
    with open(os.path.join(args.out, f"rank{rank}.json"), "w") as f:
        json.dump(out, f)
    if args.backend == "nccl":
        # rank 0 serves the fake's store: it closes it only after every rank has used it for the last time
        F.STATE["store"].set(f"results/{rank}", b"1")
        if rank == 0:
            F.STATE["store"].wait([f"results/{r}" for r in range(n)])
    dist.destroy_process_group()
    if args.backend == "nccl":
        undo()


if __name__ == "__main__":
    main()
