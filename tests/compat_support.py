"""Running the compatibility programs (tests/compat/progs/*.py): each is a PyTorch-style script that does
``import disttorch as torch``, runs in its own process and session, and prints one JSON line of results.

Tests import it as ``from compat_support import run_program`` (tests/ is on sys.path).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

PROGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compat", "progs")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def program_env(**extra: str) -> dict:
    """The environment a program runs with: this checkout first on PYTHONPATH, plus ``extra``."""
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra)


def run_program(name: str, *args: str, timeout: float = 120.0, **env: str) -> dict:
    """Run ``progs/<name>`` with ``args``; return its last stdout line parsed as JSON.

    The program gets a session of its own; whatever happens, that process group (its children included) is
    killed by id afterwards. A non-zero exit fails with the tail of its stderr.
    """
    proc = subprocess.Popen([sys.executable, os.path.join(PROGS, name), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=program_env(**env), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(timeout=10)
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}:\n{err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])
