"""Launch configuration: flags > environment variables > cluster YAML > defaults -> :class:`LaunchConfig`.

Every flag ``--some-flag`` can also be set through ``DISTTORCH_SOME_FLAG`` or torchrun's ``PET_SOME_FLAG``
(DISTTORCH_ wins). A cluster YAML (``--cluster-config``) supplies the rest; see cluster_configs/README.md.
Errors raise :class:`ConfigError` naming the flag, variable or YAML field and the bad value.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import replace
from typing import Any, Mapping

# The types and parsers live beside this file; every name stays importable from here.
from disttorch.launcher.config_parse import (  # noqa: F401
    _FLAGS, _NOT_IN_YAML, _SSH_FIELDS, _YAML_ONLY, _argv, _backend, _bool, _choice, _float, _int, _nnodes, _nproc,
    _ranks, _str, is_local_host, load_cluster_config, parse_hosts, parse_ps_section, parse_std, read_hostfile,
    std_for)
from disttorch.launcher.config_types import (  # noqa: F401
    BACKENDS, MODES, SECURE, TORCHRUN_DEFAULT_PORT, ConfigError, HostSpec, LaunchConfig, SshConfig)


def _from_env(name: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    for prefix in ("DISTTORCH_", "PET_"):
        var = prefix + name.upper()
        if environ.get(var, "") != "":
            return var, environ[var]
    return None


def resolve(flags: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> LaunchConfig:
    """Merge flags (None = not given) > environment > cluster YAML > defaults, then validate.

    Args:
        flags: parsed command-line values keyed by LaunchConfig field name, plus ``script``,
            ``script_args`` and ``cluster_config``.
        environ: the environment to read (default ``os.environ``).
    """
    environ = os.environ if environ is None else environ
    cluster = flags.get("cluster_config")
    if cluster is None:
        hit = _from_env("cluster_config", environ)
        cluster = hit[1] if hit else None
    yaml_vals = load_cluster_config(cluster) if cluster else {}

    vals: dict[str, Any] = {}
    given: dict[str, str] = {}  # field -> where it came from, for cross-field messages
    for name, (flag, parse) in _FLAGS.items():
        if flags.get(name) is not None:
            v = flags[name]
            vals[name] = parse(v, flag)
            given[name] = flag
        elif (hit := _from_env(name, environ)) is not None:
            vals[name] = parse(hit[1], f"environment variable {hit[0]}")
            given[name] = hit[0]
        elif name in yaml_vals:
            vals[name] = yaml_vals[name]
            given[name] = f"{cluster}: {name}"
    for name in ("env", "python", "workdir", "mpiexec", "forward_env"):
        if name in yaml_vals:
            vals[name] = yaml_vals[name]
    if "ssh" in yaml_vals:
        vals["ssh"] = replace(SshConfig(), **yaml_vals["ssh"])
    for name, v in yaml_vals.get("ps", {}).items():
        if name == "num_servers" and "num_servers" in vals:
            if not given["num_servers"].startswith(f"{cluster}:"):
                continue  # a flag or variable wins over the YAML, as everywhere
            if vals["num_servers"] != v:
                raise ConfigError(f"{cluster}: num_servers ({vals['num_servers']}) and ps.num_servers ({v}) "
                                  "disagree; give one of them")
        vals[name] = v
        if name == "num_servers":
            given.setdefault("num_servers", f"{cluster}: ps.num_servers")

    # -H/--hostfile from the command line or the environment replace the YAML's hosts/hostfile.
    def from_yaml(name: str) -> bool:
        return cluster is not None and given.get(name, "").startswith(f"{cluster}:")

    hostfile = vals.pop("hostfile", None)
    if hostfile is not None:
        if "hosts" in vals and not from_yaml("hosts") and not from_yaml("hostfile"):
            raise ConfigError(f"{given['hosts']} and {given['hostfile']}: give one of them, not both")
        if "hosts" not in vals or (from_yaml("hosts") and not from_yaml("hostfile")):
            vals["hosts"] = read_hostfile(hostfile, given["hostfile"])
            vals["hostfile"] = os.path.abspath(hostfile)
            given["hosts"] = given["hostfile"]

    script = flags.get("script")
    if not script:
        raise ConfigError("script: missing (usage: disttorch launch [options] script.py [args...])")
    cfg = LaunchConfig(script=script, script_args=tuple(flags.get("script_args") or ()),
                       cluster_config=cluster, job_secret=environ.get("DISTTORCH_JOB_SECRET") or None,
                       **{k: v for k, v in vals.items()})
    return _finish(cfg, given)


def _finish(cfg: LaunchConfig, given: Mapping[str, str]) -> LaunchConfig:
    """Cross-field defaults and checks."""
    if cfg.module and cfg.no_python:
        raise ConfigError("--module and --no-python: give at most one of them")
    changes: dict[str, Any] = {}
    if cfg.standalone:
        if cfg.hosts:
            raise ConfigError(f"--standalone: cannot be combined with a host list ({given['hosts']})")
        changes.update(nnodes=1, node_rank=0, master_addr="127.0.0.1", master_port=None)
    elif cfg.hosts:
        if "nnodes" in given and cfg.nnodes not in (1, len(cfg.hosts)):
            raise ConfigError(f"{given['nnodes']}: {cfg.nnodes} nodes, but {given['hosts']} lists "
                              f"{len(cfg.hosts)} hosts; the host list sets the number of nodes")
        if cfg.node_rank != 0:
            raise ConfigError(f"{given['node_rank']}: a host list ({given['hosts']}) starts every node from "
                              "this one command; --node-rank is for one launcher per node (torchrun style)")
        changes["nnodes"] = len(cfg.hosts)
        if "master_addr" not in given:
            first = cfg.hosts[0].host
            changes["master_addr"] = "127.0.0.1" if is_local_host(first) else first
        if "backend" not in given:
            multi = len(cfg.hosts) > 1 or not is_local_host(cfg.hosts[0].host)
            changes["backend"] = "mpi" if multi and importlib.util.find_spec("mpi4py") is not None else "zmq"
    else:
        if cfg.node_rank >= cfg.nnodes:
            raise ConfigError(f"{given.get('node_rank', '--node-rank')}: node rank {cfg.node_rank} is not below "
                              f"--nnodes {cfg.nnodes}")
        if cfg.nnodes > 1:
            if cfg.backend == "mpi":
                raise ConfigError(f"{given['backend']}: mpi starts every node from one command; give the hosts "
                                  "with -H/--hostfile instead of --nnodes/--node-rank")
            if cfg.master_port is None:
                changes["master_port"] = TORCHRUN_DEFAULT_PORT
    if cfg.log_dir is not None:
        changes["log_dir"] = os.path.abspath(cfg.log_dir)
    if cfg.timeline is not None:
        changes["timeline"] = os.path.abspath(cfg.timeline)
    if cfg.mode == "ps":
        changes.update(_finish_ps(cfg, given, changes))
    else:
        for name in ("num_servers", "secure"):
            # Only a flag is an error: variables and YAML fields may serve other launches of either mode.
            if given.get(name, "").startswith("--") and getattr(cfg, name) not in (None, "none"):
                raise ConfigError(f"{given[name]}: only used with --mode ps (the parameter-server topology), "
                                  f"but the mode is {cfg.mode}")
    return replace(cfg, **changes) if changes else cfg


def _loopback(host: str) -> bool:
    import ipaddress

    if host in ("localhost", "local"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _finish_ps(cfg: LaunchConfig, given: Mapping[str, str], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Checks and defaults of --mode ps: zmq workers, one launcher for every host, a consistent server count."""
    out: dict[str, Any] = {}
    backend = changes.get("backend", cfg.backend)
    if backend == "mpi":
        if "backend" in given:
            raise ConfigError(f"{given['backend']}: --mode ps starts its processes itself (locally and through "
                              "ssh); use --backend zmq, or --mode ddp for an mpiexec launch")
        out["backend"] = "zmq"
    if changes.get("nnodes", cfg.nnodes) > 1 and not cfg.hosts:
        raise ConfigError(f"{given.get('nnodes', '--nnodes')}: --mode ps starts the scheduler, the servers and "
                          "every worker from one command; give the hosts with -H/--hostfile/--cluster-config "
                          "instead of one launcher per node")
    if cfg.hosts and not (cfg.hosts[0].interface or cfg.interface):
        addr = changes.get("master_addr", cfg.master_addr)
        far = [h.host for h in cfg.hosts[1:] if not _loopback(h.host)] + [h for h, _ in cfg.ps_servers
                                                                         if not _loopback(h)]
        if _loopback(addr) and far:
            raise ConfigError(f"{given['hosts']}: the scheduler runs on the first host ({cfg.hosts[0].host}) and "
                              f"would bind {addr}, which {far[0]} cannot reach; give the first host an interface "
                              "(cluster YAML hosts[0].interface), or --interface/--master-addr with an address of "
                              "that host the others can reach")
    placed = sum(n for _, n in cfg.ps_servers)
    if cfg.num_servers is None:
        out["num_servers"] = placed or 1
    elif cfg.ps_servers and placed != cfg.num_servers:
        raise ConfigError(f"{given.get('num_servers', '--num-servers')}: {cfg.num_servers} server(s), but the "
                          f"cluster YAML's ps.servers places {placed}; make them agree (or drop one of them)")
    return out


FLAG_FIELDS = tuple(_FLAGS)
