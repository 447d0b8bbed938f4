"""Memory layouts (``disttorch.strided``, ``disttorch.sparse_coo``), as ``torch.layout``."""
from __future__ import annotations

__all__ = ["layout", "strided", "sparse_coo"]


class layout:
    """How a tensor stores its elements: ``strided`` (a dense array) or ``sparse_coo`` (indices + values)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return "disttorch." + self.name

    def __reduce__(self):
        # Pickles by name, so copies in DataLoader workers compare equal with ``is``.
        return (_by_name, (self.name,))


def _by_name(name: str) -> layout:
    return _LAYOUTS[name]


strided = layout("strided")
sparse_coo = layout("sparse_coo")
_LAYOUTS = {"strided": strided, "sparse_coo": sparse_coo}
