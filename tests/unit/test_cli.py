"""The command line's answers to bad input: one line, the documented exit code, no traceback."""

import subprocess
import sys

import pytest


def svclab(*args, env=None):
    return subprocess.run([sys.executable, "-m", "svclab", *args], capture_output=True, text=True, timeout=60,
                          env=env)


@pytest.mark.parametrize("args, code, message", [
    (["cluster.up", "--name", "Bad_Name"], 2, "invalid cluster name"),
    (["cluster.up", "--provider", "f5"], 2, "unknown provider 'f5'"),
    (["cluster.up", "--workers", "9"], 2, "workers must be between 0 and 5"),
    (["lab.nodeport", "--workers", "many"], 2, "invalid value"),
    (["bench", "--repeat", "x"], 2, "'x' is not a whole number"),
])
def test_bad_input(args, code, message, tmp_path):
    proc = svclab(*args, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_docker_down_is_a_prerequisite_error(tmp_path):
    env = {"PATH": "/nonexistent", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
           "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    proc = svclab("cluster.up", env=env)
    assert proc.returncode == 3, proc.stderr
    assert "Docker does not answer" in proc.stderr and "svclab doctor" in proc.stderr
    assert not (tmp_path / ".local" / "state").exists()


def test_lab_list():
    proc = svclab("lab.list")
    assert proc.returncode == 0
    assert "nodeport" in proc.stdout and "C5" in proc.stdout


INVOKE_ONLY = ("--dry", "--pty", "--echo", "--config", "--prompt-for-sudo-password", "--warn-only", "--hide",
               "--command-timeout", "--write-pyc", "--debug", "--collection", "--search-root", "--list-format")


def test_help_shows_svclab_options_only():
    proc = svclab("--help")
    assert proc.returncode == 0, proc.stderr
    for option in INVOKE_ONLY:
        assert option not in proc.stdout
    assert "--core-opts" not in proc.stdout
    for option in ("--help", "--version", "--list"):
        assert option in proc.stdout
    assert "lab.nodeport" in proc.stdout and "cluster.up" in proc.stdout


@pytest.mark.parametrize("args", [["--dry", "cluster.up"], ["-f", "x.yaml", "lab.list"], ["-p", "none", "lab.list"],
                                  ["--pty", "lab.list"], ["--prompt-for-sudo-password", "lab.list"],
                                  ["testbed.status"], ["lab.list", "--dry"], ["--help", "lab.nope"]])
def test_invoke_core_options_and_checkout_tasks_are_refused(args, tmp_path):
    proc = svclab(*args, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "No idea what" in lines[0], proc.stderr
    assert proc.stdout == ""


def test_task_help_has_a_line_for_every_flag():
    proc = svclab("--help", "lab.nodeport")
    assert proc.returncode == 0
    assert proc.stdout.startswith("Usage: svclab lab.nodeport [--options]")
    assert "-n STRING, --name=STRING" in proc.stdout and "-p STRING, --provider=STRING" in proc.stdout


def test_every_flag_of_every_task_has_help_and_short_flags_mean_one_thing():
    from svclab.cli import namespace
    from svclab.program import SHORT_FLAGS

    seen = {}
    tasks = [namespace[name] for name in namespace.task_names]
    assert len(tasks) > 15
    for task in tasks:
        for arg in task.get_arguments():
            assert arg.help, f"{task.name} --{arg.name} has no help"
            for short in [n for n in arg.names if len(n) == 1]:
                seen.setdefault(short, set()).add(arg.name)
    assert all(len(longs) == 1 for longs in seen.values()), seen
    assert set(seen) <= set(SHORT_FLAGS.values())


def test_lab_list_answers_in_json():
    import json

    proc = svclab("lab.list", "--json")
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    nodeport = next(lab for lab in listed if lab["id"] == "nodeport")
    assert nodeport["task"] == "lab.nodeport" and "C5" in nodeport["claims"]


def test_a_closed_pipe_ends_quietly():
    shell = f"{sys.executable} -m svclab lab.list | head -c 1 >/dev/null; echo ${{PIPESTATUS[0]}}"
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60)
    assert proc.stderr == ""
    assert proc.stdout.strip() in ("0", "141")   # 0 when the whole list fitted the pipe before it closed


def test_the_checkout_keeps_the_testbed_tasks():
    proc = subprocess.run([sys.executable, "-m", "invoke", "--list"], capture_output=True, text=True, timeout=60,
                          cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert proc.returncode == 0, proc.stderr
    for name in ("testbed.build", "testbed.status", "testbed.clean", "lab.nodeport", "cluster.up"):
        assert name in proc.stdout
