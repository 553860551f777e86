"""DVC's experiment-queue workers found and told apart: working, finishing, or left behind.

`dvc queue start` spawns workers that take queued experiments one at a time; a worker stops itself
once the queue has been empty about ten seconds (12 s measured here, from its last task's end to its
shutdown). DVC's task queue can shut the queue down while a worker still runs a task; that worker
then idles on for good, holding whatever pipe or terminal it was started from (stop 57's 15-minute
hang of the full suite). `dvc queue stop` ends it.

A worker writes its PID to ``.dvc/tmp/exps/celery/<name>.pid`` and its log to ``<name>.out``. It
counts as a worker only while that PID runs `dvc exp queue-worker` (a PID left by a worker that
ended may be reused). It is busy while it has a child process (each experiment runs as
`dvc exp exec-run` under it) or a message waits in the queue's inbox. An idle worker whose log has
been silent for ``SETTLE_SECONDS`` has missed its own shutdown: it is left behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from visionlab.dvc_locks import live_command

CELERY = Path(".dvc") / "tmp" / "exps" / "celery"
SETTLE_SECONDS = 60.0  # five times the idle time after which a worker stops itself


@dataclass(frozen=True)
class Worker:
    pid: int
    name: str  # dvc-exp-worker-<n>
    busy: bool  # runs an experiment or has one waiting
    silent_for: float  # seconds since the worker last wrote its log (or since it started)

    @property
    def left_behind(self) -> bool:
        return not self.busy and self.silent_for >= SETTLE_SECONDS


def _queued(root: Path) -> int:
    """Messages waiting in the queue's filesystem broker (one per queued experiment)."""
    inbox = root / CELERY / "broker" / "in"
    return sum(1 for path in inbox.iterdir() if path.is_file()) if inbox.is_dir() else 0


def _worker_process(pid: int):
    """The live process of a queue worker with PID ``pid``, or None."""
    found = live_command(pid)
    return found[0] if found is not None and "queue-worker" in found[1] else None


def _last_sign_of_life(log: Path, started: float) -> float:
    """When the worker last wrote its log; its start time if it has none."""
    try:
        return max(log.stat().st_mtime, started)
    except OSError:
        return started


def workers(root: Path, now: float | None = None) -> list[Worker]:
    """Every live queue worker of the project at ``root``, by its pid file, as seen at ``now``
    (default: the present)."""
    import psutil

    folder = root / CELERY
    if not folder.is_dir():
        return []
    now = time.time() if now is None else now
    queued = _queued(root)
    found = []
    for pid_file in sorted(folder.glob("*.pid")):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        process = _worker_process(pid)
        if process is None:
            continue
        try:
            running, started = bool(process.children()), process.create_time()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        heard = _last_sign_of_life(pid_file.with_suffix(".out"), started)
        found.append(Worker(pid, pid_file.stem, running or queued > 0, now - heard))
    return found
