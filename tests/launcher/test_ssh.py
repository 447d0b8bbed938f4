"""Two "nodes" on this machine (127.0.0.2, 127.0.0.3) reached through a real sshd that the test starts."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from launch_helpers import (ALLREDUCE, ORPHAN, WORKER, Procs, alive, clean_env, launch, pids_of,  # noqa: E402
                            read_json, sigkill_and_check, start_launcher, wait_until)

from disttorch.launcher import local  # noqa: E402
from disttorch.launcher.config import resolve  # noqa: E402


@pytest.fixture
def procs():
    """Kills, at the end of the test, whatever of the processes it noted still runs."""
    tracked = Procs()
    yield tracked
    tracked.kill_all()


SSHD = "/usr/sbin/sshd"
HOSTS = ("127.0.0.2", "127.0.0.3")


def _port_free_on_both():
    for _ in range(50):
        with socket.socket() as a:
            a.bind((HOSTS[0], 0))
            port = a.getsockname()[1]
            try:
                with socket.socket() as b:
                    b.bind((HOSTS[1], port))
                return port
            except OSError:
                continue
    raise RuntimeError("no port free on both loopback aliases")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not os.path.exists(SSHD):
        pytest.skip("openssh-server is not installed (/usr/sbin/sshd missing); `make test` installs it as root")
    if os.geteuid() != 0:
        pytest.skip("starting a private sshd that accepts this user's key needs root here")
    if not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        pytest.skip("the ssh client (openssh-client) is not installed")
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "id_client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True, timeout=30)
    (d / "authorized_keys").write_text((d / "id_client.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = _port_free_on_both()
    (d / "sshd_config").write_text("\n".join([
        f"Port {port}", *(f"ListenAddress {h}" for h in HOSTS), f"HostKey {d}/host_key",
        f"AuthorizedKeysFile {d}/authorized_keys", "PermitRootLogin prohibit-password", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", f"PidFile {d}/sshd.pid", "PrintMotd no",
        "MaxStartups 64", "MaxSessions 64", ""]))
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=subprocess.DEVNULL,
                            stderr=open(d / "sshd.log", "w"))
    try:
        deadline = time.monotonic() + 20
        up = set()
        while up != set(HOSTS):
            assert proc.poll() is None, (d / "sshd.log").read_text()
            assert time.monotonic() < deadline, "sshd did not start listening"
            for h in HOSTS:
                try:
                    socket.create_connection((h, port), timeout=1).close()
                    up.add(h)
                except OSError:
                    time.sleep(0.05)
        yield {"port": port, "identity": str(d / "id_client"), "dir": d}
    finally:
        proc.kill()
        proc.wait()


def cluster_yaml(sshd, tmp_path):
    """Like cluster_configs/two_nodes_ssh.yaml, pointed at the test's sshd."""
    y = tmp_path / "two_nodes.yaml"
    y.write_text(f"""
hosts:
  - {{host: {HOSTS[0]}, slots: 1, interface: {HOSTS[0]}}}
  - {{host: {HOSTS[1]}, slots: 2}}
backend: zmq
workdir: {tmp_path}
env: {{EXTRA_FROM_YAML: "from yaml"}}
grace_period: 3
ssh:
  port: {sshd['port']}
  identity: {sshd['identity']}
  options: [BatchMode=yes, StrictHostKeyChecking=no, UserKnownHostsFile=/dev/null, LogLevel=ERROR]
""")
    return str(y)


@pytest.mark.timeout(90)
def test_two_node_zmq_job_over_ssh(sshd, tmp_path):
    rc, out, err = launch("--cluster-config", cluster_yaml(sshd, tmp_path), WORKER, "env", "x y", timeout=60)
    assert rc == 0, err
    envs = {}
    for line in out.splitlines():
        assert line.startswith("[rank "), line
        e = json.loads(line.split("] ENV ", 1)[1])
        envs[int(e["RANK"])] = e
        assert line.startswith(f"[rank {e['RANK']}] ")
    assert sorted(envs) == [0, 1, 2]
    assert [(e["GROUP_RANK"], e["LOCAL_RANK"], e["LOCAL_WORLD_SIZE"]) for _, e in sorted(envs.items())] == \
        [("0", "0", "1"), ("1", "0", "2"), ("1", "1", "2")]
    secret = envs[0]["DISTTORCH_JOB_SECRET"]
    assert len(secret) == 32
    for e in envs.values():
        assert (e["WORLD_SIZE"], e["MASTER_ADDR"], e["DISTTORCH_BACKEND"]) == ("3", HOSTS[0], "zmq")
        assert e["DISTTORCH_JOB_SECRET"] == secret and e["MASTER_PORT"] == envs[0]["MASTER_PORT"]
        assert e["EXTRA_FROM_YAML"] == "from yaml" and e["cwd"] == str(tmp_path) and e["argv"] == ["x y"]
    # the interface: configured for the first host, the host's own address for the second
    assert [envs[r]["DISTTORCH_INTERFACE"] for r in range(3)] == [HOSTS[0], HOSTS[1], HOSTS[1]]
    assert envs[1]["OMP_NUM_THREADS"] == "1" and envs[0]["OMP_NUM_THREADS"] is None
    assert "[rank 2] hello from rank 2" in err


