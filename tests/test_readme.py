"""README's Python example runs and prints what its comment says; its quickstart has exactly two commands."""
import contextlib
import io
import pathlib
import re

README = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_python_example_runs_and_matches_comment():
    block = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, "README.md", "exec"), {})
    printed = out.getvalue().strip()
    expected = re.search(r"print\(.*\)\s+# (.*)", block).group(1).strip()
    assert printed == expected


def test_quickstart_has_exactly_the_two_commands():
    section = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    commands = re.search(r"```\n(.*?)```", section, re.S).group(1).split()
    assert " ".join(commands) == "make demo make test"
