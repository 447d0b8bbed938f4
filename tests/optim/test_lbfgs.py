"""LBFGS: Rosenbrock minimisation, an independent NumPy re-implementation of PyTorch's iteration, state, errors."""
from __future__ import annotations

import numpy as np
import pytest

import disttorch
from disttorch.optim import LBFGS

A = np.array([1.0, 2.0, 0.5, 3.0, 1.5, 0.8])
C = np.array([0.3, -1.0, 2.0, 0.5, -0.4, 1.2])


def objective(x):
    """A smooth, strictly convex test function: a diagonal quadratic plus a quartic."""
    return (A * (x - C) ** 2).sum() + 0.1 * (x ** 4).sum()


def objective_np(x):
    return float(np.sum(A * (x - C) ** 2) + 0.1 * np.sum(x ** 4)), 2 * A * (x - C) + 0.4 * x ** 3


def rosenbrock(x):
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def reference_lbfgs(fun, x, n_steps, lr=1.0, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                    tolerance_change=1e-9, history_size=100):
    """PyTorch's L-BFGS iteration without line search (minFunc's two-loop recursion), written independently."""
    max_eval = max_iter * 5 // 4 if max_eval is None else max_eval
    x = x.astype(np.float64).copy()
    total_iter, s_hist, y_hist = 0, [], []
    d = t = prev_g = None
    h_diag = 1.0
    losses = []
    for _ in range(n_steps):
        loss, g = fun(x)
        losses.append(loss)
        evals = 1
        if np.abs(g).max() <= tolerance_grad:
            continue
        for it in range(1, max_iter + 1):
            total_iter += 1
            if total_iter == 1:
                d = -g
            else:
                y, s = g - prev_g, d * t
                if y @ s > 1e-10:
                    if len(s_hist) == history_size:
                        s_hist.pop(0)
                        y_hist.pop(0)
                    s_hist.append(s)
                    y_hist.append(y)
                    h_diag = (y @ s) / (y @ y)
                q = -g
                alphas = []
                for s_i, y_i in zip(reversed(s_hist), reversed(y_hist)):
                    a = (s_i @ q) / (y_i @ s_i)
                    q = q - a * y_i
                    alphas.append(a)
                r = h_diag * q
                for (s_i, y_i), a in zip(zip(s_hist, y_hist), reversed(alphas)):
                    r = r + (a - (y_i @ r) / (y_i @ s_i)) * s_i
                d = r
            prev_g, prev_loss = g.copy(), loss
            t = min(1.0, 1.0 / np.abs(g).sum()) * lr if total_iter == 1 else lr
            if g @ d > -tolerance_change:
                break
            x = x + t * d
            if it == max_iter:
                break
            loss, g = fun(x)
            evals += 1
            if evals >= max_eval or np.abs(g).max() <= tolerance_grad or np.abs(d * t).max() <= tolerance_change \
                    or abs(loss - prev_loss) < tolerance_change:
                break
    return x, losses


def minimise(x, opt, fn, n_steps):
    def closure():
        opt.zero_grad()
        loss = fn(x)
        loss.backward()
        return loss

    return [float(opt.step(closure)) for _ in range(n_steps)]


@pytest.mark.parametrize("kwargs", [dict(), dict(max_iter=6, history_size=3), dict(lr=0.5, max_iter=4, max_eval=3),
                                    dict(tolerance_change=1e-3, max_iter=50)])
def test_matches_reference_without_line_search(kwargs):
    x0 = np.array([1.5, 0.2, -0.3, 1.0, 0.7, -1.1])
    x = disttorch.tensor(x0, requires_grad=True)
    losses = minimise(x, LBFGS([x], **kwargs), objective, 3)
    expected, ref_losses = reference_lbfgs(objective_np, x0, 3, **kwargs)
    np.testing.assert_allclose(x.detach().numpy(), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-9)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("dtype", [disttorch.float64, disttorch.float32])
def test_minimises_rosenbrock(line_search_fn, dtype):
    x = disttorch.tensor([-1.5, 2.0], dtype=dtype, requires_grad=True)
    opt = LBFGS([x], max_iter=100, history_size=10, line_search_fn=line_search_fn)
    losses = minimise(x, opt, rosenbrock, 20)
    np.testing.assert_allclose(x.detach().numpy(), [1.0, 1.0], atol=1e-3)
    assert losses[0] == pytest.approx(float(rosenbrock(disttorch.tensor([-1.5, 2.0]))))
    assert float(rosenbrock(x)) < 1e-7
    assert x.dtype == dtype


