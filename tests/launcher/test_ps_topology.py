"""`disttorch launch --mode ps`: topology and command building (no process started), then supervision of
scheduler/server stand-ins (tiny Python processes: the ps library itself is not needed for these)."""
import importlib.util
import io
import json
import os
import pathlib
import shlex
import signal
import sys
import time

import pytest

from disttorch.launcher import cli, ps
from disttorch.launcher.config import ConfigError, LaunchConfig, resolve
from disttorch.launcher.local import ProcessSpec
from disttorch.launcher.supervise import Supervisor, format_summary

sys.path.insert(0, os.path.dirname(__file__))
from launch_helpers import alive, launch  # noqa: E402
from test_ssh import HOSTS, sshd  # noqa: E402,F401 - the private sshd fixture of the ssh tests

pytestmark = pytest.mark.timeout(60)
CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "cluster_configs"


def cfg(env=None, **flags):
    flags.setdefault("script", "train.py")
    flags.setdefault("script_args", ["--lr", "0.1"])
    return resolve(flags, environ=env or {})


def build(c, restart=0, run_id="run1"):
    return ps.build_specs(c, master_port=4242, scheduler_port=5555, restart_count=restart, run_id=run_id,
                          secret="ab12", environ={})


def remote_env(spec):
    """The variables a remote (ssh) process gets, parsed back out of its remote command."""
    words = shlex.split(spec.argv[-1].split(" && exec ", 1)[1])
    return dict(w.split("=", 1) for w in words[1:] if "=" in w and not w.startswith("-"))


def test_local_topology_and_env_contract():
    c = cfg(mode="ps", num_servers="2", nproc_per_node="2")
    specs = build(c)
    assert [(s.role, s.role_rank) for s in specs] == [("scheduler", None), ("server", 0), ("server", 1),
                                                      ("worker", None), ("worker", None)]
    sched, s0, s1, w0, w1 = specs
    assert sched.argv == (sys.executable, "-u", "-m", "disttorch.distributed.ps.scheduler")
    assert s0.argv == s1.argv == (sys.executable, "-u", "-m", "disttorch.distributed.ps.server")
    assert w0.argv == (sys.executable, "-u", "train.py", "--lr", "0.1")
    for s in specs:
        e = s.env
        assert s.kind == "local" and s.host == "localhost"
        assert e["DISTTORCH_PS_SCHEDULER"] == "127.0.0.1:5555"
        assert (e["DISTTORCH_PS_NUM_SERVERS"], e["DISTTORCH_PS_NUM_WORKERS"]) == ("2", "2")
        assert e["DISTTORCH_PS_ROLE"] == s.role and e["DISTTORCH_JOB_SECRET"] == "ab12"
        assert "DISTTORCH_PS_SECURE" not in e and not any("CURVE" in k for k in e)
    assert [s.env["DISTTORCH_PS_SERVER_ID"] for s in (s0, s1)] == ["0", "1"]
    assert "DISTTORCH_PS_SERVER_ID" not in sched.env and "DISTTORCH_PS_SERVER_ID" not in w0.env
    # Workers keep the torchrun contract, counting workers only.
    assert [(w.env["RANK"], w.env["WORLD_SIZE"], w.env["MASTER_PORT"]) for w in (w0, w1)] == \
        [("0", "2", "4242"), ("1", "2", "4242")]
    assert [s.label for s in specs] == ["scheduler", "server 0", "server 1", "rank 0", "rank 1"]


def test_snapshot_dir_is_stable_across_restarts_and_per_job():
    c = cfg(mode="ps")
    d0 = {s.env["DISTTORCH_PS_SNAPSHOT_DIR"] for s in build(c, restart=0)}
    d1 = {s.env["DISTTORCH_PS_SNAPSHOT_DIR"] for s in build(c, restart=1)}
    assert len(d0) == 1 and d0 == d1  # a restarted server finds its snapshot
    assert d0 != {s.env["DISTTORCH_PS_SNAPSHOT_DIR"] for s in build(c, run_id="run2")}
    assert {s.env["TORCHELASTIC_RESTART_COUNT"] for s in build(c, restart=1)} == {"1"}


