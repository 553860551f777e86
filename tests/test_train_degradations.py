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
