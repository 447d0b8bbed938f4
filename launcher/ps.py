"""The parameter-server topology of ``disttorch launch --mode ps``: which process runs where, with which
command and environment. Pure functions: nothing here starts a process (supervise.py does).

One attempt is, in start order: the scheduler (on the first host), S servers (placed by the cluster YAML's
``ps.servers``, else round-robin over the hosts), and the workers (the user's script, placed as ``disttorch
launch`` places them in ddp mode, with RANK/WORLD_SIZE counting workers only). The scheduler and the servers
run ``python -u -m disttorch.distributed.ps.scheduler`` / ``...ps.server``. Every process gets:

- DISTTORCH_PS_ROLE (scheduler | server | worker), DISTTORCH_PS_SCHEDULER ("host:port", which the scheduler
  binds), DISTTORCH_PS_NUM_SERVERS, DISTTORCH_PS_NUM_WORKERS, DISTTORCH_PS_SNAPSHOT_DIR,
  DISTTORCH_PS_HEARTBEAT_TIMEOUT (when configured), DISTTORCH_JOB_SECRET, DISTTORCH_INTERFACE (when known);
  servers also DISTTORCH_PS_SERVER_ID (0..S-1).
- With --secure curve: DISTTORCH_PS_SECURE=curve. The CURVE key pairs derive from the job secret (the
  launcher makes one per job and hands it only to the job's processes; remote ones read it from stdin), so no
  key travels by itself.

With --max-restarts, :func:`restart_alone` decides whether a failed process restarts by itself (a server or a
worker) or takes the whole group with it (the scheduler), and :func:`restarted_spec` is its spec again.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from typing import Mapping

from disttorch.launcher import local
from disttorch.launcher.config import HostSpec, LaunchConfig, is_local_host

SCHEDULER_MODULE = "disttorch.distributed.ps.scheduler"
SERVER_MODULE = "disttorch.distributed.ps.server"


def check_curve() -> None:
    """Fail early, in the launcher, when --secure curve cannot work here (imports zmq: only for --secure curve).

    Raises:
        RuntimeError: pyzmq is missing, or its libzmq was built without CURVE (libsodium).
    """
    try:
        import zmq
    except ImportError:
        raise RuntimeError("--secure curve needs pyzmq (pip install pyzmq), which is not installed") from None
    if not zmq.has("curve"):
        raise RuntimeError(f"--secure curve: this pyzmq/libzmq {zmq.zmq_version()} was built without CURVE "
                           "(libsodium); install a pyzmq wheel, which ships it, or use --secure none")


def snapshot_dir(cfg: LaunchConfig, run_id: str) -> str:
    """Where servers snapshot their shards: the configured directory, else one per job (the same across
    restarts, so a restarted server finds its snapshot)."""
    return cfg.ps_snapshot_dir or os.path.join(tempfile.gettempdir(), f"disttorch_ps_{run_id}")


def prepare_snapshot_dir(cfg: LaunchConfig, run_id: str) -> str | None:
    """Create the snapshot directory on this machine when a server runs here (private: 0700, as snapshots hold
    the model). Servers on other hosts create theirs themselves.

    Returns:
        The directory to remove when the job ends (the default per-job one, which nothing else can reuse), or
        None (a configured directory stays).

    Raises:
        OSError: the directory cannot be created (the caller names it).
    """
    if not any(is_local_host(h.host) for h in server_hosts(cfg)):
        return None
    path = snapshot_dir(cfg, run_id)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return None if cfg.ps_snapshot_dir else path


def _host_spec(cfg: LaunchConfig, name: str) -> HostSpec:
    for h in cfg.hosts:
        if h.host == name:
            return h
    return HostSpec(name)


def server_hosts(cfg: LaunchConfig) -> list[HostSpec]:
    """The host of each server, by server id: the YAML's ps.servers in order, else round-robin over the hosts
    (the local machine when no host list is given)."""
    if cfg.ps_servers:
        return [_host_spec(cfg, name) for name, n in cfg.ps_servers for _ in range(n)]
    hosts = list(cfg.hosts) or [HostSpec("localhost")]
    return [hosts[i % len(hosts)] for i in range(cfg.num_servers or 1)]


def scheduler_host(cfg: LaunchConfig) -> HostSpec:
    return cfg.hosts[0] if cfg.hosts else HostSpec("localhost")


def scheduler_addr(cfg: LaunchConfig) -> str:
    """The address the scheduler binds and everyone connects to (without the port): the first host's
    interface, else --interface, else the rendezvous address (127.0.0.1 when the first host is this one)."""
    h = scheduler_host(cfg)
    return h.interface or cfg.interface or cfg.master_addr


def _interface(cfg: LaunchConfig, h: HostSpec) -> str | None:
    if h.interface or cfg.interface:
        return h.interface or cfg.interface
    return h.host if not is_local_host(h.host) and local._is_ip(h.host) else None


def common_env(cfg: LaunchConfig, *, scheduler_port: int, run_id: str, secret: str | None) -> dict[str, str]:
    """The DISTTORCH_PS_* variables every process of the job shares (role-specific ones are added later)."""
    env = {
        "DISTTORCH_PS_SCHEDULER": f"{scheduler_addr(cfg)}:{scheduler_port}",
        "DISTTORCH_PS_NUM_SERVERS": str(cfg.num_servers or 1),
        "DISTTORCH_PS_NUM_WORKERS": str(cfg.world_size),
        "DISTTORCH_PS_SNAPSHOT_DIR": snapshot_dir(cfg, run_id),
    }
    if cfg.ps_heartbeat_timeout is not None:
        env["DISTTORCH_PS_HEARTBEAT_TIMEOUT"] = f"{cfg.ps_heartbeat_timeout:g}"
    if secret:
        env["DISTTORCH_JOB_SECRET"] = secret
    if cfg.secure == "curve":
        env["DISTTORCH_PS_SECURE"] = "curve"
    return env


def _library_spec(cfg: LaunchConfig, h: HostSpec, role: str, role_rank: int | None, env: Mapping[str, str],
                  environ: Mapping[str, str]) -> local.ProcessSpec:
    argv = [local.python_executable(cfg), "-u", "-m", SCHEDULER_MODULE if role == "scheduler" else SERVER_MODULE]
    # (restarted_spec passes env back in with DISTTORCH_INTERFACE already set: the same value again)
    iface = _interface(cfg, h)
    env = {**env, **({"DISTTORCH_INTERFACE": iface} if iface else {})}
    if is_local_host(h.host):
        return local.ProcessSpec(rank=None, local_rank=None, host=h.host, argv=tuple(argv), env={**cfg.env, **env},
                                 cwd=cfg.workdir, kind="local", worker_env=dict(env), role=role, role_rank=role_rank)
    from disttorch.launcher import ssh

    full = {**local.forwarded_env(cfg, environ), **cfg.env, **env}
    spec = ssh.remote_spec(cfg, h, rank=0, local_rank=0, argv=argv, env=full, worker_env=env)
    return replace(spec, rank=None, local_rank=None, ranks=(), role=role, role_rank=role_rank)


def build_specs(cfg: LaunchConfig, *, master_port: int, scheduler_port: int, restart_count: int, run_id: str,
                secret: str | None, environ: Mapping[str, str] | None = None) -> list[local.ProcessSpec]:
    """Every process of one --mode ps attempt, in start order: scheduler, servers, workers (pure function).

    Args:
        cfg: the resolved launch configuration (``cfg.mode == "ps"``).
        master_port: MASTER_PORT for the workers (they may also use torch.distributed collectives).
        scheduler_port: the port in DISTTORCH_PS_SCHEDULER.
        restart_count: TORCHELASTIC_RESTART_COUNT of this attempt.
        run_id: the job's id (names the default snapshot directory).
        secret: DISTTORCH_JOB_SECRET.
        environ: the launcher's environment (default ``os.environ``).
    """
    environ = os.environ if environ is None else environ
    shared = common_env(cfg, scheduler_port=scheduler_port, run_id=run_id, secret=secret)
    library = dict(shared, TORCHELASTIC_RESTART_COUNT=str(restart_count), TORCHELASTIC_RUN_ID=run_id)
    specs = [_library_spec(cfg, scheduler_host(cfg), "scheduler", None,
                           {**library, "DISTTORCH_PS_ROLE": "scheduler"}, environ)]
    for sid, h in enumerate(server_hosts(cfg)):
        specs.append(_library_spec(cfg, h, "server", sid, {**library, "DISTTORCH_PS_ROLE": "server",
                                                           "DISTTORCH_PS_SERVER_ID": str(sid)}, environ))
    workers = local.build_specs(cfg, master_port=master_port, restart_count=restart_count, run_id=run_id,
                                secret=secret, environ=environ, extra_env={**shared, "DISTTORCH_PS_ROLE": "worker"})
    return specs + workers


def describe(cfg: LaunchConfig, specs: list[local.ProcessSpec]) -> str:
    """The --dry-run text: a header with the topology, then each process (role, host, command)."""
    servers = [s for s in specs if s.role == "server"]
    workers = [s for s in specs if s.role == "worker"]
    sched = next((s for s in specs if s.role == "scheduler"), None)
    addr = sched.worker_env.get("DISTTORCH_PS_SCHEDULER", "?") if sched else "?"
    lines = [f"# disttorch launch --dry-run: mode ps, 1 scheduler at {addr}, {len(servers)} server(s), "
             f"{len(workers)} worker(s), secure {cfg.secure}, {len(specs)} process(es)"]
    for s in specs:
        lines.append(("worker " if s.role == "worker" else "") + s.describe())
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ per-process restarts

def restart_alone(spec: local.ProcessSpec, *, restarts_used: int, max_restarts: int, workers_running: int) -> bool:
    """Whether a failed process of a --mode ps job is restarted by itself, the others running on (pure function).

    A server restores its shards from its snapshot and takes its old port (workers reconnect and resend what
    it had not acknowledged); a worker rejoins and pulls the current parameters. The scheduler holds the
    membership: its failure restarts the whole group, as does any failure once the restart budget is spent
    (then the job fails) or once no worker is left running (nothing would use a restarted server).

    Args:
        spec: the process that exited non-zero or by a signal.
        restarts_used: restarts of this job so far (per-process and whole-group ones: one budget).
        max_restarts: --max-restarts.
        workers_running: workers (user scripts) not yet exited 0, the failed one included if it is a worker.
    """
    return (spec.role in ("server", "worker") and spec.kind in ("local", "ssh")
            and restarts_used < max_restarts and workers_running > 0)


def restarted_spec(cfg: LaunchConfig, spec: local.ProcessSpec, restart: int,
                   environ: Mapping[str, str] | None = None) -> local.ProcessSpec:
    """``spec`` again, on the same host with the same environment, but TORCHELASTIC_RESTART_COUNT=``restart``.

    A remote (ssh) spec carries its environment inside its remote command, which is built again.
    """
    environ = os.environ if environ is None else environ
    contract = {**spec.worker_env, "TORCHELASTIC_RESTART_COUNT": str(restart)}
    if spec.kind == "local":
        return replace(spec, env={**spec.env, "TORCHELASTIC_RESTART_COUNT": str(restart)}, worker_env=contract)
    if spec.kind != "ssh":
        raise ValueError(f"--mode ps restarts local or ssh processes alone, not {spec.kind!r} ({spec.label})")
    h = _host_spec(cfg, spec.host)
    if spec.role != "worker":
        return _library_spec(cfg, h, spec.role, spec.role_rank, contract, environ)
    from disttorch.launcher import ssh

    full = {**local.forwarded_env(cfg, environ), **cfg.env, **contract}
    return ssh.remote_spec(cfg, h, rank=spec.rank, local_rank=spec.local_rank, argv=local.worker_argv(cfg),
                           env=full, worker_env=contract)
