"""Losses (disttorch/ops/loss.py, loss_extra.py): NumPy references, reductions, errors, warnings, gradchecks."""
import math

import numpy as np
import pytest

import disttorch
from disttorch.ops import loss as L
from helpers import assert_close, check_grad, rand_array

pytestmark = pytest.mark.filterwarnings("error")

T = disttorch.tensor
REDUCTIONS = ["none", "mean", "sum"]
rng = np.random.default_rng(7)


def reduce_np(loss, reduction):
    if reduction == "mean":
        return loss.mean() if loss.size else np.float64("nan")
    return loss.sum() if reduction == "sum" else loss


def np_log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def np_log_sigmoid(x):
    return -np.logaddexp(0, -x)


# ---- reduction arguments -------------------------------------------------------------------------------
@pytest.mark.parametrize("size_average,reduce,expected", [
    (None, False, "none"), (True, False, "none"), (False, False, "none"), (False, None, "sum"),
    (False, True, "sum"), (True, None, "mean"), (None, True, "mean"), (True, True, "mean")])
def test_legacy_size_average_reduce(size_average, reduce, expected):
    a, b = rand_array((3, 4)), rand_array((3, 4))
    with pytest.warns(UserWarning, match=f"size_average and reduce args will be deprecated, please use "
                                         f"reduction='{expected}' instead"):
        out = L.mse_loss(T(a), T(b), size_average=size_average, reduce=reduce)
    assert_close(out, reduce_np((a - b) ** 2, expected))


def test_reduction_enum_and_invalid():
    a, b = rand_array((3,)), rand_array((3,))
    assert_close(L.l1_loss(T(a), T(b), reduction=2), np.abs(a - b).sum())
    with pytest.raises(ValueError, match="bogus is not a valid value for reduction"):
        L.mse_loss(T(a), T(b), reduction="bogus")
    with pytest.raises(ValueError, match="bogus is not a valid value for reduction"):
        L.cross_entropy(T(rand_array((2, 3))), T([0, 1]), reduction="bogus")


def test_all_lists_only_top_level_torch_names():
    assert set(L.__all__) == {"binary_cross_entropy_with_logits", "kl_div", "cosine_embedding_loss",
                              "margin_ranking_loss", "triplet_margin_loss", "hinge_embedding_loss",
                              "poisson_nll_loss"}
    assert "mse_loss" in L.FUNCTIONAL and "cross_entropy" in L.FUNCTIONAL and "mse_loss" not in L.__all__
    for name in L.FUNCTIONAL:
        assert callable(getattr(L, name)), name


# ---- regression losses ---------------------------------------------------------------------------------
def np_smooth_l1(d, beta):
    ad = np.abs(d)
    return np.where(ad < beta, 0.5 * d * d / beta, ad - 0.5 * beta) if beta else ad


def np_huber(d, delta):
    ad = np.abs(d)
    return np.where(ad < delta, 0.5 * d * d, delta * (ad - 0.5 * delta))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 2), (0, 3)])
