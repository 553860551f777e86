"""`visionlab plan`: how long each experiment's featurize + train + evaluate would take here.

The estimate is the pipeline's own arithmetic over rates measured on this machine and now
(``plan_probe``): image counts x epochs / images per second, phase by phase, the way the stages run
them. A frozen base runs once, in featurize, and its head trains on the cached features (tiny steps,
but dozens of epochs of them); a fine-tuned base with an activation cache runs its frozen part once,
in featurize, and each fine-tuning epoch runs only the top blocks on the cache; a trainable net runs
whole every epoch. Featurize and evaluate read each file once (featurize also degrades the share of
training images a model's ``train_degradations`` names); a net trained on images reads them in
train, once, or every epoch where its degradations are redrawn or the decoded pixels would not fit
``train.preload_max_gb``. Evaluate runs the test split through the whole net (and, with a cache,
train and val through the top). Image counts come from the prepared manifest, else from the
published archive with the card's class list, per-class cap and exclusion list applied, and
CIFAR-10's official 10,000 test images kept (``plan_counts``). Epochs are the recipe's, capped by
``train.epochs_cap``. Where early stopping can end a run, a first run is counted at the middle of
the epochs it may stop at (:func:`stopping_span`: all of them is only the upper bound, and the
full-set runs stopped anywhere from the earliest epoch possible to the last). Where early stopping
ended the experiment's last run here, `plan` counts that run's epochs (:func:`last_stop`): a rerun
after a params edit tends to stop near there. Not counted: downloads (network-bound), prepare and augment
(minutes on every core), explain and the report.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionlab import paths
from visionlab.data.folder_source import folder_path
from visionlab.params import ModelParams, Params, architectures
from visionlab.params.resolved import feature_inputs, train_params
from visionlab.runtime.base_mode import base_mode
from visionlab.training.plan_counts import Counts

PLANNED = ("featurize", "train", "evaluate")  # an experiment's stages that plan estimates, in order


@dataclass(frozen=True)
class Rates:
    """Images per second measured here for one experiment's network, in the stages' precision."""

    forward: float  # the whole net, inference (evaluate's test split, trainable nets' validation)
    train: float  # a training step of what trains in the longest phase (whole net, cached top, or head)
    featurize: float | None = None  # what featurize runs per image: frozen base, or the part below the cut
    top: float | None = None  # the cached top, inference (validation while fine-tuning on the cache)
    decode: float = 0.0  # seconds per image to read a file into the network's input (the loader's item)
    degrade: float = 0.0  # more seconds per training image in featurize: its train_degradations


@dataclass(frozen=True)
class Estimate:
    experiment: str
    dataset: str
    featurize: float
    train: float
    evaluate: float

    @property
    def seconds(self) -> float:
        return self.featurize + self.train + self.evaluate

    def only(self, stages: tuple[str, ...]) -> Estimate:
        """This estimate with the seconds of the stages not in ``stages`` (up to date) at zero."""
        return dataclasses.replace(self, **{stage: 0.0 for stage in PLANNED if stage not in stages})


@dataclass(frozen=True)
class PipelineState:
    """What DVC says of a project: its stages (in dvc.yaml's order), those with a dvc.lock entry, and
    each stage `dvc status` names with what it says of it."""

    stages: tuple[str, ...]
    locked: frozenset[str]
    changed: Mapping[str, Any]


def _normalised(record: dict[str, Any]) -> Any:
    return json.loads(json.dumps(record, sort_keys=True))  # as the resolve stage writes it, read back


def stale_records(params: Params, root: Path) -> set[str]:
    """featurize and train stages whose resolve record would change: a params edit that `dvc status`
    shows only as the resolve stage's (their own deps, the records, are still the old ones)."""
    records: list[tuple[str, Callable[[str], Path], Callable[[Params, str], dict[str, Any]]]] = [
        ("featurize", paths.resolved_features, feature_inputs),
        ("train", paths.resolved_train, train_params),
    ]
    stale = set()
    for experiment in params.experiments:
        for stage, where, compute in records:
            try:
                written = json.loads((root / where(experiment)).read_text())
            except (OSError, ValueError):
                written = None
            if written != _normalised(compute(params, experiment)):
                stale.add(f"{stage}@{experiment}")
    return stale


def stages_to_run(
    params: Params, experiment: str, state: PipelineState | None, stale: set[str]
) -> tuple[str, ...]:
    """Of ``experiment``'s featurize, train and evaluate, those `dvc repro` would run, in order.

    ``state`` None (no dvc.lock yet): all of them. A stage runs when it has no lock entry, `dvc
    status` names it, its record is ``stale``, or a stage it needs runs: its data set's download and
    prepare, augment for a model on the augmented copies, and the earlier of the three.
    """
    if state is None:
        return PLANNED

    def runs(stage: str) -> bool:
        if stage not in state.stages:
            return False
        return stage not in state.locked or stage in state.changed or stage in stale

    dataset = params.experiment(experiment).dataset
    needed = ["download", "prepare"] + (["augment"] if params.model_of(experiment).augmented else [])
    upstream = any(runs(f"{stage}@{dataset}") for stage in needed)
    chosen: list[str] = []
    for stage in PLANNED:
        upstream = upstream or runs(f"{stage}@{experiment}")
        if upstream:
            chosen.append(stage)
    return tuple(chosen)


def featurized_images(params: Params, experiment: str, counts: Counts) -> tuple[int, int]:
    """The training images an epoch sees (offline augmented copies included) and, with validation,
    the images featurize reads."""
    n_train = counts.train * (params.augment.factor if params.model_of(experiment).augmented else 1)
    return n_train, n_train + counts.val


def estimate(
    params: Params, experiment: str, counts: Counts, rates: Rates, epochs: int | None = None
) -> Estimate:
    """Seconds of featurize + train + evaluate for one experiment (see the module docstring).

    ``epochs`` replaces the recipe's (a benchmark sets a finished run's, to see the rates' error alone).
    """
    spec = params.model_of(experiment)
    recipe = params.recipe_of(experiment)
    if epochs is not None:
        recipe = recipe.model_copy(update={"epochs": epochs})
    n_train, seen = featurized_images(params, experiment, counts)
    dataset = params.experiment(experiment).dataset
    mode = base_mode(spec)
    # Featurize and evaluate read each file they run once, featurize degrading a share of the
    # training images (train_degradations); a net trained on images reads them in train
    # (_reading_images).
    decoded = seen * rates.decode + n_train * rates.degrade
    if not mode.trains_base:  # the base runs once, in featurize; the head trains on its features
        featurize = seen / (rates.featurize or rates.forward) + decoded
        head = recipe.epochs * n_train / rates.train  # rates.train: the head's step on features
        evaluate = counts.test * (1 / rates.forward + rates.decode)
        return Estimate(experiment, dataset, featurize, head, evaluate)
    *before, last = mode.phases(recipe)
    head = sum(plan.epochs for plan in before)  # the head alone, the base only running forward
    tuned = last.epochs
    if rates.featurize is not None and rates.top is not None:  # fine-tuning on cached activations
        featurize = seen / rates.featurize + seen / rates.top + decoded  # the cut's activations, pooled
        train = tuned * (n_train / rates.train + counts.val / rates.top)
        evaluate = counts.test * (1 / rates.forward + rates.decode) + (counts.train + counts.val) / rates.top
        return Estimate(experiment, dataset, featurize, train, evaluate)
    train = head * seen / rates.forward  # phase one: the base only runs forward
    train += tuned * (n_train / rates.train + counts.val / rates.forward)
    fits = _preload_fits(params, experiment, n_train, counts.val)
    train += _reading_images(spec, n_train, counts.val, head + tuned, rates, fits)
    return Estimate(experiment, dataset, 0.0, train, counts.total * (1 / rates.forward + rates.decode))


def _redraws(spec: ModelParams) -> bool:
    return spec.train_degradations is not None and spec.train_degradations.redraw


def preload_bytes(params: Params, experiment: str, n_train: int, n_val: int) -> int:
    """The bytes train's preload would hold, as ``training/inputs`` counts them: uint8 pixels at the
    input side, one channel for grey data, a redrawn training set left out (decoded every epoch)."""
    side = params.image_size_of(experiment)
    per_image = (1 if params.grayscale_of(experiment) else 3) * side * side
    return (n_val + (0 if _redraws(params.model_of(experiment)) else n_train)) * per_image


def _preload_fits(params: Params, experiment: str, n_train: int, n_val: int) -> bool:
    """Whether train's preload fits ``train.preload_max_gb`` (else both splits are read every epoch)."""
    needed = preload_bytes(params, experiment, n_train, n_val)
    return needed <= params.recipe_of(experiment).preload_max_gb * 1e9


def _reading_images(
    spec: ModelParams, n_train: int, n_val: int, epochs: int, rates: Rates, fits: bool
) -> float:
    """Seconds the train stage of a net trained on images spends reading them.

    Where the preload ``fits``, it decodes both splits into memory once, degrading the training
    share (``training/inputs``). A set over ``train.preload_max_gb`` is decoded every epoch instead,
    both splits, the training share degraded again (CIFAR-10's whole-net rows at 128 px need about
    2.5 GB of the default 4). With ``train_degradations.redraw`` the training images are decoded and
    degraded again every epoch, in the loader's worker processes: counted in full, as on a 2-core
    CPU they take the training step's cores. A lower bound: handing each image from a worker to the
    loop costs more again (cifar-best-robust-redraw's epochs took 55-170 s more than its fixed-copy
    twin's, docs/results.md, where the probe's 0.4 ms per CIFAR-10 image and its re-encoding count
    about 20 s an epoch).
    """
    if not fits:
        return epochs * ((n_train + n_val) * rates.decode + n_train * rates.degrade)
    if _redraws(spec):
        return n_val * rates.decode + epochs * n_train * (rates.decode + rates.degrade)
    return (n_train + n_val) * rates.decode + n_train * rates.degrade


def last_stop(params: Params, experiment: str, root: Path) -> int | None:
    """The epoch at which early stopping ended the experiment's last run here, or None.

    None when its recipe cannot stop early, when it never ran (no model summary), or when its last run
    went the distance. The epoch is capped by today's recipe: a rerun after a params edit tends to
    stop where the last run did, and never past the epochs it is given.
    """
    recipe = params.recipe_of(experiment)
    if recipe.early_stopping_patience == 0:
        return None
    try:
        summary = json.loads((root / paths.model_dir(experiment) / "summary.json").read_text())
        stopped, epochs = bool(summary["stopped_early"]), int(summary["epochs_run"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return min(epochs, recipe.epochs) if stopped and epochs > 0 else None


@dataclass(frozen=True)
class Span:
    """The epochs a run may take when early stopping can end it: from ``earliest`` to ``latest``."""

    earliest: int
    latest: int

    @property
    def middle(self) -> int:
        """What plan counts for a first run: nothing says where in the span it will stop."""
        return -(-(self.earliest + self.latest) // 2)


def stopping_span(params: Params, experiment: str) -> Span | None:
    """Where early stopping may end the experiment's run, or None when it cannot end it early.

    Each phase (a fine-tuned base: the head, then the top) stops on its own: it trains one epoch to
    set a best, then ``early_stopping_patience`` more without beating it before it may stop.
    """
    recipe = params.recipe_of(experiment)
    patience = recipe.early_stopping_patience
    if patience == 0:
        return None
    phases = [plan.epochs for plan in base_mode(params.model_of(experiment)).phases(recipe) if plan.epochs]
    earliest, latest = sum(min(epochs, patience + 1) for epochs in phases), sum(phases)
    return Span(earliest, latest) if earliest < latest else None


def unavailable(params: Params, dataset: str) -> str | None:
    """Why ``dataset`` cannot be downloaded on this machine as configured, or None."""
    from visionlab.data import kaggle_source

    card = params.dataset(dataset)
    source = card.source
    if source.folder is not None:
        folder = folder_path(card)
        return (
            None
            if folder.is_dir()
            else f"its folder {folder} is not there (datasets.{dataset}.source.folder)"
        )
    if source.url is None and not params.download.mirror and not kaggle_source.credentials_present():
        return f"no Kaggle credentials: {kaggle_source.HOW_TO}"
    return None


def missing_weights(params: Params, experiment: str) -> str | None:
    """Why ``experiment``'s ImageNet weights are not on this machine, or None."""
    spec = params.model_of(experiment)
    if spec.weights != "imagenet":
        return None
    from visionlab.errors import VisionlabError
    from visionlab.models import efficientnet_lite, weights

    source = architectures.architecture(spec.arch).weights
    if source == "efficientnet_lite":
        try:
            efficientnet_lite.weights_file(spec.arch)
        except VisionlabError as exc:
            return str(exc)
        return None
    if source == "torchvision" and not weights.weights_path(spec.arch).is_file():
        path = weights.weights_path(spec.arch)
        return f"{spec.arch} ImageNet weights not in {path.parent} ({path.name}; fetched on first use online)"
    return None


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
