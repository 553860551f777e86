"""Which visionlab commit a benchmark measured, and its result files: the one definition every
result file uses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


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


def write_result(folder: Path, stem: str, data: dict[str, Any], markdown: str) -> None:
    """``folder/stem.json`` (``data``) and ``folder/stem.md`` (``markdown``), then the table printed."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n")
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    (folder / f"{stem}.md").write_text(text)
    print(text, end="")
