"""Utilities for modules and parameters (`disttorch.nn.utils`), as `torch.nn.utils`."""
from . import rnn
from .clip_grad import clip_grad_norm, clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm
from .convert_parameters import parameters_to_vector, vector_to_parameters

__all__ = ["rnn", "clip_grad_norm", "clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm",
           "parameters_to_vector", "vector_to_parameters", "parametrize", "parametrizations"]

_LAZY_SUBMODULES = ("parametrize", "parametrizations")


def __getattr__(name: str):
    # Loaded on first use: they import nn.modules, which may still be initialising when this package loads.
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module '{__name__}' has no attribute '{name}'")
