"""Real launches of tiny worker scripts (tests/launcher/worker.py) on this machine."""
import importlib.util
import os
import selectors
import shutil
import signal
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from launch_helpers import ALLREDUCE, PY, WORKER, alive, clean_env, env_lines, launch, pids_of, start, stop  # noqa: E402


@pytest.mark.timeout(60)
def test_env_contract_and_prefixes(tmp_path):
    rc, out, err = launch("--nproc-per-node", "3", WORKER, "env", "a b", "--flag")
    assert rc == 0, err
    envs = env_lines(out)
    assert sorted(envs) == [0, 1, 2]
    secret = envs[0]["DISTTORCH_JOB_SECRET"]
    assert len(secret) == 32 and int(secret, 16) >= 0
    port = int(envs[0]["MASTER_PORT"])
    for r, e in envs.items():
        assert (e["LOCAL_RANK"], e["WORLD_SIZE"], e["LOCAL_WORLD_SIZE"], e["GROUP_RANK"]) == (str(r), "3", "3", "0")
        assert (e["ROLE_RANK"], e["ROLE_WORLD_SIZE"], e["GROUP_WORLD_SIZE"]) == (str(r), "3", "1")
        assert (e["MASTER_ADDR"], int(e["MASTER_PORT"]), e["TORCHELASTIC_RESTART_COUNT"]) == ("127.0.0.1", port, "0")
        assert (e["OMP_NUM_THREADS"], e["DISTTORCH_BACKEND"], e["DISTTORCH_JOB_SECRET"]) == ("1", "zmq", secret)
        assert e["argv"] == ["a b", "--flag"] and e["cwd"] == os.getcwd()
    for r in range(3):
        assert f"[rank {r}] hello from rank {r}" in err.splitlines()
    # a second job gets another secret and another port
    rc2, out2, _ = launch("--nproc_per_node=1", WORKER, "env")
    e2 = env_lines(out2)[0]
    assert rc2 == 0 and e2["DISTTORCH_JOB_SECRET"] != secret
    assert e2["OMP_NUM_THREADS"] is None  # one worker per node: left to the user


@pytest.mark.timeout(60)
def test_log_dir_and_local_ranks_filter(tmp_path):
    logs = tmp_path / "logs"
    rc, out, err = launch("-n", "2", "--log-dir", str(logs), "--local-ranks-filter", "0", WORKER, "env")
    assert rc == 0, err
    assert "[rank 0] ENV" in out and "[rank 1]" not in out and "[rank 1]" not in err
    assert "[rank 0] hello from rank 0" in err
    for r in range(2):
        text = (logs / f"rank_{r}.log").read_text()
        assert f'"RANK": "{r}"' in text and f"hello from rank {r}" in text and "[rank" not in text
    assert sorted(p.name for p in logs.iterdir()) == ["rank_0.log", "rank_1.log"]


@pytest.mark.timeout(60)
def test_redirects_and_tee(tmp_path):
    rc, out, err = launch("-n", "2", "--log-dir", str(tmp_path), "--redirects", "1", "--tee", "0:2", WORKER, "env")
    assert rc == 0, err
    assert "ENV" not in out  # stdout redirected to the files only
    assert "[rank 0] hello" in err and "[rank 1] hello" in err  # stderr still on the console
    assert "hello" in (tmp_path / "rank_0.log").read_text()  # local rank 0 tees stderr
    assert "hello" not in (tmp_path / "rank_1.log").read_text()
    assert '"RANK": "1"' in (tmp_path / "rank_1.log").read_text()


@pytest.mark.timeout(60)
def test_failure_kills_the_others_and_reports_the_root_cause(tmp_path):
    t0 = time.monotonic()
    rc, out, err = launch("-n", "3", WORKER, "fail", "1", "3", str(tmp_path))
    elapsed = time.monotonic() - t0
    assert rc == 3, err
    assert elapsed < 10
    pids = pids_of(tmp_path, [0, 2])  # ranks 0 and 2 and their grandchildren (same process group)
    assert not [p for p in pids if alive(p)]
    summary = err[err.index("=" * 72):]
    assert err.count("worker failure") == 1
    assert "first failure : rank 1 (local_rank 1) on host" in summary and "cause         : exit code 3" in summary
    assert "rank 1 diagnostic line 29" in summary and "rank 1 diagnostic line 10" in summary
    assert "rank 1 diagnostic line 9\n" not in summary  # the last 20 lines only
    assert "other workers : terminated" in summary


@pytest.mark.timeout(60)
def test_sigkilled_rank_is_named(tmp_path):
    rc, out, err = launch("-n", "2", WORKER, "sigkill", "1", str(tmp_path))
    assert rc == 128 + signal.SIGKILL, err
    assert "first failure : rank 1" in err and "killed by signal SIGKILL (9)" in err
    assert not [p for p in pids_of(tmp_path, [0]) if alive(p)]


