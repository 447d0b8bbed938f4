"""The `disttorch` command skeleton."""
import subprocess
import sys

import pytest

from disttorch.launcher import cli


def test_version_and_doctor(capsys):
    assert cli.main(["--version"]) == 0
    assert "disttorch" in capsys.readouterr().out
    assert cli.main(["doctor", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "numpy" in out and "available" in out and "zmq all_reduce     skipped" in out
    assert "compiled kernels   ok       numba" in out and "kernels load and run" in out


@pytest.mark.timeout(180)
def test_doctor_runs_the_backends_for_real(capsys):
    """A 2-rank zmq all-reduce, a 2-rank MPI all-reduce and a parameter-server push/pull, each through
    `disttorch launch`; each job checks its result and says so."""
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "zmq all_reduce     ok       all_reduce on 2 ranks over zmq" in out
    assert "mpi all_reduce     ok       all_reduce on 2 ranks over mpi" in out
    assert "parameter server   ok       parameter-server push/pull" in out


def test_doctor_reports_a_failing_job_and_what_to_install(monkeypatch, capsys):
    from disttorch.launcher import doctor

    monkeypatch.setattr(doctor, "_launch", lambda args, timeout: (False, "exit status 1: boom"))
    real_find = doctor.importlib.util.find_spec
    monkeypatch.setattr(doctor.importlib.util, "find_spec", lambda m: None if m == "ray" else real_find(m))
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "zmq all_reduce     fail     exit status 1: boom" in out
    assert "ray                missing  pip install 'disttorch[ray]'" in out


def test_serve_goes_to_the_model_server(capsys):
    assert cli.main(["serve", "missing.pt", "--model", "no_such_module_for_serve:make"]) == 2
    assert "cannot import module 'no_such_module_for_serve'" in capsys.readouterr().err


def test_launch_is_a_real_subcommand(capsys):
    assert cli.main(["launch", "--dry-run", "train.py"]) == 0
    assert "rank 0 (local_rank 0)" in capsys.readouterr().out


def test_launcher_modules_do_not_import_engine_modules():
    # DESIGN rule 7: the launcher stays importable without the tensor engine's modules.
    import ast
    import pathlib

    root = pathlib.Path(cli.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert not (name.startswith("disttorch") and not name.startswith("disttorch.launcher")), \
                    f"{path.name} imports {name}"


def test_cli_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "disttorch.launcher.cli", "--version"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("disttorch")


def test_one_launcher_per_node_without_a_job_secret_is_refused(monkeypatch, capsys):
    import os

    for k in list(os.environ):
        if k.startswith(("DISTTORCH_", "PET_")):
            monkeypatch.delenv(k)
    argv = ["launch", "--nnodes", "2", "--node-rank", "0", "--nproc-per-node", "1", "--master-addr", "127.0.0.1",
            "--dry-run", "train.py"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "error: DISTTORCH_JOB_SECRET is not set" in err and "--nnodes 2" in err
    assert "python -c 'import secrets; print(secrets.token_hex(16))'" in err
    monkeypatch.setenv("DISTTORCH_JOB_SECRET", "ab" * 16)
    assert cli.main(argv) == 0
    assert "rank 0 (local_rank 0)" in capsys.readouterr().out
    monkeypatch.delenv("DISTTORCH_JOB_SECRET")
    assert cli.main(["launch", "--nproc-per-node", "2", "--dry-run", "train.py"]) == 0  # one node: one is made
