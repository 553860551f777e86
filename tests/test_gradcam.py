import numpy as np
import pytest
import torch
from torch import nn

from visionlab.errors import VisionlabError
from visionlab.explanations.gradcam import colour, grad_cam, overlay, target_layer
from visionlab.models import build_model
from visionlab.params import ModelParams


class PatchModel(nn.Module):
    """Channel 0 fires on bright pixels, channel 1 on dark ones; class k is channel k's mean."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1 / 3] * 3, [-1 / 3] * 3]).view(2, 3, 1, 1))
            self.conv.bias.copy_(torch.tensor([-0.5, 0.5]))
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x)).mean(dim=(2, 3))


def test_heatmap_lands_where_the_evidence_is():
    model = PatchModel()
    image = torch.zeros(3, 32, 32)
    image[:, 2:10, 4:12] = 1.0  # the only bright patch
    inside = np.zeros((32, 32), bool)
    inside[2:10, 4:12] = True
    bright = grad_cam(model, model.relu, image, 0)
    dark = grad_cam(model, model.relu, image, 1)
    assert bright.shape == (32, 32) and bright.min() >= 0 and bright.max() == pytest.approx(1.0)
    assert bright[inside].sum() > 0.8 * bright.sum()
    assert dark[~inside].sum() > 0.8 * dark.sum()


def test_frozen_base_still_gets_a_heatmap():
    torch.manual_seed(0)
    spec = ModelParams(arch="efficientnet_lite0", weights="imagenet", base="frozen", augmented=False)
    model = build_model(spec, num_classes=3)
    name, layer = target_layer(model, None)
    assert name == "backbone.bn2"
    image = torch.rand(3, 64, 64)
    predicted = int(model(image.unsqueeze(0)).argmax())
    heat = grad_cam(model, layer, image, predicted)
    assert heat.shape == (64, 64) and np.isfinite(heat).all() and heat.max() > 0


def test_named_layer_and_bad_name():
    spec = ModelParams(arch="handmade_cnn", weights="none", base="trainable", augmented=False)
    model = build_model(spec, num_classes=3)
    assert target_layer(model, "blocks.2.0")[0] == "blocks.2.0"
    with pytest.raises(VisionlabError, match="explain.target_layer: the model has no layer 'nope'"):
        target_layer(model, "nope")


def test_overlay_blends():
    rgb = np.zeros((4, 4, 3), np.uint8)
    heat = np.ones((4, 4))
    assert overlay(rgb, heat, 0.5).max() > 0
    assert colour(heat).shape == (4, 4, 3)
