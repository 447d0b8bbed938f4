"""disttorch.ray.TorchTrainer and run() on a local Ray with 2 workers, against NumPy full-batch training."""
import os

import numpy as np
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]

N, D, STEPS, LR = 16, 3, 4, 0.1


def _data():
    rng = np.random.default_rng(7)
    return rng.standard_normal((N, D)).astype(np.float32), rng.standard_normal((N, 1)).astype(np.float32)


def _numpy_reference(steps=STEPS):
    """Full-batch SGD on mean squared error of a linear model, from the same initial weights (closed-form grads)."""
    x, y = _data()
    w = np.full((1, D), 0.5, np.float64)
    b = np.zeros(1, np.float64)
    for _ in range(steps):
        err = x @ w.T + b - y  # (N, 1)
        w -= LR * (2.0 / N) * (err.T @ x)
        b -= LR * (2.0 / N) * err.sum(0)
    return w, b


def _model():
    import disttorch
    from disttorch import nn

    model = nn.Linear(D, 1)
    with disttorch.no_grad():
        model.weight.fill_(0.5)
        model.bias.zero_()
    return model


def _train_loop(config):
    """Each rank trains on its half of the batch; DDP averages, so each step is the full-batch step."""
    import tempfile

    import ray.train

    import disttorch
    import disttorch.distributed as dist
    import disttorch.ray as dray
    from disttorch.utils.data import DataLoader, TensorDataset

    x, y = _data()
    loader = DataLoader(TensorDataset(disttorch.tensor(x), disttorch.tensor(y)), batch_size=N // 2)
    loader = dray.prepare_data_loader(loader)
    model = dray.prepare_model(_model())
    opt = disttorch.optim.SGD(model.parameters(), lr=LR)
    start = 0
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:  # resumed after a failure: continue from the last reported step
        with ckpt.as_directory() as d:
            state = disttorch.load(os.path.join(d, "model.pt"))
        model.module.load_state_dict(state["model"])
        start = int(state["step"])
    for step in range(start, config.get("steps", STEPS)):
        for xb, yb in loader:  # one batch per rank: the rank's half
            opt.zero_grad()
            loss = ((model(xb) - yb) ** 2).mean()
            loss.backward()
            opt.step()
        if config.get("kill_at") == step and not os.path.exists(config["marker"]) and dist.get_rank() == 1:
            # Wait until Ray Train has registered the reported checkpoints, so the replacement can resume.
            assert ray.train.get_all_reported_checkpoints(timeout_s=60)
            open(config["marker"], "w").close()
            os.kill(os.getpid(), 9)  # the actor dies mid-run, as a lost node would
        with tempfile.TemporaryDirectory() as d:
            checkpoint = None
            if dist.get_rank() == 0:
                disttorch.save({"model": model.module.state_dict(), "step": step + 1}, os.path.join(d, "model.pt"))
                checkpoint = ray.train.Checkpoint.from_directory(d)
            ray.train.report({"step": step + 1, "start": start, "loss": float(loss.item()),
                              "world": dist.get_world_size(), "local_rank": int(os.environ["LOCAL_RANK"])},
                             checkpoint=checkpoint)


def _load_result(result):
    import disttorch

    with result.checkpoint.as_directory() as d:
        state = disttorch.load(os.path.join(d, "model.pt"))
    return state["model"]["weight"].numpy(), state["model"]["bias"].numpy(), int(state["step"])


def _single_process_params():
    """The same loop in this process, full batch, no Ray: the parameters DDP must reproduce."""
    import disttorch

    x, y = _data()
    model = _model()
    opt = disttorch.optim.SGD(model.parameters(), lr=LR)
    for _ in range(STEPS):
        opt.zero_grad()
        ((model(disttorch.tensor(x)) - disttorch.tensor(y)) ** 2).mean().backward()
        opt.step()
    return model.weight.detach().numpy(), model.bias.detach().numpy()


def test_trainer_matches_full_batch_and_returns_metrics_and_checkpoint(local_ray, tmp_path):
    import ray.train

    import disttorch.ray as dray

    trainer = dray.TorchTrainer(_train_loop, train_loop_config={},
                                scaling_config=ray.train.ScalingConfig(num_workers=2),
                                run_config=ray.train.RunConfig(storage_path=str(tmp_path), name="fit"))
    result = trainer.fit()
    assert result.error is None
    assert result.metrics["step"] == STEPS and result.metrics["world"] == 2 and result.metrics["start"] == 0
    w, b, step = _load_result(result)
    assert step == STEPS
    w_ref, b_ref = _numpy_reference()
    np.testing.assert_allclose(w, w_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, b_ref, rtol=1e-5, atol=1e-6)
    w1, b1 = _single_process_params()
    np.testing.assert_allclose(w, w1, rtol=0, atol=1e-6)
    np.testing.assert_allclose(b, b1, rtol=0, atol=1e-6)


def _rank_values(scale):
    import disttorch
    import disttorch.distributed as dist

    t = disttorch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(t)
    return {"rank": dist.get_rank(), "sum": float(t.item()) * scale, "world": os.environ["WORLD_SIZE"],
            "local_rank": os.environ["LOCAL_RANK"], "secret": len(os.environ["DISTTORCH_JOB_SECRET"])}


def _fail_on_rank_1():
    import disttorch.distributed as dist

    if dist.get_rank() == 1:
        raise ValueError("rank one cannot go on")
    return "ok"


def test_run_returns_every_rank_value(local_ray):
    import disttorch.ray as dray

    values = dray.run(_rank_values, num_workers=2, args=(10,))
    assert [v["rank"] for v in values] == [0, 1]
    assert [v["sum"] for v in values] == [30.0, 30.0]  # (1 + 2) * 10, all-reduced across the two ranks
    assert [v["local_rank"] for v in values] == ["0", "1"] and {v["world"] for v in values} == {"2"}
    assert {v["secret"] for v in values} == {32}


def test_run_surfaces_rank_1_exception_with_traceback(local_ray):
    import disttorch.ray as dray

    with pytest.raises(dray.RankError) as info:
        dray.run(_fail_on_rank_1, num_workers=2)
    assert info.value.rank == 1
    text = str(info.value)
    assert "rank 1 failed" in text and "ValueError: rank one cannot go on" in text
    assert "Traceback (most recent call last)" in text and "_fail_on_rank_1" in text


def test_killed_actor_is_replaced_and_resumes_from_checkpoint(local_ray, tmp_path):
    import ray.train

    import disttorch.ray as dray

    marker = tmp_path / "killed"
    trainer = dray.TorchTrainer(
        _train_loop, train_loop_config={"kill_at": 1, "marker": str(marker)},
        scaling_config=ray.train.ScalingConfig(num_workers=2),
        run_config=ray.train.RunConfig(storage_path=str(tmp_path), name="restart",
                                       failure_config=ray.train.FailureConfig(max_failures=1)))
    result = trainer.fit()
    assert marker.exists()  # the kill happened
    assert result.metrics["start"] == 1  # the replacement group resumed from the step-1 checkpoint
    w, b, step = _load_result(result)
    assert step == STEPS
    w_ref, b_ref = _numpy_reference()
    np.testing.assert_allclose(w, w_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, b_ref, rtol=1e-5, atol=1e-6)


def test_resume_from_checkpoint_continues_a_finished_run(local_ray, tmp_path):
    import ray.train

    import disttorch.ray as dray

    def trainer(config, name, **kwargs):
        return dray.TorchTrainer(_train_loop, train_loop_config=config,
                                 scaling_config=ray.train.ScalingConfig(num_workers=2),
                                 run_config=ray.train.RunConfig(storage_path=str(tmp_path), name=name), **kwargs)

    first = trainer({"steps": 2}, "first").fit()
    assert first.metrics["step"] == 2 and first.metrics["start"] == 0
    with pytest.raises(TypeError, match="expected a ray.train.Checkpoint"):
        trainer({}, "bad", resume_from_checkpoint=str(tmp_path))
    # A new run (another name: Ray has no checkpoint of its own) sees the handed one via ray.train.get_checkpoint().
    second = trainer({}, "second", resume_from_checkpoint=first.checkpoint).fit()
    assert second.metrics["start"] == 2 and second.metrics["step"] == STEPS
    w, b, step = _load_result(second)
    assert step == STEPS
    w_ref, b_ref = _numpy_reference()  # the uninterrupted run
    np.testing.assert_allclose(w, w_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, b_ref, rtol=1e-5, atol=1e-6)


def _ps_train(fail_rank=None):
    """A ps-mode worker of run(): sync SGD of the linear model on this rank's half; returns the final parameters."""
    import disttorch
    import disttorch.distributed.ps as ps

    rank = ps.get_rank()  # run() has joined the ps job already
    if rank == fail_rank:
        raise ValueError(f"worker {rank} cannot go on")
    x, y = _data()
    half = slice(rank * N // 2, (rank + 1) * N // 2)
    xb, yb = disttorch.tensor(x[half]), disttorch.tensor(y[half])
    model = _model()
    opt = ps.DistributedOptimizer(model.parameters(), "sgd", lr=LR, mode="sync", min_slice_bytes=4)
    for _ in range(STEPS):  # with fail_rank set, the sync step waits for the failed worker until the job ends
        opt.zero_grad()
        ((model(xb) - yb) ** 2).mean().backward()
        opt.step()
    opt.synchronize()
    return {"rank": rank, "role": os.environ["DISTTORCH_PS_ROLE"], "servers": sorted({s.server for s in opt.shards}),
            "num_servers": os.environ["DISTTORCH_PS_NUM_SERVERS"], "secret": len(os.environ["DISTTORCH_JOB_SECRET"]),
            "w": model.weight.detach().numpy(), "b": model.bias.detach().numpy()}


def test_run_ps_mode_matches_full_batch_and_surfaces_a_failed_worker(local_ray):
    import disttorch.ray as dray

    values = dray.run(_ps_train, num_workers=2, mode="ps", num_servers=2)
    assert [v["rank"] for v in values] == [0, 1] and {v["role"] for v in values} == {"worker"}
    assert {v["num_servers"] for v in values} == {"2"} and values[0]["servers"] == [0, 1]  # both servers used
    assert {v["secret"] for v in values} == {32}
    w_ref, b_ref = _numpy_reference()
    for v in values:  # sync mode: every worker ends with the full-batch parameters
        np.testing.assert_allclose(v["w"], w_ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(v["b"], b_ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(dray.RankError) as info:
        dray.run(_ps_train, num_workers=2, mode="ps", num_servers=1, kwargs={"fail_rank": 1})
    assert info.value.rank == 1 and "ValueError: worker 1 cannot go on" in str(info.value)


def _join_ps_job(config):
    import disttorch.distributed.ps as ps

    ps.init()  # waits for every server to register: a server that died never does


def test_ps_job_fails_when_a_server_fails_instead_of_waiting(local_ray):
    from disttorch.ray.ps import RoleError, run_ps_job

    # The server imports DISTTORCH_PS_RULES first (custom update rules); a missing module makes it fail at start.
    with pytest.raises(RoleError, match=r"server 0 failed(.|\n)*No module named 'no_such_rules_module'"):
        run_ps_job(_join_ps_job, {}, num_workers=2, num_servers=1,
                   role_env={"DISTTORCH_PS_RULES": "no_such_rules_module"})
