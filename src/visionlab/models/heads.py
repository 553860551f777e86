"""The new classifier put on a transfer-learning backbone, and the pieces around it."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from visionlab.params import HeadParams


class GlobalPool(nn.Sequential):
    """Global average or max pooling over a feature map, flattened to one vector per image.

    It has no parameters, so it sits in ``forward_features``: a frozen backbone's cached output is
    then a vector per image rather than a whole feature map.
    """

    def __init__(self, kind: str = "avg"):
        pool = nn.AdaptiveAvgPool2d(1) if kind == "avg" else nn.AdaptiveMaxPool2d(1)
        super().__init__(OrderedDict(pool=pool, flatten=nn.Flatten()))


def build_head(spec: HeadParams, in_features: int, num_classes: int) -> nn.Sequential:
    """Dense layers from ``spec.hidden`` (Linear, optional BatchNorm1d, ReLU, Dropout), then the classes.

    With no hidden layer, ``spec.dropout`` applies to the pooled features before the class layer
    (as in Keras' GAP -> Dropout -> Dense), so the knob is never silently ignored. Dropout modules
    are always present (p = 0 is the identity): the head's layout, and so its state-dict keys, do
    not depend on the rate.
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    width = in_features
    if not spec.hidden:
        layers["dropout"] = nn.Dropout(spec.dropout)
    for index, hidden in enumerate(spec.hidden, start=1):
        layers[f"fc{index}"] = nn.Linear(width, hidden)
        if spec.batch_norm:
            layers[f"bn{index}"] = nn.BatchNorm1d(hidden)
        layers[f"relu{index}"] = nn.ReLU()
        layers[f"dropout{index}"] = nn.Dropout(spec.dropout)
        width = hidden
    layers["classes"] = nn.Linear(width, num_classes)
    return nn.Sequential(layers)


class TwoClassLogits(nn.Module):
    """Turns a single sigmoid logit z into the 2-class logits [0, z].

    softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)] and cross-entropy on it equals binary
    cross-entropy on z, so a Keras-style one-unit sigmoid output trains and evaluates like any
    other 2-class classifier, with the study's parameter count.
    """

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(z), z], dim=1)
