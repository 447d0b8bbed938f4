"""Every kernel source, as ``disttorch.kernels.source()`` hands it to CuPy (common.cuh inlined), compiles with NVRTC,
the run-time compiler CuPy uses, for sm_80. No GPU is needed: NVRTC only compiles.

NVRTC is found through ``DISTTORCH_NVRTC_LIB`` (a path to libnvrtc.so), the library search path, or a pip
``nvidia-cuda-nvrtc`` package; without one the test skips and says so. The CUDA headers (cuda_fp16.h) come from
``$CUDA_HOME/include`` (default /usr/local/cuda/include), as CuPy adds its CUDA include directory.
"""
import ctypes
import ctypes.util
import glob
import os
import sys

import pytest

from disttorch import kernels


def _find_nvrtc():
    env = os.environ.get("DISTTORCH_NVRTC_LIB")
    if env:
        return env
    for p in sys.path:  # pip wheels: nvidia/cu13/lib or nvidia/cuda_nvrtc/lib
        hits = sorted(glob.glob(os.path.join(p, "nvidia", "*", "lib", "libnvrtc.so*")))
        hits = [h for h in hits if ".alt." not in h]
        if hits:
            return hits[0]
    return ctypes.util.find_library("nvrtc")


def _load():
    path = _find_nvrtc()
    if not path:
        pytest.skip("no NVRTC library (set DISTTORCH_NVRTC_LIB, or pip install nvidia-cuda-nvrtc): the run-time "
                    "compilation CuPy does cannot be checked here")
    if os.path.sep in path:  # preload the builtins beside it, which libnvrtc opens by name
        for b in glob.glob(os.path.join(os.path.dirname(path), "libnvrtc-builtins.so*")):
            if ".alt." not in b:
                ctypes.CDLL(b, mode=ctypes.RTLD_GLOBAL)
    return ctypes.CDLL(path)


def test_every_source_compiles_with_nvrtc():
    lib = _load()
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    include = os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "include")
    opts = [b"-std=c++17", b"--gpu-architecture=compute_80", f"-I{include}".encode()]
    failures = []
    for name in kernels.sources():
        prog = ctypes.c_void_p()
        assert lib.nvrtcCreateProgram(ctypes.byref(prog), kernels.source(name).encode(), name.encode(), 0, None,
                                      None) == 0
        rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
        if rc != 0:
            size = ctypes.c_size_t()
            lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetProgramLog(prog, log)
            failures.append(f"{name}: {lib.nvrtcGetErrorString(rc).decode()}\n{log.value.decode()[:2000]}")
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
    assert not failures, "\n".join(failures)
