"""What a crashed or unlucky DVC run leaves behind: stale output locks and queue workers left behind."""

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


def _check_queue_workers(root: Path, now: float | None = None) -> Check:
    from visionlab.dvc_queue import SETTLE_SECONDS, workers

    name = "DVC queue workers"
    found = workers(root, now)
    behind = [w for w in found if w.left_behind]
    if behind:
        pids = " ".join(str(w.pid) for w in behind)
        return Check(
            name,
            WARN,
            f"{len(behind)} idle with nothing queued and silent over {SETTLE_SECONDS:.0f} s (PID {pids}): "
            "left behind by the queue's shutdown",
            f"uv run dvc queue stop (or: kill {pids})",
        )
    if not found:
        return Check(name, OK, "none")
    busy = " ".join(str(w.pid) for w in found if w.busy)
    finishing = " ".join(str(w.pid) for w in found if not w.busy)
    parts = [f"running queued experiments: PID {busy}"] if busy else []
    parts += [f"finishing (stops itself once the queue is empty): PID {finishing}"] if finishing else []
    return Check(name, OK, "; ".join(parts))
