"""``torch.autograd.profiler``: the older spelling of the profiler (``profile``, ``record_function``)."""
from __future__ import annotations


def __getattr__(name: str):
    # imported on use: disttorch.profiler sits above autograd
    from .. import profiler as _p

    if name == "profile":
        return _legacy_profile
    if name in ("record_function", "EventList", "FunctionEvent", "FunctionEventAvg"):
        return getattr(_p, name)
    raise AttributeError(f"module 'disttorch.autograd.profiler' has no attribute '{name}'")


def _legacy_profile(enabled: bool = True, *, use_cuda: bool = False, use_device=None, record_shapes: bool = False,
                    with_flops: bool = False, profile_memory: bool = False, with_stack: bool = False,
                    with_modules: bool = False, use_kineto: bool = False, use_cpu: bool = True,
                    experimental_config=None, acc_events: bool = False, custom_trace_id_callback=None):
    """``torch.autograd.profiler.profile``: a ``disttorch.profiler.profile`` recording the whole block."""
    from .. import profiler as _p

    return _p.profile(record_shapes=record_shapes, profile_memory=profile_memory, with_stack=with_stack)
