"""Optional parity with PyTorch for torch.func, nn.attention (bias, flex_attention) and nn.utils.parametrizations.

Skipped when PyTorch is not installed; `make parity` runs it in the bench venv.
"""
import warnings

import numpy as np
import pytest

import disttorch

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)


def _both(fn, *arrays):
    """``fn(L, *tensors)`` for L = disttorch and torch, as float64 NumPy arrays."""
    out = []
    for L in (disttorch, torch):
        res = fn(L, *[L.tensor(a) for a in arrays])
        out.append(res.detach().numpy() if hasattr(res, "detach") else np.asarray(res))
    return out


def _func(L):
    import importlib

    return importlib.import_module(L.__name__ + ".func")


@pytest.mark.parametrize("name", ["per_sample_grad", "jacrev_jacfwd", "hessian", "jvp", "nested_vmap"])
def test_func_transforms(name):
    x, y, w = RNG.standard_normal((5, 3)), RNG.standard_normal(5), RNG.standard_normal(3)
    cases = {
        "per_sample_grad": (lambda L, xs, ys, ww: _func(L).vmap(_func(L).grad(
            lambda p, a, b: ((p * a).sum().tanh() - b) ** 2), in_dims=(None, 0, 0))(ww, xs, ys), [x, y, w]),
        "jacrev_jacfwd": (lambda L, ww: _func(L).jacrev(lambda v: v.sin() * v.sum())(ww)
                          + _func(L).jacfwd(lambda v: v.exp() / v.norm())(ww), [w]),
        "hessian": (lambda L, ww: _func(L).hessian(lambda v: (v ** 3).sum() * v[0] + v.prod())(ww), [w]),
        "jvp": (lambda L, ww, xs: _func(L).jvp(lambda v: (xs @ v).tanh(), (ww,), (ww * 2,))[1], [w, x]),
        "nested_vmap": (lambda L, xs, ww: _func(L).vmap(_func(L).vmap(lambda a, b: a * b.exp(), in_dims=(0, None)),
                                                          in_dims=(None, 0))(ww, xs), [x, w]),
    }
    fn, arrays = cases[name]
    ours, theirs = _both(fn, *arrays)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("lq,lk", [(3, 7), (7, 7), (7, 3)])
def test_causal_bias_variants(lq, lk):
    q, k, v = RNG.standard_normal((2, 2, lq, 4)), RNG.standard_normal((2, 2, lk, 4)), RNG.standard_normal((2, 2, lk, 4))

    def fn(L, qq, kk, vv):
        import importlib

        bias = importlib.import_module(L.__name__ + ".nn.attention.bias")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lr, ul = bias.causal_lower_right(lq, lk), bias.causal_upper_left(lq, lk)
        f = L.nn.functional.scaled_dot_product_attention
        return f(qq, kk, vv, attn_mask=lr) + 2 * f(qq, kk, vv, attn_mask=ul)

    ours, theirs = _both(fn, q, k, v)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_flex_attention_forward():
    q, k, v = RNG.standard_normal((1, 2, 5, 8)), RNG.standard_normal((1, 2, 6, 8)), RNG.standard_normal((1, 2, 6, 8))

    def fn(L, qq, kk, vv):
        import importlib

        fa = importlib.import_module(L.__name__ + ".nn.attention.flex_attention")
        bm = fa.create_block_mask(lambda b, h, i, j: (i >= j) | (j == 5), None, None, 5, 6, device="cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out, lse = fa.flex_attention(qq, kk, vv, score_mod=lambda s, b, h, i, j: s * (h + 1) - 0.1 * (i - j),
                                         block_mask=bm, return_lse=True)
        return L.cat([out.flatten(), lse.flatten()])

    ours, theirs = _both(fn, q, k, v)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["weight_norm", "spectral_norm", "orthogonal_householder", "orthogonal_cayley"])
def test_parametrizations_forward_and_gradients(kind):
    w0, x, g = RNG.standard_normal((5, 3)), RNG.standard_normal((4, 3)), RNG.standard_normal((4, 5))
    results = []
    for L in (disttorch, torch):
        import importlib

        pz = importlib.import_module(L.__name__ + ".nn.utils.parametrizations")
        lin = L.nn.Linear(3, 5).double()
        with L.no_grad():
            lin.weight.copy_(L.tensor(w0))
        if kind == "weight_norm":
            pz.weight_norm(lin)
        elif kind == "spectral_norm":
            pz.spectral_norm(lin)
            with L.no_grad():  # the same starting vectors in both frameworks
                lin.parametrizations.weight[0]._u.copy_(L.tensor(np.ones(5) / np.sqrt(5)))
                lin.parametrizations.weight[0]._v.copy_(L.tensor(np.ones(3) / np.sqrt(3)))
        else:
            pz.orthogonal(lin, orthogonal_map=kind.split("_")[1], use_trivialization=False)
        (lin(L.tensor(x)) * L.tensor(g)).sum().backward()
        grads = [p.grad.numpy().ravel() for _, p in sorted(lin.named_parameters())]
        results.append(np.concatenate([lin.weight.detach().numpy().ravel()] + grads))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-8, atol=1e-10)
