"""One local Ray per test module (started by the test, stopped afterwards); skips without the ray extra."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(scope="module")
def local_ray(request):
    """``ray.init(num_cpus=2)`` on this machine for the module; ``ray.shutdown()`` ends every process it started."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install disttorch[ray])")
    pytest.importorskip("ray.train", reason="Ray Train is not installed (pip install disttorch[ray])")
    from ray import cloudpickle

    # The training loops live in the test module, which Ray's workers cannot import: ship them by value.
    cloudpickle.register_pickle_by_value(request.module)
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(request.module)
