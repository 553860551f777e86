"""Build models by name from their params, and save/load trained checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from visionlab.errors import MissingArtifactError
from visionlab.models.base import Classifier
from visionlab.params import ModelParams


def build_model(
    spec: ModelParams, num_classes: int, load_weights: bool = True, grayscale: bool = False
) -> Classifier:
    """The architecture ``spec.arch`` with a ``num_classes`` head.

    ``load_weights=False`` skips the pretrained weights (a checkpoint will overwrite them anyway).
    With ``grayscale``, models trained from scratch take one channel; pretrained ones keep three
    and are fed the grey channel three times.
    """
    pretrained = spec.weights == "imagenet" and load_weights
    if spec.arch == "handmade_cnn":
        from visionlab.models.handmade_cnn import HandmadeCNN

        channels = 1 if grayscale else 3
        model: Classifier = HandmadeCNN(num_classes, spec.dropout, spec.dense_dropout, channels)
    elif spec.arch == "efficientnet_lite0":
        from visionlab.models.efficientnet_lite import EfficientNetLite0

        model = EfficientNetLite0(num_classes, pretrained, spec.dropout)
    else:  # pragma: no cover - the params schema admits only the names above
        raise ValueError(f"unknown architecture {spec.arch!r}")
    if spec.base == "frozen":
        model.freeze_backbone()
    return model


def save_checkpoint(
    path: Path,
    model: Classifier,
    spec: ModelParams,
    classes: list[str],
    image_size: int,
    grayscale: bool = False,
    **extra: Any,
) -> None:
    torch.save(
        {
            "spec": spec.model_dump(),
            "classes": classes,
            "image_size": image_size,
            "grayscale": grayscale,
            "state_dict": model.state_dict(),
            **extra,
        },
        path,
    )


def load_checkpoint(path: Path) -> tuple[Classifier, dict[str, Any]]:
    """A trained model in eval mode, and the checkpoint's metadata."""
    path = Path(path)
    if not path.is_file():
        raise MissingArtifactError(f"{path}: no trained model; run the train stage first")
    try:
        # weights_only: a checkpoint pulled from a DVC remote must not be able to run code.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MissingArtifactError(f"{path}: unreadable checkpoint ({exc}); rerun the train stage") from None
    spec = ModelParams.model_validate(checkpoint["spec"])
    model = build_model(
        spec, len(checkpoint["classes"]), load_weights=False, grayscale=checkpoint.get("grayscale", False)
    )
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    return model, checkpoint
