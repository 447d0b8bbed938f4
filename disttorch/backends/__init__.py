"""``disttorch.backends``: the backend flags PyTorch scripts set, as importable submodules.

``import disttorch.backends.cudnn`` (and ``mps``, ``cuda``, ``mkldnn``, ``openmp``, ``opt_einsum``, ``cpu``,
``mha``, ``mkl``) works as in PyTorch. The flags (``cudnn.benchmark = True``, ``cuda.matmul.allow_tf32``...)
are accepted, type-checked and remembered; on the CPU they change nothing, and the ``is_available()``
queries say which of those libraries disttorch lacks.
"""
from __future__ import annotations

from . import cpu, cuda, cudnn, mha, mkl, mkldnn, mps, openmp, opt_einsum  # noqa: F401

__all__ = ["cpu", "cuda", "cudnn", "mha", "mkl", "mkldnn", "mps", "openmp", "opt_einsum"]
