"""``disttorch ray``: submit a training script as a Ray job, and follow, inspect or stop it.

Usage::

    disttorch ray submit [--address URL] [--num-workers N] [--use-gpu] [--mode ddp|ps] [--num-servers S]
                         [--working-dir DIR] [--runtime-env FILE] [--no-wait] script.py [args...]
    disttorch ray status JOB_ID      [--address URL]
    disttorch ray logs JOB_ID        [--address URL]
    disttorch ray stop JOB_ID        [--address URL]

``submit`` runs ``script.py`` on N Ray Train workers with the ``disttorch launch --nproc-per-node N`` environment
(RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, DISTTORCH_JOB_SECRET, ...), so an
unchanged torchrun-style script works. It streams the job's output (each line prefixed ``[rank N]``) and exits 0
when the job succeeded, 1 when it failed or was stopped. Without ``--address`` and RAY_ADDRESS it starts a local
Ray on this machine (dashboard on 127.0.0.1) for the job and stops it afterwards (so ``--no-wait`` needs an
address). The working directory (default: the script's directory) is uploaded without .git and without what its
.gitignore ignores; a warning comes first when it approaches Ray's upload limit.

``--mode ps`` runs the parameter-server job (``disttorch launch --mode ps``'s) instead: the scheduler and
``--num-servers`` servers (default 1) as Ray actors, the script on the N workers with DISTTORCH_PS_ROLE=worker.
Ray is an optional extra: without it every ``disttorch ray`` command says how to install it and exits 2.
This module imports no engine module and imports Ray only when a command runs.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import sys
import time
from typing import Optional

INSTALL_HINT = "disttorch ray needs Ray: install it with  pip install 'disttorch[ray]'"
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
UPLOAD_LIMIT = 512 << 20  # Ray's default package limit (its max gRPC message); RAY_max_grpc_message_size raises it
_TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="disttorch ray", description="Ray job submission for disttorch scripts.")
    sub = p.add_subparsers(dest="action", required=True)
    s = sub.add_parser("submit", help="run a script on N Ray Train workers as a Ray job")
    s.add_argument("--address", help="Ray dashboard address (default RAY_ADDRESS, else an embedded local Ray)")
    s.add_argument("--num-workers", type=int, default=1, metavar="N")
    s.add_argument("--use-gpu", action="store_true")
    s.add_argument("--backend", choices=("zmq", "nccl"), default=None)
    s.add_argument("--mode", choices=("ddp", "ps"), default="ddp",
                   help="ddp: the script on N workers; ps: parameter-server job (scheduler and servers as actors)")
    s.add_argument("--num-servers", type=int, default=None, metavar="S", help="parameter servers (--mode ps; 1)")
    s.add_argument("--max-failures", type=int, default=0, metavar="K", help="restart the worker group K times")
    s.add_argument("--working-dir", metavar="DIR", help="directory uploaded to the cluster (default: the script's)")
    s.add_argument("--runtime-env", metavar="FILE", help="YAML or JSON Ray runtime_env merged into the job's")
    s.add_argument("--no-wait", action="store_true", help="print the job id and return")
    s.add_argument("--python", metavar="EXE", help="interpreter on the cluster (default: python; this one when "
                   "the Ray is embedded)")
    s.add_argument("-m", "--module", action="store_true", help="run script as a module (python -m)")
    s.add_argument("script")
    s.add_argument("args", nargs=argparse.REMAINDER)
    for name, what in (("status", "a job's status"), ("logs", "a job's output"), ("stop", "stop a job")):
        q = sub.add_parser(name, help=what)
        q.add_argument("job_id")
        q.add_argument("--address", help="Ray dashboard address (default RAY_ADDRESS, else " + DEFAULT_ADDRESS + ")")
    return p


def _have_ray() -> bool:
    try:
        return importlib.util.find_spec("ray") is not None and importlib.util.find_spec("ray.job_submission") is not None
    except (ImportError, ValueError):
        return False


def _gitignore_patterns(directory: str) -> list:
    path = os.path.join(directory, ".gitignore")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def _ignored(rel: str, patterns: list) -> bool:
    import fnmatch

    parts = rel.split(os.sep)
    for pat in patterns:
        if pat.startswith("!"):
            continue
        bare = pat.strip("/")
        if fnmatch.fnmatch(rel, bare) or any(fnmatch.fnmatch(part, bare) for part in parts):
            return True
    return False


def upload_size(directory: str, excludes: list) -> int:
    """Bytes of the files under ``directory`` that an upload with ``excludes`` (gitignore patterns) would send."""
    total = 0
    for root, dirs, files in os.walk(directory):
        rel_root = os.path.relpath(root, directory)
        dirs[:] = [d for d in dirs if not _ignored(os.path.normpath(os.path.join(rel_root, d)), excludes)]
        for name in files:
            rel = os.path.normpath(os.path.join(rel_root, name))
            if not _ignored(rel, excludes):
                try:
                    total += os.path.getsize(os.path.join(root, name))
                except OSError:
                    pass
    return total


def _load_runtime_env(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json"):
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"--runtime-env {path}: expected a mapping (YAML or JSON object), got {type(data).__name__}")
    return data


def job_request(args: argparse.Namespace, embedded: bool = False) -> tuple:
    """The entrypoint command and runtime_env of a submit, from the parsed arguments (no Ray needed).

    Args:
        args: the parsed ``submit`` arguments.
        embedded: the job runs on a Ray started here, so this very interpreter can run it.
    """
    workdir = os.path.abspath(args.working_dir or (os.path.dirname(os.path.abspath(args.script)) if not args.module
                                                   else os.getcwd()))
    script = args.script if args.module else os.path.relpath(os.path.abspath(args.script), workdir)
    if not args.module and script.startswith(".."):
        raise ValueError(f"{args.script} is outside --working-dir {workdir}: the job could not see it")
    python = args.python or (sys.executable if embedded else "python")
    words = [python, "-m", "disttorch.ray.job", "--num-workers", str(args.num_workers)]
    if args.use_gpu:
        words.append("--use-gpu")
    if args.backend:
        words += ["--backend", args.backend]
    if args.max_failures:
        words += ["--max-failures", str(args.max_failures)]
    if args.mode == "ps":
        words += ["--mode", "ps", "--num-servers", str(args.num_servers or 1)]
    if args.module:
        words.append("-m")
    words += [script, *args.args]
    env = _load_runtime_env(args.runtime_env) if args.runtime_env else {}
    excludes = [".git", *_gitignore_patterns(workdir), *env.pop("excludes", [])]
    env.setdefault("working_dir", workdir)
    env["excludes"] = excludes
    return shlex.join(words), env


def _use_token_if_present() -> None:
    """Send Ray's auth token when one exists and RAY_AUTH_MODE does not say otherwise.

    A head started with token authentication (Ray's default for new local clusters) rejects a client whose
    RAY_AUTH_MODE is unset even when the token file is there; Ray's own CLI enables the token in that case, and
    so does this. The token comes from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token (Ray reads it).
    """
    if os.environ.get("RAY_AUTH_MODE") is not None:
        return
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _client(address: Optional[str]):
    from ray.job_submission import JobSubmissionClient

    _use_token_if_present()

    return JobSubmissionClient(address or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS)


def _follow(client, job_id: str, timeout_s: Optional[float] = None) -> str:
    """Print the job's new output as it comes; return its final status name."""
    shown = 0
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        status = str(client.get_job_status(job_id)).split(".")[-1]
        logs = client.get_job_logs(job_id)
        if len(logs) > shown:
            sys.stdout.write(logs[shown:])
            sys.stdout.flush()
            shown = len(logs)
        if status in _TERMINAL:
            return status
        if deadline is not None and time.monotonic() > deadline:
            return status
        time.sleep(0.5)  # polling the job API; Ray has no blocking wait for a job


def _submit(args: argparse.Namespace) -> int:
    if args.num_servers is not None and args.mode != "ps":
        print("disttorch ray submit: --num-servers applies to --mode ps only", file=sys.stderr)
        return 2
    if args.num_servers is not None and args.num_servers < 1:
        print(f"disttorch ray submit: --num-servers {args.num_servers}: must be at least 1", file=sys.stderr)
        return 2
    if args.mode == "ps" and args.max_failures:
        print("disttorch ray submit: --max-failures applies to --mode ddp only (Ray would restart the workers "
              "but not the parameter servers)", file=sys.stderr)
        return 2
    if args.num_workers < 1:
        print(f"disttorch ray submit: --num-workers {args.num_workers}: must be at least 1", file=sys.stderr)
        return 2
    address = args.address or os.environ.get("RAY_ADDRESS")
    try:
        entrypoint, runtime_env = job_request(args, embedded=address is None)
    except (OSError, ValueError) as e:
        print(f"disttorch ray submit: {e}", file=sys.stderr)
        return 2
    size = upload_size(runtime_env["working_dir"], runtime_env["excludes"])
    limit = int(os.environ.get("RAY_max_grpc_message_size", UPLOAD_LIMIT))
    if size > limit // 2:
        print(f"disttorch ray submit: warning: the working directory {runtime_env['working_dir']} holds "
              f"{size / 2**20:.0f} MiB to upload; Ray refuses packages over {limit / 2**20:.0f} MiB "
              "(exclude files with .gitignore or --runtime-env excludes, or set RAY_max_grpc_message_size)",
              file=sys.stderr)
    if address is None and args.no_wait:
        print("disttorch ray submit --no-wait needs --address or RAY_ADDRESS: the embedded local Ray stops when "
              "this command returns", file=sys.stderr)
        return 2
    import ray

    embedded = address is None
    if embedded:
        ctx = ray.init(address="local", include_dashboard=True, dashboard_host="127.0.0.1", log_to_driver=False)
        address = "http://" + ctx.dashboard_url
    try:
        client = _client(address)
        job_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
        print(f"disttorch ray submit: job {job_id} submitted to {address}", file=sys.stderr)
        if args.no_wait:
            print(job_id)
            return 0
        status = _follow(client, job_id)
        print(f"disttorch ray submit: job {job_id} {status}", file=sys.stderr)
        return 0 if status == "SUCCEEDED" else 1
    finally:
        if embedded:
            ray.shutdown()


def main(argv: Optional[list] = None) -> int:
    """Run ``disttorch ray ARGS``; returns the exit status."""
    args = build_parser().parse_args(argv)
    if not _have_ray():
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    if args.action == "submit":
        return _submit(args)
    client = _client(args.address)
    if args.action == "status":
        print(str(client.get_job_status(args.job_id)).split(".")[-1])
    elif args.action == "logs":
        sys.stdout.write(client.get_job_logs(args.job_id))
    else:
        print("stopped" if client.stop_job(args.job_id) else "not running")
    return 0
