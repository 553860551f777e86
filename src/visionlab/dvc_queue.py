"""DVC's experiment-queue workers found and told apart: working, or idling with nothing queued.

`dvc queue start` spawns workers that take queued experiments one at a time and shut the queue
down when it is empty. DVC's task queue can shut it down while a worker still runs a task; that
worker then idles on for good, holding whatever pipe or terminal it was started from (stop 57's
15-minute hang of the full suite). `dvc queue stop` ends it.

A worker writes its PID to ``.dvc/tmp/exps/celery/<name>.pid``. It counts as a worker only while
that PID runs `dvc exp queue-worker` (a PID left by a worker that ended may be reused). It works
while it has a child process (each experiment runs as `dvc exp exec-run` under it) or while a
message waits in the queue's inbox; otherwise it idles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CELERY = Path(".dvc") / "tmp" / "exps" / "celery"


@dataclass(frozen=True)
class Worker:
    pid: int
    name: str  # dvc-exp-worker-<n>
    busy: bool  # runs an experiment or has one waiting


def _queued(root: Path) -> int:
    """Messages waiting in the queue's filesystem broker (one per queued experiment)."""
    inbox = root / CELERY / "broker" / "in"
    return sum(1 for path in inbox.iterdir() if path.is_file()) if inbox.is_dir() else 0


def _worker_process(pid: int):
    """The live process of a queue worker with PID ``pid``, or None."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process if "queue-worker" in process.cmdline() else None
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def workers(root: Path) -> list[Worker]:
    """Every live queue worker of the project at ``root``, by its pid file."""
    import psutil

    folder = root / CELERY
    if not folder.is_dir():
        return []
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
            running = bool(process.children())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found.append(Worker(pid, pid_file.stem, busy=running or queued > 0))
    return found
