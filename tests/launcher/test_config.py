"""LaunchConfig resolution: flags > environment > cluster YAML > defaults, and validation messages."""
import pathlib

import pytest

from disttorch.launcher.config import ConfigError, HostSpec, LaunchConfig, load_cluster_config, resolve

pytestmark = pytest.mark.timeout(60)
CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "cluster_configs"


def cfg(env=None, **flags):
    flags.setdefault("script", "train.py")
    return resolve(flags, environ=env or {})


def write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_defaults():
    c = cfg()
    assert isinstance(c, LaunchConfig)
    assert (c.nproc_per_node, c.nnodes, c.node_rank, c.master_addr, c.master_port, c.backend) == \
        (1, 1, 0, "127.0.0.1", None, "zmq")
    assert (c.max_restarts, c.log_dir, c.redirects, c.tee, c.local_ranks_filter, c.hosts) == (0, None, 0, 0, None, ())
    with pytest.raises(AttributeError):
        c.nproc_per_node = 3  # frozen


def test_precedence_flag_env_yaml_default(tmp_path):
    y = write(tmp_path, "nproc_per_node: 3\nmax_restarts: 2\nmaster_addr: 10.0.0.9\n")
    assert cfg(cluster_config=y).nproc_per_node == 3
    env = {"PET_NPROC_PER_NODE": "4"}
    assert cfg(env, cluster_config=y).nproc_per_node == 4
    env["DISTTORCH_NPROC_PER_NODE"] = "5"  # DISTTORCH_ beats torchrun's PET_
    assert cfg(env, cluster_config=y).nproc_per_node == 5
    c = cfg(env, cluster_config=y, nproc_per_node="6")
    assert (c.nproc_per_node, c.max_restarts, c.master_addr) == (6, 2, "10.0.0.9")
    # the cluster config itself can come from the environment
    assert cfg({"DISTTORCH_CLUSTER_CONFIG": y}).max_restarts == 2


@pytest.mark.parametrize("var,value,field,expected", [
    ("PET_NNODES", "2:2", "nnodes", 2), ("PET_NODE_RANK", "1", "node_rank", 1),
    ("DISTTORCH_MASTER_PORT", "1234", "master_port", 1234), ("PET_MAX_RESTARTS", "3", "max_restarts", 3),
    ("DISTTORCH_STANDALONE", "1", "standalone", True), ("PET_NO_PYTHON", "true", "no_python", True),
    ("DISTTORCH_LOCAL_RANKS_FILTER", "0,2", "local_ranks_filter", (0, 2)), ("PET_TEE", "0:1,1:3", "tee", {0: 1, 1: 3}),
    ("DISTTORCH_HOSTS", "a:2,b:1", "hosts", (HostSpec("a", 2), HostSpec("b", 1))),
    ("DISTTORCH_BACKEND", "mpi", "backend", "mpi"), ("DISTTORCH_MPI_ARGS", "--mca btl self", "mpi_args",
                                                      ("--mca", "btl", "self")),
])
def test_every_flag_reads_its_env_var(var, value, field, expected):
    env = {var: value}
    if field == "node_rank":
        env["PET_NNODES"] = "2"
    assert getattr(cfg(env), field) == expected


def test_nproc_keywords_and_torchrun_port_default():
    assert cfg(nproc_per_node="cpu").nproc_per_node >= 1
    c = cfg(nnodes="2", node_rank="1", master_addr="10.1.1.1")
    assert (c.nnodes, c.node_rank, c.master_port, c.world_size) == (2, 1, 29500, 2)
    s = cfg(standalone=True, master_port="1234", master_addr="10.0.0.1")
    assert (s.master_addr, s.master_port, s.nnodes) == ("127.0.0.1", None, 1)


def test_hosts_set_nodes_master_and_backend(monkeypatch):
    import importlib.util

    c = cfg(hosts="127.0.0.2:2,127.0.0.3")
    assert c.hosts == (HostSpec("127.0.0.2", 2), HostSpec("127.0.0.3", None))
    assert (c.nnodes, c.master_addr, c.world_size) == (2, "127.0.0.2", 3)
    expected = "mpi" if importlib.util.find_spec("mpi4py") else "zmq"
    assert c.backend == expected
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert cfg(hosts="h1:1,h2:1").backend == "zmq"  # no mpi4py -> zmq
    assert cfg(hosts="localhost:2").backend == "zmq"  # one local host is not multi-host
    assert cfg(hosts="h1:1,h2:1", backend="mpi").backend == "mpi"


def test_hostfile(tmp_path):
    hf = write(tmp_path, "# comment\nnode1 slots=2\n\nnode2:3   # trailing\nnode3 max_slots=4\n", "hosts")
    c = cfg(hostfile=hf, nproc_per_node="5")
    assert c.hosts == (HostSpec("node1", 2), HostSpec("node2", 3), HostSpec("node3", None))
    assert c.world_size == 10 and c.hostfile == hf
    bad = write(tmp_path, "node1 slots=x\n", "bad")
    with pytest.raises(ConfigError, match=r"bad:1: slots"):
        cfg(hostfile=bad)
    with pytest.raises(ConfigError, match="give one of them"):
        cfg(hostfile=hf, hosts="a:1")


