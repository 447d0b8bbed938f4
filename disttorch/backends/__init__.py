"""``disttorch.backends``: the flags PyTorch scripts set (cudnn.benchmark, matmul.allow_tf32, ...).

They are accepted and remembered; on the CPU they change nothing.
"""
from __future__ import annotations

import types


class _Flags(types.SimpleNamespace):
    pass


cudnn = _Flags(enabled=True, benchmark=False, deterministic=False, allow_tf32=True,
               is_available=lambda: False, version=lambda: None)
cuda = _Flags(matmul=_Flags(allow_tf32=False, allow_fp16_reduced_precision_reduction=True,
                            allow_bf16_reduced_precision_reduction=True),
              is_built=lambda: False, flash_sdp_enabled=lambda: False, enable_flash_sdp=lambda enabled: None,
              enable_mem_efficient_sdp=lambda enabled: None, enable_math_sdp=lambda enabled: None)
mps = _Flags(is_available=lambda: False, is_built=lambda: False)
mkldnn = _Flags(enabled=False, is_available=lambda: False)
openmp = _Flags(is_available=lambda: False)
opt_einsum = _Flags(enabled=True, strategy="auto", is_available=lambda: False)
