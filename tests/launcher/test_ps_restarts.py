"""`disttorch launch --mode ps --max-restarts N`: a failed server or worker is restarted by itself while the rest
of the job runs on. The decision and the restarted spec (no process), supervision of stand-in processes (tiny
Python programs, a real reaper), then real jobs with the ps library in which server 0 or rank 1 is SIGKILLed."""
import dataclasses
import importlib.util
import io
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from disttorch.launcher import ps
from disttorch.launcher.config import LaunchConfig, resolve
from disttorch.launcher.local import ProcessSpec
from disttorch.launcher.supervise import Supervisor

sys.path.insert(0, os.path.dirname(__file__))
from launch_helpers import PY, Procs, alive, clean_env, stop, wait_until  # noqa: E402
from test_ssh import HOSTS, sshd  # noqa: E402,F401 - the private sshd fixture of the ssh tests

pytestmark = pytest.mark.timeout(60)
JOB = str(pathlib.Path(__file__).with_name("ps_restart_job.py"))


@pytest.fixture
def procs():
    tracked = Procs()
    yield tracked
    tracked.kill_all()


def cfg(**flags):
    flags.setdefault("script", "train.py")
    return resolve({"mode": "ps", **flags}, environ={})


def build(c, restart=0):
    return ps.build_specs(c, master_port=4242, scheduler_port=5555, restart_count=restart, run_id="run1",
                          secret="ab12", environ={})


# ------------------------------------------------------------------------------------------- no process started

def test_restart_decision():
    sched, server, _, worker, _ = build(cfg(num_servers="2", nproc_per_node="2"))

    def alone(spec, used=0, most=2, running=2):
        return ps.restart_alone(spec, restarts_used=used, max_restarts=most, workers_running=running)

    assert alone(server) and alone(worker) and alone(server, used=1)
    assert not alone(sched)  # it holds the membership: the whole group restarts
    assert not alone(server, used=2) and not alone(worker, most=0)  # the budget is spent (or none)
    assert not alone(server, running=0)  # every worker is done: nothing would use it
    assert not alone(ProcessSpec(rank=0, local_rank=0, host="localhost", argv=("mpiexec",), env={}, cwd=None,
                                 kind="mpi"))


@pytest.mark.parametrize("hosts", [None, "localhost:1,127.0.0.2:2"])
def test_restarted_spec_is_the_spec_of_a_later_attempt(hosts):
    # local and ssh (the environment travels inside the remote command): the same process as the planner
    # builds it for restart 2, with the job's ports, host and secret unchanged
    c = cfg(num_servers="3", nproc_per_node="2", **({"hosts": hosts} if hosts else {}))
    first, later = build(c, restart=0), build(c, restart=2)
    assert any(s.kind == "ssh" for s in first) == bool(hosts)
    for s0, s2 in zip(first, later):
        if s0.role != "scheduler":
            assert ps.restarted_spec(c, s0, 2, environ={}) == s2, s0.label
    remote = [ps.restarted_spec(c, s, 2, environ={}) for s in first if s.kind == "ssh"]
    for s in remote:
        assert "TORCHELASTIC_RESTART_COUNT=2" in s.argv[-1] and "ab12" not in s.argv[-1]
        assert s.stdin_text == "ab12\n"


# ------------------------------------------------------------------------ supervision of stand-in processes

def proc(role, code, role_rank=None, rank=None, env=None):
    return ProcessSpec(rank=rank, local_rank=rank, host="localhost", argv=(sys.executable, "-c", code),
                       env=dict(env or {}, TORCHELASTIC_RESTART_COUNT="0"), cwd=None, kind="local", role=role,
                       role_rank=role_rank)


def ps_cfg(**kw):
    return LaunchConfig(script="x", nproc_per_node=1, mode="ps", num_servers=1, **{"grace_period": 0.5, **kw})


