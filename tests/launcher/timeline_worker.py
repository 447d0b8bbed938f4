"""A tiny DDP job for `disttorch launch --timeline` (tests/launcher/test_timeline.py): 3 steps, one DataLoader."""
import disttorch as torch
import disttorch.distributed as dist
from disttorch.utils.data import DataLoader, TensorDataset

dist.init_process_group()
rank = dist.get_rank()
torch.manual_seed(0)
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
data = TensorDataset(torch.randn(12, 8), torch.randint(0, 2, (12,)))
for x, y in DataLoader(data, batch_size=4):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
dist.destroy_process_group()
