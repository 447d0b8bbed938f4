"""cluster_configs/ray_cluster.yaml passes Ray's own cluster-config validation, and the backend's environment."""
import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_ray_cluster_yaml_is_a_valid_ray_cluster_config():
    pytest.importorskip("ray.autoscaler", reason="the ray extra is not installed (pip install disttorch[ray])")
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "cluster_configs" / "ray_cluster.yaml").read_text())
    validate_config(prepare_config(config))  # Ray's schema check, as `ray up` does; raises on a bad field
    with pytest.raises(Exception, match="additional|bogus"):  # the check can fail
        validate_config(prepare_config({**config, "bogus_field": 1}))
    assert config["provider"]["type"] == "local" and config["max_workers"] == len(config["provider"]["worker_ips"])
    assert any("disttorch[ray]" in c for c in config["setup_commands"])
    assert any("--dashboard-host=127.0.0.1" in c for c in config["head_start_ray_commands"])
    for doc in ("docs/ray.md", "README.md"):
        assert "ray_cluster.yaml" in (ROOT / doc).read_text(), f"{doc} should point to ray_cluster.yaml"


def test_worker_environments_follow_the_launch_contract():
    pytest.importorskip("ray.train", reason="the ray extra is not installed (pip install disttorch[ray])")
    from disttorch.ray.backend import worker_environments

    envs = worker_environments(["a", "a", "b", "b", "a"], "10.1.2.3", 4567, "zmq", "ab" * 16,
                               ["10.1.2.3", "10.1.2.3", "10.1.2.4", "10.1.2.4", "10.1.2.3"])
    assert [e["RANK"] for e in envs] == ["0", "1", "2", "3", "4"]
    assert [e["LOCAL_RANK"] for e in envs] == ["0", "1", "0", "1", "2"]
    assert [e["LOCAL_WORLD_SIZE"] for e in envs] == ["3", "3", "2", "2", "3"]
    assert [e["GROUP_RANK"] for e in envs] == ["0", "0", "1", "1", "0"]
    assert {e["WORLD_SIZE"] for e in envs} == {"5"} and {e["GROUP_WORLD_SIZE"] for e in envs} == {"2"}
    assert {(e["MASTER_ADDR"], e["MASTER_PORT"], e["DISTTORCH_JOB_SECRET"]) for e in envs} == {
        ("10.1.2.3", "4567", "ab" * 16)}
    assert [e["DISTTORCH_INTERFACE"] for e in envs] == ["10.1.2.3", "10.1.2.3", "10.1.2.4", "10.1.2.4", "10.1.2.3"]
    one_node = worker_environments(["a", "a"], "127.0.0.1", 4567, "zmq", "cd" * 16, ["10.1.2.3", "10.1.2.3"])
    assert all("DISTTORCH_INTERFACE" not in e for e in one_node)  # one node: loopback, nothing to choose


def test_config_refuses_mpi_and_unknown_backends():
    pytest.importorskip("ray.train", reason="the ray extra is not installed (pip install disttorch[ray])")
    from disttorch.ray import DisttorchConfig

    assert DisttorchConfig().backend is None and DisttorchConfig(backend="nccl").to_dict()["backend"] == "nccl"
    with pytest.raises(ValueError, match="started by mpiexec"):
        DisttorchConfig(backend="mpi")
    with pytest.raises(ValueError, match="expected one of"):
        DisttorchConfig(backend="tcp")
