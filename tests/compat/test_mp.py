"""Compatibility programs for torch.multiprocessing (tests/compat/progs/mp_*.py): the DDP tutorial's
``mp.spawn`` pattern with the gloo (zmq) backend, and Hogwild training of a ``share_memory()`` model.

Each program runs as a script in its own session (its children included); ``finally`` kills that process
group by id. Expectations are computed here independently: a NumPy gradient descent on the same data for
DDP, a nearest-centroid classifier on the same blobs for Hogwild.
"""

import numpy as np
import pytest
from compat_support import run_program


pytestmark = pytest.mark.timeout(150)


def _numpy_ddp(init: dict, world: int, steps: int, lr: float = 0.1):
    """Full-batch SGD on the union of the ranks' shards: what averaging equal-sized shards' gradients gives."""
    w_true = np.array([[1.0, -1.0, 0.5, 2.0], [0.0, 3.0, -2.0, 1.0]], dtype=np.float32)
    shards = []
    for rank in range(world):
        x = np.random.default_rng(rank).standard_normal((32, 4)).astype(np.float32)
        shards.append((x.astype(np.float64), (x @ w_true.T + 0.5).astype(np.float32).astype(np.float64)))
    w = np.array(init["net.weight"], dtype=np.float64)
    b = np.array(init["net.bias"], dtype=np.float64)
    for _ in range(steps):
        gw, gb = np.zeros_like(w), np.zeros_like(b)
        for x, y in shards:
            r = x @ w.T + b - y
            gw += 2 * r.T @ x / r.size / world
            gb += 2 * r.sum(0) / r.size / world
        w, b = w - lr * gw, b - lr * gb
    return w, b


def test_ddp_tutorial_spawn_with_gloo():
    out = run_program("mp_ddp_spawn.py", OMP_NUM_THREADS="1")
    r0, r1 = out["ranks"]
    assert (r0["rank"], r1["rank"]) == (0, 1)
    assert r0["init"] == r1["init"] and r0["final"] == r1["final"]  # DDP keeps the replicas identical
    w, b = _numpy_ddp(r0["init"], out["world_size"], out["steps"])
    np.testing.assert_allclose(r0["final"]["net.weight"], w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r0["final"]["net.bias"], b, rtol=1e-4, atol=1e-5)
    for r in (r0, r1):
        assert r["losses"][-1] < 0.2 * r["losses"][0]


def _nearest_centroid_accuracy() -> float:
    # The program's blobs: 3 centres drawn with seed 12345 (scale 1.5, 20 dims), unit noise; test set seed 2.
    centers = np.random.default_rng(12345).normal(scale=1.5, size=(3, 20)).astype(np.float32)
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, size=300)
    x = centers[labels] + rng.normal(size=(300, 20)).astype(np.float32)
    pred = np.argmin(((x[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
    return float((pred == labels).mean())


def test_hogwild_share_memory_with_processes():
    out = run_program("mp_hogwild.py", "--num-processes", "2", "--epochs", "2", OMP_NUM_THREADS="1")
    assert out["start_method"] == "fork" and out["shared"] and out["exitcodes"] == [0, 0]
    # Only the workers trained: the main process sees their updates through the shared parameters.
    assert out["weights_changed"]
    assert out["accuracy_before"] < 0.7
    assert out["accuracy_after"] >= _nearest_centroid_accuracy() - 0.05
