"""The DDP tutorial pattern on CPU: mp.spawn(demo_basic, args=(world_size,), nprocs=world_size, join=True).

Each rank fits its own shard of a linear regression (data from NumPy seeded with the rank); DDP averages
the gradients. The ranks report their initial and final parameters and losses through a queue and the
main process prints them as JSON.
"""
import json
import os
import socket
import sys

import numpy as np

import disttorch as torch
import disttorch.distributed as dist
import disttorch.multiprocessing as mp
import disttorch.nn as nn
import disttorch.optim as optim
from disttorch.nn.parallel import DistributedDataParallel as DDP

STEPS = 20


def find_free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def setup(rank, world_size):
    os.environ["MASTER_ADDR"] = "localhost"
    os.environ.setdefault("MASTER_PORT", "12355")
    # initialize the process group
    dist.init_process_group("gloo", rank=rank, world_size=world_size)


def cleanup():
    dist.destroy_process_group()


class ToyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 2)

    def forward(self, x):
        return self.net(x)


def demo_basic(rank, world_size, results):
    print(f"Running basic DDP example on rank {rank}.", file=sys.stderr)
    setup(rank, world_size)
    torch.manual_seed(0)
    model = ToyModel()
    ddp_model = DDP(model)
    init = {k: v.tolist() for k, v in model.state_dict().items()}

    rng = np.random.default_rng(rank)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = (x @ np.array([[1.0, -1.0, 0.5, 2.0], [0.0, 3.0, -2.0, 1.0]], dtype=np.float32).T + 0.5).astype(np.float32)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y)

    loss_fn = nn.MSELoss()
    optimizer = optim.SGD(ddp_model.parameters(), lr=0.1)
    losses = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        outputs = ddp_model(inputs)
        loss = loss_fn(outputs, labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    results.put({"rank": rank, "init": init, "final": {k: v.tolist() for k, v in model.state_dict().items()},
                 "losses": losses})
    cleanup()


def run_demo(demo_fn, world_size):
    results = mp.get_context("spawn").SimpleQueue()
    mp.spawn(demo_fn, args=(world_size, results), nprocs=world_size, join=True)
    return sorted((results.get() for _ in range(world_size)), key=lambda r: r["rank"])


if __name__ == "__main__":
    os.environ["MASTER_PORT"] = str(find_free_port())
    world_size = 2
    out = run_demo(demo_basic, world_size)
    print(json.dumps({"world_size": world_size, "steps": STEPS, "ranks": out}))
