"""The train stage: fit one experiment's model, write its checkpoint and curves, log to MLflow."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import TensorDataset

from visionlab import paths
from visionlab.atomic import atomic_dir, atomic_write_text
from visionlab.data.download import redact
from visionlab.models import build_model, save_checkpoint
from visionlab.models.base import count_trainable
from visionlab.params import Params
from visionlab.tracking import start_run
from visionlab.training.data import image_dataset, loader, split_rows
from visionlab.training.features import load_features
from visionlab.training.loop import HISTORY_COLUMNS, fit
from visionlab.training.runtime import seed_everything, select_device, use_amp

log = logging.getLogger(__name__)

RUN_RECORD = "mlflow_run.json"


def experiment_params(params: Params, experiment: str) -> dict:
    """Everything that shaped this experiment, for MLflow."""
    exp = params.experiment(experiment)
    card = params.dataset(exp.dataset)
    return {
        "experiment": experiment,
        "dataset": exp.dataset,
        "model_name": exp.model,
        "model": params.models[exp.model].model_dump(),
        "train": params.train.model_dump(),
        "augment": params.augment.model_dump(),
        "prepare": params.prepare.model_dump(),
        "dataset_card": card.model_dump(exclude={"source"}),
        "source": {
            "archive": card.source.archive_name,
            "mirror": redact(params.download.mirror) if params.download.mirror else None,
        },
        "image_size": params.image_size_of(experiment),
    }


def train_experiment(params: Params, experiment: str) -> Path:
    settings = params.train
    exp = params.experiment(experiment)
    spec = params.models[exp.model]
    size = params.image_size_of(experiment)
    seed_everything(settings.seed)
    device = select_device(settings.device)
    splits, classes = split_rows(params, experiment)
    grayscale = params.dataset_of(experiment).grayscale
    model = build_model(spec, len(classes), grayscale=grayscale)
    frozen = spec.base == "frozen"

    if frozen:
        train_cache, val_cache = load_features(experiment, "train"), load_features(experiment, "val")
        net = model.head
        train_set = TensorDataset(train_cache["features"], train_cache["labels"])
        val_set = TensorDataset(val_cache["features"], val_cache["labels"])
        workers = 0  # tensors in memory: worker processes would only add overhead
    else:
        net = model
        if device.type == "cuda":
            net = net.to(memory_format=torch.channels_last)
        train_set = image_dataset(splits["train"], classes, size, model, grayscale)
        val_set = image_dataset(splits["val"], classes, size, model, grayscale)
        workers = settings.num_workers

    run = start_run(exp.dataset, experiment)
    try:
        run.log_params(experiment_params(params, experiment))
        run.log_params(
            {
                "trainable_parameters": count_trainable(model),
                "train_images": len(train_set),
                "val_images": len(val_set),
                "device": device.type,
                "amp": use_amp(device),
                "channels_last": device.type == "cuda" and not frozen,
                "trained_on": "cached features" if frozen else "images",
            }
        )

        def on_epoch(row: dict) -> None:
            run.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])

        result = fit(
            net,
            loader(train_set, settings.batch_size, shuffle=True, workers=workers, seed=settings.seed),
            loader(val_set, settings.batch_size, shuffle=False, workers=workers),
            settings,
            device,
            l2=spec.l2,
            l2_weights=lambda: (w for w in model.l2_weights() if w.requires_grad),
            on_epoch=on_epoch,
            desc=experiment,
        )
        model.to("cpu")
        summary = {
            "experiment": experiment,
            "epochs_run": len(result.history),
            "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early,
            "train_seconds": round(result.seconds, 3),
            "train_images_per_second": round(result.samples_per_second, 2),
            "trainable_parameters": count_trainable(model),
            "device": device.type,
            "trained_on": "cached features" if frozen else "images",
        }
        history = pd.DataFrame(result.history, columns=HISTORY_COLUMNS)
        out = paths.model_dir(experiment)
        with atomic_dir(out) as scratch:
            save_checkpoint(scratch / "model.pt", model, spec, classes, size, grayscale, summary=summary)
            (scratch / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            run.record(scratch / RUN_RECORD)
        history_path = paths.results_dir(experiment) / "history.csv"
        atomic_write_text(history_path, history.to_csv(index=False))
        run.log_metrics(
            {
                "best_epoch": result.best_epoch,
                "train_seconds": result.seconds,
                "train_images_per_second": result.samples_per_second,
            }
        )
        run.log_artifact(history_path, "training")
        run.log_artifact(out / "summary.json", "training")
        run.log_artifact(out / "model.pt", "model")
        run.finish(True)
    except BaseException:
        run.finish(False)
        raise
    log.info("%s: best epoch %d of %d", experiment, result.best_epoch, len(result.history))
    return out
