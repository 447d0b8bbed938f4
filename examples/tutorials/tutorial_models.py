"""The model factory that tutorial 4 serves: ``disttorch serve CKPT --model tutorial_models:make_regression_model``
(run from this directory, which the server makes importable)."""
from __future__ import annotations

import disttorch as torch


def make_regression_model() -> torch.nn.Module:
    """The 3 -> 64 -> 64 -> 1 tanh MLP of tutorial 1 (untrained: the server loads the weights into it)."""
    nn = torch.nn
    return nn.Sequential(nn.Linear(3, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
