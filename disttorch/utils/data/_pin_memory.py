"""``pin_memory(data)``: the tensors of a batch copied into page-locked host memory, as PyTorch's
``torch.utils.data._utils.pin_memory.pin_memory``; what ``DataLoader(pin_memory=True)`` applies to each batch when a
CUDA device is available."""
from __future__ import annotations

import collections.abc
import copy
from typing import Any

from ..._tensor import Tensor

__all__ = ["pin_memory"]


def pin_memory(data: Any, device: Any = None) -> Any:
    """``data`` with every tensor inside it (mappings, named tuples, tuples, lists, objects with ``pin_memory()``)
    pinned; other values as they are."""
    if isinstance(data, Tensor):
        return data.pin_memory(device)
    if isinstance(data, (str, bytes)):
        return data
    if isinstance(data, collections.abc.Mapping):
        pinned = {k: pin_memory(v, device) for k, v in data.items()}
        try:
            if isinstance(data, collections.abc.MutableMapping):
                clone = copy.copy(data)  # keep the mapping's type (OrderedDict, defaultdict, a user class)
                clone.update(pinned)
                return clone
            return type(data)(pinned)
        except TypeError:
            return pinned
    if isinstance(data, tuple) and hasattr(data, "_fields"):  # namedtuple
        return type(data)(*(pin_memory(v, device) for v in data))
    if isinstance(data, tuple):
        return tuple(pin_memory(v, device) for v in data)
    if isinstance(data, collections.abc.Sequence):
        pinned_list = [pin_memory(v, device) for v in data]
        try:
            return type(data)(pinned_list)
        except TypeError:
            return pinned_list
    if hasattr(data, "pin_memory"):
        return data.pin_memory()
    return data
