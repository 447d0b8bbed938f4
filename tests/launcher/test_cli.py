"""The `disttorch` command skeleton."""
import subprocess
import sys

from disttorch.launcher import cli


def test_version_and_doctor(capsys):
    assert cli.main(["--version"]) == 0
    assert "disttorch" in capsys.readouterr().out
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "numpy" in out and "available" in out


def test_planned_commands_say_not_implemented(capsys):
    for command in ("ray", "serve"):
        assert cli.main([command, "submit", "train.py"]) == 2
        assert "not implemented yet" in capsys.readouterr().err


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
