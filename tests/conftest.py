import os
import sys

# Shared helpers (tests/helpers.py) import as `helpers`; the package itself must be installed
# (`make test` installs it editable), so launcher/ and kernels/ resolve as disttorch.launcher/.kernels.
sys.path.insert(0, os.path.dirname(__file__))

import random  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

TEST_SEED = 1234


@pytest.fixture(autouse=True)
def _seed_every_test():
    """Start every test from the same random state, as PyTorch's own test suite does.

    disttorch (like PyTorch 2.13) seeds each process's default generator from OS entropy; without this,
    a test that draws unseeded random data would see different numbers on every run.
    """
    import disttorch

    disttorch.manual_seed(TEST_SEED)
    random.seed(TEST_SEED)
    np.random.seed(TEST_SEED)
    yield
