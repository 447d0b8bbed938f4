"""Every shipped kernel source compiles to PTX with nvcc for sm_80 and sm_90, and every launch plan names an entry
point that exists with the parameter list its argument tuple packs (count and PTX type of each parameter).

No GPU is needed: nvcc only compiles. The compilations run once per file and architecture, in parallel, in one
session-scoped fixture (``ptx``, tests/kernels/conftest.py). Without nvcc on PATH the tests skip and say so.
"""
import pathlib
import re
import shutil

import ml_dtypes
import numpy as np
import pytest

from disttorch import kernels
from disttorch.kernels import launch as L

ARCHS = ("sm_80", "sm_90")
KERNEL_DIR = pathlib.Path(__file__).resolve().parents[2] / "kernels"
NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH: the CUDA sources cannot be compiled here")


def test_every_source_in_the_tree_is_shipped():
    # kernels.sources() reads the package through importlib.resources: what the installed package sees.
    assert sorted(p.name for p in KERNEL_DIR.glob("*.cu")) == kernels.sources()
    assert {"softmax.cu", "layer_norm.cu", "activation.cu", "adam.cu", "dropout.cu", "bucket.cu", "cross_entropy.cu",
            "im2col.cu"} <= set(kernels.sources())


@needs_nvcc
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", kernels.sources())
def test_source_compiles_to_ptx(ptx, name, arch):
    rc, log, text = ptx[(name, arch)]
    assert rc == 0, f"nvcc -ptx -arch={arch} kernels/{name} failed:\n{log}"
    assert ".entry" in text, f"kernels/{name} compiled for {arch} but exports no kernel"


def _entries(text: str) -> dict[str, list[str]]:
    """entry point -> PTX types of its parameters."""
    out = {}
    for m in re.finditer(r"\.entry\s+(\w+)\s*\((.*?)\)", text, re.S):
        out[m.group(1)] = re.findall(r"\.param\s+\.(\w+)", m.group(2))
    return out


def _ptx_type(arg) -> str:
    if isinstance(arg, np.ndarray):
        return "u64"  # a device pointer after launch() copies or passes it
    return {np.dtype(np.int64): "u64", np.dtype(np.uint64): "u64", np.dtype(np.int32): "u32",
            np.dtype(np.float32): "f32"}[np.dtype(type(arg))]


DTYPES = (np.float32, np.float16, ml_dtypes.bfloat16)


def _every_plan():
    """One plan per entry point the launch module can produce, for every dtype."""
    for dt in DTYPES:
        x, y, z = (np.ones((3, 5), dtype=dt) for _ in range(3))
        w, b = np.ones(5, dtype=dt), np.ones(5, dtype=dt)
        stats = np.zeros(3, dtype=np.float32)
        mask = np.zeros((3, 5), dtype=np.uint8)
        for log in (False, True):
            yield L.softmax_plan(x, y, log=log)
            yield L.softmax_backward_plan(x, y, z, log=log)
        yield L.layer_norm_plan(x, w, None, y, stats, stats.copy(), 5)
        yield L.layer_norm_backward_input_plan(x, y, stats, stats, w, z, 5)
        yield L.layer_norm_backward_affine_plan(x, y, stats, stats, w, b, 5)
        for kind, approx in (("gelu", "none"), ("gelu", "tanh"), ("silu", "none")):
            yield L.activation_plan(kind, x, y, approx)
            yield L.activation_backward_plan(kind, x, y, z, approx)
        yield L.adam_plan([x], [y], [z], [np.ones_like(x)], step=1, lr=1e-3)
        yield L.dropout_plan(x, y, mask, 0.5, 1, 2)
        yield L.dropout_backward_plan(x, mask, y, 0.5)
        for pack in (True, False):
            yield L.bucket_plan([x, y], np.zeros(30, dtype=dt), pack=pack)
            if dt is not np.float32:
                yield L.bucket_plan([x.astype(np.float32)], np.zeros(15, dtype=dt), pack=pack)
        target, loss = np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.float32)
        yield L.cross_entropy_plan(x, target, None, loss, stats, np.zeros(1, np.int32), label_smoothing=0.1)
        yield L.cross_entropy_backward_plan(x, target, np.ones(5, np.float32), stats, loss, z)
        img = np.zeros((1, 2, 4, 4), dtype=dt)
        yield L.im2col_plan(img, np.zeros((1, 18, 4), dtype=dt), 3)
        yield L.col2im_plan(np.zeros((1, 18, 4), dtype=dt), img, 3)


@needs_nvcc
def test_every_plan_matches_a_compiled_entry_point(ptx):
    seen = set()
    for plan in _every_plan():
        rc, log, text = ptx[(plan.source, "sm_80")]
        assert rc == 0, log
        entries = _entries(text)
        assert plan.name in entries, f"{plan.name} is not exported by kernels/{plan.source}"
        assert [_ptx_type(a) for a in plan.args] == entries[plan.name], plan.name
        seen.add(plan.name)
    exported = {e for (src, arch), (_, _, text) in ptx.items() if arch == "sm_80" for e in _entries(text)}
    assert exported == seen, f"entry points no launch plan reaches: {sorted(exported - seen)}"
