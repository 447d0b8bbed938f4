"""A script that loads pretrained weights from the hub cache (TORCH_HOME), scripts and compiles its model
for speed, checks the result with torch.testing, and uses the accelerator/backend queries at start-up."""
import json
import warnings

import disttorch as torch
import disttorch.backends.mps
import disttorch.nn as nn
from disttorch.hub import load_state_dict_from_url

URL = "https://example.com/checkpoints/tinynet-weights.pth"


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))

    @torch.jit.ignore
    def describe(self):
        return "tinynet"

    def forward(self, x):
        return self.body(x)


def pick_device():
    if torch.cuda.is_available():
        return torch.device("cuda")
    if disttorch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def main():
    device = pick_device()
    model = TinyNet()
    model.load_state_dict(load_state_dict_from_url(URL, map_location=device, progress=False))
    model.eval()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        scripted = torch.jit.script(model)
        compiled = torch.compile(scripted, mode="reduce-overhead")
    x = torch.ones(2, 4)
    with torch.inference_mode():
        y = compiled(x)
        ref = model(x)
    torch.testing.assert_close(y, ref)
    try:
        torch.testing.assert_close(y, ref + 1e-3)
        mismatch = None
    except AssertionError as e:
        mismatch = str(e).splitlines()[0]
    t = torch.ones(1)
    print(json.dumps({"device": str(device), "out": y.tolist(), "warnings": len(rec), "mismatch": mismatch,
                      "is_xpu": t.is_xpu, "is_mps": t.is_mps, "describe": scripted.describe(),
                      "scripting": torch.jit.is_scripting()}))


if __name__ == "__main__":
    main()
