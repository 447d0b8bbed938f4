"""Loss modules: each equals an independent NumPy reference and its functional; repr, buffers, legacy args."""
import math
import warnings

import numpy as np
import pytest

import disttorch as torch
import disttorch.nn.functional as F
from disttorch.nn.modules import loss as L

rng = np.random.default_rng(3)
N, C = 4, 3


def _t(a):
    return torch.tensor(a)


def _reduce(v, reduction):
    return {"none": v, "sum": v.sum(), "mean": v.mean()}[reduction]


def _log_softmax(x):
    m = x.max(1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(1, keepdims=True))


def _log_sigmoid(x):
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


# Shared inputs (float64): regression pairs, logits with class targets, probabilities, signs.
X = rng.normal(size=(N, C))
Y = rng.normal(size=(N, C))
CLS = np.array([0, 2, 1, 2])
W = np.array([0.5, 1.0, 2.0])
P = rng.uniform(0.05, 0.95, size=(N, C))
T01 = rng.uniform(0.0, 1.0, size=(N, C))
SIGN = np.array([1.0, -1.0, 1.0, -1.0])
SIGN2 = np.where(rng.random((N, C)) > 0.5, 1.0, -1.0)
A, POS, NEG = rng.normal(size=(N, C)), rng.normal(size=(N, C)), rng.normal(size=(N, C))
VAR = rng.uniform(0.5, 2.0, size=(N, C))
COUNTS = rng.integers(0, 5, size=(N, C)).astype(np.float64)


def ref_ce(x, y, w=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    logp = _log_softmax(x)
    w = np.ones(x.shape[1]) if w is None else w
    keep = y != ignore_index
    ys = np.where(keep, y, 0)
    nll = -w[ys] * logp[np.arange(len(y)), ys] * keep
    smooth = -(logp * w).sum(1) * keep
    per = (1 - label_smoothing) * nll + label_smoothing / x.shape[1] * smooth
    if reduction == "mean":
        return per.sum() / (w[ys] * keep).sum()
    return _reduce(per, reduction)


def ref_nll(x, y, w=None, ignore_index=-100, reduction="mean"):
    w = np.ones(x.shape[1]) if w is None else w
    keep = y != ignore_index
    ys = np.where(keep, y, 0)
    per = -w[ys] * x[np.arange(len(y)), ys] * keep
    return per.sum() / (w[ys] * keep).sum() if reduction == "mean" else _reduce(per, reduction)


def ref_smooth_l1(x, y, beta):
    d = np.abs(x - y)
    return np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)


def ref_huber(x, y, delta):
    d = np.abs(x - y)
    return np.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))


def ref_cos_embed(a, b, y, margin):
    cos = (a * b).sum(1) / np.sqrt(((a * a).sum(1) + 1e-12) * ((b * b).sum(1) + 1e-12))
    return np.where(y == 1, 1 - cos, np.maximum(0, cos - margin))


def ref_triplet(a, p, n, margin, pn, eps, swap):
    def d(u, v):
        return (np.abs(u - v + eps) ** pn).sum(-1) ** (1 / pn)
    dan = d(a, n)
    if swap:
        dan = np.minimum(dan, d(p, n))
    return np.maximum(d(a, p) - dan + margin, 0)


def ref_poisson(x, t, log_input, full, eps):
    v = np.exp(x) - t * x if log_input else x - t * np.log(x + eps)
    if full:
        with np.errstate(divide="ignore", invalid="ignore"):
            st = t * np.log(t) - t + 0.5 * np.log(2 * np.pi * t)
        v = v + np.where(t > 1, st, 0)
    return v


def ref_multi_margin(x, y, p, margin, w):
    xy = x[np.arange(len(y)), y][:, None]
    h = np.maximum(0, margin - xy + x) ** p
    h[np.arange(len(y)), y] = 0
    if w is not None:
        h = h * w[y][:, None]
    return h.sum(1) / x.shape[1]


