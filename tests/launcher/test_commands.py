"""Command building without starting any process: worker env contract, ssh and mpiexec commands, --dry-run."""
import shlex
import sys

import pytest

from disttorch.launcher import cli, local, mpi, ssh
from disttorch.launcher.config import resolve

pytestmark = pytest.mark.timeout(60)


def cfg(env=None, **flags):
    flags.setdefault("script", "train.py")
    flags.setdefault("script_args", ["--lr", "0.1"])
    return resolve(flags, environ=env or {})


def specs(c, restart=0, port=4242, environ=None):
    return local.build_specs(c, master_port=port, restart_count=restart, run_id="run1", secret="ab12",
                             environ=environ or {})


def test_single_node_env_contract():
    ss = specs(cfg(nproc_per_node="3"), restart=2)
    assert [s.kind for s in ss] == ["local"] * 3
    for r, s in enumerate(ss):
        e = s.env
        assert (e["RANK"], e["LOCAL_RANK"], e["WORLD_SIZE"], e["LOCAL_WORLD_SIZE"], e["GROUP_RANK"]) == \
            (str(r), str(r), "3", "3", "0")
        assert (e["ROLE_RANK"], e["ROLE_WORLD_SIZE"], e["GROUP_WORLD_SIZE"]) == (str(r), "3", "1")
        assert (e["MASTER_ADDR"], e["MASTER_PORT"], e["TORCHELASTIC_RESTART_COUNT"]) == ("127.0.0.1", "4242", "2")
        assert (e["DISTTORCH_BACKEND"], e["DISTTORCH_JOB_SECRET"], e["OMP_NUM_THREADS"]) == ("zmq", "ab12", "1")
        assert "DISTTORCH_INTERFACE" not in e
        assert s.argv == (sys.executable, "-u", "train.py", "--lr", "0.1")


def test_omp_threads_only_when_shared_and_unset():
    assert "OMP_NUM_THREADS" not in specs(cfg())[0].env  # one worker per node
    assert "OMP_NUM_THREADS" not in specs(cfg(nproc_per_node="2"), environ={"OMP_NUM_THREADS": "4"})[0].env


def test_torchrun_style_node_ranks():
    ss = specs(cfg(nnodes="3", node_rank="2", nproc_per_node="2", master_addr="10.0.0.1"))
    assert [(s.env["RANK"], s.env["LOCAL_RANK"], s.env["GROUP_RANK"], s.env["WORLD_SIZE"]) for s in ss] == \
        [("4", "0", "2", "6"), ("5", "1", "2", "6")]
    assert ss[0].env["MASTER_ADDR"] == "10.0.0.1"


def test_module_and_no_python():
    assert specs(cfg(module=True, script="pkg.train"))[0].argv == (sys.executable, "-u", "-m", "pkg.train",
                                                                    "--lr", "0.1")
    assert specs(cfg(no_python=True, script="./run.sh"))[0].argv == ("./run.sh", "--lr", "0.1")


