"""weight_norm on conv layers, spectral_norm on a GAN discriminator and orthogonal RNN weights, as scripts use them."""
import json

import disttorch as torch
import disttorch.nn as nn
import disttorch.nn.functional as F
from disttorch.nn.utils import parametrize
from disttorch.nn.utils.parametrizations import orthogonal, spectral_norm, weight_norm

torch.manual_seed(0)
# A WaveNet/TCN-style block: weight-normalised dilated convolutions.
net = nn.Sequential(
    weight_norm(nn.Conv1d(2, 8, 3, dilation=1, padding=1)), nn.ReLU(),
    weight_norm(nn.Conv1d(8, 8, 3, dilation=2, padding=2)), nn.ReLU(),
    nn.Conv1d(8, 1, 1),
)
x = torch.randn(4, 2, 32)
y = x[:, :1] * 0.5 + x[:, 1:].roll(1, dims=-1)
opt = torch.optim.Adam(net.parameters(), lr=1e-2)
losses = []
for step in range(30):
    opt.zero_grad()
    loss = F.mse_loss(net(x), y)
    loss.backward()
    opt.step()
    losses.append(loss.item())
conv = net[0]

# A spectrally normalised discriminator (SN-GAN).
disc = nn.Sequential(spectral_norm(nn.Linear(16, 32)), nn.LeakyReLU(0.2), spectral_norm(nn.Linear(32, 1)))
for _ in range(30):
    disc(torch.randn(8, 16))  # each training-mode forward runs a power iteration
sigma = torch.linalg.matrix_norm(disc[0].weight.detach(), ord=2).item()

# An orthogonal recurrent weight.
rnn = nn.RNN(4, 6, batch_first=True)
orthogonal(rnn, "weight_hh_l0")
out, h = rnn(torch.randn(2, 5, 4))
out.sum().backward()
w_hh = rnn.weight_hh_l0.detach()

print(json.dumps({
    "keys": sorted(conv.state_dict().keys()),
    "cls": type(conv).__name__, "base": parametrize.type_before_parametrizations(conv).__name__,
    "g": conv.parametrizations.weight.original0.detach().flatten().tolist(),
    "w": conv.weight.detach().tolist(),
    "first_loss": losses[0], "last_loss": losses[-1],
    "disc_keys": sorted(disc[0].state_dict().keys()), "sigma": sigma,
    "w_hh": w_hh.tolist(), "orig_grad": rnn.parametrizations.weight_hh_l0.original.grad is not None,
}))