@pytest.mark.timeout(60)
def test_max_restarts_restarts_the_group_with_a_fresh_port():
    rc, out, err = launch("-n", "2", "--max-restarts", "1", WORKER, "restart")
    assert rc == 0, err
    lines = sorted(line for line in out.splitlines() if "attempt" in line)
    assert [line.split("]")[0] + "]" + line.split()[3] for line in lines] == [
        "[rank 0]restart=0", "[rank 0]restart=1", "[rank 1]restart=0", "[rank 1]restart=1"]
    ports = {line.split("port=")[1] for line in lines}
    assert len(ports) == 2
    assert "restarting the whole group: restart 1 of 1" in err
    # without restarts the same job fails
    rc, _, err = launch("-n", "2", WORKER, "restart")
    assert rc == 1 and "rank 1 fails on the first attempt" in err


@pytest.mark.timeout(60)
def test_sigterm_to_the_launcher_reaches_every_worker(tmp_path):
    p = start("-n", "2", WORKER, "wait", str(tmp_path))
    try:
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        ready = 0
        deadline = time.monotonic() + 30
        while ready < 2 and time.monotonic() < deadline:
            if sel.select(timeout=1):
                line = p.stdout.readline()
                assert line, "launcher output ended early"
                ready += line.strip().endswith("ready")
        assert ready == 2
        p.send_signal(signal.SIGTERM)
        rc = p.wait(20)
    finally:
        stop(p)
    assert rc == 128 + signal.SIGTERM
    assert (tmp_path / "term_0").read_text() == "SIGTERM" and (tmp_path / "term_1").read_text() == "SIGTERM"


@pytest.mark.timeout(60)
def test_torchrun_style_one_launcher_per_node():
    from disttorch.launcher.ports import free_port

    port = str(free_port("127.0.0.1"))
    env = clean_env(DISTTORCH_JOB_SECRET="00ff" * 8)
    procs = [start("--nnodes", "2", "--node-rank", str(r), "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
                   "--master-port", port, WORKER, "env", env=env) for r in range(2)]
    try:
        results = [p.communicate(timeout=40) for p in procs]
    finally:
        for p in procs:
            stop(p)
    envs = {}
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        envs.update(env_lines(out))
    assert sorted(envs) == [0, 1, 2, 3]
    for r, e in envs.items():
        assert (e["GROUP_RANK"], e["LOCAL_RANK"], e["WORLD_SIZE"], e["MASTER_PORT"]) == (str(r // 2), str(r % 2),
                                                                                          "4", port)
        assert e["DISTTORCH_JOB_SECRET"] == "00ff" * 8


@pytest.mark.mpi
@pytest.mark.timeout(90)
def test_mpi_backend_real_run(tmp_path):
    if not (os.access(os.path.join(os.path.dirname(PY), "mpiexec"), os.X_OK) or shutil.which("mpiexec")):
        pytest.skip("no mpiexec (install the mpi extra)")
    rc, out, err = launch("--backend", "mpi", "-n", "2", WORKER, "env")
    assert rc == 0, err
    envs = env_lines(out)
    assert sorted(envs) == [0, 1]
    assert all(e["DISTTORCH_BACKEND"] == "mpi" and e["LOCAL_RANK"] == str(r) for r, e in envs.items())
    assert envs[0]["DISTTORCH_JOB_SECRET"] == envs[1]["DISTTORCH_JOB_SECRET"]
    rc, out, err = launch("--backend", "mpi", "-n", "2", WORKER, "fail", "1", "3", str(tmp_path))
    assert rc == 3, err
    assert "first failure : rank 1" in err and "exit code 3" in err and "rank 1 diagnostic line 29" in err
    assert not [p for p in pids_of(tmp_path, [0]) if alive(p)]


def _has_distributed():
    try:
        import disttorch.distributed as dist
    except ImportError:
        return False
    return hasattr(dist, "init_process_group") and hasattr(dist, "all_reduce")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("backend", ["zmq", pytest.param("mpi", marks=pytest.mark.mpi)])
def test_end_to_end_all_reduce(backend):
    if not _has_distributed():
        pytest.skip("disttorch.distributed.init_process_group is not available yet")
    if backend == "mpi" and importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpi4py is not installed (the mpi extra)")
    rc, out, err = launch("--backend", backend, "-n", "3", ALLREDUCE, timeout=80)
    assert rc == 0, err
    lines = sorted(line for line in out.splitlines() if "ALLREDUCE" in line)
    assert lines == [f"[rank {r}] ALLREDUCE backend={backend} rank={r} world=3 result=[6.0, 30.0]" for r in range(3)]
