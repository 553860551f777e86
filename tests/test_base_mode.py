"""The base-mode strategy: phases, what featurize caches and what runs on the cache, per mode."""

from __future__ import annotations

import torch

from visionlab.models import build_model
from visionlab.models.base import CachedTop
from visionlab.params import ModelParams, TrainParams
from visionlab.runtime.base_mode import base_mode

LITE = {"arch": "efficientnet_lite0", "augmented": False}
RECIPE = TrainParams(epochs=5, head_epochs=2, lr=0.01, finetune_lr_factor=0.1)


def _spec(base: str, **extra) -> ModelParams:
    unfreeze = {"unfreeze_from": "backbone.blocks.6"} if base == "finetune" else {}
    weights = "none" if base == "trainable" else "imagenet"
    return ModelParams(**LITE, weights=weights, base=base, **unfreeze, **extra)


def _model(spec: ModelParams):
    return build_model(spec, 3, load_weights=False)  # random weights: the checks hold for any


def test_trainable_and_frozen_train_one_phase_finetune_two():
    for base in ("trainable", "frozen"):
        (plan,) = base_mode(_spec(base)).phases(RECIPE)
        assert (plan.name, plan.epochs, plan.lr, plan.first_epoch, plan.unfreeze) == (
            "train",
            5,
            0.01,
            1,
            None,
        )
    head, tuned = base_mode(_spec("finetune")).phases(RECIPE)
    assert (head.name, head.epochs, head.lr, head.unfreeze) == ("head", 2, 0.01, None)
    assert (tuned.name, tuned.epochs, tuned.first_epoch, tuned.unfreeze) == (
        "finetune",
        3,
        3,
        "backbone.blocks.6",
    )
    assert tuned.lr == RECIPE.lr * RECIPE.finetune_lr_factor


def test_what_featurize_caches_reproduces_the_whole_networks_features():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 64, 64)
    assert base_mode(_spec("trainable")).frozen_part(_model(_spec("trainable"))) is None

    frozen = _model(_spec("frozen")).eval()
    part = base_mode(_spec("frozen")).frozen_part(frozen)
    assert part.upper is None and torch.equal(part.lower(images), frozen.forward_features(images))

    spec = _spec("finetune")
    tuned = _model(spec).eval()
    part = base_mode(spec).frozen_part(tuned)
    assert part.upper is not None
    with torch.no_grad():
        assert torch.allclose(part.upper(part.lower(images)), tuned.forward_features(images), atol=1e-5)


def test_each_phase_trains_the_sub_network_of_its_cache_and_off_means_images():
    spec = _spec("finetune")
    model = _model(spec)
    (features, head), (activations, top) = base_mode(spec).cached_nets(model)
    assert (features, activations) == ("features", "activations")
    assert head is model.head and isinstance(top, CachedTop)
    assert base_mode(_spec("finetune", activation_cache="off")).cached_nets(model) == []
    assert base_mode(_spec("trainable")).cached_nets(model) == []
    frozen = _model(_spec("frozen"))
    assert base_mode(_spec("frozen")).cached_nets(frozen) == [("features", frozen.head)]
    assert base_mode(_spec("frozen")).needs_cache and not base_mode(_spec("frozen")).trains_base
