"""Training on a share of degraded images (models.<m>.train_degradations): the draw, the params,
the train set and featurize's cache, which degrades the train split and leaves validation clean."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from tests.conftest import minimal_params, write_image, write_toy_images
from visionlab.data.prepare_stage import prepare_dataset
from visionlab.data.resolve_stage import resolve_stage
from visionlab.errors import ParamsError
from visionlab.params import parse_params
from visionlab.params.resolved import feature_inputs
from visionlab.runtime.degrade import TrainDegradations
from visionlab.runtime.feature_cache import load_features
from visionlab.runtime.loaders import ImageDataset
from visionlab.training.featurize_stage import featurize_experiment

REPO = Path(__file__).resolve().parents[1]


def _photo(seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(
        0, 255, (240, 320, 3), dtype=np.uint8
    )  # short side over 160
    return Image.fromarray(pixels)


def _changed(degrade: TrainDegradations, index: int) -> bool:
    photo = _photo(index)
    return not np.array_equal(np.asarray(degrade(index, photo)), np.asarray(photo))


def test_each_image_is_degraded_the_same_way_every_time_and_in_its_share():
    degrade = TrainDegradations(downscale=0.25, jpeg=0.25, seed=3)
    again = TrainDegradations(downscale=0.25, jpeg=0.25, seed=3)
    for index in range(5):
        first = np.asarray(degrade(index, _photo(index)))
        assert np.array_equal(first, np.asarray(again(index, _photo(index))))
    changed = sum(_changed(degrade, i) for i in range(200))
    # Either of two independent quarters: 1 - 0.75^2 = 44% of the images, give or take chance.
    assert 60 <= changed <= 115
    other_seed = TrainDegradations(downscale=0.25, jpeg=0.25, seed=4)
    assert [_changed(other_seed, i) for i in range(40)] != [_changed(degrade, i) for i in range(40)]


def test_a_downscaled_training_image_keeps_its_aspect_and_a_short_side_in_range():
    degrade = TrainDegradations(downscale=1.0)
    for index in range(10):
        width, height = degrade(index, Image.new("RGB", (400, 300))).size
        assert 64 <= height <= 160 and abs(width / height - 4 / 3) < 0.02


def test_nothing_set_is_no_degradation():
    assert TrainDegradations.of(None) is None
    assert TrainDegradations.of({"downscale": 0.0, "jpeg": 0.0, "blur": 0.0, "seed": 1}) is None
    assert TrainDegradations.of({"jpeg": 0.5}) == TrainDegradations(jpeg=0.5)


def test_a_share_out_of_range_is_refused_naming_its_key():
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["models"]["efficientnet_lite0_finetune"]["train_degradations"] = {"downscale": 1.5}
    with pytest.raises(
        ParamsError, match=r"models\.efficientnet_lite0_finetune\.train_degradations\.downscale"
    ):
        parse_params(raw)


def test_only_a_model_with_degradations_changes_its_featurize_record():
    """The record is featurize's DVC dependency: every other cache must stay valid."""
    params = parse_params(yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8")))
    assert "train_degradations" not in feature_inputs(params, "flowers-best")
    robust = feature_inputs(params, "flowers-best-robust")
    assert robust["train_degradations"]["downscale"] > 0
    assert {k: v for k, v in robust.items() if k != "train_degradations"} == {
        **feature_inputs(params, "flowers-best"),
        "experiment": "flowers-best-robust",
    }


def test_a_preloaded_degraded_set_holds_the_pixels_it_decodes(tmp_path):
    files = [str(write_image(tmp_path / f"{i}.jpg", seed=i, size=(120, 90))) for i in range(12)]
    labels = [0] * len(files)
    degrade = TrainDegradations(downscale=0.5, jpeg=0.5, blur=0.5)
    degraded = ImageDataset(files, labels, 64, [0.5] * 3, [0.5] * 3, degrade=degrade)
    clean = ImageDataset(files, labels, 64, [0.5] * 3, [0.5] * 3)
    decoded = [degraded.decode(i) for i in range(len(files))]
    degraded.preload(threads=2)
    assert all(torch.equal(degraded.pixels[i], decoded[i]) for i in range(len(files)))
    assert sum(not torch.equal(decoded[i], clean.decode(i)) for i in range(len(files))) >= 6


def test_featurize_caches_the_train_split_degraded_and_validation_clean(in_tmp):
    write_toy_images(in_tmp, size=(72, 64))
    frozen = {"arch": "efficientnet_lite0", "weights": "imagenet", "base": "frozen", "augmented": False}
    raw = minimal_params(
        models={"clean": frozen, "robust": {**frozen, "train_degradations": {"jpeg": 1.0, "blur": 1.0}}},
        experiments={
            name: {"dataset": "toy", "model": name, "recipe": "default"} for name in ("clean", "robust")
        },
        train={"image_size": 32},
        evaluate={"num_workers": 0, "batch_size": 8},
    )
    params = parse_params(raw)
    prepare_dataset(params, "toy")
    resolve_stage(params)
    for name in ("clean", "robust"):
        featurize_experiment(params, name)
    clean_train, robust_train = load_features("clean", "train"), load_features("robust", "train")
    assert robust_train["paths"] == clean_train["paths"]
    assert not torch.allclose(robust_train["features"], clean_train["features"], atol=1e-3)
    assert torch.equal(load_features("robust", "val")["features"], load_features("clean", "val")["features"])
    assert len(pd.read_csv("data/prepared/toy/manifest.csv")) == 20


def test_redraw_draws_each_image_afresh_every_epoch_and_the_same_on_a_rerun():
    fixed = TrainDegradations(downscale=0.3, jpeg=0.3, seed=3)
    redrawn = TrainDegradations(downscale=0.3, jpeg=0.3, seed=3, redraw=True)
    photo = _photo(7)
    # Without redraw the epoch changes nothing: featurize's one cached copy is every epoch's.
    assert np.array_equal(np.asarray(fixed(7, photo, epoch=1)), np.asarray(fixed(7, photo, epoch=5)))

    def pattern(degrade: TrainDegradations, epoch: int) -> list[bool]:
        return [
            not np.array_equal(np.asarray(degrade(i, _photo(i), epoch)), np.asarray(_photo(i)))
            for i in range(40)
        ]

    assert pattern(redrawn, 1) != pattern(redrawn, 2)  # another share of the images each epoch
    assert pattern(redrawn, 2) == pattern(TrainDegradations(downscale=0.3, jpeg=0.3, seed=3, redraw=True), 2)
    # About half the images change in an epoch, and over 4 epochs most have been seen both ways.
    epochs = [pattern(redrawn, epoch) for epoch in range(1, 5)]
    assert 8 <= sum(epochs[0]) <= 30
    assert sum(any(seen) and not all(seen) for seen in zip(*epochs, strict=True)) >= 20


def test_a_redrawn_set_is_decoded_every_epoch_never_preloaded(tmp_path):
    files = [str(write_image(tmp_path / f"{i}.jpg", seed=i, size=(120, 90))) for i in range(12)]
    degrade = TrainDegradations(jpeg=0.5, blur=0.5, redraw=True)
    images = ImageDataset(files, [0] * len(files), 64, [0.5] * 3, [0.5] * 3, degrade=degrade)
    assert images.redraws and images.preload_bytes() == 0
    images.preload(threads=2)
    assert images.pixels is None  # a preloaded copy would hold one epoch's draw for good
    images.set_epoch(1)
    first = [images.decode(i) for i in range(len(files))]
    images.set_epoch(2)
    second = [images.decode(i) for i in range(len(files))]
    assert sum(not torch.equal(a, b) for a, b in zip(first, second, strict=True)) >= 3
    images.set_epoch(1)
    assert all(torch.equal(images.decode(i), first[i]) for i in range(len(files)))  # a resumed epoch


def test_the_loaders_worker_processes_decode_the_epoch_the_loop_set(tmp_path):
    """The train stage decodes a redrawn set in worker processes: each epoch's fresh workers get the
    epoch set just before (no persistent workers), so they draw that epoch's degradations."""
    from visionlab.runtime.loaders import loader

    files = [str(write_image(tmp_path / f"{i}.jpg", seed=i, size=(120, 90))) for i in range(12)]
    degrade = TrainDegradations(jpeg=0.5, blur=0.5, redraw=True)
    images = ImageDataset(files, [0] * len(files), 64, [0.5] * 3, [0.5] * 3, degrade=degrade)
    batches = loader(images, batch_size=4, shuffle=False, workers=2)

    def epoch(number: int) -> torch.Tensor:
        images.set_epoch(number)
        return torch.cat([x for x, _ in batches])

    first, second = epoch(1), epoch(2)
    in_process = torch.stack([images[i][0] for i in range(len(files))])  # epoch 2, no workers
    assert torch.equal(second, in_process) and not torch.equal(first, second)
    assert torch.equal(epoch(1), first)


def test_redraw_is_refused_where_featurize_caches_the_training_images():
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    model = raw["models"]["efficientnet_lite0_finetune"]
    model["train_degradations"] = {"jpeg": 0.4, "redraw": True}
    with pytest.raises(
        ParamsError, match=r"models\.efficientnet_lite0_finetune.*redraw needs base: trainable"
    ):
        parse_params(raw)
    model["activation_cache"] = "off"  # every phase on the images: a new draw each epoch works
    params = parse_params(raw)
    assert params.model_of("flowers-best").train_degradations.redraw


def test_redraw_enters_the_records_only_where_it_is_set():
    """Records written before the key existed stay the same, so no robust row reruns for it."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params = parse_params(raw)
    assert "redraw" not in feature_inputs(params, "cifar-best-robust")["train_degradations"]
    # The resume key and MLflow's params dump the whole model: a running robust row keeps its checkpoint.
    assert "redraw" not in params.model_of("cifar-best-robust").model_dump()["train_degradations"]
    model = raw["experiments"]["cifar-best-robust"]["model_overrides"]
    model.update(activation_cache="off", train_degradations={**model["train_degradations"], "redraw": True})
    assert feature_inputs(parse_params(raw), "cifar-best-robust")["train_degradations"]["redraw"] is True


def test_the_training_loop_sets_each_epoch_on_its_images():
    """The loop tells the train set each epoch's number (as it reseeds the shuffle), so redrawn
    degradations follow the epoch, phase two's epochs included, and a resumed epoch redraws alike."""
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

    from visionlab.params import TrainParams
    from visionlab.training.loop import fit

    class Recording(Dataset):
        def __init__(self) -> None:
            self.epochs: list[int] = []
            self.x = torch.randn(16, 4)

        def set_epoch(self, epoch: int) -> None:
            self.epochs.append(epoch)

        def __len__(self) -> int:
            return 16

        def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
            return self.x[index], index % 2

    images = Recording()
    batches = DataLoader(images, batch_size=8, shuffle=True, generator=torch.Generator())
    fit(
        nn.Linear(4, 2),
        batches,
        batches,
        TrainParams(epochs=3, early_stopping_patience=0),
        torch.device("cpu"),
    )
    # One new draw an epoch, numbered as the shuffle's seed is (a resumed epoch gets its own back).
    assert len(images.epochs) == 3 and images.epochs == list(range(images.epochs[0], images.epochs[0] + 3))
