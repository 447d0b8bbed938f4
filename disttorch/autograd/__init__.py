"""Reverse-mode automatic differentiation (``disttorch.autograd``), as ``torch.autograd``."""
from . import anomaly, engine, function, functional, grad_mode, graph, profiler  # noqa: F401
from .anomaly import detect_anomaly, set_detect_anomaly, is_anomaly_enabled  # noqa: F401
from .engine import backward, grad  # noqa: F401
from .function import Function, FunctionCtx, once_differentiable  # noqa: F401
from .gradcheck import GradcheckError, gradcheck, gradgradcheck  # noqa: F401
from .grad_mode import (  # noqa: F401
    enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled,
)


def __getattr__(name: str):
    if name == "Variable":  # the pre-0.4 PyTorch name, kept for old scripts: Variable(t) is t.detach()
        from .._legacy_types import Variable

        return Variable
    from .._missing import not_implemented_getattr

    return not_implemented_getattr("disttorch.autograd")(name)
