"""The AttributeError for PyTorch names disttorch does not have yet."""
from __future__ import annotations


def not_implemented_getattr(module: str):
    """A module-level ``__getattr__`` that names the missing attribute and points at the coverage report."""

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"module '{module}' has no attribute '{name}': {module}.{name} is not implemented yet "
                             "(see docs/coverage.md for what is covered)")

    return __getattr__
