"""``disttorch.backends.cuda``: cuBLAS and scaled-dot-product-attention flags, as ``torch.backends.cuda``.

The flags are remembered (PyTorch's defaults) and change nothing in disttorch's kernels; ``is_built()``
says whether CUDA (CuPy) is usable.
"""
from __future__ import annotations

import contextlib
import warnings


class cuBLASModule:
    """``torch.backends.cuda.matmul``: the cuBLAS precision flags."""

    _BOOLS = ("allow_tf32", "allow_fp16_reduced_precision_reduction", "allow_bf16_reduced_precision_reduction",
              "allow_fp16_accumulation")

    def __init__(self) -> None:
        object.__setattr__(self, "allow_tf32", False)
        object.__setattr__(self, "allow_fp16_reduced_precision_reduction", True)
        object.__setattr__(self, "allow_bf16_reduced_precision_reduction", True)
        object.__setattr__(self, "allow_fp16_accumulation", False)
        object.__setattr__(self, "fp32_precision", "none")

    def __setattr__(self, name: str, value) -> None:
        if name in self._BOOLS:
            if not isinstance(value, bool):
                raise RuntimeError(f"torch.backends.cuda.matmul.{name} expects a bool, but got "
                                   f"{type(value).__name__}")
        elif name != "fp32_precision":
            raise AttributeError(f"Unknown attribute {name}")
        object.__setattr__(self, name, value)


matmul = cuBLASModule()

_sdp = {"flash": True, "mem_efficient": True, "math": True, "cudnn": True, "fp16_bf16_reduction_math": False}


def is_built() -> bool:
    """True when disttorch can use CUDA (CuPy and a GPU)."""
    from .. import cuda

    return cuda.is_available()


def flash_sdp_enabled() -> bool:
    """Whether the flash scaled-dot-product-attention backend is allowed (PyTorch's default: True)."""
    return _sdp["flash"]


def enable_flash_sdp(enabled: bool) -> None:
    _sdp["flash"] = bool(enabled)


def mem_efficient_sdp_enabled() -> bool:
    return _sdp["mem_efficient"]


def enable_mem_efficient_sdp(enabled: bool) -> None:
    _sdp["mem_efficient"] = bool(enabled)


def math_sdp_enabled() -> bool:
    return _sdp["math"]


def enable_math_sdp(enabled: bool) -> None:
    _sdp["math"] = bool(enabled)


def cudnn_sdp_enabled() -> bool:
    return _sdp["cudnn"]


def enable_cudnn_sdp(enabled: bool) -> None:
    _sdp["cudnn"] = bool(enabled)


def fp16_bf16_reduction_math_sdp_allowed() -> bool:
    return _sdp["fp16_bf16_reduction_math"]


def allow_fp16_bf16_reduction_math_sdp(enabled: bool) -> None:
    _sdp["fp16_bf16_reduction_math"] = bool(enabled)


def is_flash_attention_available() -> bool:
    """False: disttorch has no flash-attention kernel."""
    return False


@contextlib.contextmanager
def sdp_kernel(enable_flash: bool = True, enable_math: bool = True, enable_mem_efficient: bool = True,
               enable_cudnn: bool = True):
    """Deprecated context manager that sets the four SDPA backend flags for the block (warns as PyTorch)."""
    warnings.warn("`torch.backends.cuda.sdp_kernel()` is deprecated. In the future, this context manager will be "
                  "removed. Please see `torch.nn.attention.sdpa_kernel()` for the new context manager, with updated "
                  "signature.", FutureWarning, stacklevel=3)
    old = dict(_sdp)
    _sdp.update(flash=bool(enable_flash), math=bool(enable_math), mem_efficient=bool(enable_mem_efficient),
                cudnn=bool(enable_cudnn))
    try:
        yield
    finally:
        _sdp.update(old)


def preferred_linalg_library(backend=None) -> str:
    """The linear-algebra library preference (remembered; NumPy/CuPy decide): ``"default"``."""
    return "default"


def preferred_blas_library(backend=None) -> str:
    """The BLAS library preference (remembered; NumPy/CuPy decide): ``"default"``."""
    return "default"