def ref_mlsm(x, t, w):
    v = -(t * _log_sigmoid(x) + (1 - t) * _log_sigmoid(-x))
    if w is not None:
        v = v * w
    return v.mean(1)


# (module factory, forward args, functional call, NumPy reference of the *unreduced-then-reduced* value)
CASES = {
    "L1Loss": (lambda r: L.L1Loss(reduction=r), (X, Y), lambda r: F.l1_loss(_t(X), _t(Y), reduction=r),
               lambda r: _reduce(np.abs(X - Y), r)),
    "MSELoss": (lambda r: L.MSELoss(reduction=r), (X, Y), lambda r: F.mse_loss(_t(X), _t(Y), reduction=r),
                lambda r: _reduce((X - Y) ** 2, r)),
    "SmoothL1Loss": (lambda r: L.SmoothL1Loss(reduction=r, beta=0.7), (X, Y),
                     lambda r: F.smooth_l1_loss(_t(X), _t(Y), reduction=r, beta=0.7),
                     lambda r: _reduce(ref_smooth_l1(X, Y, 0.7), r)),
    "HuberLoss": (lambda r: L.HuberLoss(reduction=r, delta=0.6), (X, Y),
                  lambda r: F.huber_loss(_t(X), _t(Y), reduction=r, delta=0.6),
                  lambda r: _reduce(ref_huber(X, Y, 0.6), r)),
    "CrossEntropyLoss": (lambda r: L.CrossEntropyLoss(weight=_t(W), ignore_index=1, reduction=r, label_smoothing=0.2),
                         (X, CLS), lambda r: F.cross_entropy(_t(X), _t(CLS), _t(W), ignore_index=1, reduction=r,
                                                             label_smoothing=0.2),
                         lambda r: ref_ce(X, CLS, W, 1, r, 0.2)),
    "CrossEntropyLoss_plain": (lambda r: L.CrossEntropyLoss(reduction=r), (X, CLS),
                               lambda r: F.cross_entropy(_t(X), _t(CLS), reduction=r),
                               lambda r: ref_ce(X, CLS, reduction=r)),
    "NLLLoss": (lambda r: L.NLLLoss(weight=_t(W), reduction=r), (_log_softmax(X), CLS),
                lambda r: F.nll_loss(_t(_log_softmax(X)), _t(CLS), _t(W), reduction=r),
                lambda r: ref_nll(_log_softmax(X), CLS, W, reduction=r)),
    "BCELoss": (lambda r: L.BCELoss(weight=_t(W), reduction=r), (P, T01),
                lambda r: F.binary_cross_entropy(_t(P), _t(T01), _t(W), reduction=r),
                lambda r: _reduce(-W * (T01 * np.log(P) + (1 - T01) * np.log(1 - P)), r)),
    "BCEWithLogitsLoss": (lambda r: L.BCEWithLogitsLoss(weight=_t(W), reduction=r, pos_weight=_t(W[::-1].copy())),
                          (X, T01), lambda r: F.binary_cross_entropy_with_logits(
                              _t(X), _t(T01), _t(W), reduction=r, pos_weight=_t(W[::-1].copy())),
                          lambda r: _reduce(-W * (W[::-1] * T01 * _log_sigmoid(X) + (1 - T01) * _log_sigmoid(-X)),
                                            r)),
    "KLDivLoss": (lambda r: L.KLDivLoss(reduction=r), (np.log(P), T01),
                  lambda r: F.kl_div(_t(np.log(P)), _t(T01), reduction=r),
                  lambda r: _reduce(T01 * (np.log(T01) - np.log(P)), r)),
    "KLDivLoss_log_target": (lambda r: L.KLDivLoss(reduction=r, log_target=True), (np.log(P), np.log(T01)),
                             lambda r: F.kl_div(_t(np.log(P)), _t(np.log(T01)), reduction=r, log_target=True),
                             lambda r: _reduce(T01 * (np.log(T01) - np.log(P)), r)),
    "CosineEmbeddingLoss": (lambda r: L.CosineEmbeddingLoss(margin=0.1, reduction=r), (X, Y, SIGN),
                            lambda r: F.cosine_embedding_loss(_t(X), _t(Y), _t(SIGN), margin=0.1, reduction=r),
                            lambda r: _reduce(ref_cos_embed(X, Y, SIGN, 0.1), r)),
    "MarginRankingLoss": (lambda r: L.MarginRankingLoss(margin=0.3, reduction=r), (X, Y, SIGN2),
                          lambda r: F.margin_ranking_loss(_t(X), _t(Y), _t(SIGN2), margin=0.3, reduction=r),
                          lambda r: _reduce(np.maximum(0, -SIGN2 * (X - Y) + 0.3), r)),
    "TripletMarginLoss": (lambda r: L.TripletMarginLoss(margin=0.5, p=1.5, reduction=r), (A, POS, NEG),
                          lambda r: F.triplet_margin_loss(_t(A), _t(POS), _t(NEG), margin=0.5, p=1.5, reduction=r),
                          lambda r: _reduce(ref_triplet(A, POS, NEG, 0.5, 1.5, 1e-6, False), r)),
    "TripletMarginLoss_swap": (lambda r: L.TripletMarginLoss(swap=True, reduction=r), (A, POS, NEG),
                               lambda r: F.triplet_margin_loss(_t(A), _t(POS), _t(NEG), swap=True, reduction=r),
                               lambda r: _reduce(ref_triplet(A, POS, NEG, 1.0, 2.0, 1e-6, True), r)),
    "HingeEmbeddingLoss": (lambda r: L.HingeEmbeddingLoss(margin=0.8, reduction=r), (X, SIGN2),
                           lambda r: F.hinge_embedding_loss(_t(X), _t(SIGN2), margin=0.8, reduction=r),
                           lambda r: _reduce(np.where(SIGN2 == 1, X, np.maximum(0, 0.8 - X)), r)),
    "SoftMarginLoss": (lambda r: L.SoftMarginLoss(reduction=r), (X, SIGN2),
                       lambda r: F.soft_margin_loss(_t(X), _t(SIGN2), reduction=r),
                       lambda r: _reduce(np.log1p(np.exp(-SIGN2 * X)), r)),
    "MultiLabelSoftMarginLoss": (lambda r: L.MultiLabelSoftMarginLoss(weight=_t(W), reduction=r), (X, T01.round()),
                                 lambda r: F.multilabel_soft_margin_loss(_t(X), _t(T01.round()), _t(W), reduction=r),
                                 lambda r: _reduce(ref_mlsm(X, T01.round(), W), r)),
    "PoissonNLLLoss": (lambda r: L.PoissonNLLLoss(reduction=r), (X, COUNTS),
                       lambda r: F.poisson_nll_loss(_t(X), _t(COUNTS), reduction=r),
                       lambda r: _reduce(ref_poisson(X, COUNTS, True, False, 1e-8), r)),
    "PoissonNLLLoss_full": (lambda r: L.PoissonNLLLoss(log_input=False, full=True, eps=1e-4, reduction=r),
                            (P, COUNTS), lambda r: F.poisson_nll_loss(_t(P), _t(COUNTS), log_input=False, full=True,
                                                                      eps=1e-4, reduction=r),
                            lambda r: _reduce(ref_poisson(P, COUNTS, False, True, 1e-4), r)),
    "GaussianNLLLoss": (lambda r: L.GaussianNLLLoss(full=True, reduction=r), (X, Y, VAR),
                        lambda r: F.gaussian_nll_loss(_t(X), _t(Y), _t(VAR), full=True, reduction=r),
                        lambda r: _reduce(0.5 * (np.log(VAR) + (X - Y) ** 2 / VAR) + 0.5 * math.log(2 * math.pi), r)),
    "MultiMarginLoss": (lambda r: L.MultiMarginLoss(p=2, margin=0.9, weight=_t(W), reduction=r), (X, CLS),
                        lambda r: F.multi_margin_loss(_t(X), _t(CLS), p=2, margin=0.9, weight=_t(W), reduction=r),
                        lambda r: _reduce(ref_multi_margin(X, CLS, 2, 0.9, W), r)),
    "MultiMarginLoss_p1": (lambda r: L.MultiMarginLoss(reduction=r), (X, CLS),
                           lambda r: F.multi_margin_loss(_t(X), _t(CLS), reduction=r),
                           lambda r: _reduce(ref_multi_margin(X, CLS, 1, 1.0, None), r)),
}


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")  # kl_div's (PyTorch's) warning
@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_module_matches_numpy_and_functional(name, reduction):
    make, args, functional, ref = CASES[name]
    module = make(reduction)
    assert module.reduction == reduction
    out = module(*[_t(a) for a in args])
    expected = ref(reduction)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out.detach().numpy(), functional(reduction).detach().numpy(), rtol=1e-12, atol=1e-15)
    assert out.dtype == torch.float64


