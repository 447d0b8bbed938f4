"""Spectral analysis and a spectral loss, the way audio/time-series scripts use torch.fft."""
import json
import math

import disttorch as torch

nn = torch.nn

torch.manual_seed(0)
fs, n = 64, 256
t = torch.arange(n, dtype=torch.float32) / fs
signal = torch.sin(2 * math.pi * 5.0 * t) + 0.5 * torch.sin(2 * math.pi * 12.0 * t)

# peak picking on the magnitude spectrum
spec = torch.fft.rfft(signal)
freqs = torch.fft.rfftfreq(n, d=1.0 / fs)
mag = spec.abs()
peaks = freqs[mag.topk(2).indices].sort().values
power_time = signal.pow(2).sum()
power_freq = (torch.fft.fft(signal).abs() ** 2).sum() / n  # Parseval

# 2-D: a low-pass filter on an image through fft2 / fftshift
img = torch.zeros(32, 32)
img[8:24, 8:24] = 1.0
F2 = torch.fft.fftshift(torch.fft.fft2(img))
yy, xx = torch.meshgrid(torch.arange(32) - 16, torch.arange(32) - 16, indexing="ij")
mask = ((yy ** 2 + xx ** 2) <= 36).to(F2.dtype)
smooth = torch.fft.ifft2(torch.fft.ifftshift(F2 * mask)).real

# learn an FIR filter whose output has the target's magnitude spectrum (plus a small time-domain term)
noisy = signal + 0.8 * torch.randn(n)
model = nn.Conv1d(1, 1, kernel_size=15, padding=7, bias=False)
opt = torch.optim.Adam(model.parameters(), lr=0.02)


def spectral_loss(pred, target):
    p, q = torch.fft.rfft(pred, norm="ortho"), torch.fft.rfft(target, norm="ortho")
    return (p.abs() - q.abs()).pow(2).mean() + 0.1 * torch.nn.functional.mse_loss(pred, target)


losses = []
for step in range(150):
    opt.zero_grad()
    out = model(noisy.view(1, 1, -1)).view(-1)
    loss = spectral_loss(out, signal)
    loss.backward()
    opt.step()
    losses.append(loss.item())

print(json.dumps({
    "spec_dtype": str(spec.dtype), "spec_len": spec.shape[0], "peaks": peaks.tolist(),
    "parseval": [power_time.item(), power_freq.item()],
    "smooth_range": [smooth.min().item(), smooth.max().item()], "smooth_dtype": str(smooth.dtype),
    "first_loss": losses[0], "last_loss": losses[-1], "grad_dtype": str(model.weight.grad.dtype),
}))