def test_strong_wolfe_uses_fewer_iterations_and_respects_max_eval():
    x = disttorch.tensor([-1.2, 1.0, 0.5, -0.5], requires_grad=True, dtype=disttorch.float64)
    opt = LBFGS([x], max_iter=10, max_eval=12, line_search_fn="strong_wolfe")
    minimise(x, opt, rosenbrock, 1)
    st = opt.state[x]
    assert 1 <= st["n_iter"] <= 10 and st["func_evals"] <= 12 + 25  # the last line search may run past max_eval
    assert float(rosenbrock(x)) < float(rosenbrock(disttorch.tensor([-1.2, 1.0, 0.5, -0.5], dtype=disttorch.float64)))


def test_several_parameters_and_state_layout():
    x0 = np.array([1.5, 0.2, -0.3, 1.0, 0.7, -1.1])
    a = disttorch.tensor(x0[:2].reshape(1, 2), requires_grad=True)
    b = disttorch.tensor(x0[2:].reshape(2, 2), requires_grad=True)
    opt = LBFGS([a, b], max_iter=5, history_size=2)
    minimise(None, opt, lambda _: objective(disttorch.cat([a.reshape(-1), b.reshape(-1)])), 2)
    expected = reference_lbfgs(objective_np, x0, 2, max_iter=5, history_size=2)[0]
    np.testing.assert_allclose(np.concatenate([a.detach().numpy().ravel(), b.detach().numpy().ravel()]), expected,
                               rtol=1e-9)
    sd = opt.state_dict()
    assert list(sd["state"]) == [0]
    st = sd["state"][0]
    assert sorted(st) == sorted(["func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag",
                                 "prev_flat_grad", "prev_loss", "al"])
    assert st["n_iter"] == 10 and len(st["old_dirs"]) == 2 and len(st["al"]) == 2
    assert isinstance(st["d"], disttorch.Tensor) and st["d"].shape == (6,)
    assert all(isinstance(r, disttorch.Tensor) and r.dim() == 0 for r in st["ro"])


def test_state_dict_resume_gives_identical_steps():
    x0 = np.array([1.5, 0.2, -0.3, 1.0, 0.7, -1.1])
    straight = disttorch.tensor(x0, requires_grad=True)
    minimise(straight, LBFGS([straight], max_iter=3, history_size=4), objective, 4)
    first = disttorch.tensor(x0, requires_grad=True)
    opt1 = LBFGS([first], max_iter=3, history_size=4)
    minimise(first, opt1, objective, 2)
    resumed = disttorch.tensor(first.detach().numpy(), requires_grad=True)
    opt2 = LBFGS([resumed], max_iter=3, history_size=4)
    opt2.load_state_dict(opt1.state_dict())
    minimise(first, opt1, objective, 1)  # the source keeps going: the loaded state must not share its memory
    minimise(resumed, opt2, objective, 2)
    np.testing.assert_array_equal(resumed.detach().numpy(), straight.detach().numpy())


def test_complex_parameter_is_optimised_as_its_real_view():
    z = disttorch.tensor(np.array([1.0 + 2.0j, -0.5 + 0.3j]), requires_grad=True)
    opt = LBFGS([z], line_search_fn="strong_wolfe")
    target = disttorch.tensor(np.array([0.2 - 0.1j, 0.4 + 0.7j]))
    minimise(z, opt, lambda v: ((v - target).abs() ** 2).sum(), 3)
    np.testing.assert_allclose(z.detach().numpy(), [0.2 - 0.1j, 0.4 + 0.7j], atol=1e-6)


def test_already_optimal_returns_after_one_evaluation():
    x = disttorch.tensor(C.copy(), requires_grad=True)
    opt = LBFGS([x])
    minimise(x, opt, lambda v: (A * (v - C) ** 2).sum(), 1)
    assert opt.state[x]["func_evals"] == 1 and opt.state[x]["n_iter"] == 0


def test_errors_and_defaults():
    w = disttorch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        LBFGS([w], lr=-1)
    with pytest.raises(ValueError, match="LBFGS doesn't support per-parameter options"):
        LBFGS([{"params": [w]}, {"params": [disttorch.zeros(1, requires_grad=True)]}])
    opt = LBFGS([w], max_iter=8)
    assert opt.defaults == dict(lr=1, max_iter=8, max_eval=10, tolerance_grad=1e-7, tolerance_change=1e-9,
                                history_size=100, line_search_fn=None)
    with pytest.raises(TypeError):
        opt.step()
    bad = LBFGS([w], line_search_fn="armijo")

    def closure():
        bad.zero_grad()
        loss = ((w - 1) ** 2).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="only 'strong_wolfe' is supported"):
        bad.step(closure)
