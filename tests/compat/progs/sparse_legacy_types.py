"""A pre-0.4-style tutorial script: typed constructors, ``Variable`` and ``.data`` updates.

A two-layer ReLU network fitted by hand-written gradient descent on fixed data (from NumPy, so a
reader can repeat the computation), then a tiny classifier fed ``torch.LongTensor`` labels. Prints
one JSON line.
"""
import json
import sys

import numpy as np

import disttorch as torch
import disttorch.nn.functional as F
from disttorch.autograd import Variable

dtype = torch.FloatTensor
N, D_in, H, D_out = 16, 10, 8, 3
rng = np.random.default_rng(7)

x = Variable(torch.from_numpy(rng.standard_normal((N, D_in))).type(dtype), requires_grad=False)
y = Variable(torch.from_numpy(rng.standard_normal((N, D_out))).type(dtype), requires_grad=False)
w1 = Variable(torch.from_numpy(rng.standard_normal((D_in, H)) * 0.5).type(dtype), requires_grad=True)
w2 = Variable(torch.from_numpy(rng.standard_normal((H, D_out)) * 0.5).type(dtype), requires_grad=True)

checks = {
    "x_is_float": isinstance(x, torch.FloatTensor),
    "x_is_double": isinstance(x, torch.DoubleTensor),
    "x_is_variable": isinstance(x, Variable),
    "x_type": x.type(),
    "long_type": torch.LongTensor([1, 2]).type(),
    "zeros_shape": list(torch.FloatTensor(2, 3).zero_().shape),
    "from_list": torch.DoubleTensor([[1, 2], [3, 4]]).sum().item(),
    "byte_mask": torch.ByteTensor([1, 0, 1]).bool().tolist(),
    "cast_by_class": x.type(torch.DoubleTensor).dtype == torch.float64,
    "cast_by_name": x.type("torch.LongTensor").dtype == torch.int64,
}

learning_rate = 1e-2
losses = []
for t in range(200):
    y_pred = x.mm(w1).clamp(min=0).mm(w2)
    loss = (y_pred - y).pow(2).sum()
    losses.append(loss.item())
    loss.backward()
    w1.data -= learning_rate * w1.grad.data
    w2.data -= learning_rate * w2.grad.data
    w1.grad.data.zero_()
    w2.grad.data.zero_()

# A classifier step with LongTensor targets, as old tutorials build them.
target = Variable(torch.LongTensor([0, 2, 1, 2]))
logits = Variable(torch.FloatTensor([[2.0, 0.5, 0.1], [0.1, 0.2, 3.0], [0.3, 1.5, 0.2], [0.0, 0.0, 1.0]]),
                  requires_grad=True)
nll = F.cross_entropy(logits, target)
nll.backward()

checks.update(first_loss=losses[0], last_loss=losses[-1], ce=nll.item(),
              ce_grad_row0=logits.grad[0].tolist())
print(json.dumps(checks))
sys.exit(0)
