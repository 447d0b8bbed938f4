"""A mixed-precision training script in the usual PyTorch shape: pick the device, set the backend flags,
build a GradScaler that is enabled only with CUDA, train under autocast, save a checkpoint."""
import argparse
import json
import os
import tempfile

import disttorch as torch
import disttorch.backends.cudnn as cudnn
import disttorch.nn as nn
import disttorch.nn.functional as F


def get_args():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args()


class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 1)

    def forward(self, x):
        return self.fc(x)


def main():
    args = get_args()
    torch.manual_seed(args.seed)
    cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    device = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else "cpu"
    device = torch.device(device)
    use_amp = device.type == "cuda"
    amp_dtype = torch.float16 if use_amp else torch.bfloat16
    scaler = torch.amp.GradScaler(enabled=use_amp)
    legacy = torch.cuda.amp.GradScaler(enabled=False)  # older scripts still build this one
    cpu_scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)

    true_w = torch.tensor([[2.0, -3.0, 0.5]])
    x = torch.randn(256, 3, device=device)
    y = x @ true_w.T + 0.75
    model = Regressor().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    losses = []
    for step in range(args.steps):
        idx = torch.randint(0, 256, (32,))
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=amp_dtype):
            out = model(x[idx])
            loss = F.mse_loss(out, y[idx])
        # scaler is disabled on the CPU (a pass-through); cpu_scaler really scales
        s = cpu_scaler if not scaler.is_enabled() else scaler
        s.scale(loss).backward()
        s.step(opt)
        s.update()
        losses.append(loss.item())
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ckpt.pt")
        torch.save({"model": model.state_dict(), "scaler": cpu_scaler.state_dict(), "legacy": legacy.state_dict()},
                   path)
        ck = torch.load(path)
    print(json.dumps({
        "device": str(device), "out_dtype": str(out.dtype), "loss_dtype": str(loss.dtype),
        "grad_dtype": str(model.fc.weight.grad.dtype), "scaler_enabled": scaler.is_enabled(),
        "legacy_enabled": legacy.is_enabled(), "scale": ck["scaler"]["scale"], "legacy_state": ck["legacy"],
        "weight": model.fc.weight.detach().reshape(-1).tolist(), "bias": model.fc.bias.item(),
        "first_loss": losses[0], "last_loss": sum(losses[-20:]) / 20,
    }))


if __name__ == "__main__":
    main()