def test_kl_div_batchmean():
    m = L.KLDivLoss(reduction="batchmean")
    out = m(_t(np.log(P)), _t(T01))
    np.testing.assert_allclose(out.numpy(), (T01 * (np.log(T01) - np.log(P))).sum() / N, rtol=1e-10)


def test_cross_entropy_probability_targets():
    probs = np.exp(_log_softmax(Y))
    out = L.CrossEntropyLoss()(_t(X), _t(probs))
    np.testing.assert_allclose(out.numpy(), -(probs * _log_softmax(X)).sum(1).mean(), rtol=1e-10)


def test_gaussian_nll_homoscedastic_var():
    v = VAR[:, :1]
    out = L.GaussianNLLLoss()(_t(X), _t(Y), _t(v))
    np.testing.assert_allclose(out.numpy(), (0.5 * (np.log(v) + (X - Y) ** 2 / v)).mean(), rtol=1e-10)


@pytest.mark.parametrize("module,text", [
    (L.L1Loss(), "L1Loss()"), (L.MSELoss(reduction="sum"), "MSELoss()"), (L.CrossEntropyLoss(), "CrossEntropyLoss()"),
    (L.BCEWithLogitsLoss(pos_weight=torch.ones(2)), "BCEWithLogitsLoss()"), (L.TripletMarginLoss(), "TripletMarginLoss()"),
    (L.NLLLoss(weight=torch.ones(3)), "NLLLoss()"), (L.GaussianNLLLoss(), "GaussianNLLLoss()"),
])
def test_repr(module, text):
    assert repr(module) == text


