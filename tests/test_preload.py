"""Preloading under train.preload_max_gb: decoded once into memory or streamed, the same training.

The train stage decodes the train and validation images into memory when they fit the limit and
otherwise decodes them from disk every epoch in ``num_workers`` processes. Both paths must feed the
model the same pixels in the same order, so a seeded run ends with the same history and weights.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch.utils.data import TensorDataset

from tests.conftest import TOY_CNN, minimal_params, write_toy_images
from visionlab.data.prepare_stage import prepare_dataset
from visionlab.params import parse_params
from visionlab.runtime.loaders import loader
from visionlab.training.train_stage import train_experiment

EXPERIMENT = "toy-cnn"
# 20 images at 32x32x3: 14 train + 4 val (prepare's 70/20/10) = 18 * 3,072 bytes = 55,296 bytes.
NEEDED_BYTES = 18 * 32 * 32 * 3


@pytest.fixture
def project(in_tmp):
    write_toy_images(in_tmp, size=(40, 36))
    raw = minimal_params(
        models={"cnn": dict(TOY_CNN)},
        recipes={"default": {"epochs": 2, "batch_size": 4, "num_workers": 0, "seed": 7}},
    )
    params = parse_params(raw)
    prepare_dataset(params, "toy")
    return params


def _train(params, preload_max_gb: float, num_workers: int, caplog) -> tuple[pd.DataFrame, dict, str]:
    recipe = {**params.recipes["default"], "preload_max_gb": preload_max_gb, "num_workers": num_workers}
    params = parse_params({**params.model_dump(mode="json"), "recipes": {"default": recipe}})
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="visionlab.training"):
        train_experiment(params, EXPERIMENT)
    history = pd.read_csv(f"results/{EXPERIMENT}/history.csv").drop(columns="seconds")
    weights = torch.load(Path("data/models") / EXPERIMENT / "model.pt", weights_only=True)["state_dict"]
    return history, weights, caplog.text


@pytest.mark.slow
def test_preloaded_and_streamed_training_end_the_same(project, caplog):
    # The limit is inclusive: exactly what the images need preloads them ...
    preloaded, weights_in_memory, log_in_memory = _train(project, NEEDED_BYTES / 1e9, 0, caplog)
    assert "decoded 18 images into 0.00 GB" in log_in_memory
    assert "from disk" not in log_in_memory

    # ... one byte less streams them, decoding every image again each epoch.
    streamed, weights_streamed, log_streamed = _train(project, (NEEDED_BYTES - 1) / 1e9, 0, caplog)
    assert "decoding 18 images from disk every epoch" in log_streamed
    assert "decoded 18 images into" not in log_streamed

    assert preloaded.epoch.tolist() == [1, 2]
    pd.testing.assert_frame_equal(preloaded, streamed)
    assert weights_in_memory.keys() == weights_streamed.keys()
    for name, tensor in weights_in_memory.items():
        assert torch.equal(tensor, weights_streamed[name]), name
    summary = json.loads((Path("data/models") / EXPERIMENT / "summary.json").read_text())
    assert summary["trained_on"] == "images"


def test_worker_processes_do_not_change_the_shuffle():
    """Streamed images are decoded in num_workers processes: the batches must be the same as
    without workers, epoch after epoch, as fit reseeds the loader's generator (a persistent
    worker pool skipped one draw from the second epoch on and shuffled differently)."""
    dataset = TensorDataset(torch.arange(14), torch.arange(14))
    orders = {}
    for workers in (0, 2):
        batches = loader(dataset, 4, shuffle=True, workers=workers, seed=7)
        orders[workers] = []
        for epoch in (1, 2, 3):
            batches.generator.manual_seed(epoch)
            orders[workers].append([int(i) for x, _ in batches for i in x])
    assert orders[2] == orders[0]
    assert orders[0][1] != orders[0][2]  # reseeded per epoch, yet a different order each epoch
