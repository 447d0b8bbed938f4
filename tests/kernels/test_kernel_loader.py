"""The kernel loader finds shipped sources and names missing ones."""
import pytest

from disttorch import kernels


def test_sources_are_cu_files():
    assert all(name.endswith(".cu") for name in kernels.sources())


def test_missing_source_is_named():
    with pytest.raises(FileNotFoundError, match="no_such_kernel.cu"):
        kernels.source("no_such_kernel.cu")
