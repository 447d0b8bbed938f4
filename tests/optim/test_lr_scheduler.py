"""Learning-rate schedulers: lr sequences against closed forms written from PyTorch's documentation."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import disttorch
from disttorch.optim import SGD, Adam
from disttorch.optim import lr_scheduler as S

BASE = [0.1, 0.4]  # one lr per param group
N = 30


def make_opt(cls=SGD, **kwargs):
    params = [disttorch.zeros(2, requires_grad=True) for _ in BASE]
    if cls is SGD:
        kwargs.setdefault("momentum", 0.9)
    return cls([{"params": [p], "lr": lr} for p, lr in zip(params, BASE)], lr=0.05, **kwargs)


def lrs_over(sched, opt, n=N):
    """The lr of every group at epochs 0..n (epoch 0 is the value after construction)."""
    out = [list(sched.get_last_lr())]
    for _ in range(n):
        opt.step()
        sched.step()
        out.append(list(sched.get_last_lr()))
        assert out[-1] == [g["lr"] for g in opt.param_groups]
    return np.array(out)


def expected(fn, n=N):
    return np.array([[fn(base, e) for base in BASE] for e in range(n + 1)])


CASES = {
    "StepLR": (lambda o: S.StepLR(o, step_size=7, gamma=0.5), lambda b, e: b * 0.5 ** (e // 7)),
    "MultiStepLR": (lambda o: S.MultiStepLR(o, milestones=[3, 10, 10, 25], gamma=0.3),
                    lambda b, e: b * 0.3 ** sum(m <= e for m in [3, 10, 10, 25])),
    "ExponentialLR": (lambda o: S.ExponentialLR(o, gamma=0.93), lambda b, e: b * 0.93 ** e),
    "CosineAnnealingLR": (lambda o: S.CosineAnnealingLR(o, T_max=9, eta_min=0.001),
                          lambda b, e: 0.001 + (b - 0.001) * (1 + math.cos(math.pi * e / 9)) / 2),
    "LambdaLR": (lambda o: S.LambdaLR(o, lambda e: 1 / (1 + e) + 0.05 * (e % 3)),
                 lambda b, e: b * (1 / (1 + e) + 0.05 * (e % 3))),
    "MultiplicativeLR": (lambda o: S.MultiplicativeLR(o, lambda e: 0.95 if e % 2 else 0.9),
                         lambda b, e: b * math.prod(0.95 if k % 2 else 0.9 for k in range(1, e + 1))),
    "LinearLR": (lambda o: S.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=12),
                 lambda b, e: b * (0.25 + (0.9 - 0.25) * min(e, 12) / 12)),
    "ConstantLR": (lambda o: S.ConstantLR(o, factor=0.4, total_iters=6), lambda b, e: b * (0.4 if e < 6 else 1.0)),
    "PolynomialLR": (lambda o: S.PolynomialLR(o, total_iters=17, power=2.5),
                     lambda b, e: b * (1 - min(e, 17) / 17) ** 2.5),
    "CosineAnnealingWarmRestarts": (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.01),
                                    lambda b, e: 0.01 + (b - 0.01) * (1 + math.cos(math.pi * _t_cur(e, 5, 2)[0]
                                                                                  / _t_cur(e, 5, 2)[1])) / 2),
    "SequentialLR": (lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.1, 1.0, 5), S.ExponentialLR(o, 0.9)], [5]),
                     lambda b, e: b * (0.1 + 0.9 * e / 5) if e < 5 else b * 0.9 ** (e - 5)),
    "ChainedScheduler": (lambda o: S.ChainedScheduler([S.ConstantLR(o, 0.5, 4), S.ExponentialLR(o, 0.9)]),
                         lambda b, e: b * (0.5 if e < 4 else 1.0) * 0.9 ** e),
}


def _t_cur(epoch: float, t0: int, t_mult: int):
    """(T_cur, T_i) of warm restarts at ``epoch``: cycles of length t0, t0*t_mult, t0*t_mult**2, ..."""
    length = t0
    while epoch >= length:
        epoch -= length
        length *= t_mult
    return epoch, length


@pytest.mark.parametrize("name", sorted(CASES))
def test_lr_sequence_matches_closed_form(name):
    build, formula = CASES[name]
    opt = make_opt()
    got = lrs_over(build(opt), opt)
    np.testing.assert_allclose(got, expected(formula), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", sorted(set(CASES) - {"CosineAnnealingWarmRestarts"}))
def test_state_dict_round_trip(name):
    build, _ = CASES[name]
    opt = make_opt()
    sched = build(opt)
    straight = lrs_over(sched, opt)
    opt1 = make_opt()
    sched1 = build(opt1)
    lrs_over(sched1, opt1, 11)
    sd = sched1.state_dict()
    assert "optimizer" not in sd and sd.get("last_epoch", 11) == 11
    opt2 = make_opt()
    sched2 = build(opt2)
    opt2.load_state_dict(opt1.state_dict())  # the usual resume order: build both, then load both
    sched2.load_state_dict(sd)
    for group, lr in zip(opt2.param_groups, sched1.get_last_lr()):
        assert group["lr"] == lr
    rest = lrs_over(sched2, opt2, N - 11)
    np.testing.assert_array_equal(rest, straight[11:])


def test_lambda_state_dict_keeps_only_non_lambda_state():
    class Warmup:
        def __init__(self, n):
            self.n = n

        def __call__(self, e):
            return min(1.0, (e + 1) / self.n)

    opt = make_opt()
    sched = S.LambdaLR(opt, [lambda e: 0.5 ** e, Warmup(4)])
    sd = sched.state_dict()
    assert sd["lr_lambdas"] == [None, {"n": 4}] and "optimizer" not in sd
    sd["lr_lambdas"][1]["n"] = 10
    opt2 = make_opt()
    sched2 = S.LambdaLR(opt2, [lambda e: 0.5 ** e, Warmup(4)])
    sched2.load_state_dict(sd)
    assert sched2.lr_lambdas[1].n == 10 and sd["lr_lambdas"] == [None, {"n": 10}]


def test_construction_sets_initial_lr_and_last_epoch():
    opt = make_opt()
    sched = S.StepLR(opt, 3)
    assert [g["initial_lr"] for g in opt.param_groups] == BASE and sched.base_lrs == BASE
    assert sched.last_epoch == 0 and sched._step_count == 1 and sched.get_last_lr() == BASE
    with pytest.raises(KeyError, match="param 'initial_lr' is not specified in param_groups\\[0\\]"):
        S.StepLR(make_opt(), 3, last_epoch=4)
    with pytest.raises(TypeError, match="list is not an Optimizer"):
        S.StepLR([], 3)
    assert S._LRScheduler is not None and issubclass(S.StepLR, S.LRScheduler)
    assert issubclass(S._LRScheduler, S.LRScheduler)


def test_warns_when_scheduler_steps_before_optimizer():
    opt = make_opt()
    sched = S.ExponentialLR(opt, 0.5)
    with pytest.warns(UserWarning, match="Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`"):
        sched.step()
    opt = make_opt()
    sched = S.ExponentialLR(opt, 0.5)
    opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.step()
    with pytest.warns(UserWarning, match="please use `get_last_lr\\(\\)`"):
        sched.get_lr()


def test_step_with_epoch_uses_the_closed_form():
    opt = make_opt()
    sched = S.StepLR(opt, step_size=3, gamma=0.1)
    opt.step()
    with pytest.warns(UserWarning, match="The epoch parameter in `scheduler.step\\(\\)` was not necessary"):
        sched.step(7)
    np.testing.assert_allclose(sched.get_last_lr(), [b * 0.01 for b in BASE])
    assert sched.last_epoch == 7


def test_cosine_warm_restarts_fractional_epochs():
    opt = make_opt()
    sched = S.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2, eta_min=0.0)
    opt.step()
    for k in range(40):
        epoch = k * 0.37
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sched.step(epoch)
        t_cur, t_i = _t_cur(epoch, 3, 2)
        want = [b * (1 + math.cos(math.pi * t_cur / t_i)) / 2 for b in BASE]
        np.testing.assert_allclose(sched.get_last_lr(), want, rtol=1e-10, atol=1e-15)
        assert sched.last_epoch == math.floor(epoch)
    with pytest.raises(ValueError, match="Expected non-negative epoch, but got -1"):
        sched.step(-1)


def _one_cycle(step, total, max_lr, pct, div, final_div, three_phase, cos, lo_m=0.85, hi_m=0.95):
    """(lr, momentum) of the 1cycle policy at ``step``, from the documented phase boundaries."""
    init, minimum = max_lr / div, max_lr / div / final_div
    anneal = (lambda a, b, p: b + (a - b) / 2 * (1 + math.cos(math.pi * p))) if cos else (
        lambda a, b, p: a + (b - a) * p)
    up = pct * total - 1
    if three_phase:
        phases = [(up, init, max_lr, hi_m, lo_m), (2 * pct * total - 2, max_lr, init, lo_m, hi_m),
                  (total - 1, init, minimum, hi_m, hi_m)]
    else:
        phases = [(up, init, max_lr, hi_m, lo_m), (total - 1, max_lr, minimum, lo_m, hi_m)]
    start = 0.0
    for i, (end, lr0, lr1, m0, m1) in enumerate(phases):
        if step <= end or i == len(phases) - 1:
            p = (step - start) / (end - start)
            return anneal(lr0, lr1, p), anneal(m0, m1, p)
        start = end


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("cos", [True, False])
@pytest.mark.parametrize("cls", [SGD, Adam])
def test_one_cycle_lr_and_momentum(three_phase, cos, cls):
    opt = make_opt(cls)
    sched = S.OneCycleLR(opt, max_lr=[1.0, 2.0], total_steps=N, pct_start=0.25, three_phase=three_phase,
                         anneal_strategy="cos" if cos else "linear", div_factor=10.0, final_div_factor=100.0)
    for step in range(N):
        for group, max_lr in zip(opt.param_groups, [1.0, 2.0]):
            lr, mom = _one_cycle(step, N, max_lr, 0.25, 10.0, 100.0, three_phase, cos)
            assert group["lr"] == pytest.approx(lr, rel=1e-12)
            got_mom = group["betas"][0] if cls is Adam else group["momentum"]
            assert got_mom == pytest.approx(mom, rel=1e-12)
            if cls is Adam:
                assert group["betas"][1] == 0.999
        opt.step()
        sched.step()
    with pytest.raises(ValueError, match=f"Tried to step {N + 1} times. The specified number of total steps is {N}"):
        sched.step()


def test_one_cycle_errors():
    opt = make_opt()
    with pytest.raises(ValueError, match="You must define either total_steps OR"):
        S.OneCycleLR(opt, 1.0)
    with pytest.raises(ValueError, match="Expected float between 0 and 1 pct_start, but got 1.5"):
        S.OneCycleLR(opt, 1.0, total_steps=10, pct_start=1.5)
    with pytest.raises(ValueError, match="anneal_strategy must be one of 'cos' or 'linear'"):
        S.OneCycleLR(opt, 1.0, total_steps=10, anneal_strategy="exp")
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        S.OneCycleLR(disttorch.optim.Adagrad([disttorch.zeros(1, requires_grad=True)]), 1.0, total_steps=10)
    sched = S.OneCycleLR(opt, 1.0, epochs=3, steps_per_epoch=4)
    assert sched.total_steps == 12


def _triangular(it, step, base, top, mode, gamma=1.0):
    """The CLR policy of Smith (2017) as PyTorch's CyclicLR docs give it, for equal up/down half-cycles."""
    cycle = math.floor(1 + it / (2 * step))
    x = abs(it / step - 2 * cycle + 1)
    scale = {"triangular": 1.0, "triangular2": 1 / 2 ** (cycle - 1), "exp_range": gamma ** it}[mode]
    return max(0.0, 1 - x) * scale


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
@pytest.mark.parametrize("cls", [SGD, Adam])
def test_cyclic_lr_and_momentum(mode, cls):
    opt = make_opt(cls)
    sched = S.CyclicLR(opt, base_lr=[0.01, 0.02], max_lr=0.1, step_size_up=4, mode=mode, gamma=0.9,
                       base_momentum=0.8, max_momentum=0.9)
    for it in range(N):
        h = _triangular(it, 4, 0, 1, mode, 0.9)
        for group, base in zip(opt.param_groups, [0.01, 0.02]):
            assert group["lr"] == pytest.approx(base + (0.1 - base) * h, rel=1e-12)
            got_mom = group["betas"][0] if cls is Adam else group["momentum"]
            assert got_mom == pytest.approx(0.9 - 0.1 * h, rel=1e-12)
        opt.step()
        sched.step()


