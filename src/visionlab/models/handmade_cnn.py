"""The flowers study's hand-made CNN (406,149 trainable parameters at 224x224x3).

Four blocks of 3x3 'same' convolutions (32, 64, 128, 256 filters, L2 on the kernels), each with
batch norm and ReLU, then 3x3/3 max-pooling (global max-pooling after the last block); dropout 0.3
after blocks 2 to 4; dense 64 with dropout 0.1; softmax over the classes.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from visionlab.models.base import Classifier

WIDTHS = (32, 64, 128, 256)


def _block(c_in: int, c_out: int, pool: nn.Module, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, 3, padding="same"),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
        pool,
    ]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class HandmadeCNN(Classifier):
    mean = (0.0, 0.0, 0.0)  # the study rescaled pixels to [0, 1]
    std = (1.0, 1.0, 1.0)

    def __init__(
        self, num_classes: int, dropout: float = 0.3, dense_dropout: float = 0.1, in_channels: int = 3
    ):
        super().__init__()
        self.in_channels = in_channels
        blocks = []
        c_in = in_channels
        for index, width in enumerate(WIDTHS):
            last = index == len(WIDTHS) - 1
            pool = nn.AdaptiveMaxPool2d(1) if last else nn.MaxPool2d(3)
            blocks.append(_block(c_in, width, pool, dropout if index >= 1 else 0.0))
            c_in = width
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = WIDTHS[-1]
        self.head = nn.Sequential(
            nn.Linear(WIDTHS[-1], 64),
            nn.ReLU(),
            nn.Dropout(dense_dropout),
            nn.Linear(64, num_classes),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.blocks(x), 1)

    def cam_layer(self) -> nn.Module:
        # The ReLU of the last block: spatial, and just before global pooling.
        return self.blocks[-1][2]

    def l2_weights(self) -> Iterator[torch.Tensor]:
        return (m.weight for m in self.blocks.modules() if isinstance(m, nn.Conv2d))
