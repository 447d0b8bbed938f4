"""The ``disttorch`` command.

Usage::

    disttorch --version
    disttorch doctor          # what this machine offers: Python, NumPy, optional backends

``disttorch launch`` (torchrun-compatible) and ``disttorch ray submit`` arrive with the distributed
issues; until then they exit with status 2 and say so.
"""
from __future__ import annotations

import argparse
import importlib.util
import platform
import sys

_PLANNED = {"launch": "distributed launch", "ray": "Ray job submission", "serve": "the model server"}


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("disttorch")
    except Exception:  # noqa: BLE001 - running from a checkout that is not installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="disttorch", description="disttorch command-line tools")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("doctor", help="report the Python environment and which optional backends are importable")
    for name, what in _PLANNED.items():
        sp = sub.add_parser(name, help=f"{what} (not implemented yet)")
        sp.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def doctor() -> dict:
    """Facts about this environment, without importing any optional backend."""
    facts = {"python": platform.python_version(), "platform": platform.platform(), "disttorch": _version()}
    for mod in ("numpy", "ml_dtypes", "zmq", "msgpack", "mpi4py", "cupy", "ray", "torch"):
        facts[mod] = "available" if importlib.util.find_spec(mod) is not None else "missing"
    return facts


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        print(f"disttorch {_version()}")
        return 0
    if args.command == "doctor":
        for k, v in doctor().items():
            print(f"{k:10s} {v}")
        return 0
    if args.command in _PLANNED:
        print(f"disttorch {args.command}: {_PLANNED[args.command]} is not implemented yet", file=sys.stderr)
        return 2
    build_parser().print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
