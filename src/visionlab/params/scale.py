"""Is a run full scale, or a quick try? A quick try (a sample of the images, shrunk inputs) says
nothing about how good a model is, so it is tagged as such and never becomes a data set's ``@best``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from visionlab.params import architectures
from visionlab.params.data import AugmentParams
from visionlab.params.training import TrainParams

if TYPE_CHECKING:
    from visionlab.params import Params

# The schema's defaults, not a params.yaml value (a read the params tracer would flag).
DEFAULT_IMAGE_SIZE = TrainParams.model_fields["image_size"].default
DEFAULT_COPY_SIZE = AugmentParams.model_fields["image_size"].default


def quick_try_reasons(params: Params, experiment: str) -> list[str]:
    """Why ``experiment``, as these params run it, is not a full-scale run; [] when it is."""
    exp = params.experiment(experiment)
    card = params.dataset(exp.dataset)
    model = params.model_of(experiment)
    side = params.image_size_of(experiment)
    reasons = []
    if params.prepare.max_per_class is not None and card.max_per_class is None:
        reasons.append(f"prepare.max_per_class is {params.prepare.max_per_class}: a sample of {exp.dataset}")
    cap = params.recipe_of(experiment).epochs_cap
    if cap is not None:
        reasons.append(f"train.epochs_cap is {cap}: its recipe's epochs cut short")
    own_side = model.image_size or architectures.architecture(model.arch).native_size or card.image_size
    if own_side is None and side < DEFAULT_IMAGE_SIZE:
        reasons.append(
            f"train.image_size is {side} px, below the default {DEFAULT_IMAGE_SIZE} (a size chosen for "
            f"this experiment goes in experiments.{experiment}.model_overrides.image_size)"
        )
    if card.image_size is not None and side < card.image_size:
        reasons.append(
            f"the input side {side} px is below datasets.{exp.dataset}.image_size ({card.image_size})"
        )
    if model.augmented and params.augment.image_size < min(side, DEFAULT_COPY_SIZE):
        reasons.append(
            f"augment.image_size is {params.augment.image_size} px: copies smaller than the {side} px input"
        )
    return reasons


def quick_try(params: Params, experiment: str) -> str | None:
    """The reasons as one line (None for a full-scale run): an MLflow tag, a registry note."""
    return "; ".join(quick_try_reasons(params, experiment)) or None
