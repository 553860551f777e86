"""Where the project lives and where each stage writes.

DVC runs queued and ``--temp`` experiments in a copy of the repository under
``<project>/.dvc/tmp/exps/``; anything that must be shared between runs (the MLflow store, the
download cache, a relative mirror folder) is resolved against the *original* project root.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_EXPS_MARKER = (".dvc", "tmp", "exps")


def workspace_root(start: Path | None = None) -> Path:
    """The folder holding dvc.yaml that the current stage runs in (possibly a temporary copy)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file() or (folder / ".dvc").is_dir():
            return folder
    return here


def project_root(start: Path | None = None) -> Path:
    """The user's real project folder, even when DVC runs a stage in a temporary copy."""
    override = os.environ.get("VISIONLAB_PROJECT_ROOT")
    if override:
        return Path(override).resolve()
    root = workspace_root(start)
    parts = root.parts
    for i in range(len(parts) - len(_EXPS_MARKER)):
        if parts[i : i + len(_EXPS_MARKER)] == _EXPS_MARKER:
            return Path(*parts[:i])
    return root


def downloads_dir() -> Path:
    """Cache of verified archives and partial downloads, shared by all experiments."""
    return project_root() / "data" / ".downloads"


def resume_dir(experiment: str, key: str) -> Path:
    """Epoch checkpoints of an unfinished training run: outside DVC's outputs, which DVC deletes
    before it reruns a stage, and keyed by params and data so only the same run resumes."""
    return project_root() / "data" / ".resume" / f"{experiment}-{key[:16]}"


def resume_dirs(experiment: str) -> list[Path]:
    """Every resume folder of ``experiment``, whatever params wrote it (not those of ``<experiment>-x``)."""
    root = project_root() / "data" / ".resume"
    if not root.is_dir():
        return []
    named = re.compile(re.escape(experiment) + r"-[0-9a-f]{16}")
    return sorted(p for p in root.iterdir() if p.is_dir() and named.fullmatch(p.name))


def raw_dir(dataset: str) -> Path:
    return Path("data") / "raw" / dataset


def raw_record(dataset: str) -> Path:
    """Which archive, from where, with which checksum, the raw folder was extracted from."""
    return Path("data") / "raw" / f"{dataset}.json"


def prepared_dir(dataset: str) -> Path:
    return Path("data") / "prepared" / dataset


def augmented_dir(dataset: str) -> Path:
    return Path("data") / "augmented" / dataset


def features_dir(experiment: str) -> Path:
    return Path("data") / "features" / experiment


def model_dir(experiment: str) -> Path:
    return Path("data") / "models" / experiment


def eval_dir(experiment: str) -> Path:
    return Path("data") / "eval" / experiment


def explain_dir(experiment: str) -> Path:
    return Path("data") / "explain" / experiment


def results_dir(experiment: str) -> Path:
    """Small, git-tracked metrics and plot data that `dvc exp show` and `dvc plots` read."""
    return Path("results") / experiment


def training_timing_file(experiment: str) -> Path:
    """The train stage's wall-clock figures: kept out of model.pt so that stays reproducible."""
    return results_dir(experiment) / "training.json"


def featurize_timing_file(experiment: str) -> Path:
    """The featurize stage's seconds: kept out of its cache folder, so the same features hash the same
    and a rerun that rebuilds them unchanged does not make train rerun."""
    return results_dir(experiment) / "featurize.json"


def resolved_dir() -> Path:
    """The resolve stage's records: what each later stage's result depends on, resolved once."""
    return Path("data") / "resolved"


def resolved_source(dataset: str) -> Path:
    """Which bytes the download stage extracts: the archive's pin (card or mirror), its root."""
    return resolved_dir() / "sources" / f"{dataset}.json"


def resolved_features(experiment: str) -> Path:
    """What the featurize stage computes with: the base's settings, input size and precision."""
    return resolved_dir() / "features" / f"{experiment}.json"


def resolved_train(experiment: str) -> Path:
    """The params train@<experiment> depends on, by params.yaml key: its explanation keys left out."""
    return resolved_dir() / "train" / f"{experiment}.json"


def resolved_explain(experiment: str) -> Path:
    """The params explain@<experiment> depends on: ``explain`` and the experiment's own overrides."""
    return resolved_dir() / "explain" / f"{experiment}.json"


def folders_dir() -> Path:
    """The survey stage's records of the folder sources: a committed folder (README.md), so the
    resolve stage can depend on it before any folder is added."""
    return Path("data") / "folders"


def folder_record(dataset: str) -> Path:
    """A folder source's content: every file's path, size and sha256 (the survey stage)."""
    return folders_dir() / f"{dataset}.json"


# What a copy of the project needs to run the pipeline (benchmarks and tests make such copies):
# data/folders/README.md because the resolve stage depends on data/folders.
PROJECT_FILES = (
    "dvc.yaml",
    "params.yaml",
    ".dvcignore",
    ".gitignore",
    "pyproject.toml",
    "data/folders/README.md",
)
PROJECT_DIRS = ("stages", "src", "config", ".dvc")


def copy_project(source: Path, target: Path) -> Path:
    """A fresh copy of the project at ``source`` in ``target`` (which must not exist yet): its
    PROJECT_FILES and PROJECT_DIRS, without bytecode or DVC's tmp and cache folders. A file
    ``source`` lacks is left out: an older revision (benchmarks/bit_identity.py) predates it."""
    import shutil

    target.mkdir(parents=True)
    for name in PROJECT_FILES:
        if not (source / name).is_file():
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target / name)
    for name in PROJECT_DIRS:
        shutil.copytree(
            source / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "tmp", "cache")
        )
    return target
