"""Flatten a nested state dict to ``{"model.fc.weight": value}`` and put loaded values back into it.

The rules are PyTorch DCP's: dicts are walked (the names joined with "."), lists are walked only when
they hold tensors or dicts (``param_groups``), tuples and other values are leaves. Unlike PyTorch, the
path keeps integer dict keys as integers, so ``optimizer.state_dict()["state"][0]`` comes back under
the key ``0``, not ``"0"``.
"""
from __future__ import annotations

from collections.abc import Mapping

__all__ = ["flatten_state_dict", "set_element", "get_element", "ListIndex"]


class ListIndex(int):
    """A position in a list (as opposed to an integer dict key) within a state-dict path."""


def _tensor_cls():
    from ..._tensor import Tensor

    return Tensor


def _is_terminal(value) -> bool:
    Tensor = _tensor_cls()
    if isinstance(value, Mapping):
        return False
    if not isinstance(value, list):
        return True
    for entry in value:
        if isinstance(entry, (Mapping, list)) and not _is_terminal(entry):
            return False
        if isinstance(entry, Tensor):
            return False
    return True


def flatten_state_dict(state_dict: Mapping) -> tuple:
    """``(flat, mappings)``: ``{fqn: leaf}`` and ``{fqn: path}`` (the keys/indexes leading to the leaf)."""
    flat: dict = {}
    mappings: dict = {}

    def visit(path: tuple, value) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                if isinstance(k, bool) or not isinstance(k, (str, int)):
                    where = ".".join(map(str, path)) or "<root>"
                    raise TypeError(f"distributed checkpoint: state dict keys must be str or int, got "
                                    f"{type(k).__name__} key {k!r} under {where!r}")
                visit(path + (k,), v)
        elif not _is_terminal(value):
            for i, v in enumerate(value):
                visit(path + (ListIndex(i),), v)
        else:
            fqn = ".".join(map(str, path))
            if fqn in flat:
                raise ValueError(f"duplicated flatten key {fqn}")
            flat[fqn] = value
            mappings[fqn] = path

    for key, value in state_dict.items():
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise TypeError(f"distributed checkpoint: state dict keys must be str or int, got {type(key).__name__} "
                            f"key {key!r}")
        visit((key,), value)
    return flat, mappings


def get_element(root, path):
    """The value at ``path`` in ``root`` (None when absent)."""
    cur = root
    for k in path:
        if isinstance(cur, Mapping):
            if k not in cur:
                return None
            cur = cur[k]
        elif isinstance(cur, list) and isinstance(k, int) and 0 <= k < len(cur):
            cur = cur[k]
        else:
            return None
    return cur


def _slot(container, key, make):
    """``container[key]``, created with ``make()`` when missing (lists grow with None)."""
    if isinstance(container, Mapping):
        if container.get(key) is None:
            container[key] = make()
        return container[key]
    while len(container) <= key:
        container.append(None)
    if container[key] is None:
        container[key] = make()
    return container[key]


def set_element(root, path, value) -> None:
    """Store ``value`` at ``path`` in ``root``, creating the dicts and lists on the way that are missing."""
    cur = root
    for k, nxt in zip(path[:-1], path[1:]):
        cur = _slot(cur, k, list if isinstance(nxt, ListIndex) else dict)
    last = path[-1]
    if isinstance(cur, Mapping):
        cur[last] = value
    else:
        _slot(cur, last, lambda: None)
        cur[last] = value