def test_weighted_losses_register_buffers():
    w = torch.tensor([1.0, 2.0, 3.0])
    ce = L.CrossEntropyLoss(weight=w)
    assert list(ce.state_dict()) == ["weight"] and ce.weight is w
    assert dict(ce.named_buffers())["weight"] is w and list(ce.parameters()) == []
    assert list(L.CrossEntropyLoss().state_dict()) == [] and L.CrossEntropyLoss().weight is None
    bce = L.BCEWithLogitsLoss(weight=w, pos_weight=torch.tensor([0.5, 1.0, 1.5]))
    assert list(bce.state_dict()) == ["weight", "pos_weight"]
    assert list(L.BCEWithLogitsLoss(pos_weight=w).state_dict()) == ["pos_weight"]
    for cls in (L.NLLLoss, L.BCELoss, L.MultiLabelSoftMarginLoss):
        assert list(cls(weight=w).state_dict()) == ["weight"]
    assert list(L.MultiMarginLoss(weight=w).state_dict()) == ["weight"]
    assert isinstance(ce, L._WeightedLoss) and isinstance(bce, L._Loss) and not isinstance(bce, L._WeightedLoss)
    # Buffers follow dtype conversion; the loaded weight replaces the old values.
    assert ce.double().weight.dtype == torch.float64
    fresh = L.CrossEntropyLoss(weight=torch.zeros(3, dtype=torch.float64))
    fresh.load_state_dict(ce.state_dict())
    np.testing.assert_array_equal(fresh.weight.numpy(), [1.0, 2.0, 3.0])


