"""disttorch.backends: importable submodules with PyTorch's flags, type-checked as PyTorch checks them."""
from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import disttorch as torch

SUBMODULES = ["cudnn", "mps", "cuda", "mkldnn", "openmp", "opt_einsum", "cpu", "mha", "mkl"]


@pytest.mark.parametrize("name", SUBMODULES)
def test_import_as_module(name):
    mod = importlib.import_module(f"disttorch.backends.{name}")
    assert getattr(torch.backends, name) is mod
    assert sys.modules[f"disttorch.backends.{name}"] is mod


def test_import_statement_in_a_fresh_process():
    code = ("import disttorch.backends.cudnn as cudnn, disttorch.backends.mps as mps\n"
            "cudnn.benchmark = True\n"
            "import disttorch\n"
            "print(disttorch.backends.cudnn.benchmark, mps.is_available(), mps.is_built())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False", "False"]


def test_cudnn_flags():
    cudnn = torch.backends.cudnn
    assert (cudnn.enabled, cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32) == (True, False, False, True)
    assert cudnn.is_available() is False and cudnn.version() is None
    old = cudnn.benchmark
    try:
        cudnn.benchmark = True
        assert torch.backends.cudnn.benchmark is True
        with pytest.raises(RuntimeError, match="^set_benchmark_cudnn expects a bool, but got str$"):
            cudnn.benchmark = "yes"
        with cudnn.flags(enabled=False, benchmark=False, deterministic=True):
            assert (cudnn.enabled, cudnn.benchmark, cudnn.deterministic) == (False, False, True)
        assert (cudnn.enabled, cudnn.benchmark, cudnn.deterministic) == (True, True, False)
    finally:
        cudnn.benchmark = old


def test_cuda_matmul_and_sdp_flags():
    bc = torch.backends.cuda
    assert bc.matmul.allow_tf32 is False and bc.matmul.allow_fp16_reduced_precision_reduction is True
    assert bc.is_built() is torch.cuda.is_available()
    assert bc.flash_sdp_enabled() and bc.math_sdp_enabled() and bc.mem_efficient_sdp_enabled()
    try:
        bc.matmul.allow_tf32 = True
        assert torch.backends.cuda.matmul.allow_tf32 is True
        with pytest.raises(RuntimeError, match="expects a bool"):
            bc.matmul.allow_tf32 = 1
        with pytest.raises(AttributeError, match="Unknown attribute"):
            bc.matmul.no_such_flag = True
        bc.enable_flash_sdp(False)
        assert bc.flash_sdp_enabled() is False
        with pytest.warns(FutureWarning, match="sdp_kernel"):
            with bc.sdp_kernel(enable_math=False):
                assert bc.math_sdp_enabled() is False and bc.flash_sdp_enabled() is True
        assert bc.math_sdp_enabled() is True and bc.flash_sdp_enabled() is False
    finally:
        bc.matmul.allow_tf32 = False
        bc.enable_flash_sdp(True)


def test_other_modules():
    b = torch.backends
    assert b.mps.is_available() is False and b.mps.is_built() is False
    assert b.mkldnn.is_available() is False and b.openmp.is_available() is False
    assert b.opt_einsum.is_available() is False and b.opt_einsum.get_opt_einsum() is None
    with b.opt_einsum.flags(enabled=True, strategy="greedy"):
        assert (b.opt_einsum.enabled, b.opt_einsum.strategy) == (True, "greedy")
    assert (b.opt_einsum.enabled, b.opt_einsum.strategy) == (False, None)
    with b.mkldnn.flags(enabled=True):
        assert b.mkldnn.enabled is True
    assert isinstance(b.cpu.get_cpu_capability(), str)
    assert b.mha.get_fastpath_enabled() is True
