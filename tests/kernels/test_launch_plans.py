"""Launch plans without a GPU: grid/block sizing, dtype dispatch, argument packing and errors.

The multi-tensor plans are also run through the NumPy emulation of what adam.cu and bucket.cu do with their
tables and scalars (disttorch.testing._emu_multi, which the stand-in device runs too), and compared with the
generic optimizer code (optim._functional.adam_update): that checks the packed scalars and the chunk tables, not
the CUDA code itself (that needs a GPU; see docs/gpu.md).
"""
import math

import ml_dtypes
import numpy as np
import pytest

from disttorch import kernels
from disttorch.kernels import launch as L
from disttorch.optim._functional import adam_update
from disttorch.testing import _emu_multi


@pytest.mark.parametrize("dtype, suffix", [(np.float32, "f32"), (np.float16, "f16"), (ml_dtypes.bfloat16, "bf16")])
def test_dtype_dispatch(dtype, suffix):
    x = np.zeros((2, 3), dtype=dtype)
    assert L.softmax_plan(x, x.copy()).name == f"softmax_forward_{suffix}"
    assert L.softmax_plan(x, x.copy(), log=True).name == f"log_softmax_forward_{suffix}"
    assert L.activation_plan("gelu", x, x.copy(), "tanh").name == f"gelu_tanh_forward_{suffix}"
    assert L.activation_backward_plan("silu", x, x, x.copy()).name == f"silu_backward_{suffix}"


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.complex64, np.bool_])
def test_unsupported_dtype_names_op_and_dtype(dtype):
    x = np.zeros((2, 3), dtype=dtype)
    with pytest.raises(TypeError, match=rf"softmax has no CUDA kernel for dtype {np.dtype(dtype).name}.*float32"):
        L.softmax_plan(x, x.copy())


@pytest.mark.parametrize("cols, threads", [(1, 32), (32, 32), (33, 64), (1000, 1024), (1024, 1024), (50000, 1024)])
def test_row_kernels_use_one_block_per_row(cols, threads):
    x = np.zeros((7, cols), dtype=np.float32)
    plan = L.softmax_plan(x, x.copy())
    assert plan.grid == (7, 1, 1) and plan.block == (threads, 1, 1) and plan.shared_mem == 0
    stats = np.zeros(7, dtype=np.float32)
    ln = L.layer_norm_plan(x, None, None, x.copy(), stats, stats.copy(), cols)
    assert ln.grid == (7, 1, 1) and ln.block == (threads, 1, 1)


def test_rows_are_all_leading_dims():
    x = np.zeros((2, 3, 4, 5), dtype=np.float16)
    plan = L.softmax_backward_plan(x, x, x.copy())
    assert plan.grid[0] == 24 and plan.args[3:] == (24, 5)
    stats = np.zeros(6, dtype=np.float32)
    ln = L.layer_norm_plan(x, np.ones(20, np.float16), None, x.copy(), stats, stats, 20)  # normalized (4, 5)
    assert ln.grid[0] == 6 and ln.args[6:8] == (6, 20)


@pytest.mark.parametrize("n, blocks", [(0, 0), (1, 1), (256, 1), (257, 2), (10 ** 6, 3907), (10 ** 9, 65536)])
def test_elementwise_grid_covers_n_and_is_capped(n, blocks):
    plan = L.activation_plan("silu", _FakeArray(n), _FakeArray(n))  # only shape, dtype and flags are read
    assert plan.grid == (blocks, 1, 1) and plan.block == (256, 1, 1)
    assert plan.args[-1] == n and isinstance(plan.args[-1], np.int64)


class _FakeArray:
    """Shape/dtype/flags of a large float32 vector, without its memory."""

    def __init__(self, n):
        self.shape, self.size, self.ndim, self.dtype = (n,), n, 1, np.dtype(np.float32)
        self.flags = np.zeros(1).flags


def test_dropout_grid_counts_groups_of_four():
    x = np.zeros(2049, dtype=np.float32)
    plan = L.dropout_plan(x, x.copy(), np.zeros(2049, np.uint8), 0.25, seed=3, offset=9)
    assert plan.grid == (3, 1, 1)  # ceil(ceil(2049 / 4) / 256)
    n, keep, scale, seed, offset = plan.args[3:]
    assert (n, seed, offset) == (2049, 3, 9)
    assert keep == np.float32(0.75) and scale == np.float32(1 / 0.75)
    assert [type(a) for a in plan.args[3:]] == [np.int64, np.float32, np.float32, np.uint64, np.uint64]