def test_snapshot_dir_made_private_here_and_removed_only_when_default(tmp_path, monkeypatch):
    monkeypatch.setattr(ps.tempfile, "gettempdir", lambda: str(tmp_path))
    c = cfg(mode="ps")
    made = ps.prepare_snapshot_dir(c, "run7")
    assert made == str(tmp_path / "disttorch_ps_run7") and os.path.isdir(made)
    assert os.stat(made).st_mode & 0o777 == 0o700  # snapshots hold the model: owner only
    mine = tmp_path / "mine" / "snaps"
    c = cfg(mode="ps", cluster_config=_yaml(tmp_path, f"ps: {{snapshot_dir: {mine}}}\n"))
    assert ps.prepare_snapshot_dir(c, "run7") is None and mine.is_dir()  # configured: made, never removed
    remote_only = cfg(mode="ps", hosts="n8:1", cluster_config=_yaml(tmp_path, "ps: {servers: [n9]}\n"))
    assert ps.prepare_snapshot_dir(remote_only, "run8") is None
    assert not (tmp_path / "disttorch_ps_run8").exists()  # no server here: the servers make their own


def _yaml(tmp_path, text):
    p = tmp_path / "y.yaml"
    p.write_text(text)
    return str(p)


def test_host_list_places_servers_round_robin():
    c = cfg(mode="ps", num_servers="3", hosts="localhost:1,127.0.0.2:2")
    assert c.backend == "zmq"  # never mpiexec in ps mode, even with mpi4py installed
    specs = build(c)
    sched, servers, workers = specs[0], specs[1:4], specs[4:]
    assert (sched.host, sched.kind) == ("localhost", "local")
    assert [(s.host, s.kind) for s in servers] == [("localhost", "local"), ("127.0.0.2", "ssh"),
                                                   ("localhost", "local")]
    assert [(w.host, w.env.get("RANK") or remote_env(w)["RANK"]) for w in workers] == \
        [("localhost", "0"), ("127.0.0.2", "1"), ("127.0.0.2", "2")]
    remote = remote_env(servers[1])
    assert "disttorch.distributed.ps.server" in servers[1].argv[-1]
    assert (remote["DISTTORCH_PS_ROLE"], remote["DISTTORCH_PS_SERVER_ID"]) == ("server", "1")
    assert (remote["DISTTORCH_INTERFACE"], remote["DISTTORCH_PS_NUM_WORKERS"]) == ("127.0.0.2", "3")
    assert "ab12" not in servers[1].argv[-1] and servers[1].stdin_text == "ab12\n"  # the secret on stdin
    assert servers[1].rank is None and servers[1].ranks == ()


def test_shipped_ps_yaml_places_scheduler_and_servers():
    c = cfg(cluster_config=str(CONFIGS / "ps_two_nodes.yaml"))
    assert (c.mode, c.num_servers, c.secure, c.world_size) == ("ps", 2, "none", 4)
    specs = build(c)
    assert [(s.role, s.host) for s in specs[:3]] == [("scheduler", "127.0.0.2"), ("server", "127.0.0.2"),
                                                     ("server", "127.0.0.3")]
    assert all(s.kind == "ssh" for s in specs)
    envs = [remote_env(s) for s in specs]
    assert {e["DISTTORCH_PS_SCHEDULER"] for e in envs} == {"127.0.0.2:5555"}  # the first host's interface
    assert {e["DISTTORCH_PS_SNAPSHOT_DIR"] for e in envs} == {"/tmp/disttorch_ps_snapshots"}
    assert {e["DISTTORCH_PS_HEARTBEAT_TIMEOUT"] for e in envs} == {"30"}
    assert [e["RANK"] for e in envs[3:]] == ["0", "1", "2", "3"]


