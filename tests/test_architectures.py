"""Adding an architecture is one catalog entry plus params: a network defined in a module outside
visionlab, registered, then validated, sized, built, trained and evaluated by the real stages."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import minimal_params, write_toy_images
from visionlab.data.prepare_stage import prepare_dataset
from visionlab.data.resolve_stage import resolve_stage
from visionlab.errors import ParamsError
from visionlab.evaluation.evaluate_stage import evaluate_experiment
from visionlab.models import build_model, load_checkpoint
from visionlab.params import architectures, parse_params
from visionlab.params.architectures import Architecture
from visionlab.training.featurize_stage import featurize_experiment
from visionlab.training.train_stage import train_experiment

TINY_NET = """
from torch import nn

from visionlab.models.base import Classifier


class TinyNet(Classifier):
    def __init__(self, num_classes, channels, width):
        super().__init__()
        self.in_channels, self.feature_dim = channels, width
        conv = nn.Conv2d(channels, width, 3, padding=1)
        self.blocks = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(width, num_classes)

    def forward_features(self, x):
        return self.blocks(x).flatten(1)

    def backbone_parameters(self):
        return self.blocks.parameters()


def build(spec, num_classes, channels, pretrained, initialise):
    return TinyNet(num_classes, channels, width=8)
"""


@pytest.fixture
def tiny_net(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.mktemp("user-code")
    (folder / "my_tiny_net.py").write_text(textwrap.dedent(TINY_NET))
    monkeypatch.syspath_prepend(str(folder))
    architectures.register(Architecture("tiny_net", "my_tiny_net:build", native_size=40))
    yield
    architectures.unregister("tiny_net")
    sys.modules.pop("my_tiny_net", None)


def _params() -> dict:
    return minimal_params(
        models={"tiny": {"arch": "tiny_net", "weights": "none", "base": "trainable", "augmented": False}},
        experiments={"toy-tiny": {"dataset": "toy", "model": "tiny", "recipe": "quick"}},
        recipes={"quick": {"epochs": 2, "batch_size": 4, "num_workers": 0}},
        evaluate={"num_workers": 0, "batch_size": 8},
    )


def test_an_unregistered_architecture_is_a_params_error_naming_the_choices():
    with pytest.raises(
        ParamsError, match=r"models\.tiny\.arch: Input should be 'handmade_cnn'.* or 'resnet50'"
    ):
        parse_params(_params())


def test_a_registered_architecture_trains_and_evaluates_through_the_stages(in_tmp, tiny_net):
    params = parse_params(_params())
    assert params.image_size_of("toy-tiny") == 40  # the entry's native size, as no param sets one
    model = build_model(params.model_of("toy-tiny"), 2)
    assert model.arch == "tiny_net" and type(model).__name__ == "TinyNet"

    write_toy_images(in_tmp, size=(48, 40))
    prepare_dataset(params, "toy")
    resolve_stage(params)
    featurize_experiment(params, "toy-tiny")
    train_experiment(params, "toy-tiny")
    evaluate_experiment(params, "toy-tiny")

    history = pd.read_csv("results/toy-tiny/history.csv")
    assert history.epoch.tolist() == [1, 2]
    checkpoint = load_checkpoint(Path("data/models/toy-tiny/model.pt"))
    assert checkpoint.spec.arch == "tiny_net" and checkpoint.image_size == 40
    metrics = json.loads(Path("results/toy-tiny/metrics.json").read_text())
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0 and metrics["test"]["images"] > 0


def test_a_pretrainable_entry_may_take_imagenet_weights_a_from_scratch_one_may_not(tiny_net):
    raw = _params()
    raw["models"]["tiny"]["weights"] = "imagenet"
    with pytest.raises(ParamsError, match="tiny_net has no pretrained weights: set weights: none"):
        parse_params(raw)
    with pytest.raises(ValueError, match="already registered"):
        architectures.register(Architecture("tiny_net", "my_tiny_net:build"))
