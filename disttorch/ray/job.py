"""The entrypoint of a ``disttorch ray submit`` job: run a script on N Ray Train workers, torchrun style.

``python -m disttorch.ray.job --num-workers N [--use-gpu] [--backend B] -- script.py [args...]`` runs on the
cluster as the Ray job's driver. Each worker gets the ``disttorch launch`` environment (RANK, LOCAL_RANK,
WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, DISTTORCH_JOB_SECRET, ...) without an initialised group,
so an unchanged script that calls ``dist.init_process_group()`` works. Output lines carry ``[rank N]``; the job
fails when any rank's script exits non-zero or raises.

``--mode ps [--num-servers S]`` runs the parameter-server job instead (``disttorch.ray.ps``): the scheduler and S
servers as Ray actors, the script on the N workers with DISTTORCH_PS_ROLE=worker and the ps environment contract.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional


class _RankPrefix:
    """A text stream that starts every line with ``[rank N] `` (as ``disttorch launch`` prefixes output)."""

    def __init__(self, stream, prefix: str) -> None:
        self._stream, self._prefix, self._at_line_start = stream, prefix, True

    def write(self, text: str) -> int:
        out = []
        for piece in text.splitlines(keepends=True):
            if self._at_line_start:
                out.append(self._prefix)
            out.append(piece)
            self._at_line_start = piece.endswith("\n")
        self._stream.write("".join(out))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _run_script(config: dict) -> None:
    import runpy

    import builtins

    rank = os.environ.get("RANK", "?")
    prefix = f"[rank {rank}] "
    saved = sys.stdout, sys.stderr, list(sys.argv)
    saved_print = builtins.print
    try:  # Ray Train's print patch would log each line a second time once stdout is wrapped
        from ray.train.v2._internal.logging import patch_print

        builtins.print = patch_print._original_print
    except (ImportError, AttributeError):
        pass
    sys.stdout, sys.stderr = _RankPrefix(sys.stdout, prefix), _RankPrefix(sys.stderr, prefix)
    sys.argv = [config["script"], *config["args"]]
    try:
        if config["module"]:
            runpy.run_module(config["script"], run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(config["script"], run_name="__main__")
    except SystemExit as e:
        if e.code not in (None, 0):
            raise RuntimeError(f"rank {rank}: {config['script']} exited with status {e.code}") from None
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr, sys.argv = saved[0], saved[1], saved[2]
        builtins.print = saved_print
        import disttorch.distributed as dist

        if dist.is_initialized():  # a script that forgot destroy_process_group
            dist.destroy_process_group()
        ps = sys.modules.get("disttorch.distributed.ps")
        if ps is not None and ps.is_initialized():
            # leave the ps job now: atexit would run only when Ray ends this worker process, and the servers
            # wait for every worker to leave
            ps.shutdown()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m disttorch.ray.job",
                                description="Run a torchrun-style script on N Ray Train workers (a Ray job's driver).")
    p.add_argument("--num-workers", type=int, required=True)
    p.add_argument("--use-gpu", action="store_true")
    p.add_argument("--backend", choices=("zmq", "nccl"), default=None)
    p.add_argument("--max-failures", type=int, default=0)
    p.add_argument("--mode", choices=("ddp", "ps"), default="ddp")
    p.add_argument("--num-servers", type=int, default=1, help="parameter servers (--mode ps)")
    p.add_argument("--storage-path", default=None)
    p.add_argument("-m", "--module", action="store_true", help="run script as a module (python -m)")
    p.add_argument("script")
    p.add_argument("args", nargs=argparse.REMAINDER)
    return p


def _run_ps(args: argparse.Namespace, config: dict, run_config) -> int:
    import ray.train

    from .ps import RoleError, run_ps_job

    try:
        run_ps_job(_run_script, config, num_workers=args.num_workers, num_servers=args.num_servers,
                   use_gpu=args.use_gpu, backend=args.backend, run_config=run_config)
    except (ray.train.TrainingFailedError, RoleError) as e:
        print(f"disttorch ray job: {args.script} failed: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: Optional[list] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.num_workers < 1 or args.num_servers < 1:
        print(f"disttorch ray job: --num-workers {args.num_workers} and --num-servers {args.num_servers}: each "
              "must be at least 1", file=sys.stderr)
        return 2
    if args.mode == "ps" and args.max_failures:
        print("disttorch ray job: --max-failures applies to --mode ddp only (Ray would restart the workers but not "
              "the parameter servers)", file=sys.stderr)
        return 2
    import ray.train

    from .backend import DisttorchConfig
    from .local import ray_session
    from .trainer import TorchTrainer

    script = args.script if args.module else os.path.abspath(args.script)
    config = {"script": script, "args": list(args.args), "module": args.module}
    run_config = ray.train.RunConfig(storage_path=args.storage_path,
                                     failure_config=ray.train.FailureConfig(max_failures=args.max_failures))
    with ray_session():
        if args.mode == "ps":
            return _run_ps(args, config, run_config)
        trainer = TorchTrainer(
            _run_script, train_loop_config=config,
            backend_config=DisttorchConfig(backend=args.backend, init_group=False),
            scaling_config=ray.train.ScalingConfig(num_workers=args.num_workers, use_gpu=args.use_gpu),
            run_config=run_config)
        try:
            trainer.fit()
        except ray.train.TrainingFailedError as e:
            print(f"disttorch ray job: {args.script} failed: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
