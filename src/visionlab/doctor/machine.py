"""The machine's checks: uv, git, a GPU, free disk, and the browser the UI test drives."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from visionlab.doctor.check import FAIL, OK, WARN, Check


def _check_uv(root: Path) -> Check:
    found = shutil.which("uv")
    if found:
        return Check("uv", OK, found)
    return Check("uv", WARN, "not on PATH", "python3 -m pip install uv (the README's commands use uv)")


def _check_git(root: Path) -> Check:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return Check("git repository", FAIL, "git is not installed", "apt-get install git")
    if result.returncode != 0:
        return Check(
            "git repository",
            FAIL,
            f"{root} is not in a git work tree",
            "clone the project, or: git init && git add -A && git commit -m init",
        )
    return Check("git repository", OK, result.stdout.strip())


def _check_gpu(root: Path) -> Check:
    import torch

    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return Check("GPU", OK, f"CUDA: {names}")
    return Check(
        "GPU",
        WARN,
        f"no CUDA device: stages run on the CPU (torch {torch.__version__})",
        "fine for the tiny settings; for the full studies use a machine with an NVIDIA GPU",
    )


def _check_disk(root: Path) -> Check:
    free = shutil.disk_usage(root).free / 1e9
    if free < 2:
        return Check(
            "free disk",
            FAIL,
            f"{free:.1f} GB free under {root}",
            "free space: the archives, extracted images and the DVC cache need tens of GB",
        )
    if free < 20:
        return Check(
            "free disk",
            WARN,
            f"{free:.1f} GB free under {root}",
            "all five data sets with their augmented copies and DVC cache need about 20 GB",
        )
    return Check("free disk", OK, f"{free:.1f} GB free under {root}")


def _check_chromium(root: Path) -> Check:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if found:
        return Check("chromium (browser test)", OK, found)
    return Check(
        "chromium (browser test)",
        WARN,
        "not installed: tests/integration/test_browser.py skips here (fails under CI=true)",
        "apt-get install -y --no-install-recommends chromium (.ci/run does this)",
    )
