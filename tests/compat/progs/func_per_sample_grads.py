"""Per-sample gradients and model ensembling with torch.func (the functorch tutorial recipes)."""
import json

import disttorch as torch
import disttorch.nn as nn
import disttorch.nn.functional as F
from disttorch.func import functional_call, grad, hessian, jacrev, stack_module_state, vmap


class SimpleCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, 1)
        self.fc1 = nn.Linear(4 * 3 * 3, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        return self.fc1(torch.flatten(x, 1))


torch.manual_seed(0)
device = "cpu"
model = SimpleCNN().to(device)
data = torch.randn(8, 1, 8, 8, device=device)
targets = torch.randint(10, (8,), device=device)

params = {k: v.detach() for k, v in model.named_parameters()}
buffers = {k: v.detach() for k, v in model.named_buffers()}


def compute_loss(params, buffers, sample, target):
    batch = sample.unsqueeze(0)
    predictions = functional_call(model, (params, buffers), (batch,))
    return F.cross_entropy(predictions, target.unsqueeze(0))


ft_compute_sample_grad = vmap(grad(compute_loss), in_dims=(None, None, 0, 0))
ft_per_sample_grads = ft_compute_sample_grad(params, buffers, data, targets)

# The slow way: one backward per sample.
max_diff = 0.0
for i in range(len(data)):
    model.zero_grad()
    F.cross_entropy(model(data[i:i + 1]), targets[i:i + 1]).backward()
    for name, p in model.named_parameters():
        max_diff = max(max_diff, (ft_per_sample_grads[name][i] - p.grad).abs().max().item())

# Linear regression, small enough for the test to check the per-sample gradients in closed form.
lin = nn.Linear(3, 1)
xs, ys = torch.randn(5, 3), torch.randn(5)


def mse(p, x, y):
    return (functional_call(lin, p, (x,)).squeeze() - y) ** 2


lin_grads = vmap(grad(mse), in_dims=(None, 0, 0))({k: v.detach() for k, v in lin.named_parameters()}, xs, ys)

# Model ensembling: stack the weights of several models and evaluate them in one vmap.
models = [nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2)) for _ in range(4)]
ens_params, ens_buffers = stack_module_state(models)
base = models[0]


def fmodel(p, b, x):
    return functional_call(base, (p, b), (x,))


ens_out = vmap(fmodel, in_dims=(0, 0, None))(ens_params, ens_buffers, xs)
ens_diff = max((ens_out[i] - m(xs)).abs().max().item() for i, m in enumerate(models))

# Jacobian and Hessian of a small function.
A = torch.tensor([[2.0, 1.0], [1.0, 3.0]])
x0 = torch.tensor([1.0, -1.0])
quad_h = hessian(lambda v: 0.5 * v @ A @ v + v.sin().sum())(x0)
jac = jacrev(torch.tanh)(x0)

print(json.dumps({
    "grad_shapes": {k: list(v.shape) for k, v in ft_per_sample_grads.items()},
    "max_diff": max_diff,
    "lin": {"w": lin.weight.detach().tolist(), "b": lin.bias.detach().tolist(), "x": xs.tolist(), "y": ys.tolist(),
            "gw": lin_grads["weight"].tolist(), "gb": lin_grads["bias"].tolist()},
    "ens_shape": list(ens_out.shape), "ens_diff": ens_diff,
    "hessian": quad_h.tolist(), "jac": jac.tolist(),
}))
