"""Outputs written through scratch files and folders get the modes the umask asks for."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from visionlab.atomic import atomic_dir, atomic_write_text


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_text_honours_the_umask(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "reports" / "index.html"
    atomic_write_text(target, "<html></html>")
    assert target.read_text() == "<html></html>"
    assert _mode(target) == 0o666 & ~umask
    # Replacing an existing file gives the same mode, not the scratch file's 0600.
    atomic_write_text(target, "again")
    assert _mode(target) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["index.html"]


def test_atomic_dir_honours_the_umask(tmp_path: Path, umask: int) -> None:
    final = tmp_path / "explain" / "flowers-cnn"
    for _ in range(2):  # a fresh folder, then one that replaces the previous
        with atomic_dir(final) as scratch:
            (scratch / "index.html").write_text("gallery")
            (scratch / "images").mkdir()
        assert _mode(final) == 0o777 & ~umask
        assert _mode(final / "images") == 0o777 & ~umask
        assert _mode(final / "index.html") == 0o666 & ~umask
    assert [p.name for p in final.parent.iterdir()] == ["flowers-cnn"]
    if umask == 0o022:
        assert _mode(final) == 0o755 and _mode(final / "index.html") == 0o644


def test_writers_publishing_the_same_folder_at_once_both_succeed(tmp_path):
    """Queued runs extract the same data set together: the last rename wins, none fails."""
    import threading

    final = tmp_path / "raw" / "toy"
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            with atomic_dir(final) as scratch:
                (scratch / "a").mkdir()
                (scratch / "a" / "1.txt").write_text(str(i))
                barrier.wait()  # every writer has its scratch ready: the renames race
        except BaseException as exc:
            errors.append(exc)

    for _ in range(20):
        threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert sorted(p.name for p in final.iterdir()) == ["a"]
        assert (final / "a" / "1.txt").read_text() in {"0", "1", "2", "3"}
    assert sorted(p.name for p in final.parent.iterdir()) == ["toy"]  # no scratch or old folder left
