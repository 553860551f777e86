"""Curated exclusion lists: images a person decided to leave out (e.g. the flower is not the subject).

Format, one entry per line::

    # comment
    roses/12240303_80d87f77a3_n.jpg   # why it is excluded

Paths are relative to the data set's image root (the folder holding the class folders).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from visionlab.errors import VisionlabError


def load_exclusions(path: Path) -> dict[str, str]:
    """Map each excluded relative path to its comment ('' when none)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VisionlabError(f"exclusion list not found: {path}") from None
    entries: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        entry, _, comment = raw.partition("#")
        entry = entry.strip()
        if not entry:
            continue
        pure = PurePosixPath(entry)
        if pure.is_absolute() or ".." in pure.parts or len(pure.parts) < 2:
            raise VisionlabError(
                f"{path}:{number}: expected '<class folder>/<file>' relative to the data set "
                f"root, got {entry!r}"
            )
        entries[pure.as_posix()] = comment.strip()
    return entries
