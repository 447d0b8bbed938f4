"""``disttorch.profiler``: PyTorch's profiler API (``profile``, ``record_function``, ``schedule``, tables and
Chrome traces). Ops are observed at the one op entry point; backward nodes, collectives, DDP buckets and
parameter-server calls appear as ranges."""
from ._events import EventList, FunctionEvent, FunctionEventAvg  # noqa: F401
from ._profile import (ProfilerAction, ProfilerActivity, profile, record_function, schedule,  # noqa: F401
                       supported_activities, tensorboard_trace_handler)
from ._recorder import span  # noqa: F401

__all__ = ["profile", "record_function", "schedule", "ProfilerActivity", "ProfilerAction",
           "tensorboard_trace_handler", "supported_activities"]
