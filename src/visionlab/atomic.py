"""Write outputs so that a failure never leaves a half-written file or folder behind."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def current_umask() -> int:
    """The process umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish_mode(path: Path, base: int) -> None:
    """Give a scratch file/folder the mode a plain open()/mkdir() would have.

    mkstemp and mkdtemp create 0600/0700 whatever the umask; renamed into place that would
    leave reports and galleries unreadable to the rest of a team sharing the project.
    """
    os.chmod(path, base & ~current_umask())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _remove_dead_scratch(final: Path) -> None:
    """Delete scratch folders of ``final`` left by killed processes (SIGKILL runs no cleanup).

    Each scratch name carries its writer's pid, so a live writer's folder is never touched.
    """
    for stale in final.parent.glob(f".tmp-{glob.escape(final.name)}-*-*"):
        pid = stale.name[len(f".tmp-{final.name}-") :].split("-", 1)[0]
        if pid.isdigit() and stale.is_dir() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a scratch folder beside ``final``; it replaces ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_scratch(final)
    scratch = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-{os.getpid()}-", dir=final.parent))
    try:
        yield scratch
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    _publish_mode(scratch, 0o777)
    _swap_into_place(scratch, final)


def _swap_into_place(scratch: Path, final: Path) -> None:
    """Rename ``scratch`` to ``final``, moving any existing ``final`` aside first.

    Two writers may publish the same folder at once (queued experiments sharing a data set):
    whichever renames last wins, and neither fails because the other got there in between.
    """
    old = Path(tempfile.mkdtemp(prefix=f".old-{final.name}-", dir=final.parent))
    try:
        while True:
            try:
                scratch.rename(final)  # replaces ``final`` only if it is missing or empty
                return
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            # another writer published in between: move its folder aside and try again
            with contextlib.suppress(FileNotFoundError):
                final.rename(old / f"{final.name}-{len(list(old.iterdir()))}")
    finally:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        _publish_mode(Path(tmp), 0o666)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