def test_regression_losses_forward(reduction, shape):
    a, b = rand_array(shape, low=-3, high=3), rand_array(shape, low=-3, high=3)
    d = a - b
    assert_close(L.mse_loss(T(a), T(b), reduction=reduction), reduce_np(d * d, reduction))
    assert_close(L.l1_loss(T(a), T(b), reduction=reduction), reduce_np(np.abs(d), reduction))
    for beta in (1.0, 0.5, 0.0):
        assert_close(L.smooth_l1_loss(T(a), T(b), reduction=reduction, beta=beta),
                     reduce_np(np_smooth_l1(d, beta), reduction))
    for delta in (1.0, 2.5):
        assert_close(L.huber_loss(T(a), T(b), reduction=reduction, delta=delta),
                     reduce_np(np_huber(d, delta), reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses_weighted(reduction):
    a, b, w = rand_array((3, 4)), rand_array((3, 4)), rand_array((3, 4), low=0.1, high=2)
    d = a - b

    def wred(loss, by_weight=True):
        if reduction == "mean":
            return (loss * w).sum() / w.sum() if by_weight else (loss * w).mean()
        return reduce_np(loss * w, reduction)
    assert_close(L.mse_loss(T(a), T(b), reduction=reduction, weight=T(w)), wred(d * d))
    assert_close(L.l1_loss(T(a), T(b), reduction=reduction, weight=T(w)), wred(np.abs(d)))
    assert_close(L.huber_loss(T(a), T(b), reduction=reduction, weight=T(w)), wred(np_huber(d, 1.0), False))
    with pytest.raises(ValueError, match="Weights and input must have the same size"):
        L.mse_loss(T(a), T(b), weight=T(w[0]))


def test_regression_size_warning_and_broadcast_error():
    a, b = rand_array((3, 1)), rand_array((3,))
    for fn in (L.mse_loss, L.l1_loss, L.smooth_l1_loss, L.huber_loss):
        with pytest.warns(UserWarning, match=r"Using a target size \(\w*\.?Size\(\[3\]\)\) that is different to "
                                             r"the input size \(\w*\.?Size\(\[3, 1\]\)\)\. This will likely lead to "
                                             r"incorrect results due to broadcasting"):
            out = fn(T(a), T(b), reduction="none")
        assert out.shape == (3, 3)
    with pytest.warns(UserWarning, match="Using a target size"), pytest.raises(RuntimeError, match="size of tensor"):
        L.mse_loss(T(rand_array((3, 2))), T(rand_array((4,))))


def test_regression_parameter_errors():
    a = T(rand_array((3,)))
    with pytest.raises(RuntimeError, match="smooth_l1_loss does not support negative values for beta"):
        L.smooth_l1_loss(a, a, beta=-1.0)
    with pytest.raises(RuntimeError, match="huber_loss does not support non-positive values for delta"):
        L.huber_loss(a, a, delta=0.0)
    with pytest.raises(TypeError, match="mse_loss"):
        L.mse_loss(a, [1.0, 2.0, 3.0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses_grad(reduction):
    a = rand_array((2, 3))
    b = a + np.array([[0.3, -0.7, 1.8], [-2.5, 0.4, -0.2]])  # away from the kinks at |d| = 0, beta, delta
    check_grad(lambda x, y: L.mse_loss(x, y, reduction=reduction), a, b)
    check_grad(lambda x, y: L.l1_loss(x, y, reduction=reduction), a, b)
    check_grad(lambda x, y: L.smooth_l1_loss(x, y, reduction=reduction, beta=0.5), a, b)
    check_grad(lambda x, y: L.huber_loss(x, y, reduction=reduction, delta=1.0), a, b)
    w = rand_array((2, 3), low=0.5, high=1.5)
    check_grad(lambda x, y, v: L.mse_loss(x, y, reduction=reduction, weight=v), a, b, w)


def test_regression_float32():
    a = T(rand_array((4,)), dtype=disttorch.float32)
    for fn in (L.mse_loss, L.l1_loss, L.smooth_l1_loss, L.huber_loss):
        assert fn(a, a * 2).dtype is disttorch.float32


# ---- cross entropy / nll: NumPy references ---------------------------------------------------------------
def np_ce(x, t, weight=None, ignore_index=-100, reduction="mean", eps=0.0, log_probs=False):
    """Dense reference: loss_n = -sum_c w_c y_nc logp_nc, y = (1 - eps) onehot + eps / C, 0 where ignored."""
    ca = 0 if x.ndim == 1 else 1
    C = x.shape[ca]
    logp = x if log_probs else np_log_softmax(x, ca)
    logp = np.moveaxis(logp, ca, -1).reshape(-1, C)
    tf = np.asarray(t).reshape(-1)
    w = np.ones(C) if weight is None else weight
    valid = tf != ignore_index
    onehot = np.zeros_like(logp)
    onehot[np.arange(len(tf))[valid], tf[valid]] = 1.0
    y = (1 - eps) * onehot + eps / C
    loss = np.where(valid, -(w[None, :] * y * logp).sum(1), 0.0)
    if reduction == "none":
        return loss.reshape(np.shape(t))
    if reduction == "sum":
        return loss.sum()
    with np.errstate(invalid="ignore"):
        return loss.sum() / w[tf[valid]].sum()


def np_ce_probs(x, y, weight=None, reduction="mean", eps=0.0):
    ca = 0 if x.ndim == 1 else 1
    C = x.shape[ca]
    y = y * (1 - eps) + eps / C
    wshape = [1] * x.ndim
    wshape[ca] = C
    w = np.ones(wshape) if weight is None else weight.reshape(wshape)
    loss = -(np_log_softmax(x, ca) * y * w).sum(ca)
    if reduction == "mean":
        return loss.sum() / (x.size / C) if x.size else np.float64("nan")
    return reduce_np(loss, reduction)


CLASS_SHAPES = [((5,), ()), ((4, 5), (4,)), ((3, 4, 2), (3, 2)), ((2, 3, 2, 2), (2, 2, 2)), ((0, 4), (0,))]


def targets(tshape, C, ignore=None):
    t = rng.integers(0, C, size=tshape)
    if ignore is not None and t.size > 1:
        t.reshape(-1)[1] = ignore
    return t


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("xshape,tshape", CLASS_SHAPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 1])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_cross_entropy_class_indices(reduction, xshape, tshape, weighted, ignore_index, eps):
    C = xshape[0] if len(xshape) == 1 else xshape[1]
    x = rand_array(xshape, low=-3, high=3)
    t = targets(tshape, C, ignore=ignore_index)
    w = rand_array((C,), low=0.2, high=2.0) if weighted else None
    out = L.cross_entropy(T(x), T(t), weight=None if w is None else T(w), ignore_index=ignore_index,
                          reduction=reduction, label_smoothing=eps)
    assert_close(out, np_ce(x, t, w, ignore_index, reduction, eps), rtol=1e-10, atol=1e-12)
    if eps == 0.0:
        lp = np_log_softmax(x, 0 if x.ndim == 1 else 1)
        assert_close(L.nll_loss(T(lp), T(t), weight=None if w is None else T(w), ignore_index=ignore_index,
                                reduction=reduction), np_ce(x, t, w, ignore_index, reduction), rtol=1e-10)


def test_cross_entropy_all_ignored_is_nan():
    x, t = T(rand_array((3, 4))), T([-100, -100, -100])
    assert math.isnan(L.cross_entropy(x, t).item())
    assert math.isnan(L.cross_entropy(x, t, label_smoothing=0.1).item())
    assert L.cross_entropy(x, t, reduction="sum").item() == 0.0
    assert_close(L.cross_entropy(x, t, reduction="none"), np.zeros(3))
    assert math.isnan(L.nll_loss(x, t).item())


def test_cross_entropy_is_stable_and_ignores_inf_rows():
    x = np.array([[1000.0, 0.0, -1000.0], [-np.inf, 0.0, 0.0]])
    out = L.cross_entropy(T(x), T([0, 1]), reduction="none").numpy()
    assert_close(T(out), np.array([0.0, math.log(2.0)]), atol=1e-12)
    # An ignored row full of -inf contributes 0, not nan (label smoothing sums every class).
    x2 = np.array([[0.0, 1.0], [-np.inf, -np.inf]])
    assert_close(L.cross_entropy(T(x2), T([1, -100]), label_smoothing=0.3, reduction="none"),
                 np_ce(x2[:1], np.array([1]), eps=0.3, reduction="none").tolist() + [0.0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("xshape", [(5,), (3, 4), (2, 3, 2), (0, 3)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("eps", [0.0, 0.25])
def test_cross_entropy_probabilities(reduction, xshape, weighted, eps):
    ca = 0 if len(xshape) == 1 else 1
    C = xshape[ca]
    x = rand_array(xshape, low=-3, high=3)
    y = rng.random(xshape)
    y = y / y.sum(axis=ca, keepdims=True) if y.size else y
    w = rand_array((C,), low=0.2, high=2.0) if weighted else None
    out = L.cross_entropy(T(x), T(y), weight=None if w is None else T(w), reduction=reduction, label_smoothing=eps)
    assert_close(out, np_ce_probs(x, y, w, reduction, eps), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("xshape,tshape", [((4,), ()), ((3, 4), (3,)), ((2, 3, 2), (2, 2)), ((2, 3, 2, 2), (2, 2, 2))])
def test_cross_entropy_grad(reduction, xshape, tshape):
    C = xshape[0] if len(xshape) == 1 else xshape[1]
    x = rand_array(xshape)
    t = T(targets(tshape, C, ignore=1))
    w = T(rand_array((C,), low=0.5, high=2.0))
    check_grad(lambda a: L.cross_entropy(a, t, reduction=reduction), x, gradgrad=reduction != "none")
    check_grad(lambda a: L.cross_entropy(a, t, weight=w, ignore_index=1, reduction=reduction,
                                         label_smoothing=0.3), x, gradgrad=True)
    check_grad(lambda a: L.nll_loss(a, t, weight=w, ignore_index=1, reduction=reduction), x, gradgrad=True)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_probabilities_grad(reduction):
    x, y = rand_array((3, 4)), rng.random((3, 4))
    w = T(rand_array((4,), low=0.5, high=2.0))
    check_grad(lambda a, b: L.cross_entropy(a, b, weight=w, reduction=reduction, label_smoothing=0.1), x, y)
    check_grad(lambda a, b: L.cross_entropy(a, b, reduction=reduction), rand_array((2, 3, 2)),
               rng.random((2, 3, 2)))


def test_cross_entropy_backward_matches_softmax_minus_onehot():
    x = rand_array((4, 3))
    t = np.array([0, 2, 1, 2])
    a = T(x, dtype=disttorch.float32, requires_grad=True)
    L.cross_entropy(a, T(t), reduction="sum").backward()
    p = np.exp(np_log_softmax(x, 1))
    p[np.arange(4), t] -= 1
    assert a.grad.dtype is disttorch.float32
    assert_close(a.grad, p, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [disttorch.float32, disttorch.bfloat16])
def test_cross_entropy_leaves_input_unchanged(dtype):
    x = T(rand_array((4, 6)) * 30, dtype=dtype)
    before = x.float().numpy().copy()
    L.cross_entropy(x, T([0, 5, 2, 1]), label_smoothing=0.2)
    L.cross_entropy(x.reshape(2, 2, 6).transpose(1, 2), T([[0, 1], [5, 4]]))
    assert np.array_equal(x.float().numpy(), before)


def test_cross_entropy_retain_graph_and_second_backward():
    a = T(rand_array((3, 4)), requires_grad=True)
    loss = L.cross_entropy(a, T([0, 1, 3]), label_smoothing=0.1)
    loss.backward(retain_graph=True)
    g1 = a.grad.clone()
    loss.backward()
    assert_close(a.grad, 2 * g1.numpy())
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()


@pytest.mark.parametrize("dtype", [disttorch.float32, disttorch.float16, disttorch.bfloat16])
def test_cross_entropy_dtypes(dtype):
    x = rand_array((4, 5))
    t = np.array([0, 4, 2, 1])
    for kwargs in ({}, {"label_smoothing": 0.1, "weight": T(rand_array((5,), low=0.5, high=1), dtype=dtype)}):
        a = T(x, dtype=dtype, requires_grad=True)
        out = L.cross_entropy(a, T(t), **kwargs)
        assert out.dtype is dtype
        out.backward()
        assert a.grad.dtype is dtype
        w = None if not kwargs else kwargs["weight"].float().numpy().astype(np.float64)
        tol = 1e-5 if dtype is disttorch.float32 else 2e-2
        assert_close(out, np_ce(a.detach().float().numpy().astype(np.float64), t, w, eps=kwargs.get(
            "label_smoothing", 0.0)), rtol=tol, atol=tol)
    assert L.nll_loss(T(x, dtype=dtype), T(t)).dtype is dtype


def test_cross_entropy_uint8_target():
    x = rand_array((3, 4))
    t = np.array([0, 3, 1], dtype=np.uint8)
    assert_close(L.cross_entropy(T(x), T(t)), np_ce(x, t.astype(np.int64)))


def test_cross_entropy_errors():
    x = T(rand_array((3, 4)))
    with pytest.raises(IndexError, match="Target 5 is out of bounds."):
        L.cross_entropy(x, T([0, 5, 1]))
    with pytest.raises(IndexError, match="Target -1 is out of bounds."):
        L.nll_loss(x, T([0, -1, 1]))
    with pytest.raises(ValueError, match=r"Expected input batch_size \(3\) to match target batch_size \(2\)"):
        L.cross_entropy(x, T([0, 1]))
    with pytest.raises(RuntimeError, match="weight tensor should be defined either for all 4 classes or no classes "
                                           r"but got weight tensor of shape: \[3\]"):
        L.cross_entropy(x, T([0, 1, 2]), weight=T([1.0, 1.0, 1.0]))
    with pytest.raises(RuntimeError, match=r"Expected target size \[2, 5\], got \[2, 4\]"):
        L.cross_entropy(T(rand_array((2, 3, 5))), T(np.zeros((2, 4), dtype=np.int64)))
    with pytest.raises(RuntimeError, match="multi-target not supported"):
        L.nll_loss(x, T(np.zeros((3, 2), dtype=np.int64)))
    with pytest.raises(RuntimeError, match="expected scalar type Long but found Float"):
        L.cross_entropy(x, T([0.0, 1.0, 2.0]))
    with pytest.raises(RuntimeError, match="Expected floating point type for target with class probabilities, "
                                           "got Long"):
        L.cross_entropy(x, T(np.zeros((3, 4), dtype=np.int64)))
    with pytest.raises(RuntimeError, match="ignore_index is not supported for floating point target"):
        L.cross_entropy(x, T(rand_array((3, 4))), ignore_index=0)
    with pytest.raises(RuntimeError, match="label_smoothing must be between 0.0 and 1.0. Got: 1.5"):
        L.cross_entropy(x, T([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"Expected 1 or more dimensions \(got 0\)"):
        L.cross_entropy(T(1.0), T(0))
    with pytest.raises(TypeError, match="cross_entropy"):
        L.cross_entropy(rand_array((3, 4)), T([0, 1, 2]))


# ---- binary cross entropy --------------------------------------------------------------------------------
def np_bce(x, t, w=None):
    with np.errstate(divide="ignore"):
        loss = -(t * np.maximum(np.log(x), -100) + (1 - t) * np.maximum(np.log(1 - x), -100))
    return loss if w is None else loss * w


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(), (5,), (2, 3), (0, 2)])
def test_binary_cross_entropy_forward(reduction, shape):
    x, t = rng.uniform(0.05, 0.95, shape), rng.random(shape)
    w = rand_array(shape[-1:] if shape else (), low=0.5, high=2.0)
    assert_close(L.binary_cross_entropy(T(x), T(t), reduction=reduction), reduce_np(np_bce(x, t), reduction))
    assert_close(L.binary_cross_entropy(T(x), T(t), weight=T(w), reduction=reduction),
                 reduce_np(np_bce(x, t, w), reduction))


def test_binary_cross_entropy_clamps_log_and_errors():
    out = L.binary_cross_entropy(T([0.0, 1.0, 0.0]), T([1.0, 0.0, 0.0]), reduction="none")
    assert_close(out, np.array([100.0, 100.0, 0.0]))
    a = T([0.0, 1.0, 0.5], requires_grad=True)
    L.binary_cross_entropy(a, T([0.0, 1.0, 1.0]), reduction="sum").backward()
    assert np.isfinite(a.grad.numpy()).all()
    with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
        L.binary_cross_entropy(T([0.5, 1.5]), T([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"Using a target size \(.*\[2\]\)\) that is different to the input size "
                                         r"\(.*\[2, 1\]\)\) is deprecated"):
        L.binary_cross_entropy(T([[0.5], [0.2]]), T([0.0, 1.0]))
    assert L.binary_cross_entropy(T([0.3], dtype=disttorch.float32), T([1.0], dtype=disttorch.float32)).dtype \
        is disttorch.float32


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_grad(reduction):
    x, t, w = rng.uniform(0.1, 0.9, (2, 3)), rng.random((2, 3)), T(rand_array((3,), low=0.5, high=2.0))
    check_grad(lambda a, b: L.binary_cross_entropy(a, b, weight=w, reduction=reduction), x, t, gradgrad=True)


def np_bce_logits(x, t, w=None, pw=None):
    lw = 1 if pw is None else 1 + (pw - 1) * t
    loss = (1 - t) * x - lw * np_log_sigmoid(x)
    return loss if w is None else loss * w


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(), (4,), (3, 4), (0, 4)])
def test_bce_with_logits_forward(reduction, shape):
    x, t = rand_array(shape, low=-5, high=5), rng.random(shape)
    w, pw = rand_array(shape[-1:], low=0.5, high=2), rand_array(shape[-1:], low=0.5, high=3)
    assert_close(L.binary_cross_entropy_with_logits(T(x), T(t), reduction=reduction),
                 reduce_np(np_bce_logits(x, t), reduction))
    assert_close(L.binary_cross_entropy_with_logits(T(x), T(t), weight=T(w), pos_weight=T(pw), reduction=reduction),
                 reduce_np(np_bce_logits(x, t, w, pw), reduction))


def test_bce_with_logits_stable_and_errors():
    x = np.array([-1000.0, 1000.0, 0.0, 50.0])
    t = np.array([0.0, 1.0, 0.5, 0.0])
    a = T(x, dtype=disttorch.float32, requires_grad=True)
    out = L.binary_cross_entropy_with_logits(a, T(t, dtype=disttorch.float32), reduction="none")
    assert out.dtype is disttorch.float32
    assert_close(out, np.array([0.0, 0.0, math.log(2.0), 50.0]), rtol=1e-6)
    out.sum().backward()
    assert_close(a.grad, 1 / (1 + np.exp(-np.clip(x, -60, 60))) - t, atol=1e-6)  # sigmoid(x) - t, 0 at x=0
    with pytest.raises(ValueError, match=r"Target size \(.*\[3\]\)\) must be the same as input size "
                                         r"\(.*\[4\]\)\)"):
        L.binary_cross_entropy_with_logits(a, T([0.0, 1.0, 1.0]))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_grad(reduction):
    x, t = rand_array((2, 3)), rng.random((2, 3))
    w, pw = rand_array((3,), low=0.5, high=2), rand_array((3,), low=0.5, high=3)
    check_grad(lambda a, b, c, d: L.binary_cross_entropy_with_logits(a, b, weight=c, pos_weight=d,
                                                                     reduction=reduction), x, t, w, pw, gradgrad=True)


# ---- loss_extra: kl_div ---------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["none", "sum", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    x = np_log_softmax(rand_array((3, 4)), 1)
    p = np.exp(np_log_softmax(rand_array((3, 4)), 1))
    if log_target:
        tgt = np.log(p)
        ref = np.exp(tgt) * (tgt - x)
    else:
        p[0, 1] = 0.0  # 0 * log(0) counts as 0
        tgt = p
        ref = np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0) - p * x
    expected = ref.sum() / 3 if reduction == "batchmean" else reduce_np(ref, reduction)
    out = L.kl_div(T(x), T(tgt), reduction=reduction, log_target=log_target)
    assert_close(out, expected)


def test_kl_div_mean_warns_and_grad():
    x, p = rand_array((2, 3)), rng.uniform(0.1, 1.0, (2, 3))
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        out = L.kl_div(T(x), T(p))
    assert_close(out, (p * np.log(p) - p * x).mean())
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated") as rec:
        L.kl_div(T(x), T(p), size_average=False)
    assert len(rec) == 1  # the legacy mapping does not also warn about 'mean'
    with pytest.raises(RuntimeError, match="kl_div: Integral inputs not supported"):
        L.kl_div(T([1, 2]), T([1, 2]), reduction="sum")
    check_grad(lambda a, b: L.kl_div(a, b, reduction="batchmean"), x, p)
    check_grad(lambda a, b: L.kl_div(a, b, reduction="sum", log_target=True), x, np.log(p))


# ---- loss_extra: embedding and margin losses ---------------------------------------------------------------
def np_cos_embed(a, b, y, margin):
    ax = a.ndim - 1
    cos = (a * b).sum(ax) / np.sqrt(((a * a).sum(ax) + 1e-12) * ((b * b).sum(ax) + 1e-12))
    return np.where(y == 1, 1 - cos, 0) + np.where(y == -1, np.maximum(cos - margin, 0), 0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cosine_embedding_loss(reduction):
    a, b, y = rand_array((4, 3)), rand_array((4, 3)), np.array([1, -1, -1, 1])
    for margin in (0.0, 0.3):
        assert_close(L.cosine_embedding_loss(T(a), T(b), T(y), margin=margin, reduction=reduction),
                     reduce_np(np_cos_embed(a, b, y, margin), reduction))
    assert_close(L.cosine_embedding_loss(T(a[0]), T(b[0]), T(-1), reduction=reduction),
                 np_cos_embed(a[0], b[0], np.array(-1), 0.0))
    check_grad(lambda u, v: L.cosine_embedding_loss(u, v, T(y), margin=-0.5, reduction=reduction), a, b)


def test_cosine_embedding_loss_errors():
    with pytest.raises(RuntimeError, match=r"1D target tensor expects 2D input tensors, but found inputs with sizes "
                                           r"\[3\] and \[3\]"):
        L.cosine_embedding_loss(T(rand_array((3,))), T(rand_array((3,))), T([1]))
    with pytest.raises(RuntimeError, match="0D or 1D target tensor expected"):
        L.cosine_embedding_loss(T(rand_array((2, 3))), T(rand_array((2, 3))), T([[1, 1]]))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_margin_ranking_and_hinge_and_soft_margin(reduction):
    a, b = rand_array((5,)), rand_array((5,))
    y = np.array([1.0, -1.0, 1.0, -1.0, 1.0])
    assert_close(L.margin_ranking_loss(T(a), T(b), T(y), margin=0.2, reduction=reduction),
                 reduce_np(np.maximum(-y * (a - b) + 0.2, 0), reduction))
    hinge = np.where(y != 1, np.maximum(1.5 - a, 0), 0) + np.where(y != -1, a, 0)
    assert_close(L.hinge_embedding_loss(T(a), T(y), margin=1.5, reduction=reduction), reduce_np(hinge, reduction))
    assert_close(L.soft_margin_loss(T(a), T(y), reduction=reduction), reduce_np(np.log1p(np.exp(-y * a)), reduction))
    b = a + np.array([0.5, 0.9, -0.9, 0.1, -0.5])  # keep margin - y (a - b) away from 0
    check_grad(lambda u, v: L.margin_ranking_loss(u, v, T(y), margin=0.2, reduction=reduction), a, b)
    check_grad(lambda u: L.hinge_embedding_loss(u, T(y), margin=10.0, reduction=reduction), a)
    check_grad(lambda u, v: L.soft_margin_loss(u, v, reduction=reduction), a, y)
    with pytest.raises(RuntimeError, match="margin_ranking_loss : All input tensors should have same dimension"):
        L.margin_ranking_loss(T(a), T(b), T(y[None]))


def np_triplet(a, p, n, margin, pn, eps, swap):
    def dist(u, v):
        return (np.abs(u - v + eps) ** pn).sum(-1) ** (1 / pn)
    dn = dist(a, n)
    if swap:
        dn = np.minimum(dn, dist(p, n))
    return np.maximum(dist(a, p) - dn + margin, 0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("pn,swap", [(2, False), (1, True), (3, True)])
def test_triplet_margin_loss(reduction, pn, swap):
    a, p, n = rand_array((4, 3)), rand_array((4, 3)), rand_array((4, 3))
    assert_close(L.triplet_margin_loss(T(a), T(p), T(n), margin=2.0, p=pn, swap=swap, reduction=reduction),
                 reduce_np(np_triplet(a, p, n, 2.0, pn, 1e-6, swap), reduction))
    check_grad(lambda u, v, w: L.triplet_margin_loss(u, v, w, margin=10.0, p=pn, swap=swap, reduction=reduction),
               a, p, n)
    with pytest.raises(RuntimeError, match="anchor 2D, positive 2D, and negative 1D inputs"):
        L.triplet_margin_loss(T(a), T(p), T(n[0]))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_soft_margin_and_multi_margin(reduction):
    x, t, w = rand_array((3, 4)), (rng.random((3, 4)) > 0.5).astype(np.float64), rand_array((4,), low=0.5, high=2)
    ref = -(t * np_log_sigmoid(x) + (1 - t) * np_log_sigmoid(-x)) * w
    assert_close(L.multilabel_soft_margin_loss(T(x), T(t), weight=T(w), reduction=reduction),
                 reduce_np(ref.mean(1), reduction))
    check_grad(lambda a: L.multilabel_soft_margin_loss(a, T(t), weight=T(w), reduction=reduction), x)
    y = np.array([1, 0, 3])
    for pn in (1, 2):
        z = np.maximum(0, 0.8 - x[np.arange(3), y][:, None] + x) ** pn * w[y][:, None]
        z[np.arange(3), y] = 0
        assert_close(L.multi_margin_loss(T(x), T(y), p=pn, margin=0.8, weight=T(w), reduction=reduction),
                     reduce_np(z.sum(1) / 4, reduction))
    check_grad(lambda a: L.multi_margin_loss(a, T(y), margin=10.0, reduction=reduction), x)
    with pytest.raises(ValueError, match="only p == 1 and p == 2 supported"):
        L.multi_margin_loss(T(x), T(y), p=3)
    with pytest.raises(RuntimeError, match="inconsistent target size, expected 3 but got"):
        L.multi_margin_loss(T(x), T([0, 1]))


# ---- loss_extra: poisson and gaussian nll -------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_input,full", [(True, False), (False, False), (True, True)])
def test_poisson_nll_loss(reduction, log_input, full):
    x = rng.uniform(0.1, 2.0, (2, 3))
    t = np.array([[0.0, 1.0, 3.0], [2.0, 0.5, 5.0]])
    ref = np.exp(x) - t * x if log_input else x - t * np.log(x + 1e-8)
    if full:
        with np.errstate(divide="ignore", invalid="ignore"):
            st = t * np.log(t) - t + 0.5 * np.log(2 * np.pi * t)
        ref = ref + np.where(t <= 1, 0, st)
    assert_close(L.poisson_nll_loss(T(x), T(t), log_input=log_input, full=full, reduction=reduction),
                 reduce_np(ref, reduction))
    check_grad(lambda a: L.poisson_nll_loss(a, T(t), log_input=log_input, full=full, reduction=reduction), x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("vshape", [(3, 2), (3,), (3, 1), "float"])
def test_gaussian_nll_loss(reduction, vshape):
    x, t = rand_array((3, 2)), rand_array((3, 2))
    v = 0.7 if vshape == "float" else rng.uniform(0.2, 2.0, vshape)
    vb = v if vshape == "float" else (v[:, None] if vshape == (3,) else v)
    for full in (False, True):
        ref = 0.5 * (np.log(vb) + (x - t) ** 2 / vb) + (0.5 * math.log(2 * math.pi) if full else 0)
        vt = v if vshape == "float" else T(v)
        assert_close(L.gaussian_nll_loss(T(x), T(t), vt, full=full, reduction=reduction),
                     reduce_np(np.broadcast_to(ref, (3, 2)), reduction))
    if vshape != "float":
        check_grad(lambda a, b, c: L.gaussian_nll_loss(a, b, c, reduction=reduction), x, t, v)


def test_gaussian_nll_loss_clamp_and_errors():
    v = T([1e-9, 1.0], requires_grad=True)
    out = L.gaussian_nll_loss(T([0.0, 0.0]), T([0.0, 1.0]), v, reduction="sum", eps=1e-6)
    assert_close(out, 0.5 * (math.log(1e-6) + 0.0 + 0.0 + 1.0))
    out.backward()
    assert_close(v.grad, np.array([0.5 / 1e-6, 0.0]), rtol=1e-9)  # the clamp lets the gradient through
    with pytest.raises(ValueError, match="var is of incorrect size"):
        L.gaussian_nll_loss(T(rand_array((3, 2))), T(rand_array((3, 2))), T(np.ones((2, 3))))
    with pytest.raises(ValueError, match="var has negative entry/entries"):
        L.gaussian_nll_loss(T([0.0]), T([0.0]), T([-1.0]))
    with pytest.raises(ValueError, match="bogus is not valid"):
        L.gaussian_nll_loss(T([0.0]), T([0.0]), T([1.0]), reduction="bogus")