def server_code(pidfile, fail_always=False):
    """Fails (exit 3) as first started; restarted, it writes its pid and restart count, then waits."""
    first = "True" if fail_always else "os.environ['TORCHELASTIC_RESTART_COUNT'] == '0'"
    return (f"import os, sys, time\nif {first}:\n    print('shard lost', file=sys.stderr); sys.exit(3)\n"
            f"print('back', os.environ['TORCHELASTIC_RESTART_COUNT'], flush=True)\n"
            f"open({str(pidfile)!r} + '.tmp', 'w').write(str(os.getpid()))\n"
            f"os.rename({str(pidfile)!r} + '.tmp', {str(pidfile)!r})\ntime.sleep(60)")


def worker_code(pidfile, then):
    """Writes its pid, waits (polling, with a deadline) for the restarted server's pid file, then ``then``."""
    return (f"import os, time\nopen({str(pidfile) + '.w'!r}, 'w').write(str(os.getpid()))\n"
            f"t = time.monotonic()\nwhile not os.path.exists({str(pidfile)!r}) and time.monotonic() - t < 30:\n"
            f"    time.sleep(0.02)\n{then}")


def test_a_failed_server_restarts_alone_and_the_job_goes_on(tmp_path, procs, capsys):
    pidfile = tmp_path / "server.pid"
    specs = [proc("scheduler", "import time; time.sleep(60)"), proc("server", server_code(pidfile), 0),
             proc("worker", worker_code(pidfile, "import sys; sys.exit(0 if os.path.exists("
                                                 f"{str(pidfile)!r}) else 5)"), rank=0)]
    sup = Supervisor(ps_cfg(max_restarts=2, log_dir=str(tmp_path)), stdout=io.StringIO(), stderr=io.StringIO())
    outcome = sup.run_attempt(specs, 0)
    procs.note(int(pidfile.read_text()))
    err = capsys.readouterr().err
    assert outcome.ok and sup.restarts == 1, err
    assert err.count("server failure") == 1 and "restarting server 0 alone: restart 1 of 2" in err
    assert "first failure : server 0 on host" in err and "exit code 3" in err and "| shard lost" in err
    assert "other processes: still running (2 of 3 processes)" in err
    # the worker and the scheduler were not restarted (one pid, no separator); the server's log goes on
    assert (tmp_path / "server_0.log").read_text() == "shard lost\n--- restart 1 ---\nback 1\n"
    assert not (tmp_path / "rank_0.log").exists() or "restart" not in (tmp_path / "rank_0.log").read_text()
    assert not alive(int(pidfile.read_text()))  # stopped at the end with the scheduler


def test_restarts_alone_spend_the_job_budget_then_the_job_fails(tmp_path, procs, capsys):
    pidfile = tmp_path / "server.pid"
    specs = [proc("scheduler", "import time; time.sleep(60)"), proc("server", server_code(pidfile, True), 0),
             proc("worker", worker_code(pidfile, "time.sleep(60)"), rank=0)]
    sup = Supervisor(ps_cfg(max_restarts=1), stdout=io.StringIO(), stderr=io.StringIO())
    t0 = time.monotonic()
    outcome = sup.run_attempt(specs, 0)
    err = capsys.readouterr().err
    f = outcome.failure
    assert not outcome.ok and (f.label, f.exitcode) == ("server 0", 3) and sup.restarts == 1
    assert err.count("restarting server 0 alone") == 1
    assert time.monotonic() - t0 < 20  # the second failure tore the job down: not the worker's 30 + 60 s


DRIVER = """
import json, sys
from disttorch.launcher.config import LaunchConfig
from disttorch.launcher.local import ProcessSpec
from disttorch.launcher.reaper import Reaper
from disttorch.launcher.supervise import Supervisor
cfg = LaunchConfig(script="x", nproc_per_node=1, mode="ps", num_servers=1, grace_period=1.0, max_restarts=1)
Supervisor(cfg).run_attempt([ProcessSpec(**d) for d in json.loads(sys.argv[1])], 0, Reaper(1.0))
"""