def test_argument_types_and_null_pointers():
    x = np.zeros((4, 6), dtype=np.float32)
    stats = np.zeros(4, dtype=np.float32)
    plan = L.layer_norm_plan(x, None, np.ones(6, np.float32), x.copy(), stats, stats, 6, eps=1e-6)
    assert plan.args[1] == 0 and isinstance(plan.args[1], np.uint64)  # weight: null pointer
    assert isinstance(plan.args[2], np.ndarray)
    assert plan.args[-1] == np.float32(1e-6) and isinstance(plan.args[-1], np.float32)
    aff = L.layer_norm_backward_affine_plan(x, x, stats, stats, None, np.zeros(6, np.float32), 6)
    assert aff.grid == (1, 1, 1) and aff.args[4] == 0 and isinstance(aff.args[4], np.uint64)


@pytest.mark.parametrize("call, match", [
    (lambda x: L.softmax_plan(x, np.zeros((3, 4), np.float32)), r"out has shape \(3, 4\)"),
    (lambda x: L.softmax_plan(x[:, ::2], np.zeros((3, 3), np.float32)), "x must be C-contiguous"),
    (lambda x: L.activation_plan("relu", x, x), "no activation kernel 'relu'"),
    (lambda x: L.activation_plan("silu", x, x, "tanh"), "silu: approximate='tanh'"),
    (lambda x: L.layer_norm_plan(x, None, None, x, np.zeros(3, np.float32), np.zeros(3, np.float32), 4),
     "normalized size 4 is not a product of the trailing dims"),
    (lambda x: L.layer_norm_plan(x, None, None, x, np.zeros(3, np.float64), np.zeros(3, np.float32), 6),
     "mean must be float32 with 3 elements"),
    (lambda x: L.layer_norm_plan(x, np.ones(5, np.float32), None, x, np.zeros(3, np.float32),
                                 np.zeros(3, np.float32), 6), "weight must have 6 elements"),
    (lambda x: L.dropout_plan(x, x, np.zeros(18, np.uint8), 1.0, 0, 0), r"p must be in \[0, 1\), got 1.0"),
    (lambda x: L.dropout_plan(x, x, np.zeros(18, np.bool_), 0.1, 0, 0), "mask must be uint8 with 18 elements"),
    (lambda x: L.dropout_plan(x, x, np.zeros(18, np.uint8), 0.1, -1, 0), "seed must fit in 64 unsigned bits"),
    (lambda x: L.adam_plan([x], [], [x], [x], 1, 0.1), "must be non-empty lists of one length"),
    (lambda x: L.adam_plan([x, x.astype(np.float16)], [x, x], [x, x], [x, x], 1, 0.1), "grad has shape"),
    (lambda x: L.bucket_plan([x], np.zeros(17, np.float32)), "the gradients hold 18 elements, the bucket 17"),
    (lambda x: L.bucket_plan([x.astype(np.float16)], np.zeros(18, np.float32)), "no kernel for float16 gradients"),
])
def test_errors_name_what_is_wrong(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(np.zeros((3, 6), dtype=np.float32))


def test_empty_plan_launches_nothing_and_needs_no_cupy():
    x = np.zeros((0, 8), dtype=np.float32)
    plan = L.softmax_plan(x, x.copy())
    assert plan.grid[0] == 0
    L.launch(plan)  # returns before importing CuPy, which is not installed on CPU-only machines


def _run_adam(plan):
    """What adam.cu does with the plan's tables and scalars: the stand-in's emulation, on the host arrays."""
    _emu_multi.run(plan, plan.args)


@pytest.mark.parametrize("decoupled, weight_decay, maximize", [(False, 0.0, False), (False, 0.1, True),
                                                                (True, 0.1, False)])
def test_adam_plan_scalars_and_chunks_reproduce_the_generic_update(decoupled, weight_decay, maximize):
    rng = np.random.default_rng(0)
    shapes = [(5,), (0,), (3, 4), (9,)]
    ref = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(4)]
    ref[3] = [np.abs(a) for a in ref[3]]
    got = [[a.copy() for a in group] for group in ref]
    for step in (1, 2, 3):
        plan = L.adam_plan(*got, step=step, lr=0.05, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay,
                           decoupled_weight_decay=decoupled, maximize=maximize, chunk=4)
        assert plan.grid == (2 + 0 + 3 + 3, 1, 1)  # ceil(5/4) + 0 + ceil(12/4) + ceil(9/4) blocks of 4
        _run_adam(plan)
        for p, g, m, v in zip(*ref):
            adam_update(np, p, g, m, v, None, step, 0.05, 0.9, 0.999, 1e-8, weight_decay, False, maximize,
                        decoupled_weight_decay=decoupled)
    for group_ref, group_got in zip(ref, got):
        for a, b in zip(group_ref, group_got):
            np.testing.assert_allclose(b, a, rtol=2e-6, atol=1e-7)


