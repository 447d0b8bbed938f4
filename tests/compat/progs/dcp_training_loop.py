"""A training loop that checkpoints with torch.distributed.checkpoint and resumes after a simulated crash."""
import json
import os
import sys
import tempfile
import warnings

import disttorch as torch
import disttorch.distributed.checkpoint as dcp
import disttorch.nn as nn
import disttorch.nn.functional as F
from disttorch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from disttorch.distributed.checkpoint.stateful import Stateful

warnings.filterwarnings("ignore", message="torch.distributed is disabled")


class AppState(Stateful):
    """The recipe from PyTorch's DCP tutorial: model and optimizer behind one Stateful object."""

    def __init__(self, model, optimizer=None):
        self.model = model
        self.optimizer = optimizer

    def state_dict(self):
        model_state_dict, optimizer_state_dict = get_state_dict(self.model, self.optimizer)
        return {"model": model_state_dict, "optim": optimizer_state_dict}

    def load_state_dict(self, state_dict):
        set_state_dict(self.model, self.optimizer, model_state_dict=state_dict["model"],
                       optim_state_dict=state_dict["optim"])


def build(seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Linear(32, 4))
    return model, torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)


def batch(step):
    g = torch.Generator().manual_seed(step)
    return torch.randn(16, 8, generator=g), torch.randint(0, 4, (16,), generator=g)


def train(model, optimizer, start, stop, ckpt_dir=None, every=5):
    for step in range(start, stop):
        x, y = batch(step)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        if ckpt_dir is not None and (step + 1) % every == 0:
            dcp.save({"app": AppState(model, optimizer), "step": step + 1}, checkpoint_id=ckpt_dir)


root = tempfile.mkdtemp()
ckpt = os.path.join(root, "checkpoint")

model, optimizer = build(0)
train(model, optimizer, 0, 12, ckpt_dir=ckpt)            # "crashes" after step 12; last checkpoint at 10
files = sorted(os.listdir(ckpt))

resumed, resumed_opt = build(1)                           # a new process would start from scratch
state = {"app": AppState(resumed, resumed_opt), "step": 0}
dcp.load(state, checkpoint_id=ckpt)
train(resumed, resumed_opt, state["step"], 20)

reference, reference_opt = build(0)                      # the run that never crashed
train(reference, reference_opt, 0, 20)

diff = max((a - b).abs().max().item() for a, b in zip(resumed.parameters(), reference.parameters()))
print(json.dumps({"files": files, "resumed_from": state["step"], "max_param_diff": diff,
                  "python": sys.version_info[0]}))
