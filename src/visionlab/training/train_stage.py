"""The train stage: fit one experiment's model, write its checkpoint and curves, log to MLflow."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from visionlab import paths
from visionlab.errors import VisionlabError
from visionlab.models import Classifier
from visionlab.models.base import CachedTop, count_trainable, hold_batch_norms
from visionlab.params import RUNTIME_KEYS, Params, without_added_off
from visionlab.params.scale import quick_try
from visionlab.redaction import redact
from visionlab.runtime.base_mode import base_mode
from visionlab.runtime.device import seed_everything, select_device, use_amp, use_amp_on_cached_top
from visionlab.runtime.experiment import ResolvedExperiment
from visionlab.runtime.feature_cache import featurize_seconds
from visionlab.runtime.loaders import loader
from visionlab.tracking import TrackedRun, finishing
from visionlab.tracking.datasets import log_datasets
from visionlab.tracking.resumable import abandon_runs, resumable_run
from visionlab.training import distributed
from visionlab.training.inputs import TrainingInputs, labels_of, trained_on, training_inputs
from visionlab.training.launch import launch, processes
from visionlab.training.loop import FitResult, fit
from visionlab.training.outputs import TrainedModel, save_outputs
from visionlab.training.phase import Phase, RunHooks
from visionlab.training.regularization import balanced_class_weights, l2_penalty

log = logging.getLogger(__name__)


def experiment_params(params: Params, experiment: str) -> dict:
    """Everything that shaped this experiment, for MLflow and the resume key."""
    exp = params.experiment(experiment)
    card = params.dataset(exp.dataset)
    return {
        "experiment": experiment,
        "dataset": exp.dataset,
        "model_name": exp.model,
        "recipe": exp.recipe,
        "model": params.model_of(experiment).model_dump(),
        "train": params.recipe_of(experiment).model_dump(),
        "augment": params.augment.model_dump(),
        "prepare": params.prepare.model_dump(),
        "dataset_card": card.model_dump(exclude={"source"}),
        "source": {
            "archive": card.source.archive_name,
            "mirror": redact(params.download.mirror) if params.download.mirror else None,
        },
        "image_size": params.image_size_of(experiment),
    }


def resume_key(params: Params, experiment: str, splits: dict[str, pd.DataFrame]) -> str:
    """Same params and same training images: only then may a run continue a checkpoint."""
    shaping = experiment_params(params, experiment)
    for name in RUNTIME_KEYS | {"device"}:
        shaping["train"].pop(name)  # where and how fast it runs does not change the result
    shaping["train"] = without_added_off(shaping["train"])  # a later knob left off trains as before
    # nproc_per_node and nnodes stay: the number of processes sets the global batch.
    # A knob added later with a null default ("as before") must not orphan the checkpoints of runs
    # that never set it, so nulls stay out of the key; any value a run does set stays in.
    digest = hashlib.sha256(json.dumps(_without_nulls(shaping), sort_keys=True, default=str).encode())
    for split in ("train", "val"):
        digest.update(splits[split].to_csv(index=False).encode())
    return digest.hexdigest()


def _without_nulls(value: object) -> object:
    """``value`` without null-valued mapping entries, at any depth (a mapping left empty goes too)."""
    if isinstance(value, dict):
        kept = {k: _without_nulls(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in kept.items() if v != {}}
    if isinstance(value, list | tuple):
        return [_without_nulls(v) for v in value]
    return value


def _train_phases(
    experiment: ResolvedExperiment,
    model: Classifier,
    inputs: TrainingInputs,
    device: torch.device,
    resume: Path,
    run: TrackedRun,
    hooks: RunHooks,
) -> list[FitResult]:
    """Each phase the base mode lays out: one fit, or for ``finetune`` the head alone and then
    everything from ``unfreeze_from`` (runtime/base_mode.py)."""
    spec, settings = experiment.spec, experiment.recipe
    here = distributed.world()

    def batches(dataset: Dataset, shuffle: bool) -> DataLoader:
        return loader(
            dataset,
            settings.batch_size,
            shuffle=shuffle,
            workers=inputs.workers,
            seed=settings.seed,
            rank=here.rank,  # a data-parallel worker takes its shard
            world_size=here.size,
        )

    results: list[FitResult] = []
    data = inputs
    for plan in base_mode(spec).phases(settings):
        options: dict = {}
        if plan.unfreeze:
            unfrozen = model.unfreeze_from(plan.unfreeze)
            run.log_params({"unfrozen_parameters": len(unfrozen)})
            if inputs.phase_two is not None:  # the top trains on cached activations, else on images
                data = inputs.phase_two
                # channels-last is faster for these blocks in float32 and in bfloat16 alike
                data.net.to(memory_format=torch.channels_last)
                options = {"amp": use_amp_on_cached_top(device, settings.amp), "channels_last": True}
                run.log_params({"finetune_amp": options["amp"]})
            if plan.hold_batch_norm:
                hold_batch_norms(model)
                if isinstance(data.net, CachedTop):
                    hold_batch_norms(data.net)
        if not plan.epochs:
            continue
        # A later phase starts from the earlier one's best weights, and must beat its loss.
        best = (results[-1].best_loss, results[-1].best_epoch) if results else None
        checkpoint = resume / f"{plan.name}.pt" if settings.resume else None
        phase = Phase(plan.name, plan.epochs, plan.lr, plan.first_epoch, best, checkpoint, **options)
        train_batches, val_batches = batches(data.train_set, True), batches(data.val_set, False)
        results.append(fit(data.net, train_batches, val_batches, settings, device, phase, hooks))
    return results


class _NotLogged:
    """The MLflow run of ranks other than 0: rank 0 alone logs, so an experiment keeps one run."""

    def log_params(self, params: dict) -> None:
        pass

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        pass

    def log_epoch(self, metrics: dict, step: int) -> None:
        pass

    def set_tags(self, tags: dict) -> None:
        pass

    def finish(self, ok: bool = True) -> None:
        pass


@dataclass(frozen=True)
class _Setup:
    """What one rank trains: the resolved experiment, its model and inputs, and how it runs them."""

    resolved: ResolvedExperiment
    model: Classifier
    inputs: TrainingInputs
    device: torch.device
    amp: bool
    channels_last: bool
    class_weights: torch.Tensor | None


def _set_up(params: Params, experiment: str, here: distributed.World) -> _Setup:
    settings = params.recipe_of(experiment)
    seed_everything(settings.seed)
    device = select_device(settings.device)
    resolved = ResolvedExperiment.from_params(params, experiment)
    model = resolved.build_model()
    if here.size > 1:
        seed_everything(settings.seed + here.rank)  # same initial weights, then each rank its own draws
    inputs = training_inputs(model, resolved)
    amp = use_amp(device, settings.amp)
    channels_last = amp and not inputs.on_features
    if channels_last:
        inputs.net.to(memory_format=torch.channels_last)
    class_weights = (
        balanced_class_weights(labels_of(inputs.train_set), len(resolved.classes))
        if settings.class_weights == "balanced"
        else None
    )
    return _Setup(resolved, model, inputs, device, amp, channels_last, class_weights)


def _resume_dir(params: Params, experiment: str, setup: _Setup, here: distributed.World) -> tuple[str, Path]:
    """The resume key and folder of this run; rank 0 clears those that will never be resumed."""
    settings = params.recipe_of(experiment)
    key = resume_key(params, experiment, setup.resolved.splits)
    resume = paths.resume_dir(experiment, key)
    if here.is_main:
        # Checkpoints of other params will never be resumed by this stage, nor these with resume off.
        abandon_runs([d for d in paths.resume_dirs(experiment) if d != resume or not settings.resume])
        if not settings.resume:
            shutil.rmtree(resume, ignore_errors=True)
    return key, resume


def _log_setup(
    run: TrackedRun | _NotLogged, params: Params, experiment: str, setup: _Setup, here: distributed.World
) -> None:
    """The run's params, scale tags and data sets: what shaped it, before its first epoch."""
    run.log_params(experiment_params(params, experiment))
    # A sample of the images or shrunk inputs: searchable in the UI, never the registry's best.
    quick = quick_try(params, experiment)
    run.set_tags({"visionlab.scale": "quick try" if quick else "full", "visionlab.quick_try": quick})
    inputs, spec = setup.inputs, setup.resolved.spec
    run.log_params(
        {
            "trainable_parameters": count_trainable(setup.model),
            "total_parameters": sum(p.numel() for p in setup.model.parameters()),
            "train_images": len(inputs.train_set),
            "val_images": len(inputs.val_set),
            "device": setup.device.type,
            "amp": setup.amp,
            "channels_last": setup.channels_last,
            "trained_on": trained_on(inputs, spec),
            "processes": here.size,
        }
    )
    # The run page's "Datasets": which images it trained, validated and (at evaluate) is tested on.
    if here.is_main:
        resolved = setup.resolved
        log_datasets(run, params.dataset(resolved.dataset), resolved.dataset, resolved.splits, spec.augmented)
    if setup.class_weights is not None:
        run.log_params({"class_weight_values": [round(w, 4) for w in setup.class_weights.tolist()]})


