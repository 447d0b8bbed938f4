"""The ``disttorch`` command.

Usage::

    disttorch --version
    disttorch doctor          # what this machine offers: Python, NumPy, optional backends
    disttorch launch ...      # start a distributed job (torchrun-compatible, plus one-command multi-host)

``disttorch ray ...`` submits Ray jobs (see disttorch/launcher/ray_cli.py); ``disttorch serve ...`` serves a model
(see disttorch/serve/cli.py and docs/serving.md).

disttorch launch
================

``disttorch launch`` starts the processes of a distributed training job, gives each one the environment that
``torch.distributed`` expects, prefixes their output with ``[rank N]``, and supervises them: when one worker
fails, the others are stopped and one summary says which rank failed first, where, and why.

A script written for ``torchrun`` runs unchanged::

    import disttorch as torch
    import disttorch.distributed as dist
    dist.init_process_group()            # backend and rendezvous from the environment below
    ...

Single node, N workers (the rendezvous port is picked free when not given)::

    disttorch launch --nproc-per-node 2 train.py --epochs 3
    disttorch launch --standalone -n 4 train.py         # same; torchrun spelling

Several nodes, torchrun style: run one launcher per node, each with its node rank (zmq backend; the same
``--master-addr``/``--master-port`` everywhere, default port 29500). Export the same DISTTORCH_JOB_SECRET on
every node first (``python -c 'import secrets; print(secrets.token_hex(16))'`` makes one): it authenticates
the job's messages, and a launcher without it exits with status 2::

    node0$ disttorch launch --nnodes 2 --node-rank 0 --nproc-per-node 2 --master-addr node0 train.py
    node1$ disttorch launch --nnodes 2 --node-rank 1 --nproc-per-node 2 --master-addr node0 train.py

Several nodes from one command (horovodrun style): list the hosts and their slots (workers per host). With
``--backend mpi`` the launcher builds and runs one ``mpiexec``; with ``--backend zmq`` it starts the local
workers itself and the remote ones through ssh. The default is mpi when mpi4py is installed (the ``mpi``
extra), else zmq::

    disttorch launch -H node0:2,node1:2 train.py
    disttorch launch --hostfile hosts.txt --backend mpi --mpi-args "--mca btl tcp,self" train.py
    disttorch launch --cluster-config cluster_configs/two_nodes_ssh.yaml train.py

``--dry-run`` prints every process and its exact command without starting anything.

Options (each also read from ``DISTTORCH_<NAME>`` or torchrun's ``PET_<NAME>``, e.g. DISTTORCH_NPROC_PER_NODE;
precedence: flag > environment > cluster YAML > default). torchrun's underscore spellings work too.

--nproc-per-node, -n N   workers per node (``cpu``/``auto``: one per CPU; ``gpu``: one per GPU). Default 1.
                         ``gpu`` counts the GPUs in CUDA_VISIBLE_DEVICES when set, else nvidia-smi's (then CuPy's);
                         as torchrun, CUDA_VISIBLE_DEVICES is passed on unchanged and each worker selects its GPU
                         with LOCAL_RANK (``disttorch.cuda.set_device(int(os.environ["LOCAL_RANK"]))``).
--nnodes N               number of nodes, torchrun style (``N`` or ``N:N``; elastic ranges are not supported).
--node-rank R            this node's rank in [0, nnodes).
--master-addr A          address of rank 0's node (the rendezvous store). Default 127.0.0.1, or the first host.
--master-port P          rendezvous port. Default: a free port (29500 with --nnodes > 1).
--standalone             single node with a private rendezvous on a free local port.
--max-restarts K         restart the whole group up to K times after a failure (TORCHELASTIC_RESTART_COUNT
                         counts restarts; each restart gets a fresh MASTER_PORT unless one was given). In --mode ps
                         a failed server or worker restarts alone; a failed scheduler restarts the group.
--log-dir D              write each rank's output to D/rank_N.log (and to the console).
--timeline FILE          record every rank's ops, collectives, data loading and optimizer steps, and write them
                         as one Chrome/Perfetto trace (one row per rank) to FILE when the job ends, with a
                         per-step summary of the slowest rank (ranks on other hosts need FILE's directory shared).
--redirects, -r S        send streams to the log files only: 0 none, 1 stdout, 2 stderr, 3 both, or per local
                         rank ``0:1,1:2``. Without --log-dir the files go to a fresh temporary directory.
--tee, -t S              write streams to the log files and the console (same values as --redirects).
--local-ranks-filter L   show only these local ranks on the console, e.g. ``0`` (log files keep everything).
                         With a host list (one launcher for every host) these are global ranks.
-m, --module             run ``script`` as a module: ``python -m script``.
--no-python              run ``script`` as an executable, without the Python interpreter.
-H, --hosts LIST         ``host:slots,host:slots`` (slots default to --nproc-per-node).
--hostfile F             MPI-style hostfile: ``host slots=N`` lines.
--backend mpi|zmq        how workers communicate and how multi-host jobs start (see above).
--mpi-args "..."         extra words for mpiexec (shell-split).
--cluster-config F       YAML with hosts, slots, ssh user/port/identity/options, interface, env, python,
                         workdir (see cluster_configs/README.md).
--interface ADDR         address workers bind their sockets to (DISTTORCH_INTERFACE).
--grace-period S         seconds between SIGTERM and SIGKILL when stopping workers (default 5).
--dry-run                print the processes and commands, start nothing.
--mode ddp|ps            ddp (default): every process runs the script. ps: a parameter-server job: one scheduler
                         (on the first host), --num-servers servers (``python -m disttorch.distributed.ps.server``)
                         and the script on the workers only (RANK/WORLD_SIZE count workers). See
                         docs/parameter-server.md and launcher/ps.py for the DISTTORCH_PS_* environment.
--num-servers S          --mode ps: number of servers (default 1, or the cluster YAML's ``ps.servers`` counts);
                         placed round-robin over the hosts unless the YAML's ``ps.servers`` places them.
--secure none|curve      --mode ps: ``curve`` encrypts and authenticates the ps sockets with ZeroMQ CURVE; the key
                         pairs derive from the job secret, which only the job's processes hold.

Worker environment (as torchrun): RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK, GROUP_WORLD_SIZE,
ROLE_RANK, ROLE_WORLD_SIZE, ROLE_NAME, MASTER_ADDR, MASTER_PORT, TORCHELASTIC_RESTART_COUNT,
TORCHELASTIC_MAX_RESTARTS, TORCHELASTIC_RUN_ID; OMP_NUM_THREADS=1 when several workers share a node and it is
not set; and disttorch's DISTTORCH_BACKEND (the backend ``init_process_group(backend=None)`` uses),
DISTTORCH_JOB_SECRET (random per job, the key that authenticates the store and zmq messages) and, when known,
DISTTORCH_INTERFACE. Workers started by mpiexec get their rank from MPI instead (OMPI_COMM_WORLD_RANK, PMI_RANK).

With --mode ps the scheduler and servers are supervised like workers (output prefixed ``[scheduler]``,
``[server N]``; one of them failing fails the job; with --max-restarts a failed server or worker restarts alone,
a failed scheduler restarts the whole group, every restart counting against K). The job is done
when every worker has exited 0 and the scheduler and servers have exited; they get --grace-period seconds to do
so by themselves, then they are stopped.

Supervision: when a worker exits non-zero, every other worker's process group (their children, such as
DataLoader workers, included) gets SIGTERM, then SIGKILL after the grace period. The launcher exits with the
failed worker's exit code (128 + signal number when it was killed by a signal). SIGINT/SIGTERM sent to the
launcher are forwarded to every worker. If the launcher itself dies (even by SIGKILL), its workers die with it:
a small reaper process it starts ends every worker's process group (and, through ssh, every remote worker), and
each worker that imports disttorch also watches its parent and ends its own group when the parent is gone.
Jobs across nodes need a shared secret: with one launcher per node (--nnodes > 1), export the same
DISTTORCH_JOB_SECRET on every node (the launcher refuses to start without it); with -H/--hostfile the launcher
makes one and hands it to the remote workers itself.
"""
from __future__ import annotations

