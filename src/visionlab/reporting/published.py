"""The studies' published figures (config/published_results.yaml), keyed by data set and arch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from visionlab.errors import VisionlabError


@dataclass(frozen=True)
class PublishedFigure:
    dataset: str
    arch: str
    model: str  # the study's own name for the model
    test_accuracy: float
    study: str = ""


def load_published(path: Path) -> dict[str, dict[str, PublishedFigure]]:
    """``{dataset: {arch: figure}}``; a missing file means no published figures, not an error."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise VisionlabError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise VisionlabError(f"{path}: expected a mapping of data sets")
    figures: dict[str, dict[str, PublishedFigure]] = {}
    for dataset, card in raw.items():
        results = (card or {}).get("results") if isinstance(card, dict) else None
        if not isinstance(results, dict):
            raise VisionlabError(f"{path}: {dataset}: expected a 'results' mapping of arch -> figure")
        for arch, entry in results.items():
            try:
                accuracy = float(entry["test_accuracy"])
            except (TypeError, KeyError, ValueError):
                raise VisionlabError(
                    f"{path}: {dataset}.results.{arch}: needs test_accuracy (a fraction, e.g. 0.9111)"
                ) from None
            if not 0 <= accuracy <= 1:
                raise VisionlabError(
                    f"{path}: {dataset}.results.{arch}.test_accuracy: a fraction in [0, 1] (got {accuracy})"
                )
            figures.setdefault(str(dataset), {})[str(arch)] = PublishedFigure(
                str(dataset), str(arch), str(entry.get("model", arch)), accuracy, str(card.get("study", ""))
            )
    return figures
