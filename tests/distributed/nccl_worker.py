"""Worker for test_nccl_backend.py: the torch.distributed API over the nccl backend on the stand-in device, with
the fake NCCL of _fake_nccl.py (no GPU here). Started by _procs.run_job (env:// rendezvous, or mpiexec).

    nccl_worker.py --out DIR --backend nccl|cpu:gloo,cuda:nccl --fake-port P

Writes DIR/rank<R>.json: each collective's result, the unique ids this process's communicators got, how many
ids it drew, and the errors the API raised.
"""
import argparse
import faulthandler
import hashlib
import json
import os
import sys
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _fake_nccl as F  # noqa: E402

import disttorch  # noqa: E402
import disttorch.distributed as dist  # noqa: E402
from disttorch.distributed.store import TCPStore  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--backend", required=True)
p.add_argument("--fake-port", type=int, required=True)
args = p.parse_args()
faulthandler.dump_traceback_later(40, exit=True)  # a hang shows where in the test's log

drawn = []
F.get_unique_id, real_draw = (lambda: drawn.append(1) or real_draw()), F.get_unique_id
undo = F.install(None)
dist.init_process_group(backend=args.backend, timeout=timedelta(seconds=60))
rank, n = dist.get_rank(), dist.get_world_size()
# the fake communicators exchange their data through a store of their own
F.STATE["store"] = TCPStore("127.0.0.1", args.fake_port, n, is_master=rank == 0, timeout=timedelta(seconds=60))


def cuda(values, dtype=disttorch.float32):
    return disttorch.tensor(values, dtype=dtype, device="cuda")


out = {"backend": str(dist.get_backend())}
# init_process_group's PrefixStore("pg/<generation>/<group>/") adds a "/"; absent: the id went over MPI
out["uid_in_store"] = dist.distributed_c10d._W.store.check(["pg/1/0//nccl/uid"])
for name, op in (("sum", dist.ReduceOp.SUM), ("avg", dist.ReduceOp.AVG), ("prod", dist.ReduceOp.PRODUCT),
                 ("min", dist.ReduceOp.MIN), ("max", dist.ReduceOp.MAX)):
    t = cuda([1.0 + rank, 2.0 * (rank + 1), -3.0 * rank])
    dist.all_reduce(t, op=op)
    out[f"all_reduce_{name}"] = t.cpu().tolist()
t = cuda([10 * rank + 1, 10 * rank + 2], disttorch.int64)
w = dist.all_reduce(t, async_op=True)
w.wait()
out["all_reduce_async_int64"] = t.cpu().tolist()
t = cuda([float(rank)] * 3)
dist.broadcast(t, src=1)
out["broadcast"] = t.cpu().tolist()
t = cuda([rank + 1.0, rank + 2.0])
dist.reduce(t, dst=0)
out["reduce_on_dst"] = t.cpu().tolist() if rank == 0 else None
big = cuda([0.0] * (2 * n))
dist.all_gather_into_tensor(big, cuda([rank + 0.5, rank + 0.25]))
out["all_gather_into_tensor"] = big.cpu().tolist()
outs = [cuda([0, 0], disttorch.int32) for _ in range(n)]
dist.all_gather(outs, cuda([rank, -rank], disttorch.int32))
out["all_gather"] = [o.cpu().tolist() for o in outs]
o = cuda([0.0, 0.0])
dist.reduce_scatter_tensor(o, cuda([float(rank + i) for i in range(2 * n)]))
out["reduce_scatter_tensor"] = o.cpu().tolist()
o = cuda([0.0] * n)
dist.all_to_all_single(o, cuda([100.0 * rank + j for j in range(n)]))
out["all_to_all_single"] = o.cpu().tolist()
if rank == 0:
    dist.send(cuda([7.0, 8.0]), dst=1)
else:
    r = cuda([0.0, 0.0])
    dist.recv(r, src=0)
    out["recv"] = r.cpu().tolist()
dist.barrier()
sub = dist.new_group([0, 1])  # its nccl communicator is made on its first CUDA collective
t = cuda([2.0 ** rank])
dist.all_reduce(t, group=sub)
out["subgroup_all_reduce"] = t.cpu().tolist()
try:
    dist.all_reduce(disttorch.tensor([1.0]))
    out["cpu_all_reduce"] = "no error"
except RuntimeError as e:
    out["cpu_all_reduce"] = "error: " + str(e)
if "," in args.backend:  # CPU tensors go to the CPU backend, objects too
    c = disttorch.tensor([rank + 1.0])
    dist.all_reduce(c)
    out["cpu_all_reduce"] = c.tolist()
    objs = [None] * n
    dist.all_gather_object(objs, {"rank": rank})
    out["objects"] = objs
if "," in args.backend:  # DDP on CUDA parameters (its layout checks are CPU collectives: the mixed group only)
    disttorch.manual_seed(0)
    model = disttorch.nn.Linear(3, 2).to("cuda")
    ddp = disttorch.nn.parallel.DistributedDataParallel(model)
    ddp(cuda([[1.0 + rank, 2.0, -1.0 * rank]])).sum().backward()
    out["ddp_weight_grad"] = model.weight.grad.cpu().tolist()
    out["ddp_bias_grad"] = model.bias.grad.cpu().tolist()
out["uids"] = [hashlib.sha256(bytes(v & 0xFF for v in u)).hexdigest() for u in F.STATE["uids"]]
out["drawn"] = len(drawn)
out["streams"] = sorted({c[4][-1] for c in F.CALLS})
with open(os.path.join(args.out, f"rank{rank}.json"), "w") as f:
    json.dump(out, f)
# rank 0 serves both stores: it closes them only after every rank has used them for the last time
fake_store = F.STATE["store"]
fake_store.set(f"results/{rank}", b"1")
if rank == 0:
    fake_store.wait([f"results/{r}" for r in range(n)])
dist.destroy_process_group()
undo()
