"""The mpiexec command for ``--backend mpi``.

One mpiexec starts every rank; the ranks find their rank in OMPI_COMM_WORLD_RANK / PMI_RANK and the
``mpi`` backend uses them. The launcher exports the job-wide part of the worker contract (MASTER_ADDR/PORT,
WORLD_SIZE, TORCHELASTIC_*, DISTTORCH_*) by name from mpiexec's own environment, so no value (the job secret
in particular) appears on a command line. Open MPI and MPICH (hydra, also Intel MPI) are told apart from
``mpiexec --version``::

    Open MPI: mpiexec -np 4 --host h1:2,h2:2 [--allow-run-as-root] [--oversubscribe] --bind-to none
              --output tag [--prtemca plm_ssh_args "-p 2222 ..."] -x NAME ... [--mpi-args] python -u train.py
    MPICH:    mpiexec -n 4 -hosts h1:2,h2:2 -bind-to none -prepend-rank -genvlist NAME,... [--mpi-args] ...

Each rank runs through a tiny ``sh -c`` shim (:func:`rank_shim`) that sets RANK, LOCAL_RANK, LOCAL_WORLD_SIZE,
GROUP_RANK and ROLE_RANK from MPI's variables, so torchrun scripts that read them directly work too. It also
sets DISTTORCH_PARENT_PID to its own parent, the MPI process that starts the rank (mpiexec itself, or an MPI
daemon on another host), so that a rank that imports disttorch ends its process group when that process dies
(disttorch/_parent_watch.py).

When the launcher dies, its reaper (reaper.py) sends SIGTERM to mpiexec. Measured with Open MPI 5.0 (PRRTE):
each rank leads a process group of its own in mpiexec's session; mpiexec forwards SIGTERM to the ranks and
exits, while a SIGKILLed mpiexec leaves its ranks running, re-parented to init, which is why SIGTERM goes to
mpiexec first and the final SIGKILL to every group of its session. Untested with MPICH's hydra, whose ranks
are children of a proxy process rather than of mpiexec.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from functools import lru_cache
from typing import Mapping

from disttorch.launcher.config import ConfigError, LaunchConfig, is_local_host
from disttorch.launcher.local import ProcessSpec, forwarded_env, worker_argv, worker_env
from disttorch.launcher.reaper import PARENT_GRACE_VAR, PARENT_PID_VAR

# Per-rank variables mpiexec sets itself; the rest of the contract is exported.
_PER_RANK = {"RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK"}


def find_mpiexec(cfg: LaunchConfig) -> str:
    """The mpiexec to run: the configured one, else the one next to this Python (the ``mpi`` extra's), else
    the first on PATH."""
    if cfg.mpiexec != "mpiexec":
        return cfg.mpiexec
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("mpiexec")
    if not found:
        raise ConfigError("--backend mpi: no mpiexec found (install the mpi extra: pip install 'disttorch[mpi]', "
                          "or a system Open MPI / MPICH)")
    return found


def parse_version(text: str) -> tuple[str, int]:
    """(flavour, major version) from ``mpiexec --version``: flavour is "openmpi", "mpich" or "unknown"."""
    m = re.search(r"\((?:Open MPI|OpenRTE|PRRTE)\)\s*(\d+)", text)
    if m or "Open MPI" in text:
        return "openmpi", int(m.group(1)) if m else 0
    if "HYDRA" in text or "MPICH" in text or "Intel(R) MPI" in text:
        m = re.search(r"Version:\s*(\d+)", text)
        return "mpich", int(m.group(1)) if m else 0
    return "unknown", 0


@lru_cache(maxsize=None)
def detect(mpiexec: str) -> tuple[str, int]:
    """Run ``mpiexec --version`` once per path and parse it."""
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(f"--backend mpi: cannot run {mpiexec} --version: {e}") from None
    return parse_version(out.stdout + out.stderr)


def physical_cores() -> int:
    """Cores as Open MPI counts slots (not hardware threads) on this machine."""
    try:
        with open("/proc/cpuinfo") as f:
            pairs, phys = set(), "0"
            for line in f:
                key, _, val = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    phys = val.strip()
                elif key == "core id":
                    pairs.add((phys, val.strip()))
        if pairs:
            return min(len(pairs), len(os.sched_getaffinity(0)))
    except (OSError, AttributeError):
        pass
    return os.cpu_count() or 1


def _ssh_words(cfg: LaunchConfig) -> list[str]:
    ssh = cfg.ssh
    words = list(ssh.command[1:])
    if ssh.port:
        words += ["-p", str(ssh.port)]
    if ssh.identity:
        words += ["-i", ssh.identity]
    if ssh.user:
        words += ["-l", ssh.user]
    for opt in ssh.options:
        words += ["-o", opt]
    return words


def build_command(cfg: LaunchConfig, *, mpiexec: str, flavour: str, major: int, exports: list[str],
                  euid: int, cores: int) -> list[str]:
    """The mpiexec command line (pure function: every fact about the machine is an argument)."""
    np_ = cfg.world_size if cfg.hosts else cfg.nproc_per_node
    hosts = ",".join(f"{h.host}:{cfg.slots(h)}" for h in cfg.hosts)
    use_hostfile = cfg.hostfile is not None and all(h.slots is not None for h in cfg.hosts)
    ssh_words = _ssh_words(cfg)
    remote = any(not is_local_host(h.host) for h in cfg.hosts)
    if flavour == "mpich":
        cmd = [mpiexec, "-n", str(np_)]
        if cfg.hosts:
            cmd += ["-f", cfg.hostfile] if use_hostfile else ["-hosts", hosts]
        cmd += ["-bind-to", "none", "-prepend-rank"]
        if remote and cfg.ssh.command[0] != "ssh":
            cmd += ["-launcher", "ssh", "-launcher-exec", cfg.ssh.command[0]]
        if exports:
            cmd += ["-genvlist", ",".join(exports)]
    else:  # Open MPI (and, untested, anything else that takes Open MPI's flags)
        cmd = [mpiexec, "-np", str(np_)]
        if cfg.hosts:
            cmd += ["--hostfile", cfg.hostfile] if use_hostfile else ["--host", hosts]
        if euid == 0:
            cmd.append("--allow-run-as-root")
        local_slots = [cfg.slots(h) for h in cfg.hosts if is_local_host(h.host)] if cfg.hosts else [np_]
        if any(s > cores for s in local_slots):
            cmd.append("--oversubscribe")
        cmd += ["--bind-to", "none"]
        cmd += ["--output", "tag"] if major >= 5 else ["--tag-output"]
        if remote:
            mca, prefix = ("--prtemca", "plm_ssh_") if major >= 5 else ("--mca", "plm_rsh_")
            if cfg.ssh.command[0] != "ssh":
                cmd += [mca, prefix + "agent", cfg.ssh.command[0]]
            if ssh_words:
                cmd += [mca, prefix + "args", shlex.join(ssh_words)]
        for name in exports:
            cmd += ["-x", name]
    cmd += list(cfg.mpi_args)
    return cmd + rank_shim(cfg) + worker_argv(cfg)


def rank_shim(cfg: LaunchConfig) -> list[str]:
    """``sh -c '...'`` that sets torchrun's per-rank variables from MPI's before it execs the worker, so a
    script that reads LOCAL_RANK itself runs under mpiexec unchanged (Open MPI, then MPICH/PMI names), and
    the parent-watch variables (the shell's parent is the process that started the rank)."""
    slots = " ".join(str(cfg.slots(h)) for h in cfg.hosts) if cfg.hosts else str(cfg.nproc_per_node)
    script = (
        'RANK="${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-${PMIX_RANK:-0}}}"; '
        'LOCAL_RANK="${OMPI_COMM_WORLD_LOCAL_RANK:-${MPI_LOCALRANKID:-0}}"; '
        'LOCAL_WORLD_SIZE="${OMPI_COMM_WORLD_LOCAL_SIZE:-${MPI_LOCALNRANKS:-1}}"; '
        f'GROUP_RANK=0; b=0; for s in {slots}; do b=$((b + s)); '
        'if [ "$RANK" -ge "$b" ]; then GROUP_RANK=$((GROUP_RANK + 1)); fi; done; '
        f'ROLE_RANK="$RANK"; {PARENT_PID_VAR}="$PPID"; {PARENT_GRACE_VAR}={cfg.grace_period:g}; '
        f'export RANK LOCAL_RANK LOCAL_WORLD_SIZE GROUP_RANK ROLE_RANK {PARENT_PID_VAR} {PARENT_GRACE_VAR}; '
        'exec "$@"')
    return ["sh", "-c", script, "disttorch-worker"]


def mpich_env(cfg: LaunchConfig) -> dict[str, str]:
    """Hydra takes extra ssh arguments from the environment only."""
    words = _ssh_words(cfg)
    remote = any(not is_local_host(h.host) for h in cfg.hosts)
    return {"HYDRA_LAUNCHER_EXTRA_ARGS": shlex.join(words)} if remote and words else {}


def build_specs(cfg: LaunchConfig, *, master_port: int, restart_count: int, run_id: str, secret: str | None,
                environ: Mapping[str, str] | None = None, mpiexec: str | None = None,
                flavour: tuple[str, int] | None = None, euid: int | None = None,
                cores: int | None = None) -> list[ProcessSpec]:
    """The single mpiexec process that starts every rank (machine facts may be given, for tests)."""
    environ = os.environ if environ is None else environ
    mpiexec = mpiexec or find_mpiexec(cfg)
    flav, major = flavour or detect(mpiexec)
    per_node = max(cfg.slots(h) for h in cfg.hosts) if cfg.hosts else cfg.nproc_per_node
    contract = worker_env(cfg, rank=0, local_rank=0, local_world_size=per_node, group_rank=0,
                          world_size=cfg.world_size, master_port=master_port, restart_count=restart_count,
                          run_id=run_id, secret=secret, interface=cfg.interface, inherited=environ)
    job_env = {k: v for k, v in contract.items() if k not in _PER_RANK}
    exported = {**forwarded_env(cfg, environ), **cfg.env, **job_env}
    cmd = build_command(cfg, mpiexec=mpiexec, flavour=flav, major=major, exports=list(exported),
                        euid=os.geteuid() if euid is None else euid, cores=cores or physical_cores())
    env = {**exported, **(mpich_env(cfg) if flav == "mpich" else {})}
    host = cfg.hosts[0].host if cfg.hosts else "localhost"
    return [ProcessSpec(rank=None, local_rank=None, host=host, argv=tuple(cmd), env=env, cwd=cfg.workdir,
                        kind="mpi", ranks=tuple(range(cfg.world_size if cfg.hosts else cfg.nproc_per_node)),
                        worker_env=job_env)]
