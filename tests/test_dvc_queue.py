"""Queue workers told apart on real processes: one idling with nothing queued is named with its fix."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from visionlab.doctor.check import OK, WARN
from visionlab.doctor.dvc_state import _check_queue_workers
from visionlab.dvc_queue import CELERY, workers

SLEEP = "import time; time.sleep(120)"
# A worker that runs an experiment: the experiment is its child process.
WITH_CHILD = (
    f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {SLEEP!r}]); time.sleep(120)"
)


@pytest.fixture
def spawn():
    """Start processes whose command line reads like DVC's (`exp queue-worker <node>`); kill them after."""
    started: list[subprocess.Popen] = []

    def start(code: str, *words: str) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", code, *words], start_new_session=True)
        started.append(process)
        return process

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _pid_file(root: Path, name: str, pid: int | str) -> None:
    folder = root / CELERY
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.pid").write_text(f"{pid}\n")


def _wait_for_child(pid: int) -> None:
    import psutil

    deadline = time.monotonic() + 30
    while not psutil.Process(pid).children() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_an_idle_worker_with_nothing_queued_is_named_with_its_pid_and_the_fix(tmp_path, spawn):
    worker = spawn(SLEEP, "exp", "queue-worker", "dvc-exp-0a1b2c-1@localhost")
    _pid_file(tmp_path, "dvc-exp-worker-1", worker.pid)
    assert [(w.pid, w.name, w.busy) for w in workers(tmp_path)] == [(worker.pid, "dvc-exp-worker-1", False)]
    check = _check_queue_workers(tmp_path)
    assert check.status == WARN
    assert str(worker.pid) in check.detail and "nothing queued" in check.detail
    assert "dvc queue stop" in check.fix


def test_a_worker_with_a_queued_experiment_or_one_running_is_busy(tmp_path, spawn):
    waiting = spawn(SLEEP, "exp", "queue-worker", "dvc-exp-0a1b2c-1@localhost")
    _pid_file(tmp_path, "dvc-exp-worker-1", waiting.pid)
    inbox = tmp_path / CELERY / "broker" / "in"
    inbox.mkdir(parents=True)
    (inbox / "0001.msg").write_text("{}")
    assert [w.busy for w in workers(tmp_path)] == [True]
    assert _check_queue_workers(tmp_path).status == OK

    (inbox / "0001.msg").unlink()
    assert _check_queue_workers(tmp_path).status == WARN
    running = spawn(WITH_CHILD, "exp", "queue-worker", "dvc-exp-0a1b2c-2@localhost")
    _wait_for_child(running.pid)
    _pid_file(tmp_path, "dvc-exp-worker-2", running.pid)
    by_pid = {w.pid: w.busy for w in workers(tmp_path)}
    assert by_pid == {waiting.pid: False, running.pid: True}
    check = _check_queue_workers(tmp_path)
    assert check.status == WARN and str(waiting.pid) in check.detail and str(running.pid) not in check.detail


def test_pid_files_of_ended_workers_reused_pids_and_garbage_are_no_workers(tmp_path, spawn):
    assert workers(tmp_path) == [] and _check_queue_workers(tmp_path).detail == "none"
    ended = spawn("pass", "exp", "queue-worker", "dvc-exp-0a1b2c-1@localhost")
    ended.wait()
    _pid_file(tmp_path, "dvc-exp-worker-1", ended.pid)
    other = spawn(SLEEP)  # a live process that is not a queue worker (the PID reused)
    _pid_file(tmp_path, "dvc-exp-worker-2", other.pid)
    _pid_file(tmp_path, "dvc-exp-worker-3", "not a pid")
    assert workers(tmp_path) == []
    check = _check_queue_workers(tmp_path)
    assert (check.status, check.detail) == (OK, "none")
