"""One rank of the 2-rank DCP job (tests/distributed/test_checkpoint_dcp.py): ``python dcp_worker.py --out DIR``.

Trains a DDP model (rank-dependent data), saves model + optimizer + a rank-local value with DCP into
DIR/ckpt, restores into freshly initialised models, continues training both, and asks for a missing key
on rank 1 only to check the failure reaches rank 0. Digests and findings go to DIR/rank<R>.json.
"""
import argparse
import hashlib
import json
import os
import traceback
import warnings

import numpy as np

import disttorch as torch
import disttorch.distributed as dist
import disttorch.distributed.checkpoint as dcp
from disttorch import nn
from disttorch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from disttorch.nn.parallel import DistributedDataParallel as DDP


def digest(module) -> str:
    h = hashlib.sha256()
    for p in module.parameters():
        h.update(np.ascontiguousarray(p.detach().numpy()).tobytes())
    return h.hexdigest()


class AppState:
    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer

    def state_dict(self):
        m, o = get_state_dict(self.model, self.optimizer)
        return {"model": m, "optim": o}

    def load_state_dict(self, sd):
        set_state_dict(self.model, self.optimizer, model_state_dict=sd["model"], optim_state_dict=sd["optim"])


def make(seed):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))
    model = DDP(net)
    return model, torch.optim.Adam(model.parameters(), lr=0.01)


def train(model, opt, rank, steps, seed):
    g = torch.Generator().manual_seed(seed * 10 + rank)
    for _ in range(steps):
        x, y = torch.randn(4, 5, generator=g), torch.randint(0, 3, (4,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    args = p.parse_args()
    dist.init_process_group()
    rank = dist.get_rank()
    res = {"rank": rank, "errors": []}
    ckpt = os.path.join(args.out, "ckpt")
    try:
        model, opt = make(seed=0)
        train(model, opt, rank, steps=3, seed=1)
        res["trained"] = digest(model)
        md = dcp.save({"app": AppState(model, opt), "rank_local": rank}, checkpoint_id=ckpt)
        res["n_keys"] = len(md.state_dict_metadata)
        files = sorted(os.listdir(ckpt))
        res["files"] = files
        counts = {}
        for f in md.storage_data.values():
            counts[f] = counts.get(f, 0) + 1
        res["keys_per_file"] = counts
        dist.barrier()

        restored, ropt = make(seed=100 + rank)  # different on each rank and from the saved model
        sd = {"app": AppState(restored, ropt), "rank_local": -1}
        dcp.load(sd, checkpoint_id=ckpt)
        res["restored"] = digest(restored)
        res["rank_local_loaded"] = sd["rank_local"]
        train(model, opt, rank, steps=2, seed=2)
        train(restored, ropt, rank, steps=2, seed=2)
        res["continued"] = digest(model)
        res["continued_restored"] = digest(restored)

        ask = {"nope": torch.zeros(1)} if rank == 1 else {}
        try:
            dcp.load(ask, checkpoint_id=ckpt)
            res["remote_failure"] = "no exception"
        except dcp.CheckpointException as e:
            res["remote_failure"] = str(e)
    except BaseException:  # noqa: BLE001 - reported to the test
        res["errors"].append(traceback.format_exc())
    tmp = os.path.join(args.out, f".rank{rank}.json.tmp")
    with open(tmp, "w") as f:
        json.dump(res, f)
    os.replace(tmp, os.path.join(args.out, f"rank{rank}.json"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    warnings.simplefilter("default")
    main()
