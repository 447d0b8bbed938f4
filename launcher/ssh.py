"""Remote workers through ssh (zmq backend, single-command multi-host launches).

A remote worker is ``ssh [-p port] [-i identity] [-l user] [-o opt]... host '<remote command>'`` where the remote
command reports the remote shell's pid, changes to the working directory and runs the worker with its
environment contract (the job secret comes on stdin)::

    IFS= read -r DISTTORCH_JOB_SECRET; export DISTTORCH_JOB_SECRET; echo __disttorch_pid__=$$ >&2;
    cd /work/dir && [remote_prefix] env RANK=2 ... /path/python -u train.py

sshd starts the command in a new session, so that pid is also the remote process group: tearing the job down
runs ``ssh host 'kill -TERM -- -PID'`` (then ``-KILL``), which reaches the worker's own children too. With a
``remote_prefix`` such as ``docker exec -i NAME`` the group is the container client's; the runtime must
forward the signal. Every word is quoted with shlex; the ssh client itself is configurable (cluster YAML
``ssh.command``), as are its options.
"""
from __future__ import annotations

import os
import shlex
from typing import Mapping, Sequence

from disttorch.launcher.config import HostSpec, LaunchConfig
from disttorch.launcher.local import ProcessSpec

PID_MARK = "__disttorch_pid__="
SECRET_VAR = "DISTTORCH_JOB_SECRET"


def ssh_base(cfg: LaunchConfig, host: HostSpec) -> tuple[str, ...]:
    """The ssh command line up to and including the host name (a remote command follows)."""
    ssh = cfg.ssh
    cmd = list(ssh.command)
    port = host.ssh_port or ssh.port
    if port:
        cmd += ["-p", str(port)]
    if ssh.identity:
        cmd += ["-i", ssh.identity]
    user = host.user or ssh.user
    if user:
        cmd += ["-l", user]
    for opt in ssh.options:
        cmd += ["-o", opt]
    cmd.append(host.host)
    return tuple(cmd)


def remote_command(argv: Sequence[str], env: Mapping[str, str], cwd: str, prefix: Sequence[str] = (),
                   secret_on_stdin: bool = False) -> str:
    """The shell command the remote host runs for one worker (one string, every word shlex-quoted).

    With ``secret_on_stdin`` the job secret arrives as the first line of stdin, so it never appears on a
    command line (``ps`` on either host).
    """
    assignments = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
    pre = shlex.join(prefix) + " " if prefix else ""
    secret = f"IFS= read -r {SECRET_VAR}; export {SECRET_VAR}; " if secret_on_stdin else ""
    return (f"{secret}echo {PID_MARK}$$ >&2; cd {shlex.quote(cwd)} && "
            f"{pre}env {assignments} {shlex.join(argv)}")


def kill_command(base: Sequence[str], pid: int, sig: str = "TERM") -> list[str]:
    """ssh command that signals the remote worker's process group (its pid, if it is not a group leader)."""
    return [*base, f"kill -{sig} -- -{int(pid)} 2>/dev/null || kill -{sig} {int(pid)} 2>/dev/null; true"]


def remote_spec(cfg: LaunchConfig, host: HostSpec, *, rank: int, local_rank: int, argv: Sequence[str],
                env: Mapping[str, str], worker_env: Mapping[str, str]) -> ProcessSpec:
    """The process spec of one remote worker: a local ssh client running :func:`remote_command`."""
    base = ssh_base(cfg, host)
    secret = env.get(SECRET_VAR)
    env = {k: v for k, v in env.items() if k != SECRET_VAR}
    cmd = remote_command(argv, env, cfg.workdir or os.getcwd(), cfg.ssh.remote_prefix, secret_on_stdin=bool(secret))
    return ProcessSpec(rank=rank, local_rank=local_rank, host=host.host, argv=(*base, cmd), env={}, cwd=None,
                       kind="ssh", ssh_base=base, ranks=(rank,), worker_env=dict(worker_env),
                       stdin_text=f"{secret}\n" if secret else None)