def test_bucket_plan_tables_place_each_gradient_once():
    grads = [np.arange(n, dtype=np.float32) + 100 * i for i, n in enumerate((5, 0, 7, 3))]
    bucket = np.full(16, np.nan, dtype=np.float16)
    plan = L.bucket_plan(grads, bucket, pack=True, scale=0.5, chunk=4)
    assert plan.name == "bucket_pack_f32_f16"
    ptrs, offsets, numels, block_tensor, block_start, flat, chunk, scale = plan.args
    assert list(offsets) == [0, 5, 5, 12] and list(numels) == [5, 0, 7, 3]
    _emu_multi.run(plan, plan.args)  # what bucket.cu's pack does
    expected = np.concatenate([g * 0.5 for g in grads]).astype(np.float16)
    np.testing.assert_array_equal(bucket[:15], expected)
    assert np.isnan(bucket[15])  # past the gradients: untouched


def test_enabled_follows_the_environment(monkeypatch):
    monkeypatch.delenv("DISTTORCH_KERNELS", raising=False)
    assert kernels.enabled()
    for off in ("0", "false", "OFF", " no "):
        monkeypatch.setenv("DISTTORCH_KERNELS", off)
        assert not kernels.enabled()
    monkeypatch.setenv("DISTTORCH_KERNELS", "1")
    assert kernels.enabled()


def test_plans_are_pure():
    x = np.ones((2, 3), dtype=np.float32)
    before = x.copy()
    a, b = L.softmax_plan(x, x.copy()), L.softmax_plan(x, x.copy())
    assert (a.name, a.grid, a.block) == (b.name, b.grid, b.block)
    np.testing.assert_array_equal(x, before)
    assert math.isclose(L.adam_plan([x], [x], [x], [x], 1, 0.1).args[11], -0.1 / (1 - 0.9), rel_tol=1e-6)


@pytest.mark.parametrize("dtype, suffix", [(np.float32, "f32"), (np.float16, "f16"), (ml_dtypes.bfloat16, "bf16")])
def test_cross_entropy_plans_dispatch_size_and_pack(dtype, suffix):
    x = np.zeros((6, 70), dtype=dtype)
    t, loss, lse = np.zeros(6, np.int64), np.zeros(6, np.float32), np.zeros(6, np.float32)
    fwd = L.cross_entropy_plan(x, t, None, loss, lse, ignore_index=3, label_smoothing=0.25)
    assert (fwd.source, fwd.name) == ("cross_entropy.cu", f"cross_entropy_forward_{suffix}")
    assert fwd.grid == (6, 1, 1) and fwd.block == (96, 1, 1)  # one block per row, 70 classes -> 3 warps
    assert fwd.args[2] == 0 and fwd.args[5] == 0 and isinstance(fwd.args[5], np.uint64)  # no weight, no flag
    assert fwd.args[6:] == (6, 70, 3, np.float32(0.25))
    assert [type(a) for a in fwd.args[6:]] == [np.int64, np.int64, np.int64, np.float32]
    w = np.ones(70, np.float32)
    per_row = L.cross_entropy_backward_plan(x, t, w, lse, loss, x.copy())
    assert per_row.name == f"cross_entropy_backward_{suffix}" and per_row.args[2] is w and per_row.args[5] == 1
    shared = L.cross_entropy_backward_plan(x, t, None, lse, np.ones(1, np.float32), x.copy())
    assert shared.args[5] == 0 and isinstance(shared.args[5], np.int64)  # one upstream value for every row


