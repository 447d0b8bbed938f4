"""Long convolutions through the FFT (the trick of long-convolution sequence models), checked against conv1d,
and a kernel learned through torch.fft.irfft(rfft(u) * rfft(k))."""
import json

import disttorch as torch

F = torch.nn.functional


def fft_conv(u, k):
    """Causal convolution of u (B, H, L) with k (H, L) in O(L log L)."""
    L = u.shape[-1]
    u_f = torch.fft.rfft(u, n=2 * L)
    k_f = torch.fft.rfft(k, n=2 * L)
    return torch.fft.irfft(u_f * k_f, n=2 * L)[..., :L]


torch.manual_seed(0)
B, H, L = 4, 3, 64
u = torch.randn(B, H, L)
k = torch.randn(H, L) * torch.exp(-0.1 * torch.arange(L, dtype=torch.float32))

y_fft = fft_conv(u, k)
# the same causal convolution with conv1d: flip the kernel and pad on the left
y_ref = F.conv1d(F.pad(u, (L - 1, 0)), k.flip(-1).unsqueeze(1), groups=H)
max_diff = (y_fft - y_ref).abs().max().item()

# learn the kernel back from input/output pairs
k_hat = torch.zeros(H, L, requires_grad=True)
opt = torch.optim.Adam([k_hat], lr=0.05)
for step in range(200):
    opt.zero_grad()
    loss = F.mse_loss(fft_conv(u, k_hat), y_ref)
    loss.backward()
    opt.step()
kernel_err = ((k_hat - k).norm() / k.norm()).item()

# a complex-valued frequency-domain filter, as spectral layers (FNO-style) keep their weights
w = torch.randn(H, L // 2 + 1, dtype=torch.cfloat, requires_grad=True)
z = torch.fft.irfft(torch.fft.rfft(u) * w, n=L)
z.pow(2).sum().backward()

print(json.dumps({"max_diff": max_diff, "final_loss": loss.item(), "kernel_err": kernel_err,
                  "w_grad_dtype": str(w.grad.dtype), "w_grad_finite": bool(torch.isfinite(torch.view_as_real(w.grad)).all()),
                  "z_shape": list(z.shape)}))
