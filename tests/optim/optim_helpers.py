"""Helpers shared by the per-optimizer tests: random data, runs, state_dict resume and chunked-path checks."""
from __future__ import annotations

import itertools

import numpy as np

import disttorch
from disttorch.optim import _functional as F

SHAPES = [(4, 3), (5,), ()]
STEPS = 4


def data(seed=0, shapes=SHAPES, steps=STEPS):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) * rng.uniform(0.2, 3.0) for s in shapes] for _ in range(steps)]
    return params, grads


def make(arrays, dtype=np.float64):
    return [disttorch.tensor(np.asarray(a).astype(dtype), requires_grad=True) for a in arrays]


def run(opt, tensors, grads_seq, dtype=None):
    """Set each tensor's gradient (cast to ``dtype`` if given) and step, for every list of ``grads_seq``."""
    for grads in grads_seq:
        for t, g in zip(tensors, grads):
            t.grad = None if g is None else disttorch.tensor(np.asarray(g) if dtype is None else g.astype(dtype))
        opt.step()


def close(tensors, expected, rtol=1e-11, atol=1e-13):
    for t, e in zip(tensors, expected):
        got = t.detach().numpy() if isinstance(t, disttorch.Tensor) else t
        np.testing.assert_allclose(got.astype(np.float64), e, rtol=rtol, atol=atol)


def options(**grid):
    """Every combination of the option values in ``grid``, as kwargs dicts."""
    return [dict(zip(grid, vals)) for vals in itertools.product(*grid.values())]


def resume_is_bitwise(cls, kwargs, seed=11):
    """3 steps, state_dict, a fresh optimizer loads it and takes 3 more == 6 steps straight."""
    params, grads = data(seed, steps=6)
    straight = make(params)
    run(cls(straight, **kwargs), straight, grads)
    first = make(params)
    opt1 = cls(first, **kwargs)
    run(opt1, first, grads[:3])
    sd = opt1.state_dict()
    resumed = make([t.detach().numpy() for t in first])
    opt2 = cls(resumed, **kwargs)
    opt2.load_state_dict(sd)
    run(opt1, first, grads[:2])  # the source keeps going: the loaded state must not share its memory
    run(opt2, resumed, grads[3:])
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    return opt2


def paths_agree_bitwise(monkeypatch, cls, kwargs, dtype):
    """The chunked (in-cache) and whole-array paths of the update rule give identical bits."""
    params, grads = data(7, [(40, 9)])
    monkeypatch.setattr(F, "_CHUNK_BYTES", 256)
    results = []
    for fusable in (True, False):
        if not fusable:
            monkeypatch.setattr(F, "_fusable", lambda arrays: False)
        tensors = make(params, dtype)
        run(cls(tensors, **kwargs), tensors, grads, dtype)
        results.append(tensors[0].detach().numpy().copy())
    np.testing.assert_array_equal(results[0], results[1])
    assert not np.array_equal(results[0], params[0].astype(dtype))
