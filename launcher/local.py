"""Process specs for workers that the launcher starts itself (zmq backend): the torchrun environment contract,
and the plan of which rank runs where. Starting them is supervise.py's job; nothing here starts a process.
"""
from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from typing import Mapping

from disttorch.launcher.config import LaunchConfig, is_local_host

# The variables the launcher sets for every worker (DISTTORCH_INTERFACE and OMP_NUM_THREADS only when known).
CONTRACT = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE", "ROLE_RANK",
            "ROLE_WORLD_SIZE", "ROLE_NAME", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT",
            "TORCHELASTIC_MAX_RESTARTS", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_USE_AGENT_STORE", "DISTTORCH_BACKEND",
            "DISTTORCH_JOB_SECRET", "DISTTORCH_INTERFACE", "OMP_NUM_THREADS")


@dataclass(frozen=True)
class ProcessSpec:
    """One process the launcher starts.

    Attributes:
        rank: the worker's global rank (None for an mpiexec that starts ``ranks``).
        local_rank: its rank on its host.
        host: where the worker runs.
        argv: what the launcher executes on this machine (the worker itself, ssh, or mpiexec).
        env: variables added to the launcher's environment for ``argv`` (for ssh they travel inside argv).
        cwd: working directory of ``argv`` on this machine.
        kind: "local", "ssh" or "mpi".
        ssh_base: for ssh, the command that runs a shell command on ``host`` (used to kill the remote group).
        ranks: the global ranks this process starts.
        worker_env: the worker's contract variables (what --dry-run prints).
        stdin_text: written to the process's stdin, which is then closed (ssh: the job secret).
        role: "worker" (runs the user's script), or, with --mode ps, "scheduler" or "server".
        role_rank: a server's id (0..S-1); None otherwise.
    """

    rank: int | None
    local_rank: int | None
    host: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str | None
    kind: str
    ssh_base: tuple[str, ...] = ()
    ranks: tuple[int, ...] = ()
    worker_env: Mapping[str, str] = field(default_factory=dict)
    stdin_text: str | None = None
    role: str = "worker"
    role_rank: int | None = None

    @property
    def label(self) -> str:
        """How output lines, log files and failure summaries name this process: ``rank N``, ``scheduler``,
        ``server N``."""
        if self.role == "worker":
            return f"rank {self.rank}"
        return self.role if self.role_rank is None else f"{self.role} {self.role_rank}"

    def describe(self) -> str:
        """Human-readable lines for --dry-run: where, which ranks, the exact command."""
        if self.role != "worker":
            who = self.label
        else:
            who = (f"rank {self.rank} (local_rank {self.local_rank})" if self.rank is not None
                   else f"ranks {self.ranks[0]}-{self.ranks[-1]}" if self.ranks else "ranks")
        lines = [f"{who} on {self.host} [{self.kind}]"]
        if self.kind != "ssh":
            env = " ".join(f"{k}={shlex.quote(v) if k != 'DISTTORCH_JOB_SECRET' else '<secret>'}"
                           for k, v in self.env.items())
            lines.append(f"  cd {shlex.quote(self.cwd or os.getcwd())} && env {env} {shlex.join(self.argv)}")
        else:
            lines.append(f"  {shlex.join(self.argv)}")
        return "\n".join(lines)


def python_executable(cfg: LaunchConfig) -> str:
    return cfg.python or os.environ.get("PYTHON_EXEC") or sys.executable


def worker_argv(cfg: LaunchConfig) -> list[str]:
    """The worker command, as torchrun builds it: ``python -u script args`` / ``python -u -m mod args`` /
    ``script args`` with --no-python."""
    if cfg.no_python:
        return [cfg.script, *cfg.script_args]
    py = [python_executable(cfg), "-u"]
    if cfg.module:
        return [*py, "-m", cfg.script, *cfg.script_args]
    return [*py, cfg.script, *cfg.script_args]


