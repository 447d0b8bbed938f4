import os
import sys

# Shared helpers (tests/helpers.py) import as `helpers`; the package itself must be installed
# (`make test` installs it editable), so launcher/ and kernels/ resolve as disttorch.launcher/.kernels.
sys.path.insert(0, os.path.dirname(__file__))