def train_experiment(params: Params, experiment: str) -> Path:
    settings = params.recipe_of(experiment)
    here = distributed.world()
    if processes(settings) > 1 and here.size == 1:
        # The stage process starts the workers and waits; each of them comes back here as a rank.
        try:
            launch(train_experiment, params, experiment, settings)
        except VisionlabError:
            # Rank 0 died with its run RUNNING, or could not mark it: the run is not alive until a
            # rerun reopens it.
            abandon_runs(paths.resume_dirs(experiment))
            raise
        return paths.model_dir(experiment)
    setup = _set_up(params, experiment, here)
    resolved, model, inputs = setup.resolved, setup.model, setup.inputs
    key, resume = _resume_dir(params, experiment, setup, here)
    run = resumable_run(resume, resolved.dataset, experiment, "train_loss") if here.is_main else _NotLogged()
    with finishing(run):
        _log_setup(run, params, experiment, setup, here)

        def on_epoch(row: dict) -> None:
            metrics = {k: v for k, v in row.items() if k not in ("epoch", "phase")}
            run.log_epoch(metrics, step=row["epoch"])

        hooks = RunHooks(
            penalty=l2_penalty(model, resolved.spec),
            class_weights=setup.class_weights,
            checkpoint_key=key,
            on_epoch=on_epoch,
            desc=experiment,
        )
        phases = _train_phases(resolved, model, inputs, setup.device, resume, run, hooks)
        model.to("cpu").to(memory_format=torch.contiguous_format)
        if not here.is_main:  # every rank holds the same best weights; rank 0 writes them
            return paths.model_dir(experiment)
        trained = TrainedModel(
            model=model,
            phases=phases,
            device=setup.device,
            amp=setup.amp,
            channels_last=setup.channels_last,
            trained_on=trained_on(inputs, resolved.spec),
            features_seconds=(featurize_seconds(experiment) or 0.0) if inputs.on_features else 0.0,
        )
        out = save_outputs(run, resolved, trained)
        run.set_tags({"visionlab.best_phase": trained.best_phase})  # head or finetune: which one counted
    shutil.rmtree(resume, ignore_errors=True)  # finished: nothing left to resume
    log.info("%s: best epoch %d of %d", experiment, trained.best_epoch, trained.epochs_run)
    unimproved = trained.unimproved()
    if unimproved:
        # Its compute bought nothing: say so where the user looks, with the knobs that change it. Not
        # a lower rate: on cats and dogs a hundredth of it knocked the model back further (docs/results.md).
        held = params.recipe_of(experiment).finetune_batch_norm == "frozen"
        knobs = ("" if held else "train.finetune_batch_norm: frozen, or ") + "a later unfreeze_from"
        log.warning("%s: %s (try %s)", experiment, unimproved, knobs)
    return out