def test_cyclic_asymmetric_and_custom_scale_fn_state_dict():
    opt = make_opt()
    sched = S.CyclicLR(opt, 0.0, 1.0, step_size_up=2, step_size_down=6, scale_fn=lambda c: 1.0,
                       cycle_momentum=False)
    got = [opt.param_groups[0]["lr"]]
    for _ in range(9):
        opt.step()
        sched.step()
        got.append(opt.param_groups[0]["lr"])
    np.testing.assert_allclose(got, [0, 0.5, 1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6, 0, 0.5], atol=1e-12)
    sd = sched.state_dict()
    assert sd["_scale_fn_custom"] is None and "_scale_fn_ref" not in sd
    with pytest.raises(ValueError, match="mode is invalid and scale_fn is None"):
        S.CyclicLR(opt, 0.0, 1.0, mode="bad")


def test_reduce_lr_on_plateau_min_mode():
    opt = make_opt()
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=2, threshold=0.1, threshold_mode="rel", min_lr=[0.0, 0.15])
    metrics = [1.0, 0.95, 0.92, 0.91, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    lrs = []
    for m in metrics:
        opt.step()
        sched.step(m)
        lrs.append(sched.get_last_lr())
    # 0.95, 0.92, 0.91 are within 10% of 1.0: bad epochs 1, 2, 3 -> reduce at the 4th metric;
    # 0.5 improves; then 3 more bad epochs reduce again (group 1 is clipped at min_lr 0.15)
    want = [[0.1, 0.4]] * 3 + [[0.05, 0.2]] * 4 + [[0.025, 0.15]] * 3 + [[0.0125, 0.15]] * 2
    np.testing.assert_allclose(lrs, want)
    assert sched.best == 0.5 and sched.last_epoch == len(metrics)


def test_reduce_lr_on_plateau_max_abs_cooldown_and_state_dict():
    opt = make_opt()
    sched = S.ReduceLROnPlateau(opt, mode="max", factor=0.1, patience=0, threshold=0.05, threshold_mode="abs",
                                cooldown=2, min_lr=0.001, eps=1e-8)
    lrs = []
    for m in [1.0, 1.02, 1.2, 1.2, 1.2, 1.2, 1.3]:
        opt.step()
        sched.step(m)
        lrs.append(sched.get_last_lr()[0])
    # 1.02 is not > 1.0 + 0.05: reduce; cooldown 2 ignores the next two bad epochs; 1.2 improves; then reduce
    np.testing.assert_allclose(lrs, [0.1, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001])
    sd = sched.state_dict()
    assert "optimizer" not in sd and sd["mode"] == "max" and sd["cooldown_counter"] == 0
    sched2 = S.ReduceLROnPlateau(make_opt())
    sched2.load_state_dict(sd)
    assert sched2._is_better(1.4, 1.3) and not sched2._is_better(1.34, 1.3)


def test_reduce_lr_on_plateau_errors():
    opt = make_opt()
    with pytest.raises(ValueError, match="Factor should be < 1.0."):
        S.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode avg is unknown!"):
        S.ReduceLROnPlateau(opt, mode="avg")
    with pytest.raises(ValueError, match="threshold mode x is unknown!"):
        S.ReduceLROnPlateau(opt, threshold_mode="x")
    with pytest.raises(ValueError, match="expected 2 min_lrs, got 1"):
        S.ReduceLROnPlateau(opt, min_lr=[0.1])


def test_sequential_lr_three_phases_and_state_dict():
    opt = make_opt()
    sched = S.SequentialLR(opt, [S.ConstantLR(opt, 0.1, 3), S.StepLR(opt, 2, 0.5), S.CosineAnnealingLR(opt, 5)],
                           milestones=[3, 9])
    got = lrs_over(sched, opt, 20)[:, 0]

    def want(e):
        if e < 3:
            return 0.01
        if e < 9:
            return 0.1 * 0.5 ** ((e - 3) // 2)
        return 0.1 * (1 + math.cos(math.pi * (e - 9) / 5)) / 2

    np.testing.assert_allclose(got, [want(e) for e in range(21)], atol=1e-12)
    sd = sched.state_dict()
    assert len(sd["_schedulers"]) == 3 and "optimizer" not in sd and sd["last_epoch"] == 20


def test_chained_and_sequential_errors():
    opt, other = make_opt(), make_opt()
    with pytest.raises(ValueError, match="expects at least one scheduler"):
        S.SequentialLR(opt, [], [])
    with pytest.raises(ValueError, match="number of milestones to be equal to 0"):
        S.SequentialLR(opt, [S.StepLR(opt, 2), S.StepLR(opt, 3)], [])
    with pytest.raises(ValueError, match="expects all schedulers to belong to the same optimizer"):
        S.ChainedScheduler([S.StepLR(opt, 2), S.StepLR(other, 2)])
    with pytest.raises(ValueError, match="does not support `ReduceLROnPlateau`"):
        S.ChainedScheduler([S.ReduceLROnPlateau(opt)])


def test_constructor_errors():
    opt = make_opt()
    with pytest.raises(ValueError, match="Constant multiplicative factor expected to be between 0 and 1."):
        S.ConstantLR(opt, factor=1.5)
    with pytest.raises(ValueError, match="Starting multiplicative factor expected to be greater than 0"):
        S.LinearLR(opt, start_factor=0)
    with pytest.raises(ValueError, match="Ending multiplicative factor expected to be between 0 and 1."):
        S.LinearLR(opt, end_factor=2)
    with pytest.raises(ValueError, match="Expected positive integer T_0, but got 0"):
        S.CosineAnnealingWarmRestarts(opt, 0)
    with pytest.raises(ValueError, match="Expected integer T_mult >= 1, but got 0"):
        S.CosineAnnealingWarmRestarts(opt, 2, T_mult=0)
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
        S.LambdaLR(opt, [lambda e: 1.0])
    with pytest.raises(TypeError, match="lr_lambda should be a function, but got float"):
        S.MultiplicativeLR(opt, 0.5)


def test_module_is_importable_like_pytorch():
    import disttorch.optim.lr_scheduler as mod

    assert mod is disttorch.optim.lr_scheduler
    for name in mod.__all__:
        assert isinstance(getattr(mod, name), type)
