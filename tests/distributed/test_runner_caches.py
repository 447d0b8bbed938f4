"""The runner's per-call caches (signatures, fingerprint digests, accepted reduce ops) give the same answers
as computing afresh, and never let a call through that the uncached checks refuse. No processes started."""
from __future__ import annotations

import itertools
import random

import ml_dtypes
import numpy as np
import pytest

from disttorch.distributed import runner as R
from disttorch.distributed.process_group import ReduceOp

# PyTorch's dtype names, written out here independently of disttorch's dtype table
NAMES = {np.float32: "float32", np.float64: "float64", np.float16: "float16", ml_dtypes.bfloat16: "bfloat16",
         np.int64: "int64", np.int32: "int32", np.int16: "int16", np.int8: "int8", np.uint8: "uint8",
         np.bool_: "bool", np.complex64: "complex64", np.complex128: "complex128"}
SHAPES = [(), (1,), (4,), (4, 3), (3, 4), (2, 3, 4), (0,), (0, 5)]


def test_signature_cached_equals_fresh():
    R._SIGNATURES.clear()
    cases = [(np.dtype(dt), shape) for dt in NAMES for shape in SHAPES]
    for _ in range(2):  # the second pass answers from the cache
        random.Random(0).shuffle(cases)
        for dt, shape in cases:
            expected = f"{NAMES[dt.type]}[{', '.join(str(s) for s in shape)}]"
            assert R.signature(np.zeros(shape, dt)) == expected
    assert len(R._SIGNATURES) == len(cases)


def test_digest_tells_calls_and_sequence_numbers_apart():
    calls = [f"{op}({dt}[{n}], {red})" for op, dt, n, red in
             itertools.product(["all_reduce", "reduce"], ["float32", "int64"], [4, 5, 4096], ["SUM", "MAX"])]
    R._DIGESTS.clear()
    first = {(c, s): R._digest(c, s) for c in calls for s in range(1, 800)}
    assert len(set(first.values())) == len(first)  # distinct for every (call, seq): ~19k values
    assert all(0 <= h < 1 << 62 for h in first.values())  # [h, -h] fits in int64
    R._DIGESTS.clear()
    assert all(R._digest(c, s) == h for (c, s), h in first.items())  # cached and fresh agree


@pytest.mark.parametrize("seed", [0, 1])
def test_reduce_op_cache_never_admits_a_refused_pair(seed):
    def allowed(op, dt):  # the rules of torch.distributed's CPU backends, written out here
        kind = np.dtype(dt).kind
        if op is ReduceOp.PREMUL_SUM:
            return False
        if op is ReduceOp.AVG and kind in "iub":
            return False
        if op in (ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR) and kind not in "iub":
            return False
        return not (op in (ReduceOp.MIN, ReduceOp.MAX) and kind == "c")

    R._OPS_OK.clear()
    cases = [(op, dt) for op in ReduceOp for dt in NAMES] * 2
    random.Random(seed).shuffle(cases)
    for op, dt in cases:
        a = np.zeros(3, dt)
        if allowed(op, dt):
            R.check_reduce_op(op, a, "all_reduce")
        else:
            with pytest.raises(RuntimeError, match=op.name):
                R.check_reduce_op(op, a, "all_reduce")
    with pytest.raises(TypeError, match="dist.ReduceOp"):
        R.check_reduce_op("sum", np.zeros(3, np.float32), "all_reduce")
