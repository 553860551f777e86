"""`visionlab data add NAME PATH`: a surveyed folder of photos as a data-set card and experiments.

The card reads the folder in place (``source.folder``, and ``folders.<name>`` for DVC); each
``--like EXPERIMENT`` copies a shipped experiment (its model, recipe, images and overrides) onto
the new data. Every refusal says what to change; nothing is written until the new params.yaml
validates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from visionlab.data.folder_survey import Survey
from visionlab.errors import ParamsError, VisionlabError
from visionlab.params import normalise_folder, parse_params, unknown_name
from visionlab.params.common import Name
from visionlab.params.yaml_edit import add_entries

_NAME = TypeAdapter(Name)


@dataclass
class Addition:
    name: str
    folder: str
    card: dict[str, Any]
    classes: list[str]
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)


def _is_name(text: str) -> bool:
    try:
        _NAME.validate_python(text)
    except ValidationError:
        return False
    return True


def _check_name(name: str, raw: dict[str, Any]) -> None:
    if not _is_name(name):
        raise VisionlabError(
            f"{name!r} cannot name a data set: use letters, digits, - and _ (it becomes a DVC stage name)"
        ) from None
    if name in (raw.get("datasets") or {}):
        raise VisionlabError(f"datasets.{name} exists already in params.yaml: choose another name")


def _classes(survey: Survey) -> list[str]:
    counts = survey.counts()
    empty = [c for c in survey.classes if c not in counts]
    if empty:
        kind = "label" if survey.labels else "class folder"
        raise VisionlabError(
            f"{survey.root}: {kind}{'s' * (len(empty) > 1)} {', '.join(empty)} "
            "hold no usable image: add images or remove " + ("its rows" if survey.labels else "the folder")
        )
    if len(counts) < 2:
        found = f"one class ({next(iter(counts))})" if counts else "no class"
        raise VisionlabError(
            f"{survey.root}: {found} found: a classifier needs two or more class folders, "
            f"{survey.root}/<class>/<image>"
        )
    return list(counts)


def _experiment_name(name: str, like: str) -> str:
    """``flowers-best`` on ``mine`` is ``mine-best``: the part after the first dash (or all of it)."""
    return f"{name}-{like.split('-', 1)[-1]}"


def plan_addition(raw: dict[str, Any], name: str, survey: Survey, likes: list[str]) -> Addition:
    """The card and experiments ``data add`` writes, or the refusal that says why not."""
    _check_name(name, raw)
    classes = _classes(survey)
    folder = normalise_folder(str(survey.root.resolve()))
    card: dict[str, Any] = {"source": {"folder": folder}}
    if all(_is_name(c) for c in classes):  # else every class, as the folder names them (classes: null)
        card["classes"] = classes
    if survey.labels:
        card["labels"] = survey.labels
    size = survey.suggested_size()
    if size is not None:
        card["image_size"] = size
    addition = Addition(name, folder, card, classes)
    shipped = raw.get("experiments") or {}
    for like in likes:
        if like not in shipped:
            raise VisionlabError(f"--like {like}: no such experiment{unknown_name(like, shipped)}")
        entry = dict(shipped[like])
        new = _experiment_name(name, like)
        if new in shipped:
            raise VisionlabError(
                f"--like {like}: experiments.{new} exists already; choose another data-set name"
            )
        if new in addition.experiments:
            raise VisionlabError(
                f"--like {like} would make experiments.{new} as an earlier --like does: "
                "add one of them, then the other under another data-set name"
            )
        entry["dataset"] = name
        addition.experiments[new] = entry
    return addition


def apply_addition(text: str, addition: Addition) -> str:
    """params.yaml's text with the card, its folder and the experiments added, validated."""
    why = "added by `visionlab data add`"
    text = add_entries(text, "datasets", {addition.name: addition.card}, why)
    text = add_entries(text, "folders", {addition.name: addition.folder})
    if addition.experiments:
        text = add_entries(text, "experiments", addition.experiments, f"{why} ({addition.name})")
    try:
        parse_params(yaml.safe_load(text))
    except ParamsError as exc:
        raise VisionlabError(
            f"the new params.yaml would not validate, so nothing was written:\n{exc}"
        ) from None
    return text


def describe(addition: Addition, params_file: Path) -> str:
    lines = [
        f"{params_file}: datasets.{addition.name} ({len(addition.classes)} classes, read in place "
        f"from {addition.folder}) and folders.{addition.name}"
    ]
    for exp, entry in addition.experiments.items():
        lines.append(f"  experiments.{exp}: model {entry.get('model')}, recipe {entry.get('recipe')}")
    if addition.experiments:
        first = next(iter(addition.experiments))
        lines.append(
            f"next: uv run dvc exp run explain@{first}   (a quick try first: add -S train.epochs_cap=2)"
        )
    else:
        lines.append(
            f"next: add --like EXPERIMENT to train on it, or run uv run dvc repro prepare@{addition.name}"
        )
    return "\n".join(lines)