def test_a_killed_launcher_still_ends_the_restarted_process(tmp_path, procs):
    """The reaper learns the restarted process's pid: a supervisor SIGKILLed after a restart alone still ends it
    (the stand-ins do not import disttorch, so nothing else would stop them)."""
    pidfile = tmp_path / "server.pid"
    specs = [proc("scheduler", "import time; time.sleep(60)"), proc("server", server_code(pidfile), 0),
             proc("worker", worker_code(pidfile, "time.sleep(60)"), rank=0)]
    with open(tmp_path / "driver.err", "w") as err:
        driver = subprocess.Popen([PY, "-c", DRIVER, json.dumps([dataclasses.asdict(s) for s in specs])],
                                  stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    procs.note(driver.pid)
    try:
        assert wait_until(pidfile.exists, 30), "the server was not restarted"
        server, worker = int(pidfile.read_text()), int((tmp_path / "server.pid.w").read_text())
        procs.note(server, worker)
        driver.kill()
        driver.wait(10)
        assert wait_until(lambda: not alive(server) and not alive(worker), 20), "the reaper missed a process"
        text = (tmp_path / "driver.err").read_text()
        assert wait_until(lambda: "ended without stopping its workers" in (tmp_path / "driver.err").read_text(),
                          10), text
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(10)


# ----------------------------------------------------------------------- real jobs, with the ps library

def _need_ps_library():
    if importlib.util.find_spec("zmq") is None or importlib.util.find_spec("msgpack") is None:
        pytest.skip("the parameter server needs pyzmq and msgpack, which are not installed")


def _pid_with(parent: int | None, **env) -> int | None:
    """The pid of a process (a child of ``parent`` unless None) whose environment has ``env`` (read through
    /proc), None if none."""
    want = {f"{k}={v}".encode() for k, v in env.items()}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            if parent is not None and ppid != parent:
                continue
            with open(f"/proc/{name}/environ", "rb") as f:
                if want <= set(f.read().split(b"\0")):
                    return int(name)
        except (OSError, ValueError, IndexError):
            continue
    return None


def _launch(tmp_path, scenario, topology=("--num-servers", "2", "--nproc-per-node", "2"), **env):
    out = tmp_path / "out"
    out.mkdir()
    stdout, stderr = open(tmp_path / "launcher.out", "w"), open(tmp_path / "launcher.err", "w")
    p = subprocess.Popen([PY, "-m", "disttorch.launcher.cli", "launch", "--mode", "ps", *topology,
                          "--max-restarts", "1", "--grace-period", "20", "--log-dir", str(tmp_path / "logs"), JOB,
                          str(out), scenario],
                         stdout=stdout, stderr=stderr, env=clean_env(**env), start_new_session=True)
    stdout.close()
    stderr.close()
    return p, out


def _kill_when(p, tmp_path, mark, procs, remote=False, **env) -> int:
    """Wait for the job's file ``mark``, then SIGKILL (by pid) the launcher's child (``remote``: any process)
    whose environment has ``env``."""
    assert wait_until(lambda: mark.exists() or p.poll() is not None, 90), f"{mark.name} never appeared"
    assert p.poll() is None, (tmp_path / "launcher.err").read_text()[-3000:]
    pid = _pid_with(None if remote else p.pid, **env)
    assert pid is not None, f"no child of the launcher with {env}"
    procs.note(pid)
    os.kill(pid, signal.SIGKILL)
    return pid


def _finish(p, tmp_path, seconds=90):
    try:
        rc = p.wait(seconds)
    except subprocess.TimeoutExpired:
        rc = None
    finally:
        stop(p)
    out, err = (tmp_path / "launcher.out").read_text(), (tmp_path / "launcher.err").read_text()
    assert rc == 0, f"launcher: {rc}\n{err[-4000:]}"
    results = [json.loads(line.split("] RESULT ", 1)[1]) for line in out.splitlines() if "] RESULT " in line]
    return results, err


@pytest.mark.timeout(180)
def test_sigkilled_server_restarts_alone_and_no_acknowledged_update_is_lost(tmp_path, procs):
    _need_ps_library()
    p, out = _launch(tmp_path, "server", DISTTORCH_PS_SNAPSHOT_STEPS="1")
    procs.note(p.pid)
    try:
        _kill_when(p, tmp_path, out / "reached", procs, DISTTORCH_PS_ROLE="server", DISTTORCH_PS_SERVER_ID="0")
        (out / "killed").touch()  # rank 0 goes on while server 0 is down or restarting
    except BaseException:
        stop(p)
        raise
    results, err = _finish(p, tmp_path)
    assert "first failure : server 0 on host" in err and "killed by signal SIGKILL" in err
    assert err.count("restarting server 0 alone: restart 1 of 1") == 1 and "whole group" not in err
    assert sorted((r["rank"], r["restart"]) for r in results) == [(0, 0), (1, 0)]  # the workers ran on
    log = (tmp_path / "logs" / "server_0.log").read_text()
    assert "--- restart 1 ---" in log and "restored" in log.split("--- restart 1 ---")[1]
    for other in ("scheduler.log", "server_1.log", "rank_0.log", "rank_1.log"):  # the others ran on
        assert not (tmp_path / "logs" / other).exists() or "--- restart" not in (tmp_path / "logs" / other).read_text()
    for r in results:
        diff = max(float(np.max(np.abs(np.array(a) - np.array(b)))) for a, b in zip(r["final"], r["ref"]))
        assert diff < 1e-10, (r["rank"], diff)


@pytest.mark.timeout(180)
def test_sigkilled_async_worker_restarts_alone_and_the_job_completes(tmp_path, procs):
    _need_ps_library()
    p, out = _launch(tmp_path, "worker")
    procs.note(p.pid)
    try:
        killed = _kill_when(p, tmp_path, out / "reached1", procs, DISTTORCH_PS_ROLE="worker", RANK="1")
    except BaseException:
        stop(p)
        raise
    results, err = _finish(p, tmp_path)
    assert "first failure : rank 1" in err and "killed by signal SIGKILL" in err
    assert err.count("restarting rank 1 alone: restart 1 of 1") == 1 and "whole group" not in err
    by_rank = {r["rank"]: r for r in results}
    assert sorted((r["rank"], r["restart"]) for r in results) == [(0, 0), (1, 1)]
    assert by_rank[1]["pid"] != killed
    # async, constant per-rank gradients: every push applied once, in any order (exact in binary)
    steps, k, lr, c = 6, 2, 0.125, np.array([[1.0, 2.0, 3.0], [0.5, 0.25, 4.0]])
    expected = (-lr * (steps * c[0] + (k + steps) * c[1])).tolist()
    assert by_rank[0]["w"] == expected and by_rank[1]["w"] == expected
    assert "--- restart 1 ---" in (tmp_path / "logs" / "rank_1.log").read_text()
    assert "--- restart" not in (tmp_path / "logs" / "rank_0.log").read_text()


@pytest.mark.timeout(180)
def test_restarted_sync_worker_goes_on_at_the_jobs_step(tmp_path, procs):
    # rank 1 SIGKILLs itself after 2 steps; rank 0 waits in step 3 for its gradient (nobody is declared dead)
    _need_ps_library()
    p, _ = _launch(tmp_path, "sync-worker")
    procs.note(p.pid)
    results, err = _finish(p, tmp_path)
    assert err.count("restarting rank 1 alone: restart 1 of 1") == 1 and "whole group" not in err
    by_rank = {r["rank"]: r for r in results}
    assert sorted((r["rank"], r["restart"], r["start"]) for r in results) == [(0, 0, 0), (1, 1, 2)]
    assert by_rank[0]["final"] == by_rank[1]["final"]
    for r in results:  # every step had both halves: the single-process result on the whole batch
        diff = max(float(np.max(np.abs(np.array(a) - np.array(b)))) for a, b in zip(r["final"], r["ref"]))
        assert diff < 1e-10, (r["rank"], diff)


@pytest.mark.timeout(180)
def test_sigkilled_remote_server_restarts_alone_through_ssh(sshd, tmp_path, procs):  # noqa: F811 - the fixture
    """Two ssh "nodes" (one server and one worker each): server 0's restart is a new ssh session, whose
    environment (and the secret, on stdin) the launcher builds again."""
    _need_ps_library()
    (tmp_path / "snap").mkdir()
    y = tmp_path / "ps.yaml"
    y.write_text(f"""
mode: ps
hosts:
  - {{host: {HOSTS[0]}, slots: 1, interface: {HOSTS[0]}}}
  - {{host: {HOSTS[1]}, slots: 1, interface: {HOSTS[1]}}}
ps:
  servers: [{{host: {HOSTS[0]}, count: 1}}, {{host: {HOSTS[1]}, count: 1}}]
  snapshot_dir: {tmp_path / "snap"}
workdir: {tmp_path}
ssh:
  port: {sshd['port']}
  identity: {sshd['identity']}
  options: [BatchMode=yes, StrictHostKeyChecking=no, UserKnownHostsFile=/dev/null, LogLevel=ERROR]
""")
    p, out = _launch(tmp_path, "server", topology=("--cluster-config", str(y)), DISTTORCH_PS_SNAPSHOT_STEPS="1")
    procs.note(p.pid)
    try:
        _kill_when(p, tmp_path, out / "reached", procs, remote=True, DISTTORCH_PS_ROLE="server",
                   DISTTORCH_PS_SERVER_ID="0", DISTTORCH_PS_SNAPSHOT_DIR=str(tmp_path / "snap"))
        (out / "killed").touch()
    except BaseException:
        stop(p)
        raise
    results, err = _finish(p, tmp_path)
    assert f"first failure : server 0 on host {HOSTS[0]}" in err
    assert err.count("restarting server 0 alone: restart 1 of 1") == 1 and "whole group" not in err
    assert sorted((r["rank"], r["restart"]) for r in results) == [(0, 0), (1, 0)]
    assert "restored" in (tmp_path / "logs" / "server_0.log").read_text().split("--- restart 1 ---")[1]
    for r in results:
        diff = max(float(np.max(np.abs(np.array(a) - np.array(b)))) for a, b in zip(r["final"], r["ref"]))
        assert diff < 1e-10, (r["rank"], diff)


@pytest.mark.timeout(180)
def test_worker_failing_after_the_others_left_restarts_into_a_live_job(tmp_path, procs):
    # without the rule in ps.client (no "done" from a worker about to be restarted) the scheduler and servers
    # would exit when rank 1 fails, and its restart would wait for them until DISTTORCH_PS_TIMEOUT
    _need_ps_library()
    p, _ = _launch(tmp_path, "late-failure", DISTTORCH_PS_TIMEOUT="60")
    procs.note(p.pid)
    results, err = _finish(p, tmp_path)
    assert "first failure : rank 1" in err and err.count("restarting rank 1 alone: restart 1 of 1") == 1
    assert "rank 1 fails after every other worker has finished" in err + (tmp_path / "logs" / "rank_1.log").read_text()
    by_rank = {r["rank"]: r for r in results}
    assert sorted((r["rank"], r["restart"]) for r in results) == [(0, 0), (1, 1)]
    steps, lr, c = 6, 0.125, np.array([[1.0, 2.0, 3.0], [0.5, 0.25, 4.0]])
    assert by_rank[1]["w"] == (-lr * steps * (c[0] + 2 * c[1])).tolist()
