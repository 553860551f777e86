"""What `visionlab predict` says beside a heavily compressed photo: its JPEG quality and, where
evaluate scored the model's validation split at a JPEG quality (``evaluate.robustness``), the
accuracy measured there against clean, so a user knows how far to trust the answer."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HEAVY = 50  # at or below this quality a photo is noted (web tools' "low"; the copies scored: 30)
_JPEG_KEY = re.compile(r"val_jpeg_(\d+)")


@dataclass(frozen=True)
class CompressionScores:
    """A model's validation accuracy clean and at each JPEG quality evaluate scored."""

    clean: float | None
    at: dict[int, float] = field(default_factory=dict)
    stale: bool = False  # evaluate last scored another model than the one predict runs

    @classmethod
    def from_metrics(cls, metrics: dict) -> CompressionScores:
        """From evaluate's ``metrics.json`` (``val`` and ``val_jpeg_<quality>`` entries)."""

        def accuracy(entry: object) -> float | None:
            value = entry.get("accuracy") if isinstance(entry, dict) else None
            return float(value) if isinstance(value, int | float) else None

        at = {}
        for key, entry in metrics.items():
            found = _JPEG_KEY.fullmatch(key)
            if found and accuracy(entry) is not None:
                at[int(found.group(1))] = accuracy(entry)
        return cls(accuracy(metrics.get("val")), at)

    @classmethod
    def read(cls, path: Path) -> CompressionScores | None:
        """From a metrics.json file; None where there is none (a model not evaluated yet)."""
        try:
            return cls.from_metrics(json.loads(path.read_text()))
        except (OSError, ValueError, AttributeError):
            return None


def evaluated_current_model(root: Path, model_dir: Path) -> bool | None:
    """Whether dvc.lock says the evaluate stage last read the model folder the train stage last
    wrote (``train@x`` outs against ``evaluate@x`` deps for ``model_dir``): False after a train
    alone, when metrics.json still holds the earlier model's figures. None: no record either way."""
    try:
        stages = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    experiment = model_dir.name

    def recorded(stage: str, kind: str) -> str | None:
        entries = (stages.get(f"{stage}@{experiment}") or {}).get(kind) or []
        return next((e.get("md5") for e in entries if Path(e.get("path", "")) == model_dir), None)

    written, read = recorded("train", "outs"), recorded("evaluate", "deps")
    return None if written is None or read is None else written == read


def compression_note(quality: int | None, scores: CompressionScores | None) -> str | None:
    """The note for a photo of JPEG ``quality``: None above :data:`HEAVY` (or not a JPEG); else the
    quality with the model's validation accuracy at the scored quality nearest it, or that none was."""
    if quality is None or quality > HEAVY:
        return None
    said = f"JPEG quality {quality}"
    if scores is not None and scores.stale:
        return f"{said}: evaluate has not scored this model since it was trained (rerun its evaluate stage)"
    if scores is None or not scores.at:
        return f"{said}: this model was not scored on compressed photos (evaluate.robustness: jpeg_30)"
    nearest = min(scores.at, key=lambda scored: (abs(scored - quality), scored))
    clean = "" if scores.clean is None else f", {100 * scores.clean:.2f}% clean"
    return f"{said}: validation {100 * scores.at[nearest]:.2f}% at JPEG {nearest}{clean}"
