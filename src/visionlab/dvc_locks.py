"""Stale entries of DVC's output lock (``.dvc/tmp/rwlock``) found and removed, live ones never.

Every `dvc repro` records, per output it reads or writes, its PID and command in
``.dvc/tmp/rwlock`` and removes them when it ends. A `dvc repro` killed with SIGKILL (an OOM kill,
a closed laptop) leaves them behind. DVC drops an entry itself when its PID no longer exists, but
not when the PID still answers: a zombie nobody reaped, or the number reused by another process.
Then every rerun stops with "'data/prepared/flowers' is busy" until someone edits DVC's file.

A holder counts as alive only when its PID runs (not a zombie) a command that is a DVC process;
its entry is then left alone. The file is DVC's: it is edited under DVC's own guard
(``rwlock.lock``), and one whose shape is not the one DVC writes is never rewritten.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visionlab.atomic import atomic_write_text
from visionlab.errors import VisionlabError

if TYPE_CHECKING:
    import psutil

RWLOCK = Path(".dvc") / "tmp" / "rwlock"


@dataclass(frozen=True)
class Holder:
    mode: str  # "read" or "write"
    path: str  # the output DVC locked
    pid: int
    cmd: str
    alive: bool


def live_command(pid: int) -> tuple[psutil.Process, list[str]] | None:
    """``(process, its command line)`` of a live, not zombie, process ``pid``; None otherwise."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process, process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _runs_dvc(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process whose command line is a DVC command."""
    found = live_command(pid)
    if found is None:
        return False
    # `dvc repro`, `python -m dvc ...`, a queue worker: any word naming dvc.
    return any(os.path.basename(word) in ("dvc", "dvc.exe") or word.startswith("dvc") for word in found[1])


def _load(path: Path) -> dict[str, Any]:
    try:
        lock = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise VisionlabError(f"{path}: not JSON ({exc}); left as it is") from None
    if not _dvc_shaped(lock):
        raise VisionlabError(f"{path}: not in the shape DVC writes; left as it is")
    return lock


def _dvc_shaped(lock: Any) -> bool:
    """``{"read": {out: [info, ...]}, "write": {out: info}}``, info ``{"pid": int, "cmd": str}``."""
    if not isinstance(lock, dict) or not set(lock) <= {"read", "write"}:
        return False
    read, write = lock.get("read", {}), lock.get("write", {})
    if not isinstance(read, dict) or not isinstance(write, dict):
        return False
    readers_ok = all(isinstance(v, list) and all(_is_info(i) for i in v) for v in read.values())
    return readers_ok and all(_is_info(v) for v in write.values())


def _is_info(info: Any) -> bool:
    return isinstance(info, dict) and isinstance(info.get("pid"), int) and isinstance(info.get("cmd"), str)


def _holders(lock: dict[str, Any]) -> list[Holder]:
    alive: dict[int, bool] = {}  # one look per process, however many outputs it locked

    def holder(mode: str, out: str, info: dict[str, Any]) -> Holder:
        pid = info["pid"]
        if pid not in alive:
            alive[pid] = _runs_dvc(pid)
        return Holder(mode, out, pid, info["cmd"], alive[pid])

    found = [holder("read", out, info) for out, infos in lock.get("read", {}).items() for info in infos]
    return found + [holder("write", out, info) for out, info in lock.get("write", {}).items()]


def holders(root: Path) -> list[Holder]:
    """Every entry of the project's DVC lock file, with whether its process still runs."""
    path = root / RWLOCK
    return _holders(_load(path)) if path.is_file() else []


def clear_stale(root: Path) -> tuple[list[Holder], list[Holder]]:
    """Remove the entries of processes that no longer run DVC: (removed, kept)."""
    from dvc.lock import make_lock

    path = root / RWLOCK
    if not path.is_file():
        return [], []
    # DVC's own guard of its file: a DVC starting meanwhile waits for this edit, or we for it.
    with make_lock(str(path.with_name("rwlock.lock")), tmp_dir=str(path.parent)):
        lock = _load(path)
        found = _holders(lock)
        live = {h.pid for h in found if h.alive}
        if len(live) < len({h.pid for h in found}):
            read = {
                out: [i for i in infos if i["pid"] in live] for out, infos in lock.get("read", {}).items()
            }
            write = {out: i for out, i in lock.get("write", {}).items() if i["pid"] in live}
            kept = {"read": {out: infos for out, infos in read.items() if infos}, "write": write}
            atomic_write_text(path, json.dumps({mode: outs for mode, outs in kept.items() if outs}))
    return [h for h in found if not h.alive], [h for h in found if h.alive]
