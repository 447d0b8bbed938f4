"""A DDP tutorial-style worker, started once per rank with RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT set.

It never seeds: as in PyTorch, every rank draws its own random data. It tries the GPU-style
``DDP(model, device_ids=[rank])`` first, as copied scripts do, and falls back to the CPU form.
"""
import hashlib
import json
import os

import disttorch as torch
import disttorch.distributed as dist
import disttorch.nn as nn
from disttorch.nn.parallel import DistributedDataParallel as DDP


def main():
    rank = int(os.environ["RANK"])
    device = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else torch.device("cpu")
    backend = dist.get_default_backend_for_device(device)
    dist.init_process_group(backend=backend)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)).to(device)
    try:
        ddp = DDP(model, device_ids=[rank])
        rejected = None
    except ValueError as e:
        rejected = str(e)
        ddp = DDP(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    data = torch.randn(16, 4)
    for _ in range(3):
        opt.zero_grad()
        ddp(data).pow(2).mean().backward()
        opt.step()
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().numpy().tobytes())
    print(json.dumps({"rank": rank, "backend": backend, "seed": str(torch.initial_seed()),
                      "data": data[0].tolist(), "digest": h.hexdigest(), "rejected": rejected}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