def worker_env(cfg: LaunchConfig, *, rank: int, local_rank: int, local_world_size: int, group_rank: int,
               world_size: int, master_port: int, restart_count: int, run_id: str, secret: str | None,
               interface: str | None, inherited: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment contract of one worker (torchrun's variables plus disttorch's)."""
    inherited = os.environ if inherited is None else inherited
    env = {
        "RANK": str(rank), "LOCAL_RANK": str(local_rank), "WORLD_SIZE": str(world_size),
        "LOCAL_WORLD_SIZE": str(local_world_size), "GROUP_RANK": str(group_rank),
        "GROUP_WORLD_SIZE": str(cfg.nnodes), "ROLE_RANK": str(rank), "ROLE_WORLD_SIZE": str(world_size),
        "ROLE_NAME": "default", "MASTER_ADDR": cfg.master_addr, "MASTER_PORT": str(master_port),
        "TORCHELASTIC_RESTART_COUNT": str(restart_count), "TORCHELASTIC_MAX_RESTARTS": str(cfg.max_restarts),
        "TORCHELASTIC_RUN_ID": run_id, "TORCHELASTIC_USE_AGENT_STORE": "False", "DISTTORCH_BACKEND": cfg.backend,
    }
    if secret:
        env["DISTTORCH_JOB_SECRET"] = secret
    if interface:
        env["DISTTORCH_INTERFACE"] = interface
    if local_world_size > 1 and "OMP_NUM_THREADS" not in inherited and "OMP_NUM_THREADS" not in cfg.env:
        env["OMP_NUM_THREADS"] = "1"  # as torchrun: N workers x all cores each would oversubscribe the node
    return env


def forwarded_env(cfg: LaunchConfig, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Launcher variables that remote workers get too (names or prefixes in ``cfg.forward_env``)."""
    environ = os.environ if environ is None else environ
    # A pattern ending in "_" is a prefix; anything else is one exact name.
    keep = {k: v for k, v in environ.items()
            if any(k.startswith(p) if p.endswith("_") else k == p for p in cfg.forward_env)}
    for k in ("DISTTORCH_JOB_SECRET",):  # the launcher sets these per job
        keep.pop(k, None)
    return keep


def build_specs(cfg: LaunchConfig, *, master_port: int, restart_count: int, run_id: str, secret: str | None,
                environ: Mapping[str, str] | None = None,
                extra_env: Mapping[str, str] | None = None) -> list[ProcessSpec]:
    """Every worker process of one attempt: local ones, and remote ones through ssh (pure function).

    ``extra_env`` joins every worker's contract variables (--mode ps: the DISTTORCH_PS_* variables).
    """
    from disttorch.launcher import ssh  # local import: ssh.py imports this module

    environ = os.environ if environ is None else environ
    argv = worker_argv(cfg)
    cwd = cfg.workdir
    if cfg.hosts:
        nodes = [(i, h.host, cfg.slots(h), h) for i, h in enumerate(cfg.hosts)]
        start = 0
    else:
        nodes = [(cfg.node_rank, "localhost", cfg.nproc_per_node, None)]
        start = cfg.node_rank * cfg.nproc_per_node
    world = cfg.world_size
    specs = []
    for group_rank, host, n, hspec in nodes:
        remote = hspec is not None and not is_local_host(host)
        interface = (hspec.interface if hspec and hspec.interface else cfg.interface) or (
            host if remote and _is_ip(host) else None)
        for local_rank in range(n):
            rank = start + local_rank
            env = worker_env(cfg, rank=rank, local_rank=local_rank, local_world_size=n, group_rank=group_rank,
                             world_size=world, master_port=master_port, restart_count=restart_count,
                             run_id=run_id, secret=secret, interface=interface, inherited=environ)
            env.update(extra_env or {})
            if remote:
                full = {**forwarded_env(cfg, environ), **cfg.env, **env}
                specs.append(ssh.remote_spec(cfg, hspec, rank=rank, local_rank=local_rank, argv=argv, env=full,
                                             worker_env=env))
            else:
                specs.append(ProcessSpec(rank=rank, local_rank=local_rank, host=host, argv=tuple(argv),
                                         env={**cfg.env, **env}, cwd=cwd, kind="local", worker_env=env))
        start += n
    return specs


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False