@pytest.mark.parametrize("call, match", [
    (lambda x, t, v: L.cross_entropy_plan(x[None], t, None, v, v), r"logits must be 2-d \(rows, classes\)"),
    (lambda x, t, v: L.cross_entropy_plan(x, t.astype(np.int32), None, v, v), "target must be a contiguous int64"),
    (lambda x, t, v: L.cross_entropy_plan(x, t, np.ones(5, np.float32), v, v), "weight must be .* of 6 elements"),
    (lambda x, t, v: L.cross_entropy_plan(x, t, None, v, v, label_smoothing=1.5), "label_smoothing must be in"),
    (lambda x, t, v: L.cross_entropy_plan(x, t, None, v[:2], v), "loss must be .* of 3 elements"),
    (lambda x, t, v: L.cross_entropy_plan(x, t, None, v, v, bad=np.zeros(1, np.int64)), "bad must be .* int32"),
    (lambda x, t, v: L.cross_entropy_backward_plan(x, t, None, v, np.ones(2, np.float32), x.copy()),
     "grad_loss must be .* of 3 or 1 elements"),
    (lambda x, t, v: L.cross_entropy_plan(np.zeros((3, 0), np.float32), t, None, v, v), "have no classes"),
])
def test_cross_entropy_errors_name_what_is_wrong(call, match):
    with pytest.raises(ValueError, match=match):
        call(np.zeros((3, 6), np.float32), np.zeros(3, np.int64), np.zeros(3, np.float32))


def test_im2col_plans_geometry_and_grids():
    x = np.zeros((2, 3, 9, 8), dtype=np.float16)
    # kernel 2x3, dilation (2, 3), padding (2, 1), stride (2, 1): OH = (9+4-2-1)//2+1 = 6, OW = (8+2-6-1)//1+1 = 4
    cols = np.zeros((2, 18, 24), dtype=np.float16)
    plan = L.im2col_plan(x, cols, (2, 3), dilation=(2, 3), padding=(2, 1), stride=(2, 1))
    assert (plan.source, plan.name) == ("im2col.cu", "im2col_f16") and plan.args[:2] == (x, cols)
    assert plan.args[2:] == (2, 3, 9, 8, 2, 3, 2, 1, 2, 1, 2, 3, 6, 4)
    assert all(type(a) is np.int64 for a in plan.args[2:])
    assert plan.grid == (-(-cols.size // 256), 1, 1) and plan.block == (256, 1, 1)  # a thread per column element
    back = L.col2im_plan(cols, x, (2, 3), dilation=(2, 3), padding=(2, 1), stride=(2, 1))
    assert back.name == "col2im_f16" and back.args[:2] == (cols, x) and back.args[2:] == plan.args[2:]
    assert back.grid == (-(-x.size // 256), 1, 1)  # a thread per image element: the gather, no atomics


@pytest.mark.parametrize("call, match", [
    (lambda x: L.im2col_plan(x[0], np.zeros((1, 18, 4), np.float32), 3), r"must be 4-d \(N, C, H, W\)"),
    (lambda x: L.im2col_plan(x, np.zeros((1, 18, 5), np.float32), 3), r"cols has shape \(1, 18, 5\), expected"),
    (lambda x: L.im2col_plan(x, np.zeros((1, 18, 4), np.float16), 3), "cols has dtype float16"),
    (lambda x: L.im2col_plan(x, np.zeros((1, 18, 4), np.float32), 9), "does not fit the 4x4 image"),
    (lambda x: L.col2im_plan(np.zeros((1, 18, 4), np.float32), x, 3, stride=0), "stride must be an int or a pair"),
    (lambda x: L.im2col_plan(x.astype(np.float64), np.zeros((1, 18, 4)), 3), "im2col has no CUDA kernel"),
])
def test_im2col_errors_name_what_is_wrong(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(np.zeros((1, 2, 4, 4), np.float32))
