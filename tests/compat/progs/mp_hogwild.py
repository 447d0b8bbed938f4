"""Hogwild training in the style of PyTorch's MNIST Hogwild example, on synthetic 3-class blobs.

The model's parameters are moved to shared memory with ``model.share_memory()`` and several
``mp.Process`` workers train the same model without locks; the main process then evaluates it.
"""
import argparse
import json
import os

import numpy as np

import disttorch as torch
import disttorch.multiprocessing as mp
import disttorch.nn as nn
import disttorch.nn.functional as F
import disttorch.optim as optim
from disttorch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser(description="Hogwild example")
parser.add_argument("--batch-size", type=int, default=32, metavar="N")
parser.add_argument("--epochs", type=int, default=2, metavar="N")
parser.add_argument("--lr", type=float, default=0.05, metavar="LR")
parser.add_argument("--momentum", type=float, default=0.5, metavar="M")
parser.add_argument("--seed", type=int, default=1, metavar="S")
parser.add_argument("--num-processes", type=int, default=2, metavar="N")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(20, 32)
        self.fc2 = nn.Linear(32, 3)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        return F.log_softmax(self.fc2(x), dim=1)


def make_blobs(n, seed):
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(12345).normal(scale=1.5, size=(3, 20)).astype(np.float32)
    labels = rng.integers(0, 3, size=n)
    x = centers[labels] + rng.normal(size=(n, 20)).astype(np.float32)
    return TensorDataset(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(labels.astype(np.int64)))


def train(rank, args, model, device, dataset, dataloader_kwargs):
    torch.manual_seed(args.seed + rank)
    train_loader = DataLoader(dataset, **dataloader_kwargs)
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    for epoch in range(1, args.epochs + 1):
        train_epoch(epoch, args, model, device, train_loader, optimizer)


def train_epoch(epoch, args, model, device, data_loader, optimizer):
    model.train()
    pid = os.getpid()
    for batch_idx, (data, target) in enumerate(data_loader):
        optimizer.zero_grad()
        output = model(data.to(device))
        loss = F.nll_loss(output, target.to(device))
        loss.backward()
        optimizer.step()
    return pid, loss.item()


def test(args, model, device, dataset):
    model.eval()
    correct = 0
    with torch.no_grad():
        for data, target in DataLoader(dataset, batch_size=256):
            pred = model(data.to(device)).max(1)[1]
            correct += pred.eq(target.to(device)).sum().item()
    return correct / len(dataset)


if __name__ == "__main__":
    args = parser.parse_args()
    device = torch.device("cpu")
    dataloader_kwargs = {"batch_size": args.batch_size, "shuffle": True}
    torch.manual_seed(args.seed)
    train_set, test_set = make_blobs(600, 1), make_blobs(300, 2)

    model = Net().to(device)
    model.share_memory()  # gradients are allocated lazily, so they are not shared here
    before = test(args, model, device, test_set)
    w0 = model.fc1.weight.detach().clone()

    processes = []
    for rank in range(args.num_processes):
        p = mp.Process(target=train, args=(rank, args, model, device, train_set, dataloader_kwargs))
        # We first train the model across `num_processes` processes
        p.start()
        processes.append(p)
    for p in processes:
        p.join()

    # Once training is complete, we can test the model
    after = test(args, model, device, test_set)
    print(json.dumps({"start_method": mp.get_start_method(), "shared": all(p.is_shared() for p in model.parameters()),
                      "exitcodes": [p.exitcode for p in processes], "accuracy_before": before,
                      "accuracy_after": after, "weights_changed": not torch.equal(w0, model.fc1.weight.detach())}))
