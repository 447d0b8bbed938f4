"""``Stateful``: objects that DCP saves through ``state_dict()`` and restores with ``load_state_dict()``."""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Stateful"]


@runtime_checkable
class Stateful(Protocol):
    """Anything with ``state_dict()`` and ``load_state_dict(state_dict)`` (modules, optimizers, app state).

    ``dcp.save`` stores ``obj.state_dict()`` for such values; ``dcp.load`` loads into ``obj.state_dict()``
    and then calls ``obj.load_state_dict(...)`` with the result.
    """

    def state_dict(self) -> dict[str, Any]:
        ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        ...