@pytest.mark.parametrize("size_average,reduce,expected", [(None, None, "mean"), (False, None, "sum"),
                                                          (True, False, "none"), (None, True, "mean"),
                                                          (False, True, "sum")])
def test_legacy_size_average_reduce(size_average, reduce, expected):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        m = L.MSELoss(size_average=size_average, reduce=reduce, reduction="none" if expected != "none" else "mean")
        w = L.CrossEntropyLoss(size_average=size_average, reduce=reduce, reduction="sum")
    legacy = size_average is not None or reduce is not None
    if legacy:
        assert m.reduction == expected and w.reduction == expected
        assert any("size_average and reduce args will be deprecated" in str(r.message) for r in rec)
    else:
        assert m.reduction == "none" and w.reduction == "sum" and not rec


def test_defaults():
    ce = L.CrossEntropyLoss()
    assert (ce.ignore_index, ce.reduction, ce.label_smoothing) == (-100, "mean", 0.0)
    t = L.TripletMarginLoss()
    assert (t.margin, t.p, t.eps, t.swap) == (1.0, 2.0, 1e-6, False)
    p = L.PoissonNLLLoss()
    assert (p.log_input, p.full, p.eps) == (True, False, 1e-8)
    g = L.GaussianNLLLoss()
    assert (g.full, g.eps, g.reduction) == (False, 1e-6, "mean")
    assert L.HuberLoss().delta == 1.0 and L.SmoothL1Loss().beta == 1.0 and L.HingeEmbeddingLoss().margin == 1.0
    mm = L.MultiMarginLoss()
    assert (mm.p, mm.margin, mm.weight) == (1, 1.0, None)
    assert L.KLDivLoss().log_target is False


def test_constructor_errors():
    with pytest.raises(ValueError, match="only p == 1 and p == 2 supported"):
        L.MultiMarginLoss(p=3)
    with pytest.raises(ValueError, match="expected weight to be None or 1D tensor, got 2D instead"):
        L.MultiMarginLoss(weight=torch.ones(2, 2))
    with pytest.raises(ValueError, match="expected margin to be greater than 0, got 0.0 instead"):
        L.TripletMarginLoss(margin=0.0)
    with pytest.raises(TypeError):
        L.GaussianNLLLoss(True)  # keyword-only


def test_invalid_reduction_raises_on_call():
    m = L.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        m(torch.zeros(2), torch.zeros(2))


def test_nll_loss2d_is_deprecated_alias():
    with pytest.warns(UserWarning, match="NLLLoss2d has been deprecated"):
        m = L.NLLLoss2d()
    x = _log_softmax(X)
    np.testing.assert_allclose(m(_t(x), _t(CLS)).numpy(), ref_nll(x, CLS), rtol=1e-10)


def test_gradcheck_through_modules():
    x = torch.tensor(rng.normal(size=(3, 3)), requires_grad=True)
    ce = L.CrossEntropyLoss(weight=_t(W), label_smoothing=0.1)
    assert torch.autograd.gradcheck(lambda x: ce(x, _t(CLS[:3])), (x,))
    bce = L.BCEWithLogitsLoss(pos_weight=_t(W))
    assert torch.autograd.gradcheck(lambda x: bce(x, _t(T01[:3])), (x,))
    trip = L.TripletMarginLoss(margin=2.0)
    assert torch.autograd.gradcheck(lambda x: trip(x, _t(POS[:3]), _t(NEG[:3])), (x,))
