"""Remote workers through ssh (zmq backend, single-command multi-host launches).

A remote worker is ``ssh [-p port] [-i identity] [-l user] [-o opt]... host '<remote command>'`` where the remote
command reports the remote shell's pid, changes to the working directory and runs the worker with its
environment contract (the job secret comes on stdin)::

    IFS= read -r DISTTORCH_JOB_SECRET; export DISTTORCH_JOB_SECRET; echo __disttorch_pid__=$$ >&2;
    cd /work/dir && exec env DISTTORCH_PARENT_PID="$PPID" RANK=2 ... /path/python -u train.py

sshd starts the command in a new session, so that pid is also the remote process group and session, and
``exec`` makes the worker that very process: tearing the job down runs ``ssh host 'pkill -TERM -s PID; kill
-s TERM -- -PID'`` (then ``KILL``), which reaches the worker's own children too, also those that made a group
of their own. With a ``remote_prefix`` such as ``docker exec -i NAME`` the group is the container client's;
the runtime must forward the signal. Every word is quoted with shlex; the ssh client itself is configurable
(cluster YAML ``ssh.command``), as are its options.

When the launcher dies without a teardown, its reaper (reaper.py) kills the local ssh clients and runs
:func:`stop_command` for every remote worker whose pid it had read. Without a remote prefix the worker's
parent is the remote sshd session process, named in DISTTORCH_PARENT_PID: when the ssh connection goes,
sshd exits and a worker that imports disttorch ends its own group (disttorch/_parent_watch.py), which
covers a worker whose pid the launcher never read. A worker that does not import disttorch and whose pid
was not read lives on until it writes to its closed output (SIGPIPE) or ends by itself.
"""
from __future__ import annotations

import os
import shlex
from typing import Mapping, Sequence

from disttorch.launcher.config import HostSpec, LaunchConfig
from disttorch.launcher.local import ProcessSpec
from disttorch.launcher.reaper import PARENT_GRACE_VAR, PARENT_PID_VAR

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
                   secret_on_stdin: bool = False, watch_grace: float | None = None) -> str:
    """The shell command the remote host runs for one worker (one string, every word shlex-quoted).

    With ``secret_on_stdin`` the job secret arrives as the first line of stdin, so it never appears on a
    command line (``ps`` on either host). With ``watch_grace`` (and no ``prefix``: inside a container the
    host's pids mean nothing) the worker learns its parent's pid, so that it ends its group, with that
    grace period, when sshd goes (disttorch/_parent_watch.py).
    """
    watch = ""
    if watch_grace is not None and not prefix:
        watch = f'{PARENT_PID_VAR}="$PPID" {shlex.quote(f"{PARENT_GRACE_VAR}={watch_grace:g}")} '
    assignments = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
    pre = shlex.join(prefix) + " " if prefix else ""
    secret = f"IFS= read -r {SECRET_VAR}; export {SECRET_VAR}; " if secret_on_stdin else ""
    return (f"{secret}echo {PID_MARK}$$ >&2; cd {shlex.quote(cwd)} && "
            f"exec {pre}env {watch}{assignments} {shlex.join(argv)}")


def _signal_script(pid: int, sig: str) -> str:
    # The worker leads its session (sshd's setsid) and its group: pkill -s reaches the groups its children
    # made in that session too; ``kill -s SIG -- -PID`` is the group spelling bash and dash (Debian's sh)
    # both accept, and the pid alone is the fallback for a worker that is not a group leader.
    return (f"pkill -{sig} -s {pid} 2>/dev/null; "
            f"kill -s {sig} -- -{pid} 2>/dev/null || kill -s {sig} {pid} 2>/dev/null")


def kill_command(base: Sequence[str], pid: int, sig: str = "TERM") -> list[str]:
    """ssh command that signals the remote worker's session and process group (its pid, if it leads neither)."""
    return [*base, f"{_signal_script(int(pid), sig)}; true"]


def stop_command(base: Sequence[str], pid: int, grace: float) -> list[str]:
    """ssh command that stops the remote worker by itself: SIGTERM, up to ``grace`` seconds for its session
    to empty, SIGKILL (one connection, for the reaper: no launcher is left to send the second).

    A session "empties" when ``ps -s`` lists no process in it but zombies; where ps cannot list a session
    (BusyBox), SIGKILL follows SIGTERM at once.
    """
    pid = int(pid)
    ticks = max(1, round(grace * 10))
    alive = f"ps -o stat= -s {pid} 2>/dev/null | grep -q '^[^Z]'"
    return [*base, f"{_signal_script(pid, 'TERM')}; i=0; while [ $i -lt {ticks} ] && {alive}; do sleep 0.1; "
                   f"i=$((i+1)); done; {_signal_script(pid, 'KILL')}; true"]


def remote_spec(cfg: LaunchConfig, host: HostSpec, *, rank: int, local_rank: int, argv: Sequence[str],
                env: Mapping[str, str], worker_env: Mapping[str, str]) -> ProcessSpec:
    """The process spec of one remote worker: a local ssh client running :func:`remote_command`."""
    base = ssh_base(cfg, host)
    secret = env.get(SECRET_VAR)
    env = {k: v for k, v in env.items() if k != SECRET_VAR}
    cmd = remote_command(argv, env, cfg.workdir or os.getcwd(), cfg.ssh.remote_prefix, secret_on_stdin=bool(secret),
                         watch_grace=cfg.grace_period)
    return ProcessSpec(rank=rank, local_rank=local_rank, host=host.host, argv=(*base, cmd), env={}, cwd=None,
                       kind="ssh", ssh_base=base, ranks=(rank,), worker_env=dict(worker_env),
                       stdin_text=f"{secret}\n" if secret else None)