@pytest.mark.timeout(90)
def test_failing_remote_rank_kills_the_other_node(sshd, tmp_path):
    t0 = time.monotonic()
    rc, out, err = launch("--cluster-config", cluster_yaml(sshd, tmp_path), WORKER, "fail", "2", "5",
                          str(tmp_path), timeout=60)
    assert rc == 5, err
    assert time.monotonic() - t0 < 20  # includes three ssh logins
    assert "first failure : rank 2 (local_rank 1) on host 127.0.0.3" in err and "exit code 5" in err
    assert "rank 2 diagnostic line 29" in err and err.count("worker failure") == 1
    # ranks 0 and 1 ran remotely (through sshd) with a child each: all gone, killed through ssh
    pids = pids_of(tmp_path, [0, 1])
    deadline = time.monotonic() + 5
    while [p for p in pids if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.05)  # sshd's session teardown may lag the launcher's exit by a moment
    assert not [p for p in pids if alive(p)]


@pytest.mark.timeout(120)
def test_end_to_end_all_reduce_over_ssh(sshd, tmp_path):
    try:
        import disttorch.distributed as dist
    except ImportError:
        dist = None
    if dist is None or not hasattr(dist, "init_process_group"):
        pytest.skip("disttorch.distributed.init_process_group is not available yet")
    rc, out, err = launch("--cluster-config", cluster_yaml(sshd, tmp_path), ALLREDUCE, timeout=100)
    assert rc == 0, err
    lines = sorted(line for line in out.splitlines() if "ALLREDUCE" in line)
    assert lines == [f"[rank {r}] ALLREDUCE backend=zmq rank={r} world=3 result=[6.0, 30.0]" for r in range(3)]


@pytest.mark.timeout(60)
def test_sigkilled_launcher_stops_remote_workers_through_ssh(sshd, tmp_path, procs):
    """Workers that never import disttorch: the launcher's reaper runs ssh.stop_command for each."""
    p = start_launcher(tmp_path, procs, "--cluster-config", cluster_yaml(sshd, tmp_path), ORPHAN, "plain",
                       str(tmp_path))
    pids = [q for r in range(3) for q in procs.note(*read_json(tmp_path / f"pids_{r}", proc=p))]
    assert len(set(pids)) == 9  # per rank: the worker, a child, a child in a group of its own
    sigkill_and_check(p, tmp_path, pids)


@pytest.mark.timeout(60)
def test_remote_worker_ends_when_its_ssh_connection_drops(sshd, tmp_path, procs):
    """No launcher, no reaper: the ssh client of a worker that imports disttorch is SIGKILLed; sshd then
    exits, and the worker, whose parent it was (DISTTORCH_PARENT_PID), ends its group."""
    cfg = resolve({"cluster_config": cluster_yaml(sshd, tmp_path), "script": ORPHAN,
                   "script_args": ["watch", str(tmp_path), "rank{rank}"]}, environ={})
    spec = local.build_specs(cfg, master_port=29999, restart_count=0, run_id="t", secret=None)[0]
    client = subprocess.Popen(list(spec.argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=clean_env(), start_new_session=True)
    procs.note(client.pid)
    info = read_json(tmp_path / "rank0")
    pids = procs.note(info["pid"], *info["children"])
    assert info["watched"] is not None and all(alive(q) for q in pids)
    client.kill()
    client.wait(10)
    assert wait_until(lambda: not [q for q in pids if alive(q)], 15), [q for q in pids if alive(q)]