@pytest.mark.parametrize("flags,match", [
    ({"nproc_per_node": "0"}, r"--nproc-per-node: must be >= 1, got 0"),
    ({"nproc_per_node": "two"}, r"--nproc-per-node: expected an integer, got 'two'"),
    ({"nnodes": "1:4"}, r"--nnodes: elastic ranges"),
    ({"nnodes": "2", "node_rank": "2"}, r"--node-rank: node rank 2 is not below --nnodes 2"),
    ({"master_port": "70000"}, r"--master-port: must be in \[1, 65535\]"),
    ({"backend": "gloo"}, r"--backend: expected one of mpi, zmq, got 'gloo'"),
    ({"redirects": "7"}, r"--redirects: expected 0-3"),
    ({"local_ranks_filter": "a"}, r"--local-ranks-filter: expected comma-separated ranks"),
    ({"hosts": "h1:0"}, r"-H/--hosts\[0\].slots: must be >= 1"),
    ({"hosts": "h1:2,h2:2", "node_rank": "1"}, r"--node-rank: a host list"),
    ({"hosts": "h1:2,h2:2", "nnodes": "3"}, r"--nnodes: 3 nodes, but -H/--hosts lists 2 hosts"),
    ({"nnodes": "2", "backend": "mpi"}, r"--backend: mpi starts every node from one command"),
    ({"module": True, "no_python": True}, r"--module and --no-python"),
    ({"script": ""}, r"script: missing"),
])
def test_flag_errors_name_the_flag(flags, match):
    with pytest.raises(ConfigError, match=match):
        cfg(**flags)


def test_env_errors_name_the_variable():
    with pytest.raises(ConfigError, match=r"environment variable PET_MAX_RESTARTS: expected an integer, got 'x'"):
        cfg({"PET_MAX_RESTARTS": "x"})


@pytest.mark.parametrize("text,match", [
    ("nproc_per_nod: 2\n", r"unknown field\(s\) \['nproc_per_nod'\]"),
    ("hosts:\n  - host: a\n    slots: 0\n", r"c.yaml: hosts\[0\].slots: must be >= 1, got 0"),
    ("hosts:\n  - slots: 2\n", r"hosts\[0\].host: missing"),
    ("hosts:\n  - host: a\n    cores: 2\n", r"hosts\[0\]: unknown field\(s\) \['cores'\]"),
    ("ssh:\n  port: abc\n", r"c.yaml: ssh.port: expected an integer, got 'abc'"),
    ("ssh:\n  key: x\n", r"c.yaml: ssh: unknown field\(s\) \['key'\]"),
    ("env: [A, B]\n", r"c.yaml: env: expected a mapping"),
    ("env:\n  A: [1]\n", r"c.yaml: env.A: expected a string or number"),
    ("backend: nccl2\n", r"c.yaml: backend: expected one of"),
    ("- a\n- b\n", r"expected a mapping of fields at the top level"),
    ("hosts: [a:1\n", r"not valid YAML"),
    ("hosts: [a]\nhostfile: h\n", r"hosts and hostfile: give one of them"),
])
def test_yaml_errors_name_the_field(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        cfg(cluster_config=write(tmp_path, text))


def test_yaml_fields_and_flag_override(tmp_path):
    (tmp_path / "key").write_text("")
    y = write(tmp_path, """
hosts:
  - host: n1
    slots: 2
    ssh_port: 2200
    interface: 10.0.0.1
  - n2:1
env: {A: 1, B: "x y"}
python: /opt/py/bin/python
workdir: /srv/job
ssh:
  command: ssh -q
  user: alice
  port: 2222
  identity: key
  options: [StrictHostKeyChecking=no]
  remote_prefix: docker exec -i box
backend: zmq
""")
    c = cfg(cluster_config=y)
    assert c.hosts == (HostSpec("n1", 2, 2200, None, "10.0.0.1"), HostSpec("n2", 1))
    assert c.env == {"A": "1", "B": "x y"} and c.python == "/opt/py/bin/python" and c.workdir == "/srv/job"
    assert c.ssh.command == ("ssh", "-q") and c.ssh.user == "alice" and c.ssh.port == 2222
    assert c.ssh.identity == str(tmp_path / "key") and c.ssh.options == ("StrictHostKeyChecking=no",)
    assert c.ssh.remote_prefix == ("docker", "exec", "-i", "box")
    assert cfg(cluster_config=y, hosts="m1:4").hosts == (HostSpec("m1", 4),)  # -H replaces the YAML's hosts


@pytest.mark.parametrize("path", sorted(p for p in CONFIGS.glob("*.yaml") if p.name != "ray_cluster.yaml"),
                         ids=lambda p: p.name)  # ray_cluster.yaml is Ray's format: tests/ray/test_cluster_config.py
def test_shipped_cluster_configs_load(path):
    raw = load_cluster_config(str(path))
    c = cfg(cluster_config=str(path))
    assert c.cluster_config == str(path)
    if path.name == "local.yaml":  # the default: same as no config at all
        assert c == cfg().__class__(**{**cfg().__dict__, "cluster_config": str(path)})
    if path.name == "two_nodes_ssh.yaml":
        assert [h.host for h in c.hosts] == ["127.0.0.2", "127.0.0.3"] and c.backend == "zmq"
        assert c.ssh.port == raw["ssh"]["port"]
    if path.name == "ps_two_nodes.yaml":
        assert (c.mode, c.num_servers, c.secure, c.world_size, c.backend) == ("ps", 2, "none", 4, "zmq")
        assert c.ps_servers == (("127.0.0.2", 1), ("127.0.0.3", 1)) and c.ps_heartbeat_timeout == 30
    if path.name == "mpi_hostfile.yaml":
        assert c.backend == "mpi" and [h.host for h in c.hosts] == ["127.0.0.2", "127.0.0.3"] and c.world_size == 4


def test_shipped_configs_are_documented():
    readme = (CONFIGS / "README.md").read_text()
    for path in CONFIGS.glob("*.yaml"):
        assert path.name in readme