def test_yaml_ps_section(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("mode: ps\nhosts: [n1:1, n2:1]\nps:\n  servers: ['n2:2', {host: n3}]\n  snapshot_dir: snaps\n")
    c = cfg(cluster_config=str(y))
    assert c.num_servers == 3 and c.ps_servers == (("n2", 2), ("n3", 1))
    assert c.ps_snapshot_dir == str(tmp_path / "snaps")
    assert [s.host for s in build(c)[1:4]] == ["n2", "n2", "n3"]  # n3 runs servers only
    with pytest.raises(ConfigError, match=r"--num-servers: 2 server\(s\), but the cluster YAML's ps.servers "
                                          r"places 3"):
        cfg(cluster_config=str(y), num_servers="2")
    y.write_text("mode: ps\nps:\n  num_servers: 4\n")
    assert cfg(cluster_config=str(y)).num_servers == 4
    assert cfg(cluster_config=str(y), num_servers="2").num_servers == 2  # the flag wins
    y.write_text("ps:\n  server: [a]\n")
    with pytest.raises(ConfigError, match=r"c.yaml: ps: unknown field\(s\) \['server'\]"):
        cfg(cluster_config=str(y))
    y.write_text("ps:\n  servers: [{host: a, count: 0}]\n")
    with pytest.raises(ConfigError, match=r"ps.servers\[0\].count: must be >= 1, got 0"):
        cfg(cluster_config=str(y))
    y.write_text("ps:\n  heartbeat_timeout: 0\n")
    with pytest.raises(ConfigError, match=r"ps.heartbeat_timeout: must be > 0"):
        cfg(cluster_config=str(y))


def test_env_vars_and_validation():
    c = cfg(env={"DISTTORCH_MODE": "ps", "DISTTORCH_NUM_SERVERS": "3", "DISTTORCH_SECURE": "curve"})
    assert (c.mode, c.num_servers, c.secure) == ("ps", 3, "curve")
    assert (cfg().mode, cfg(mode="ps").num_servers, cfg(mode="ps").secure) == ("ddp", 1, "none")
    with pytest.raises(ConfigError, match="--mode: expected one of ddp, ps, got 'pss'"):
        cfg(mode="pss")
    with pytest.raises(ConfigError, match="--num-servers: only used with --mode ps"):
        cfg(num_servers="2")
    assert cfg(env={"DISTTORCH_SECURE": "curve"}).mode == "ddp"  # a variable for other launches: ignored
    with pytest.raises(ConfigError, match="--backend: --mode ps starts its processes itself"):
        cfg(mode="ps", backend="mpi")
    with pytest.raises(ConfigError, match="--nnodes: --mode ps starts the scheduler"):
        cfg(mode="ps", nnodes="2")
    with pytest.raises(ConfigError, match="--num-servers: must be >= 1, got 0"):
        cfg(mode="ps", num_servers="0")
    # A scheduler on this machine bound to loopback cannot serve another machine (loopback aliases can).
    with pytest.raises(ConfigError, match=r"-H/--hosts: the scheduler runs on the first host \(localhost\) and "
                                          r"would bind 127.0.0.1, which node1 cannot reach"):
        cfg(mode="ps", hosts="localhost:1,node1:1")
    assert cfg(mode="ps", hosts="localhost:1,node1:1", interface="10.0.0.5").hosts[1].host == "node1"
    assert build(cfg(mode="ps", hosts="localhost:1,node1:1", master_addr="10.0.0.5"))[0].env[
        "DISTTORCH_PS_SCHEDULER"] == "10.0.0.5:5555"


def test_secure_curve_reaches_every_process_and_no_key_travels():
    c = cfg(mode="ps", secure="curve", hosts="localhost:1,127.0.0.2:1")
    specs = build(c)
    envs = [s.env if s.kind == "local" else remote_env(s) for s in specs]
    assert [s.role for s in specs] == ["scheduler", "server", "worker", "worker"]
    assert [e.get("DISTTORCH_PS_SECURE") for e in envs] == ["curve"] * 4
    assert not any("CURVE" in k for e in envs for k in e)  # the key pairs derive from the job secret
    assert specs[3].kind == "ssh" and "ab12" not in specs[3].argv[-1] and specs[3].stdin_text == "ab12\n"
    assert "DISTTORCH_PS_SECURE" not in build(cfg(mode="ps"))[0].env


def test_dry_run_prints_the_topology(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("DISTTORCH_JOB_SECRET", "topsecret123")
    for k in ("DISTTORCH_MODE", "DISTTORCH_NUM_SERVERS", "DISTTORCH_SECURE", "DISTTORCH_CLUSTER_CONFIG"):
        monkeypatch.delenv(k, raising=False)
    marker = tmp_path / "ran"
    rc = cli.main(["launch", "--dry-run", "--mode", "ps", "--num-servers", "2", "-n", "2", "--no-python",
                   "touch", str(marker)])
    out = capsys.readouterr().out
    assert rc == 0 and not marker.exists()
    lines = out.splitlines()
    assert lines[0].startswith("# disttorch launch --dry-run: mode ps, 1 scheduler at 127.0.0.1:")
    assert "2 server(s), 2 worker(s), secure none, 5 process(es)" in lines[0]
    heads = [ln for ln in lines[1:] if not ln.startswith("  ")]
    assert heads == ["scheduler on localhost [local]", "server 0 on localhost [local]",
                     "server 1 on localhost [local]", "worker rank 0 (local_rank 0) on localhost [local]",
                     "worker rank 1 (local_rank 1) on localhost [local]"]
    cmds = [ln for ln in lines[1:] if ln.startswith("  ")]
    assert cmds[0].endswith("-m disttorch.distributed.ps.scheduler") and "DISTTORCH_PS_ROLE=scheduler" in cmds[0]
    assert "DISTTORCH_PS_SERVER_ID=1" in cmds[2] and cmds[4].endswith(f"touch {marker}")
    assert "topsecret123" not in out and out.count("DISTTORCH_JOB_SECRET=<secret>") == 5
    sched_port = lines[0].split("scheduler at 127.0.0.1:")[1].split(",")[0]
    master_port = cmds[3].split("MASTER_PORT=")[1].split()[0]
    assert sched_port.isdigit() and master_port.isdigit() and sched_port != master_port


def test_dry_run_with_curve(capsys, monkeypatch):
    monkeypatch.delenv("DISTTORCH_CLUSTER_CONFIG", raising=False)
    assert cli.main(["launch", "--dry-run", "--mode", "ps", "--secure", "curve", "train.py"]) == 0
    out = capsys.readouterr().out
    assert "secure curve, 3 process(es)" in out.splitlines()[0]
    assert out.count("DISTTORCH_PS_SECURE=curve") == 3 and out.count("DISTTORCH_JOB_SECRET=<secret>") == 3


# ------------------------------------------------------------------------------- supervision (real processes)

def proc(role, code, role_rank=None, rank=None):
    return ProcessSpec(rank=rank, local_rank=rank, host="localhost", argv=(sys.executable, "-c", code), env={},
                       cwd=None, kind="local", role=role, role_rank=role_rank)


def ps_cfg(**kw):
    return LaunchConfig(script="x", nproc_per_node=1, mode="ps", num_servers=1, grace_period=0.5, **kw)


def test_library_processes_are_stopped_after_the_workers_finish(tmp_path):
    pidfile = tmp_path / "pid"
    hang = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    specs = [proc("scheduler", "print('scheduler up')"), proc("server", hang, 0),
             proc("worker", "import time; t = time.time()\nwhile time.time() - t < 0.3: pass", rank=0)]
    out, err = io.StringIO(), io.StringIO()
    t0 = time.monotonic()
    outcome = Supervisor(ps_cfg(), stdout=out, stderr=err).run_attempt(specs, 0)
    assert outcome.ok and outcome.failure is None
    assert time.monotonic() - t0 < 20  # grace 0.5 s, then SIGTERM: not the server's 60 s
    pid = int(pidfile.read_text())
    try:
        assert not alive(pid)
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert "[scheduler] scheduler up" in out.getvalue()


def test_server_failure_fails_the_job_and_is_named(tmp_path):
    specs = [proc("scheduler", "import time; time.sleep(60)"),
             proc("server", "import sys; print('shard lost', file=sys.stderr); sys.exit(3)", 1),
             proc("worker", "import time; time.sleep(60)", rank=0)]
    err = io.StringIO()
    t0 = time.monotonic()
    sup = Supervisor(ps_cfg(log_dir=str(tmp_path)), stdout=io.StringIO(), stderr=err)
    outcome = sup.run_attempt(specs, 0)
    assert time.monotonic() - t0 < 20
    f = outcome.failure
    assert not outcome.ok and (f.role, f.label, f.exitcode) == ("server", "server 1", 3)
    assert f.stderr_tail == ["shard lost"] and "[server 1] shard lost" in err.getvalue()
    assert (tmp_path / "server_1.log").read_text() == "shard lost\n"
    text = format_summary(f, total=sup.processes, restart=0, max_restarts=0, will_restart=False)
    assert "server failure (attempt 1 of 1)" in text and "first failure : server 1 on host" in text
    assert "exit code 3" in text and "other processes: terminated (2 of 3 processes)" in text


def test_max_restarts_covers_the_scheduler_with_the_whole_group(capsys):
    # (a server or worker is restarted alone: tests/launcher/test_ps_restarts.py)
    code = "import os, sys; sys.exit(3 if os.environ['TORCHELASTIC_RESTART_COUNT'] == '0' else 0)"
    attempts = []

    def plan(restart, port):
        attempts.append(restart)
        env = {"TORCHELASTIC_RESTART_COUNT": str(restart)}
        return [ProcessSpec(rank=None, local_rank=None, host="localhost", argv=(sys.executable, "-c", code),
                            env=env, cwd=None, kind="local", role="scheduler"),
                proc("worker", "pass", rank=0)]

    rc = Supervisor(ps_cfg(max_restarts=1), stdout=io.StringIO(), stderr=io.StringIO()).run(plan, lambda: 1234)
    err = capsys.readouterr().err
    assert rc == 0 and attempts == [0, 1]
    assert err.count("scheduler failure") == 1 and "restarting the whole group: restart 1 of 1" in err


# ----------------------------------------------------------------------- end to end, with the ps library

TINY = """
import json
import disttorch as torch
import disttorch.distributed.ps as ps

ps.init()
rank, world = ps.get_rank(), ps.get_world_size()
w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
opt = ps.DistributedOptimizer([w], "sgd", lr=0.1, mode="sync")
for _ in range(3):
    opt.zero_grad()
    ((w - (rank + 1)) ** 2).sum().backward()   # gradient 2 (w - (rank + 1))
    opt.step()
opt.synchronize()
print("RESULT " + json.dumps({"rank": rank, "world": world, "w": w.detach().tolist()}))
ps.shutdown()
"""


def _need_ps_library():
    if importlib.util.find_spec("zmq") is None or importlib.util.find_spec("msgpack") is None:
        pytest.skip("the parameter server needs pyzmq and msgpack, which are not installed")


def _results(out):
    res = {}
    for line in out.splitlines():
        if "] RESULT " in line:
            r = json.loads(line.split("] RESULT ", 1)[1])
            assert line.startswith(f"[rank {r['rank']}] ")
            res[r["rank"]] = r
    assert sorted(res) == [0, 1] and {r["world"] for r in res.values()} == {2}
    # sync mode averages the two gradients: w <- w - 0.1 * 2 (w - 1.5), i.e. w_t = 1.5 (1 - 0.8^t), from 0.
    expected = 1.5 * (1 - 0.8 ** 3)
    for r in res.values():
        assert max(abs(v - expected) for v in r["w"]) < 1e-12
    return res


@pytest.mark.timeout(120)
def test_real_ps_launch_two_servers_two_workers(tmp_path):
    _need_ps_library()
    script = tmp_path / "tiny.py"
    script.write_text(TINY)
    t0 = time.monotonic()
    # A long grace period: a job that ends well before it shows the scheduler and servers ended by themselves.
    rc, out, err = launch("--mode", "ps", "--num-servers", "2", "--nproc-per-node", "2", "--grace-period", "60",
                          "--log-dir", str(tmp_path / "logs"), str(script), timeout=100)
    elapsed = time.monotonic() - t0
    assert rc == 0, err
    _results(out)
    assert elapsed < 50, f"the job took {elapsed:.1f} s: the scheduler/servers did not exit by themselves"
    logs = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert {"rank_0.log", "rank_1.log"} <= set(logs)


@pytest.mark.timeout(120)
def test_real_ps_launch_across_two_ssh_nodes(sshd, tmp_path):  # noqa: F811 - the fixture imported above
    """The shipped ps_two_nodes.yaml topology over the test's sshd: scheduler on the first node, one server
    and one worker per node, every process started through ssh."""
    _need_ps_library()
    (tmp_path / "tiny.py").write_text(TINY)
    y = tmp_path / "ps.yaml"
    y.write_text(f"""
mode: ps
hosts:
  - {{host: {HOSTS[0]}, slots: 1, interface: {HOSTS[0]}}}
  - {{host: {HOSTS[1]}, slots: 1, interface: {HOSTS[1]}}}
ps:
  servers: [{{host: {HOSTS[0]}, count: 1}}, {{host: {HOSTS[1]}, count: 1}}]
  snapshot_dir: {tmp_path}
workdir: {tmp_path}
grace_period: 30
ssh:
  port: {sshd['port']}
  identity: {sshd['identity']}
  options: [BatchMode=yes, StrictHostKeyChecking=no, UserKnownHostsFile=/dev/null, LogLevel=ERROR]
""")
    t0 = time.monotonic()
    rc, out, err = launch("--cluster-config", str(y), "tiny.py", timeout=100)
    assert rc == 0, err
    _results(out)
    assert time.monotonic() - t0 < 28, "the scheduler/servers did not exit by themselves"
