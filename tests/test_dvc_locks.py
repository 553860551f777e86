"""`visionlab unlock`: DVC lock entries of dead `dvc` runs go, those of running ones stay.

Real processes throughout: a zombie (killed, never reaped: its PID still answers, so DVC itself
keeps blocking on it), a PID taken by a process that is not DVC, and a running process whose
command is a DVC command. The last test is DVC's own refusal and rerun on a real project.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from visionlab.cli import main
from visionlab.doctor.dvc_state import _check_dvc_locks
from visionlab.dvc_locks import RWLOCK, clear_stale, holders
from visionlab.errors import VisionlabError

SLEEP = "import time; time.sleep(120)"


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []

    def start(*extra: str) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", SLEEP, *extra])
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def _zombie(start) -> int:
    process = start("dvc", "repro")
    process.send_signal(signal.SIGKILL)
    for _ in range(100):  # killed, but not waited for: a zombie whose PID still exists
        if Path(f"/proc/{process.pid}/stat").read_text().split()[2] == "Z":
            return process.pid
        time.sleep(0.02)
    raise AssertionError("the killed process did not become a zombie")


def _write_lock(root: Path, read: dict, write: dict) -> Path:
    path = root / RWLOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"read": read, "write": write}))
    return path


def test_only_entries_of_processes_that_no_longer_run_dvc_are_removed(tmp_path, processes):
    zombie = _zombie(processes)
    other = processes().pid  # a live process, but not DVC: the PID was reused
    live = processes("dvc", "repro").pid  # a running DVC command
    path = _write_lock(
        tmp_path,
        read={
            "data/raw/flowers": [{"pid": zombie, "cmd": "dvc repro"}, {"pid": live, "cmd": "dvc exp run"}],
        },
        write={
            "data/prepared/flowers": {"pid": zombie, "cmd": "dvc repro"},
            "data/models/flowers-cnn": {"pid": other, "cmd": "dvc repro"},
            "data/eval/flowers-cnn": {"pid": live, "cmd": "dvc exp run"},
        },
    )
    assert {h.pid: h.alive for h in holders(tmp_path)} == {zombie: False, other: False, live: True}
    assert "reruns stop" in _check_dvc_locks(tmp_path).detail

    removed, kept = clear_stale(tmp_path)
    assert {(h.path, h.pid) for h in removed} == {
        ("data/raw/flowers", zombie),
        ("data/prepared/flowers", zombie),
        ("data/models/flowers-cnn", other),
    }
    assert {(h.path, h.pid) for h in kept} == {("data/raw/flowers", live), ("data/eval/flowers-cnn", live)}
    assert json.loads(path.read_text()) == {
        "read": {"data/raw/flowers": [{"pid": live, "cmd": "dvc exp run"}]},
        "write": {"data/eval/flowers-cnn": {"pid": live, "cmd": "dvc exp run"}},
    }
    assert _check_dvc_locks(tmp_path).detail == f"held by running dvc PID {live}"


def test_a_file_not_in_dvcs_shape_is_never_rewritten(tmp_path):
    path = tmp_path / RWLOCK
    path.parent.mkdir(parents=True)
    for text in ('{"write": {"x": {"pid": "12"}}}', "{not json", '{"owners": {}}'):
        path.write_text(text)
        with pytest.raises(VisionlabError, match="left as it is"):
            clear_stale(tmp_path)
        assert path.read_text() == text


def test_the_command_says_what_it_removed_and_what_it_kept(tmp_path, processes, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    runner = CliRunner()
    result = runner.invoke(main, ["unlock"])
    assert result.exit_code == 0 and "no DVC locks" in result.output

    zombie, live = _zombie(processes), processes("dvc", "repro").pid
    _write_lock(
        tmp_path,
        {},
        {"data/a": {"pid": zombie, "cmd": "dvc repro"}, "data/b": {"pid": live, "cmd": "dvc repro"}},
    )
    result = runner.invoke(main, ["unlock"])
    assert result.exit_code == 1, result.output  # something still runs: not all clear
    assert f"removed: write lock on data/a of PID {zombie}" in result.output
    assert f"kept:    write lock on data/b of PID {live}" in result.output


def test_a_killed_dvc_repro_blocks_the_rerun_until_unlock(tmp_path):
    """A real `dvc repro` SIGKILLed inside its stage and never reaped (as under a container's
    PID 1 that reaps no orphans): DVC refuses the rerun; after `visionlab unlock` it succeeds."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "dvc.yaml").write_text(
        "stages:\n"
        "  slow:\n"
        "    cmd: python -c \"import pathlib, time; time.sleep(float(open('wait').read()));"
        " pathlib.Path('out.txt').write_text('done')\"\n"
        "    deps: [wait]\n"
        "    outs: [out.txt]\n"
    )
    (project / "wait").write_text("120")
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }

    def dvc(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "dvc", *args], cwd=project, env=env, capture_output=True, text=True
        )

    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    assert dvc("init", "-q").returncode == 0
    repro = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro"], cwd=project, env=env, start_new_session=True
    )
    try:
        lock = project / RWLOCK
        for _ in range(600):
            if lock.is_file() and "out.txt" in lock.read_text():
                break
            time.sleep(0.1)
        else:
            raise AssertionError("dvc repro never locked its output")
        os.killpg(repro.pid, signal.SIGKILL)  # dvc and its stage, as an OOM kill would
        time.sleep(0.5)
        (project / "wait").write_text("0")
        blocked = dvc("repro")
        assert blocked.returncode != 0 and "is busy" in blocked.stderr, blocked.stderr

        unlock = subprocess.run(
            [sys.executable, "-m", "visionlab.cli", "unlock"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
        )
        assert unlock.returncode == 0, unlock.stdout + unlock.stderr
        assert f"of PID {repro.pid}" in unlock.stdout and "not running" in unlock.stdout
        rerun = dvc("repro")
        assert rerun.returncode == 0, rerun.stderr
        assert (project / "out.txt").read_text() == "done"
    finally:
        repro.kill()
        repro.wait()
