"""Queue workers told apart on real processes: one idle, with nothing queued, silent past DVC's own
shutdown delay, is named with its fix; one that runs, waits for, or has just finished work is not."""

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
from visionlab.dvc_queue import CELERY, SETTLE_SECONDS, workers

SLEEP = "import time; time.sleep(120)"
# A worker that runs an experiment: the experiment is its child process.
WITH_CHILD = (
    f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {SLEEP!r}]); time.sleep(120)"
)
LATER = SETTLE_SECONDS + 30  # seconds on: what doctor sees once a silent worker has missed its shutdown


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


def _worker_files(root: Path, name: str, pid: int | str) -> None:
    """DVC's pid file and the worker's log, last written now."""
    folder = root / CELERY
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.pid").write_text(f"{pid}\n")
    (folder / f"{name}.out").write_text("[...] dvc-exp-0a1b2c-1@localhost ready.\n")


def _wait_for_child(pid: int) -> None:
    import psutil

    deadline = time.monotonic() + 30
    while not psutil.Process(pid).children() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_an_idle_worker_silent_past_its_shutdown_is_named_with_its_pid_and_the_fix(tmp_path, spawn):
    worker = spawn(SLEEP, "exp", "queue-worker", "dvc-exp-0a1b2c-1@localhost")
    _worker_files(tmp_path, "dvc-exp-worker-1", worker.pid)
    # Just idle: DVC's worker stops itself about 12 s after the queue empties.
    [seen] = workers(tmp_path)
    assert (seen.pid, seen.name, seen.busy, seen.left_behind) == (
        worker.pid,
        "dvc-exp-worker-1",
        False,
        False,
    )
    check = _check_queue_workers(tmp_path)
    assert (
        check.status == OK
        and f"finishing (stops itself once the queue is empty): PID {worker.pid}" in check.detail
    )
    # Still there, still silent, a minute and a half on: left behind.
    [seen] = workers(tmp_path, now=time.time() + LATER)
    assert seen.left_behind and seen.silent_for >= LATER - 5
    check = _check_queue_workers(tmp_path, now=time.time() + LATER)
    assert check.status == WARN
    assert f"PID {worker.pid}" in check.detail and "nothing queued" in check.detail
    assert "dvc queue stop" in check.fix and str(worker.pid) in check.fix


def test_a_worker_with_a_queued_experiment_or_one_running_is_never_left_behind(tmp_path, spawn):
    later = time.time() + LATER
    waiting = spawn(SLEEP, "exp", "queue-worker", "dvc-exp-0a1b2c-1@localhost")
    _worker_files(tmp_path, "dvc-exp-worker-1", waiting.pid)
    inbox = tmp_path / CELERY / "broker" / "in"
    inbox.mkdir(parents=True)
    (inbox / "0001.msg").write_text("{}")
    assert [(w.busy, w.left_behind) for w in workers(tmp_path, now=later)] == [(True, False)]
    assert _check_queue_workers(tmp_path, now=later).status == OK

    (inbox / "0001.msg").unlink()
    assert _check_queue_workers(tmp_path, now=later).status == WARN
    running = spawn(WITH_CHILD, "exp", "queue-worker", "dvc-exp-0a1b2c-2@localhost")
    _wait_for_child(running.pid)
    _worker_files(tmp_path, "dvc-exp-worker-2", running.pid)
    by_pid = {w.pid: (w.busy, w.left_behind) for w in workers(tmp_path, now=later)}
    assert by_pid == {waiting.pid: (False, True), running.pid: (True, False)}
    check = _check_queue_workers(tmp_path, now=later)
    assert check.status == WARN and f"PID {waiting.pid}" in check.detail
    assert str(running.pid) not in check.detail


def test_pid_files_of_ended_workers_reused_pids_and_garbage_are_no_workers(tmp_path, spawn):
    assert workers(tmp_path) == [] and _check_queue_workers(tmp_path).detail == "none"
    ended = spawn("pass", "exp", "queue-worker", "dvc-exp-0a1b2c-1@localhost")
    ended.wait()
    _worker_files(tmp_path, "dvc-exp-worker-1", ended.pid)
    other = spawn(SLEEP)  # a live process that is not a queue worker (the PID reused)
    _worker_files(tmp_path, "dvc-exp-worker-2", other.pid)
    _worker_files(tmp_path, "dvc-exp-worker-3", "not a pid")
    assert workers(tmp_path, now=time.time() + LATER) == []
    check = _check_queue_workers(tmp_path, now=time.time() + LATER)
    assert (check.status, check.detail) == (OK, "none")
