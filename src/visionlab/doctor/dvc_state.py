"""What a crashed or unlucky DVC run leaves behind: stale output locks and idle queue workers."""

from __future__ import annotations

from pathlib import Path

from visionlab.doctor.check import OK, WARN, Check
from visionlab.errors import VisionlabError


def _check_dvc_locks(root: Path) -> Check:
    from visionlab.dvc_locks import holders

    name = "DVC locks"
    try:
        found = holders(root)
    except VisionlabError as exc:
        return Check(name, WARN, str(exc), "remove .dvc/tmp/rwlock once no dvc command runs")
    stale = [h for h in found if not h.alive]
    if stale:
        return Check(
            name,
            WARN,
            f"{len(stale)} left by a killed dvc (PID {stale[0].pid}, on {stale[0].path}): reruns stop",
            "uv run visionlab unlock",
        )
    running = ", ".join(str(pid) for pid in sorted({h.pid for h in found}))
    return Check(name, OK, f"held by running dvc PID {running}" if running else "none")


def _check_queue_workers(root: Path) -> Check:
    from visionlab.dvc_queue import workers

    name = "DVC queue workers"
    found = workers(root)
    idle = [w for w in found if not w.busy]
    if idle:
        pids = " ".join(str(w.pid) for w in idle)
        return Check(
            name,
            WARN,
            f"{len(idle)} idling with nothing queued (PID {pids}), left after the queue shut down",
            "uv run dvc queue stop (or: kill " + pids + ")",
        )
    if found:
        return Check(name, OK, "running queued experiments: PID " + " ".join(str(w.pid) for w in found))
    return Check(name, OK, "none")
