"""``disttorch ray``: argument handling without Ray, and submit end to end (embedded Ray; a `ray start` head)."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from disttorch.launcher import cli, ray_cli

SCRIPT = """\
import os, sys
import disttorch
import disttorch.distributed as dist

dist.init_process_group()   # torchrun style: the group comes from the environment
t = disttorch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
print(f"sum={t.item():g} local={os.environ['LOCAL_RANK']} world={os.environ['WORLD_SIZE']} args={sys.argv[1:]}")
dist.destroy_process_group()
if "--fail" in sys.argv and os.environ["RANK"] == "1":
    sys.exit(3)
"""


def _parse(argv):
    return ray_cli.build_parser().parse_args(argv)


def test_without_ray_every_command_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setattr(ray_cli, "_have_ray", lambda: False)
    for argv in (["submit", "train.py"], ["status", "raysubmit_1"], ["logs", "x"], ["stop", "x"]):
        assert cli.main(["ray", *argv]) == 2
        assert "pip install 'disttorch[ray]'" in capsys.readouterr().err


def test_ps_mode_and_bad_counts_are_refused(monkeypatch, capsys):
    monkeypatch.setattr(ray_cli, "_have_ray", lambda: True)
    assert cli.main(["ray", "submit", "--mode", "ps", "--num-servers", "0", "train.py"]) == 2
    assert "--num-servers 0: must be at least 1" in capsys.readouterr().err
    assert cli.main(["ray", "submit", "--mode", "ps", "--max-failures", "1", "train.py"]) == 2
    assert "--max-failures applies to --mode ddp only" in capsys.readouterr().err
    assert cli.main(["ray", "submit", "--num-servers", "2", "train.py"]) == 2
    assert "--num-servers applies to --mode ps" in capsys.readouterr().err
    assert cli.main(["ray", "submit", "--num-workers", "0", "train.py"]) == 2
    assert "--num-workers 0" in capsys.readouterr().err


def test_job_request_entrypoint_and_upload_excludes(tmp_path):
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / ".gitignore").write_text("# comment\ndata/\n*.ckpt\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "big.bin").write_bytes(b"x" * 5000)
    (tmp_path / "model.ckpt").write_bytes(b"y" * 3000)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "pack").write_bytes(b"z" * 7000)
    args = _parse(["submit", "--num-workers", "3", str(tmp_path / "train.py"), "--lr", "0.1"])
    entry, env = ray_cli.job_request(args)
    assert entry == "python -m disttorch.ray.job --num-workers 3 train.py --lr 0.1"
    assert env["working_dir"] == str(tmp_path)
    assert env["excludes"] == [".git", "data/", "*.ckpt"]
    assert ray_cli.upload_size(str(tmp_path), env["excludes"]) == len("print(1)\n") + len("# comment\ndata/\n*.ckpt\n")
    entry, _ = ray_cli.job_request(_parse(["submit", str(tmp_path / "train.py")]), embedded=True)
    assert entry.startswith(f"{sys.executable} -m disttorch.ray.job --num-workers 1 ")
    entry, _ = ray_cli.job_request(_parse(["submit", "--mode", "ps", "--num-servers", "2", "--num-workers", "2",
                                           str(tmp_path / "train.py")]))
    assert entry == "python -m disttorch.ray.job --num-workers 2 --mode ps --num-servers 2 train.py"
    with pytest.raises(ValueError, match="outside --working-dir"):
        ray_cli.job_request(_parse(["submit", "--working-dir", str(tmp_path / "data"), str(tmp_path / "train.py")]))


def _ray_ready():
    pytest.importorskip("ray.job_submission", reason="the ray extra is not installed (pip install disttorch[ray])")
    pytest.importorskip("ray.train", reason="Ray Train is not installed (pip install disttorch[ray])")


def _run_cli(argv, env, timeout=240):
    return subprocess.run([sys.executable, "-m", "disttorch.launcher.cli", "ray", *argv], capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_submit_on_embedded_ray_runs_a_torchrun_script(tmp_path):
    _ray_ready()
    (tmp_path / "train.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = _run_cli(["submit", "--num-workers", "2", str(tmp_path / "train.py"), "--flag", "x"], env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for rank in (0, 1):  # once each: the script's line, prefixed as `disttorch launch` does
        assert proc.stdout.count(f"[rank {rank}] sum=3 local={rank} world=2 args=['--flag', 'x']") == 1, proc.stdout
    assert "SUCCEEDED" in proc.stderr


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    """A head node started with `ray start --head` on 127.0.0.1 for the module, stopped by its process group."""
    _ray_ready()
    ray_exe = str(Path(sys.executable).parent / "ray")
    if not os.path.exists(ray_exe):
        pytest.skip(f"no ray command next to {sys.executable}")
    dash, gcs = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    head = subprocess.Popen([ray_exe, "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                             "--port", str(gcs), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
                             "--num-cpus", "2", "--include-dashboard", "true"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        address = f"http://127.0.0.1:{dash}"
        deadline = time.monotonic() + 90
        while True:  # the head is up when its job API answers
            try:
                ray_cli._client(address).list_jobs()  # with the token, as the CLI sends it
                break
            except Exception:
                if time.monotonic() > deadline or head.poll() is not None:
                    raise
                time.sleep(0.5)
        yield address, env
    finally:
        try:
            os.killpg(head.pid, signal.SIGTERM)
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)
        except ProcessLookupError:
            pass
        # `ray start` leaves /tmp/ray/ray_current_cluster naming its head; a later ray.init() would try the dead one.
        current = Path("/tmp/ray/ray_current_cluster")
        try:
            if current.read_text().strip().endswith(f":{gcs}"):
                current.unlink()
        except OSError:
            pass


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_submit_status_logs_against_a_ray_start_head(ray_head, tmp_path):
    address, env = ray_head
    (tmp_path / "train.py").write_text(SCRIPT)
    proc = _run_cli(["submit", "--address", address, "--num-workers", "2", str(tmp_path / "train.py"), "--fail"],
                    env)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[rank 1] sum=3 local=1 world=2 args=['--fail']" in proc.stdout
    assert "exited with status 3" in proc.stdout
    job_id = proc.stderr.split("disttorch ray submit: job ", 1)[1].split()[0]
    status = _run_cli(["status", "--address", address, job_id], env, timeout=60)
    assert status.returncode == 0 and status.stdout.strip() == "FAILED"
    logs = _run_cli(["logs", "--address", address, job_id], env, timeout=60)
    assert "[rank 0] sum=3" in logs.stdout


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_submit_ps_mode_two_servers_two_workers_against_a_ray_start_head(ray_head, tmp_path):
    import json

    import numpy as np

    import disttorch
    import ps_ray_script as script

    address, env = ray_head
    shutil.copy(Path(__file__).with_name("ps_ray_script.py"), tmp_path / "ps_train.py")
    out = tmp_path / "out"
    out.mkdir()
    proc = _run_cli(["submit", "--address", address, "--mode", "ps", "--num-servers", "2", "--num-workers", "2",
                     str(tmp_path / "ps_train.py"), str(out)], env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for rank in (0, 1):
        assert proc.stdout.count(f"[rank {rank}] ps worker {rank} of 2 done") == 1, proc.stdout[-3000:]
    results = [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["role"] for r in results] == ["worker", "worker"] and [r["world"] for r in results] == [2, 2]
    assert results[0]["servers"] == [0, 1]  # the parameters are spread over both servers
    # Reference: one process, the plain optimizer, the whole batch, rank 0's initial model.
    model = script.mlp(script.SEED)
    opt = disttorch.optim.SGD(model.parameters(), lr=script.LR, momentum=script.MOMENTUM)
    for step in range(script.STEPS):
        x, y = script.batch(step)
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
    for got0, got1, ref in zip(results[0]["final"], results[1]["final"], model.parameters()):
        np.testing.assert_array_equal(got0, got1)  # sync mode: the workers agree exactly
        np.testing.assert_allclose(got0, ref.detach().numpy().reshape(-1), rtol=1e-12, atol=1e-12)


def test_runtime_env_file_is_merged_and_checked(tmp_path):
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "env.yaml").write_text("env_vars:\n  LR: '0.1'\nexcludes: ['*.npz']\npip: [tqdm]\n")
    args = _parse(["submit", "--runtime-env", str(tmp_path / "env.yaml"), "--max-failures", "1", "--use-gpu",
                   str(tmp_path / "train.py")])
    entry, env = ray_cli.job_request(args)
    assert entry == "python -m disttorch.ray.job --num-workers 1 --use-gpu --max-failures 1 train.py"
    assert env == {"env_vars": {"LR": "0.1"}, "pip": ["tqdm"], "working_dir": str(tmp_path),
                   "excludes": [".git", "*.npz"]}
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(ValueError, match="bad.yaml: expected a mapping"):
        ray_cli.job_request(_parse(["submit", "--runtime-env", str(tmp_path / "bad.yaml"), str(tmp_path / "train.py")]))


def test_import_without_ray_says_how_to_install():
    code = ("import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
            "import disttorch\n"
            "try:\n    disttorch.ray\nexcept ImportError as e:\n    print('ImportError:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "pip install disttorch[ray]" in out.stdout