import argparse
import secrets
import sys
import uuid

_PLANNED = {"ray": "Ray job submission", "serve": "the model server"}  # routed to ray_cli / disttorch.serve in main()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("disttorch")
    except Exception:  # noqa: BLE001 - running from a checkout that is not installed
        return "unknown (not installed)"


def _add_launch_args(p: argparse.ArgumentParser) -> None:
    # Every default is None: config.resolve tells "not given" from a value, for the env/YAML fallbacks.
    a = p.add_argument
    a("--nproc-per-node", "--nproc_per_node", "-n", dest="nproc_per_node", metavar="N", help="workers per node")
    a("--nnodes", metavar="N", help="number of nodes (torchrun style)")
    a("--node-rank", "--node_rank", dest="node_rank", metavar="R", help="rank of this node")
    a("--master-addr", "--master_addr", dest="master_addr", metavar="ADDR", help="rank 0's address")
    a("--master-port", "--master_port", dest="master_port", metavar="PORT", help="rendezvous port")
    a("--standalone", action="store_true", default=None, help="single node, private rendezvous on a free port")
    a("--max-restarts", "--max_restarts", dest="max_restarts", metavar="K", help="restarts after failures")
    a("--log-dir", "--log_dir", dest="log_dir", metavar="DIR", help="write DIR/rank_N.log per rank")
    a("--timeline", dest="timeline", metavar="FILE", help="write every rank's events into one trace FILE")
    a("--redirects", "-r", metavar="S", help="streams to log files only (0-3 or LOCAL_RANK:S,...)")
    a("--tee", "-t", metavar="S", help="streams to log files and console (0-3 or LOCAL_RANK:S,...)")
    a("--local-ranks-filter", "--local_ranks_filter", dest="local_ranks_filter", metavar="RANKS",
      help="console shows only these ranks, e.g. 0")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-m", "--module", action="store_true", default=None, help="run script as a module (python -m)")
    g.add_argument("--no-python", "--no_python", dest="no_python", action="store_true", default=None,
                   help="run script without the Python interpreter")
    a("-H", "--hosts", dest="hosts", metavar="HOST:SLOTS,...", help="hosts and workers per host")
    a("--hostfile", metavar="FILE", help="MPI-style hostfile (host slots=N)")
    a("--backend", metavar="mpi|zmq", help="communication backend (default: mpi for multi-host if installed)")
    a("--mpi-args", "--mpi_args", dest="mpi_args", metavar="ARGS", help="extra mpiexec words")
    a("--cluster-config", "--cluster_config", dest="cluster_config", metavar="YAML", help="cluster description")
    a("--interface", metavar="ADDR", help="address workers bind to (DISTTORCH_INTERFACE)")
    a("--grace-period", "--grace_period", dest="grace_period", metavar="S", help="SIGTERM->SIGKILL seconds")
    a("--dry-run", "--dry_run", dest="dry_run", action="store_true", default=None,
      help="print the processes and commands, start nothing")
    a("--mode", metavar="ddp|ps", help="ddp (default): every process runs the script; ps: scheduler + servers + "
      "workers")
    a("--num-servers", "--num_servers", dest="num_servers", metavar="S", help="--mode ps: parameter servers")
    a("--secure", metavar="none|curve", help="--mode ps: curve encrypts and authenticates the ps sockets")
    a("script", help="training script (or module with -m, or executable with --no-python)")
    a("script_args", nargs=argparse.REMAINDER, help="arguments for the script")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="disttorch", description="disttorch command-line tools")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command")
    dp = sub.add_parser("doctor", help="report the environment and check the backends by running small jobs")
    dp.add_argument("--quick", action="store_true", help="list the environment without running jobs")
    lp = sub.add_parser("launch", help="start a distributed job (torchrun-compatible)", allow_abbrev=False,
                        description="Start and supervise the workers of a distributed job. Manual: "
                                    "python -c 'import disttorch.launcher.cli as c; help(c)'",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_launch_args(lp)
    for name, what in _PLANNED.items():
        sp = sub.add_parser(name, help=what)
        sp.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def doctor() -> dict:
    """Facts about this environment, without importing any optional backend (``disttorch doctor`` lists them)."""
    from disttorch.launcher import doctor as _doctor

    return _doctor.facts(_version())


def plan(cfg, *, restart: int, master_port: int, run_id: str, secret: str | None,
         scheduler_port: int | None = None) -> list:
    """The process specs of one attempt (no process is started)."""
    if cfg.mode == "ps":
        from disttorch.launcher import ps

        return ps.build_specs(cfg, master_port=master_port, scheduler_port=scheduler_port or master_port + 1,
                              restart_count=restart, run_id=run_id, secret=secret)
    if cfg.backend == "mpi":
        from disttorch.launcher import mpi

        return mpi.build_specs(cfg, master_port=master_port, restart_count=restart, run_id=run_id, secret=secret)
    from disttorch.launcher import local

    return local.build_specs(cfg, master_port=master_port, restart_count=restart, run_id=run_id, secret=secret)


def launch(cfg) -> int:
    """Run (or with dry_run, print) the job described by a LaunchConfig; returns the exit status."""
    import os

    from disttorch.launcher import ports

    run_id = uuid.uuid4().hex[:12]
    secret = cfg.job_secret
    if secret is None:
        if cfg.nnodes > 1 and not cfg.hosts:
            print(f"disttorch launch: error: DISTTORCH_JOB_SECRET is not set. With one launcher per node (--nnodes "
                  f"{cfg.nnodes}) the nodes cannot agree on a secret by themselves, and the job's messages must be "
                  "authenticated. Make one with `python -c 'import secrets; print(secrets.token_hex(16))'` and "
                  "export DISTTORCH_JOB_SECRET=<that value> on every node (or start every node from one command "
                  "with -H/--hostfile, which makes and ships one).", file=sys.stderr)
            return 2
        secret = secrets.token_hex(16)

    def pick_port() -> int:
        return ports.free_port(cfg.master_addr)

    if cfg.mode == "ps" and cfg.secure == "curve" and not cfg.dry_run:
        from disttorch.launcher import ps

        try:
            ps.check_curve()
        except RuntimeError as e:
            print(f"disttorch launch: error: {e}", file=sys.stderr)
            return 2

    def specs_for(restart: int, port: int) -> list:
        sched = None
        if cfg.mode == "ps":  # a fresh free port per attempt, as MASTER_PORT; never the same one
            from disttorch.launcher import ps

            sched = ports.free_port(ps.scheduler_addr(cfg))
            while sched == port:
                sched = ports.free_port(ps.scheduler_addr(cfg))
        return plan(cfg, restart=restart, master_port=port, run_id=run_id, secret=secret, scheduler_port=sched)

    if cfg.dry_run:
        port = cfg.master_port if cfg.master_port is not None else pick_port()
        specs = specs_for(0, port)
        if cfg.mode == "ps":
            from disttorch.launcher import ps

            print(ps.describe(cfg, specs))
            return 0
        print(f"# disttorch launch --dry-run: backend {cfg.backend}, world size {cfg.world_size}, "
              f"{len(specs)} process(es), MASTER_ADDR={cfg.master_addr} MASTER_PORT={port}")
        for s in specs:
            print(s.describe())
        return 0
    per_node = max((cfg.slots(h) for h in cfg.hosts), default=cfg.nproc_per_node)
    if per_node > 1 and "OMP_NUM_THREADS" not in os.environ and "OMP_NUM_THREADS" not in cfg.env:
        print(f"disttorch launch: setting OMP_NUM_THREADS=1 for each worker ({per_node} share a node); "
              "set it yourself to change that", file=sys.stderr)
    from disttorch.launcher.supervise import Supervisor

    remove = None
    if cfg.mode == "ps":
        from disttorch.launcher import ps

        try:
            remove = ps.prepare_snapshot_dir(cfg, run_id)
        except OSError as e:
            print(f"disttorch launch: error: cannot create the parameter-server snapshot directory "
                  f"{ps.snapshot_dir(cfg, run_id)!r}: {e.strerror or e} (set ps.snapshot_dir in the cluster YAML)",
                  file=sys.stderr)
            return 2
    timeline_dir = None
    if cfg.timeline is not None:  # each rank writes <dir>/rank<R>.json at exit; merged below
        import dataclasses

        timeline_dir = cfg.timeline + ".ranks"
        os.makedirs(timeline_dir, exist_ok=True)
        cfg = dataclasses.replace(cfg, env={**cfg.env, "DISTTORCH_TIMELINE_DIR": timeline_dir})
    try:
        return Supervisor(cfg).run(specs_for, pick_port)
    finally:
        if remove is not None:
            import shutil

            shutil.rmtree(remove, ignore_errors=True)
        if timeline_dir is not None:
            _write_timeline(cfg, timeline_dir)


def _write_timeline(cfg, directory: str) -> None:
    """Merge the ranks' traces into cfg.timeline and print the per-step summary (stderr)."""
    import shutil

    from disttorch.launcher import timeline

    try:
        doc = timeline.merge(directory, cfg.timeline)
    except RuntimeError as e:
        print(f"disttorch launch: {e}", file=sys.stderr)
        return
    ranks = sorted({e.get("pid") for e in doc["traceEvents"] if isinstance(e.get("pid"), int)})
    missing = sorted(set(range(cfg.world_size)) - set(ranks)) if cfg.mode != "ps" else []
    print(f"disttorch launch: timeline of {len(ranks)} rank(s) written to {cfg.timeline}" +
          (f" (no trace from ranks {missing}: on other hosts, share {directory})" if missing else ""),
          file=sys.stderr)
    print(timeline.summary(doc), file=sys.stderr)
    if not missing:
        shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:  # its own parser: disttorch.serve.cli (the serve extra is imported only there)
        import importlib

        return importlib.import_module("disttorch.serve.cli").main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(f"disttorch {_version()}")
        return 0
    if args.command == "doctor":
        from disttorch.launcher import doctor as _doctor

        return _doctor.main(_version(), ["--quick"] if args.quick else [])
    if args.command == "launch":
        from disttorch.launcher.config import ConfigError, resolve

        flags = {k: v for k, v in vars(args).items() if k not in ("command", "version")}
        try:
            cfg = resolve(flags)
            return launch(cfg)
        except ConfigError as e:
            print(f"disttorch launch: error: {e}", file=sys.stderr)
            return 2
    if args.command == "ray":  # its own parser: disttorch.launcher.ray_cli (Ray is imported only there)
        from disttorch.launcher.ray_cli import main as ray_main

        return ray_main(args.rest)
    if args.command in _PLANNED:
        print(f"disttorch {args.command}: {_PLANNED[args.command]} is not implemented yet", file=sys.stderr)
        return 2
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
