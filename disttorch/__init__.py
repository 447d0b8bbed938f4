"""disttorch: a PyTorch-compatible deep learning framework in Python, built for distributed training.

``import disttorch as torch`` gives the tensor engine and autograd; ``nn``, ``optim``, ``cuda``,
``distributed`` and the other submodules load on first attribute access, so importing the
package stays cheap and never imports cupy, mpi4py, zmq or ray.
"""
from __future__ import annotations

import importlib as _importlib
import math as _math
import os as _os

if "DISTTORCH_PARENT_PID" in _os.environ:  # started by `disttorch launch`: end with it (_parent_watch.py)
    from ._parent_watch import start as _start_parent_watch

    _start_parent_watch()

__version__ = "0.1.0"

inf, nan, pi, e = _math.inf, _math.nan, _math.pi, _math.e

from ._dtype import (  # noqa: E402,F401
    bfloat16, bool, cdouble, cfloat, complex64, complex128, double, dtype, finfo, float, float16, float32,
    float64, get_default_dtype, half, iinfo, int, int8, int16, int32, int64, long, promote_types, result_type,
    set_default_dtype, short, uint8, can_cast,
)
from ._device import device  # noqa: E402,F401
from ._size import Size  # noqa: E402,F401
from ._tensor import Tensor  # noqa: E402,F401
from .ops import *  # noqa: E402,F401,F403
from ._layout import layout, sparse_coo, strided  # noqa: E402,F401
from ._legacy_types import (  # noqa: E402,F401
    BFloat16Tensor, BoolTensor, ByteTensor, CharTensor, DoubleTensor, FloatTensor, HalfTensor, IntTensor, LongTensor,
    ShortTensor, set_default_tensor_type,
)
from .ops.sparse import sparse_coo_tensor  # noqa: E402,F401
from .ops.sparse_mm import spmm  # noqa: E402,F401
from .utils.dlpack import from_dlpack  # noqa: E402,F401
from . import autograd  # noqa: E402,F401
from .autograd.grad_mode import (  # noqa: E402,F401
    enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled, no_grad, set_grad_enabled,
)
from ._runtime import (  # noqa: E402,F401
    compile, get_num_threads, get_num_interop_threads, is_floating_point, is_complex, is_nonzero, is_tensor,
    is_storage, numel, set_num_threads, set_num_interop_threads, set_printoptions, use_deterministic_algorithms,
    are_deterministic_algorithms_enabled, set_float32_matmul_precision, get_float32_matmul_precision,
)

from .amp._state import (  # noqa: E402,F401 - torch.* autocast state functions
    autocast_decrement_nesting, autocast_increment_nesting, clear_autocast_cache, get_autocast_cpu_dtype,
    get_autocast_dtype, get_autocast_gpu_dtype, is_autocast_cache_enabled, is_autocast_cpu_enabled,
    is_autocast_enabled, set_autocast_cache_enabled, set_autocast_cpu_dtype, set_autocast_cpu_enabled,
    set_autocast_dtype, set_autocast_enabled, set_autocast_gpu_dtype,
)
from .amp.autocast_mode import autocast  # noqa: E402,F401


def save(obj, f, pickle_module=None, pickle_protocol: int = 2, _use_new_zipfile_serialization: bool = True,
         _disable_byteorder_record: bool = False) -> None:
    """Save ``obj`` to a path or file (see :func:`disttorch.serialization.save`)."""
    from .serialization import save as _save

    _save(obj, f, pickle_module, pickle_protocol, _use_new_zipfile_serialization, _disable_byteorder_record)


def load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None, **pickle_load_args):
    """Load a checkpoint without unpickling (see :func:`disttorch.serialization.load`)."""
    from .serialization import load as _load

    return _load(f, map_location, pickle_module, weights_only=weights_only, mmap=mmap, **pickle_load_args)


def vmap(func, in_dims=0, out_dims=0, randomness: str = "error", *, chunk_size=None):
    """``torch.vmap``: the same as :func:`disttorch.func.vmap`."""
    from .func import vmap as _vmap

    return _vmap(func, in_dims, out_dims, randomness, chunk_size=chunk_size)


# Submodules that load on first use (PyTorch makes them attributes of the package).
_LAZY = {
    "nn", "optim", "cuda", "backends", "utils", "distributed", "distributions", "onnx", "amp", "profiler",
    "serialization", "linalg", "special", "fft", "testing", "jit", "hub", "multiprocessing", "random",
    "launcher", "kernels", "ray", "overrides", "types", "library", "func", "export", "mps", "cpu",
    "return_types", "futures", "accelerator", "sparse",
}


def __getattr__(name: str):
    if name in _LAZY:
        try:
            mod = _importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{name}":
                raise AttributeError(f"disttorch.{name} is not implemented yet (see docs/coverage.md)") from None
            raise
        globals()[name] = mod
        return mod
    raise AttributeError(f"module 'disttorch' has no attribute '{name}': disttorch.{name} is not implemented yet "
                         "(see docs/coverage.md for what is covered)")


def __dir__():
    return sorted(set(globals()) | _LAZY)
