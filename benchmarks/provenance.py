"""Which visionlab commit a benchmark measured: the one definition every result file uses."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def source_commit(repo: Path) -> str:
    """``repo``'s HEAD commit; ``-dirty`` when tracked files differ from it."""
    commit = _git(repo, "rev-parse", "HEAD") or "unknown"
    changed = _git(repo, "status", "--porcelain", "--untracked-files=no")
    return f"{commit}-dirty" if changed else commit


def revision_commit(repo: Path, ref: str) -> str:
    """The full commit ``ref`` names in ``repo`` (empty when it names none)."""
    return _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