def test_ssh_hosts_commands_and_contract(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("""
hosts:
  - {host: localhost, slots: 1}
  - {host: node2, slots: 2, interface: 10.0.0.2}
  - {host: 10.0.0.3, slots: 1, ssh_port: 2200, user: bob}
backend: zmq
python: /opt/py/bin/python
workdir: /srv/my job
env: {EXTRA: "a b"}
ssh:
  user: alice
  port: 2222
  identity: /keys/id
  options: [StrictHostKeyChecking=no, UserKnownHostsFile=/dev/null]
  remote_prefix: docker exec -i box
""")
    ss = specs(cfg(cluster_config=str(y)), environ={"PYTHONPATH": "/p", "HOME": "/root"})
    assert [s.kind for s in ss] == ["local", "ssh", "ssh", "ssh"]
    assert [s.host for s in ss] == ["localhost", "node2", "node2", "10.0.0.3"]
    assert [(s.worker_env["RANK"], s.worker_env["LOCAL_RANK"], s.worker_env["GROUP_RANK"],
             s.worker_env["LOCAL_WORLD_SIZE"]) for s in ss] == \
        [("0", "0", "0", "1"), ("1", "0", "1", "2"), ("2", "1", "1", "2"), ("3", "0", "2", "1")]
    assert all(s.worker_env["MASTER_ADDR"] == "127.0.0.1" and s.worker_env["WORLD_SIZE"] == "4" for s in ss)
    assert ss[0].env["EXTRA"] == "a b" and ss[0].cwd == "/srv/my job"
    # per-host interface, else the host's own address when it is an IP, else none
    assert ss[1].worker_env["DISTTORCH_INTERFACE"] == "10.0.0.2"
    assert ss[3].worker_env["DISTTORCH_INTERFACE"] == "10.0.0.3"
    assert "DISTTORCH_INTERFACE" not in ss[0].worker_env

    s = ss[1]
    opts = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    assert list(s.argv[:-1]) == ["ssh", "-p", "2222", "-i", "/keys/id", "-l", "alice", *opts, "node2"]
    assert list(ss[3].argv[:-1]) == ["ssh", "-p", "2200", "-i", "/keys/id", "-l", "bob", *opts, "10.0.0.3"]
    remote = s.argv[-1]
    words = shlex.split(remote)  # the remote shell's view: every value survives quoting
    assert "/srv/my job" in words
    i = words.index("docker")
    assert words[i:i + 4] == ["docker", "exec", "-i", "box"] and words[i + 4] == "env"
    assigned = dict(w.split("=", 1) for w in words[i + 5:] if "=" in w and not w.startswith("-"))
    assert assigned["RANK"] == "1" and assigned["EXTRA"] == "a b" and assigned["PYTHONPATH"] == "/p"
    assert "HOME" not in assigned  # only forward_env names/prefixes travel
    assert words[-5:] == ["/opt/py/bin/python", "-u", "train.py", "--lr", "0.1"]
    # the secret never appears on a command line: it goes through stdin
    assert "ab12" not in remote and s.stdin_text == "ab12\n" and "read -r DISTTORCH_JOB_SECRET" in remote
    assert remote.index(ssh.PID_MARK) < remote.index("cd ")
    # inside a container the host's pids mean nothing: no parent watch (disttorch/_parent_watch.py) there
    assert words[i - 1] == "exec" and "DISTTORCH_PARENT_PID" not in remote


def test_ssh_kill_command():
    base = ("ssh", "-p", "22", "h")
    assert ssh.kill_command(base, 123, "TERM") == [
        "ssh", "-p", "22", "h",
        "pkill -TERM -s 123 2>/dev/null; kill -s TERM -- -123 2>/dev/null || kill -s TERM 123 2>/dev/null; true"]
    # (tests/launcher/test_orphans.py runs it, and stop_command, in dash and bash)


@pytest.mark.parametrize("text,expected", [
    ("mpiexec (Open MPI) 5.0.11\n\nReport bugs to https://www.open-mpi.org/community/help/", ("openmpi", 5)),
    ("mpirun (Open MPI) 4.1.2", ("openmpi", 4)),
    ("HYDRA build details:\n    Version:                                 4.1.2\n", ("mpich", 4)),
    ("Intel(R) MPI Library for Linux* OS, Version 2021.10", ("mpich", 0)),
    ("something else", ("unknown", 0)),
])
def test_mpi_flavour_detection(text, expected):
    assert mpi.parse_version(text) == expected


def mpi_specs(c, flavour=("openmpi", 5), euid=0, cores=2, environ=None):
    return mpi.build_specs(c, master_port=4242, restart_count=1, run_id="run1", secret="ab12",
                           environ=environ or {}, mpiexec="/x/mpiexec", flavour=flavour, euid=euid, cores=cores)


def test_mpiexec_open_mpi_single_host():
    [s] = mpi_specs(cfg(nproc_per_node="4", backend="mpi", mpi_args="--mca btl tcp,self"))
    a = list(s.argv)
    assert s.kind == "mpi" and s.ranks == (0, 1, 2, 3)
    assert a[:3] == ["/x/mpiexec", "-np", "4"]
    assert "--allow-run-as-root" in a and "--oversubscribe" in a  # root, 4 ranks > 2 cores
    assert a[a.index("--bind-to") + 1] == "none" and a[a.index("--output") + 1] == "tag"
    exported = [a[i + 1] for i, w in enumerate(a) if w == "-x"]
    assert {"MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "DISTTORCH_BACKEND", "DISTTORCH_JOB_SECRET",
            "TORCHELASTIC_RESTART_COUNT"} <= set(exported)
    assert "RANK" not in exported and "LOCAL_RANK" not in exported  # per rank: set by the shim from MPI
    assert s.env["DISTTORCH_BACKEND"] == "mpi" and s.env["DISTTORCH_JOB_SECRET"] == "ab12"
    assert s.env["TORCHELASTIC_RESTART_COUNT"] == "1" and "ab12" not in a  # secret by name only
    i = a.index("--mca")
    assert a[i:i + 3] == ["--mca", "btl", "tcp,self"] and i < a.index("sh")
    assert a[a.index("sh"):a.index("sh") + 2] == ["sh", "-c"]
    assert a[-5:] == [sys.executable, "-u", "train.py", "--lr", "0.1"]


def test_mpiexec_open_mpi_flags_depend_on_machine():
    a = mpi_specs(cfg(nproc_per_node="2", backend="mpi"), euid=1000, cores=8)[0].argv
    assert "--allow-run-as-root" not in a and "--oversubscribe" not in a
    a4 = mpi_specs(cfg(nproc_per_node="2", backend="mpi"), flavour=("openmpi", 4))[0].argv
    assert "--tag-output" in a4 and "--output" not in a4


def test_mpiexec_hosts_and_ssh_settings(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("ssh: {port: 2222, identity: /k, options: [StrictHostKeyChecking=no]}\nbackend: mpi\n")
    c = cfg(cluster_config=str(y), hosts="127.0.0.2:2,127.0.0.3:2")
    a = list(mpi_specs(c)[0].argv)
    assert a[1:5] == ["-np", "4", "--host", "127.0.0.2:2,127.0.0.3:2"] and "--oversubscribe" not in a
    i = a.index("--prtemca")
    assert a[i + 1] == "plm_ssh_args" and shlex.split(a[i + 2]) == ["-p", "2222", "-i", "/k", "-o",
                                                                     "StrictHostKeyChecking=no"]
    a4 = list(mpi_specs(c, flavour=("openmpi", 4))[0].argv)
    assert a4[a4.index("plm_rsh_args") - 1] == "--mca"
    # shim: GROUP_RANK from the slots of each host
    shim = a[a.index("-c") + 1]
    assert "for s in 2 2;" in shim and "OMPI_COMM_WORLD_LOCAL_RANK" in shim and "PMI_RANK" in shim


def test_mpiexec_hostfile_passed_through(tmp_path):
    hf = tmp_path / "hosts"
    hf.write_text("n1 slots=2\nn2 slots=1\n")
    a = list(mpi_specs(cfg(hostfile=str(hf), backend="mpi"))[0].argv)
    assert a[1:5] == ["-np", "3", "--hostfile", str(hf)]


def test_mpiexec_mpich():
    c = cfg(hosts="n1:2,n2:2", backend="mpi", mpi_args="-v")
    [s] = mpi_specs(c, flavour=("mpich", 4), environ={"PYTHONPATH": "/p"})
    a = list(s.argv)
    assert a[:5] == ["/x/mpiexec", "-n", "4", "-hosts", "n1:2,n2:2"]
    assert "-prepend-rank" in a and a[a.index("-bind-to") + 1] == "none"
    assert "--allow-run-as-root" not in a and "-x" not in a
    names = a[a.index("-genvlist") + 1].split(",")
    assert {"MASTER_ADDR", "DISTTORCH_JOB_SECRET", "PYTHONPATH"} <= set(names) and s.env["PYTHONPATH"] == "/p"
    assert a[a.index("-v") + 1] == "sh"


def test_dry_run_prints_commands_and_starts_nothing(capsys, tmp_path):
    marker = tmp_path / "ran"
    rc = cli.main(["launch", "--dry-run", "-n", "2", "--master-port", "3456", "--no-python", "touch", str(marker)])
    out = capsys.readouterr().out
    assert rc == 0 and not marker.exists()
    assert "world size 2" in out and "MASTER_PORT=3456" in out
    assert "rank 0 (local_rank 0) on localhost" in out and "rank 1 (local_rank 1)" in out
    assert "RANK=1 LOCAL_RANK=1 WORLD_SIZE=2" in out and f"touch {marker}" in out
    assert "DISTTORCH_JOB_SECRET=<secret>" in out  # the secret itself is not printed


def test_dry_run_mpi(capsys):
    rc = cli.main(["launch", "--dry-run", "--backend", "mpi", "-n", "2", "train.py"])
    out = capsys.readouterr().out
    assert rc == 0 and "ranks 0-1 on localhost [mpi]" in out and "mpiexec -np 2" in out


def test_cli_config_error_exit_code(capsys):
    assert cli.main(["launch", "--nproc-per-node", "0", "train.py"]) == 2
    assert "--nproc-per-node: must be >= 1" in capsys.readouterr().err
