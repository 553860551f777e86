"""Build models by name from their params, and save/load trained checkpoints."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from visionlab.errors import MissingArtifactError, VisionlabError
from visionlab.models import builders
from visionlab.models.base import Classifier
from visionlab.params import HeadParams, ModelParams, architectures, trace
from visionlab.params.architectures import Architecture

# Input normalisation by name (spec.normalize), on pixels scaled to [0, 1].
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "unit": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # The VGG study's featurewise centering (Keras "caffe" means, RGB order): x * 255 - mean.
    "caffe": ((123.68 / 255, 116.779 / 255, 103.939 / 255), (1 / 255, 1 / 255, 1 / 255)),
}


def _builder(arch: Architecture) -> Callable[..., Classifier]:
    """The function an architecture entry names (in models/builders.py, or ``module:function``)."""
    module, _, function = arch.builder.rpartition(":")
    try:
        return getattr(importlib.import_module(module) if module else builders, function)
    except (ImportError, AttributeError) as exc:
        raise VisionlabError(
            f"architecture {arch.name}: cannot load its builder {arch.builder} ({exc})"
        ) from None


def native_head_error(arch: str) -> VisionlabError:
    keep = [a for a in architectures.names() if architectures.architecture(a).native_head]
    listed = ", ".join(keep[:-1]) + f" and {keep[-1]}" if len(keep) > 1 else "".join(keep)
    return VisionlabError(
        f"head.native: only {listed} keep their own ImageNet classifier to retrain; "
        f"{arch} gets a new head: set head.native: false"
    )


def build_model(
    spec: ModelParams, num_classes: int, load_weights: bool = True, grayscale: bool = False
) -> Classifier:
    """The architecture ``spec.arch`` with a ``num_classes`` head, its base set up per ``spec.base``.

    ``load_weights=False`` skips the pretrained weights (a checkpoint will overwrite them anyway).
    With ``grayscale``, models trained from scratch take one channel; pretrained ones keep three
    and are fed the grey channel three times. ``base: finetune`` builds the backbone frozen (phase
    one trains the head); phase two calls ``model.unfreeze_from(spec.unfreeze_from)``. Missing
    ImageNet weights raise a MissingArtifactError that says where to put the file.
    """
    arch = architectures.architecture(spec.arch)
    if not arch.pretrainable and spec.head != HeadParams():
        raise VisionlabError(
            f"{spec.arch} is trained from scratch with its own dense layers: the head: settings "
            "apply only to transfer-learning architectures; remove them (dense_dropout and l2 "
            "cover this net)"
        )
    if spec.head.native and not arch.native_head:
        raise native_head_error(spec.arch)
    pretrained = spec.weights == "imagenet" and load_weights
    channels = 1 if grayscale and not arch.pretrainable else 3
    # A slow custom initialisation is pointless when ImageNet weights (or a checkpoint) overwrite it.
    model = _builder(arch)(spec, num_classes, channels, pretrained, spec.weights == "none")
    model.arch = spec.arch
    mean, std = NORMALIZATION[spec.normalize] if spec.normalize != "auto" else (model.mean, model.std)
    if spec.normalize == "caffe" and spec.weights == "imagenet":
        # The study centred inputs on a 0-255 scale because Keras' VGG weights were trained so.
        # These weights were trained on inputs of about unit spread: 255x larger ones would wreck
        # the features. Centre on the study's means, keep the weights' own (average) scale.
        scale = sum(model.std) / len(model.std)
        std = (scale,) * len(std)
    model.mean, model.std = tuple(mean), tuple(std)
    if spec.base in ("frozen", "finetune"):
        model.freeze_backbone()
    if spec.base == "finetune" and spec.unfreeze_from:
        model.check_block_name(spec.unfreeze_from)  # a typo fails now, not after phase one
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


@dataclass(frozen=True)
class Checkpoint:
    """A trained model as the train stage saved it: the network, and what it was trained for.

    Evaluate, explain and predict read these fields, never the saved dict's keys.
    """

    model: Classifier  # in eval mode, on the CPU
    spec: ModelParams
    classes: list[str]
    image_size: int  # the square input side it was trained at
    grayscale: bool  # it was trained on grey images
    summary: dict[str, Any] = field(default_factory=dict)  # the train stage's summary.json


def load_checkpoint(path: Path) -> Checkpoint:
    """A trained model in eval mode, with what it was trained for."""
    path = Path(path)
    if not path.is_file():
        raise MissingArtifactError(f"{path}: no trained model; run the train stage first")
    try:
        # weights_only: a checkpoint pulled from a DVC remote must not be able to run code.
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MissingArtifactError(f"{path}: unreadable checkpoint ({exc}); rerun the train stage") from None
    spec = ModelParams.model_validate(saved["spec"])
    trace.not_params(spec)  # the trained model's own spec: a file dep, not params.yaml
    grayscale = bool(saved.get("grayscale", False))
    classes = list(saved["classes"])
    model = build_model(spec, len(classes), load_weights=False, grayscale=grayscale)
    try:
        model.load_state_dict(saved["state_dict"])
    except RuntimeError as exc:  # saved by an older layout of the zoo
        first = str(exc).strip().splitlines()[0]
        raise MissingArtifactError(
            f"{path}: does not fit the {spec.arch} model its spec builds ({first}); rerun the train stage"
        ) from None
    model.eval()
    summary = dict(saved.get("summary", {}))
    return Checkpoint(model, spec, classes, int(saved["image_size"]), grayscale, summary)
