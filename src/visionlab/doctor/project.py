"""The project's checks: the DVC repository, params.yaml, folder sources and pretrained weights."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from visionlab.doctor.check import FAIL, OK, WARN, Check
from visionlab.errors import VisionlabError
from visionlab.params import architectures

if TYPE_CHECKING:
    from visionlab.params import Params


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
