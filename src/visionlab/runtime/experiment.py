"""One experiment resolved once: the bundle every model stage used to rebuild from loose arguments.

``params.yaml`` spreads an experiment over its data-set card, model, recipe, overrides and the
``train`` section; :meth:`ResolvedExperiment.from_params` reads them, and the prepared data's
split rows and classes, in one place. The train stage's inputs, outputs and checkpoint take this
object rather than the same half-dozen values passed one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from visionlab import paths
from visionlab.models import Classifier, build_model
from visionlab.params import ModelParams, Params, TrainParams
from visionlab.runtime.degrade import TrainDegradations
from visionlab.runtime.loaders import split_rows


@dataclass(frozen=True)
class ResolvedExperiment:
    name: str
    dataset: str
    spec: ModelParams  # the model with the experiment's overrides
    recipe: TrainParams  # train, the recipe and the experiment's overrides
    image_size: int  # the square input side
    grayscale: bool  # the data set's images are read grey
    classes: list[str]
    splits: dict[str, pd.DataFrame]  # train (augmented copies when the model asks), val, test rows

    @classmethod
    def from_params(cls, params: Params, name: str) -> ResolvedExperiment:
        splits, classes = split_rows(params, name)
        return cls(
            name=name,
            dataset=params.experiment(name).dataset,
            spec=params.model_of(name),
            recipe=params.recipe_of(name),
            image_size=params.image_size_of(name),
            grayscale=params.grayscale_of(name),
            classes=classes,
            splits=splits,
        )

    @property
    def train_degradations(self) -> TrainDegradations | None:
        """How the training images are degraded (``models.<m>.train_degradations``), or None."""
        section = self.spec.train_degradations
        return TrainDegradations.of(section.model_dump() if section is not None else None)

    def build_model(self) -> Classifier:
        """A new network for this experiment: its spec, its classes, grey input if the data is."""
        return build_model(self.spec, len(self.classes), grayscale=self.grayscale)

    @property
    def model_dir(self) -> Path:
        return paths.model_dir(self.name)

    @property
    def features_dir(self) -> Path:
        return paths.features_dir(self.name)
