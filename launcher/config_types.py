"""The launch configuration's types: :class:`LaunchConfig` (what :func:`config.resolve` builds), the hosts and
ssh settings inside it, :class:`ConfigError`, and the accepted backends, modes and security settings.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

BACKENDS = ("mpi", "zmq")
MODES = ("ddp", "ps")
SECURE = ("none", "curve")
TORCHRUN_DEFAULT_PORT = 29500  # torchrun's default when several launchers must agree on one port


class ConfigError(ValueError):
    """A bad launch setting; the message names where it came from (flag, env var or YAML field)."""


@dataclass(frozen=True)
class HostSpec:
    """One machine of the job. ``slots`` is its number of workers (None: --nproc-per-node)."""

    host: str
    slots: int | None = None
    ssh_port: int | None = None
    user: str | None = None
    interface: str | None = None


@dataclass(frozen=True)
class SshConfig:
    """How remote workers are reached. ``options`` are passed as ``-o OPTION`` each; ``remote_prefix`` is put
    in front of the worker command on the remote host (e.g. ``docker exec -i trainer``)."""

    command: tuple[str, ...] = ("ssh",)
    user: str | None = None
    port: int | None = None
    identity: str | None = None
    options: tuple[str, ...] = ("BatchMode=yes",)
    remote_prefix: tuple[str, ...] = ()


@dataclass(frozen=True)
class LaunchConfig:
    """Everything a launch needs, resolved and validated. Built by :func:`resolve`."""

    script: str
    script_args: tuple[str, ...] = ()
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int | None = None  # None: a free port, chosen per attempt
    max_restarts: int = 0
    log_dir: str | None = None
    timeline: str | None = None  # --timeline FILE: every rank records its events; merged into FILE at the end
    redirects: Mapping[int, int] | int = 0  # Std bits per local rank (1 stdout, 2 stderr, 3 both)
    tee: Mapping[int, int] | int = 0
    local_ranks_filter: tuple[int, ...] | None = None
    standalone: bool = False
    module: bool = False
    no_python: bool = False
    hosts: tuple[HostSpec, ...] = ()
    hostfile: str | None = None  # where ``hosts`` came from, when from a hostfile (mpiexec gets it as is)
    backend: str = "zmq"
    mpi_args: tuple[str, ...] = ()
    mpiexec: str = "mpiexec"
    cluster_config: str | None = None
    dry_run: bool = False
    interface: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    python: str | None = None  # None: $PYTHON_EXEC or this interpreter (also on remote hosts)
    workdir: str | None = None  # None: the current directory (also on remote hosts)
    ssh: SshConfig = SshConfig()
    forward_env: tuple[str, ...] = ("PYTHONPATH", "DISTTORCH_", "OMP_", "MKL_", "OPENBLAS_", "NCCL_",
                                   "CUDA_VISIBLE_DEVICES")
    grace_period: float = 5.0  # seconds between SIGTERM and SIGKILL when tearing a job down
    job_secret: str | None = None
    mode: str = "ddp"  # ddp: every process runs the script; ps: scheduler + servers + workers (launcher/ps.py)
    num_servers: int | None = None  # ps: None means the YAML ps.servers counts, else 1
    secure: str = "none"  # ps: "curve" encrypts the ps sockets (ZeroMQ CURVE, keys derived from the job secret)
    ps_servers: tuple[tuple[str, int], ...] = ()  # ps: (host, servers on it) from the YAML ps.servers
    ps_snapshot_dir: str | None = None  # ps: None means a per-job directory under the temp dir
    ps_heartbeat_timeout: float | None = None  # ps: None means the library's default

    @property
    def single_command(self) -> bool:
        """True when this one launcher starts every worker of the job (a host list was given)."""
        return bool(self.hosts)

    @property
    def world_size(self) -> int:
        if self.hosts:
            return sum(self.slots(h) for h in self.hosts)
        return self.nproc_per_node * self.nnodes

    def slots(self, host: HostSpec) -> int:
        return host.slots if host.slots is not None else self.nproc_per_node
