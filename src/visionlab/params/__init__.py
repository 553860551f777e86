"""The schema of params.yaml: every knob of the pipeline, validated when a stage starts.

A bad value stops the stage before any work, with a message naming the key, e.g.
``params.yaml: train.lr: must be greater than 0 (got -0.1)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, model_validator

from visionlab.errors import ParamsError
from visionlab.params import architectures, trace
from visionlab.params.common import Name, Section
from visionlab.params.data import (
    AugmentParams,
    DatasetCard,
    DownloadParams,
    NearDuplicateParams,
    PrepareParams,
    Source,
    SplitFractions,
    TransformParams,
    normalise_folder,
)
from visionlab.params.merge import merged
from visionlab.params.messages import describe, unknown_name
from visionlab.params.outputs import DEGRADATION, EvaluateParams, ExplainParams, ReportParams
from visionlab.params.references import check_folders, check_references
from visionlab.params.training import (
    ADDED_OFF,
    FEATURE_KEYS,
    RUNTIME_KEYS,
    RUNTIME_PARAMS,
    ExperimentParams,
    HeadParams,
    ModelParams,
    TrainParams,
    without_added_off,
)

__all__ = [
    "ADDED_OFF",
    "DEGRADATION",
    "FEATURE_KEYS",
    "RUNTIME_KEYS",
    "RUNTIME_PARAMS",
    "AugmentParams",
    "DatasetCard",
    "DownloadParams",
    "EvaluateParams",
    "ExperimentParams",
    "ExplainParams",
    "HeadParams",
    "ModelParams",
    "NearDuplicateParams",
    "Params",
    "PrepareParams",
    "ReportParams",
    "Source",
    "SplitFractions",
    "TrainParams",
    "TransformParams",
    "load_params",
    "normalise_folder",
    "parse_params",
    "unknown_name",
    "without_added_off",
]


class Params(Section):
    datasets: dict[Name, DatasetCard]
    # The folder sources again, by data set: dvc.yaml's survey stage iterates over this map, so
    # DVC hashes each folder's content (its templating cannot pick the folder cards out of datasets).
    folders: dict[Name, str] = {}
    download: DownloadParams = DownloadParams()
    prepare: PrepareParams = PrepareParams()
    augment: AugmentParams = AugmentParams()
    train: TrainParams = TrainParams()
    recipes: dict[Name, dict[str, Any]] = {}  # named partial overrides of train
    models: dict[Name, ModelParams]
    experiments: dict[Name, ExperimentParams]
    evaluate: EvaluateParams = EvaluateParams()
    explain: ExplainParams = ExplainParams()
    report: ReportParams = ReportParams()

    @model_validator(mode="after")
    def _cross_references(self) -> Params:
        check_folders(self)
        check_references(self)
        return self

    def dataset(self, name: str) -> DatasetCard:
        if name not in self.datasets:
            raise ParamsError(
                f"params.yaml: datasets.{name}: no such data set{unknown_name(name, self.datasets)}"
            )
        return self.datasets[name]

    def experiment(self, name: str) -> ExperimentParams:
        if name not in self.experiments:
            raise ParamsError(
                f"params.yaml: experiments.{name}: no such experiment{unknown_name(name, self.experiments)}"
            )
        return self.experiments[name]

    def dataset_of(self, experiment: str) -> DatasetCard:
        trace.read(f"experiments.{experiment}.dataset")
        with trace.quiet():
            return self.dataset(self.experiment(experiment).dataset)

    def model_of(self, experiment: str) -> ModelParams:
        """The experiment's model with its ``model_overrides`` and ``train_images`` applied."""
        with trace.quiet():
            exp = self.experiment(experiment)
            overrides = dict(exp.model_overrides)
            if exp.train_images is not None and isinstance(exp.model_overrides, dict):
                overrides["augmented"] = exp.train_images == "augmented"
            model = merged(
                ModelParams,
                self.models[exp.model].model_dump(),
                overrides,
                f"experiments.{experiment}.model_overrides",
            )
            base = f"models.{exp.model}"
        where = f"experiments.{experiment}"
        trace.annotate_merged(model, [base], [f"{where}.model_overrides"], (f"{where}.model",))
        trace.add_sources(model, "augmented", (f"{where}.train_images",))
        return model

    def recipe_of(self, experiment: str) -> TrainParams:
        """``train``, then the experiment's recipe, then its ``train_overrides``; ``epochs_cap`` last."""
        with trace.quiet():
            exp = self.experiment(experiment)
            base = merged(
                TrainParams,
                self.train.model_dump(),
                self.recipes.get(exp.recipe) or {},
                f"recipes.{exp.recipe}",
            )
            recipe = merged(
                TrainParams,
                base.model_dump(),
                exp.train_overrides,
                f"experiments.{experiment}.train_overrides",
            )
            cap = recipe.epochs_cap
            if cap is not None:
                recipe = recipe.model_copy(
                    update={
                        "epochs": min(recipe.epochs, cap),
                        "head_epochs": min(recipe.head_epochs, cap // 2),
                    }
                )
            where = f"experiments.{experiment}"
            layers = [f"recipes.{exp.recipe}", f"{where}.train_overrides"]
        # Recipes and overrides cannot set FEATURE_KEYS (validated above): those come from train alone.
        trace.annotate_merged(recipe, ["train"], layers, (f"{where}.recipe",), FEATURE_KEYS)
        for field in ("epochs", "head_epochs"):  # capped by epochs_cap wherever that was set
            trace.add_sources(recipe, field, ("train.epochs_cap",))
        return recipe

    def explain_of(self, experiment: str) -> ExplainParams:
        """``explain`` with the experiment's ``explain_overrides`` (a layer name fits one model only)."""
        with trace.quiet():
            exp = self.experiment(experiment)
            explain = merged(
                ExplainParams,
                self.explain.model_dump(),
                exp.explain_overrides,
                f"experiments.{experiment}.explain_overrides",
            )
        trace.annotate_merged(explain, ["explain"], [f"experiments.{experiment}.explain_overrides"])
        return explain

    def grayscale_of(self, experiment: str) -> bool:
        """Grey input: the model's (or its experiment's model_overrides') choice, else the data set's."""
        chosen = self.model_of(experiment).grayscale
        return self.dataset_of(experiment).grayscale if chosen is None else chosen

    def image_size_of(self, experiment: str) -> int:
        """Input side: the model's own, else its arch's native one, else the data set's, else the recipe's."""
        model = self.model_of(experiment)
        return (
            model.image_size
            or architectures.architecture(model.arch).native_size
            or self.dataset_of(experiment).image_size
            or self.recipe_of(experiment).image_size
        )


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate an already-parsed params mapping; raise ParamsError naming every bad key."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        with trace.quiet():  # validation reads every key: not the stage's reads
            params = Params.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{source}: {describe(err, Params)}" for err in exc.errors()]
        raise ParamsError("\n".join(lines)) from None
    trace.annotate(params, "")  # when tracing: every section learns its params.yaml path
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found (run stages from the project root)") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    return parse_params(raw, str(path))
