"""The CIFAR-10 study's three nets trained from scratch: base, with inception blocks, with residual blocks.

Built Keras-style like the other study CNNs (models/study_cnns.py); parameter counts in tests/test_zoo.py.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from visionlab.models.heads import GlobalPool
from visionlab.models.study_cnns import StudyCNN, conv, grid_flatten


def _conv_unit(c_in: int, c_out: int, kernel: int, batch_norm: bool, stride: int = 1) -> nn.Sequential:
    """Conv (same padding) -> optional batch norm -> ReLU."""
    padding = kernel // 2  # = "same" for odd kernels, and allowed with a stride
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv=nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding)
    )
    if batch_norm:
        layers["bn"] = nn.BatchNorm2d(c_out)
    layers["relu"] = nn.ReLU()
    return nn.Sequential(layers)


class CifarBase(StudyCNN):
    """The CIFAR-10 study's baseline: 1,442,698 trainable params (1,442,954 with BN statistics).

    conv 32 (5x5) ReLU, conv 64, conv 64, conv 128 (3x3) ReLU, all "same"; batch norm; dropout;
    flatten (32*32*128 = 131,072); dense classes.
    """

    default_image_size = 32

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        dropout: float = 0.3,
        batch_norm: bool = True,
        image_size: int = 32,
    ):
        super().__init__()
        self.in_channels = in_channels
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = in_channels
        for index, (width, kernel) in enumerate(((32, 5), (64, 3), (64, 3), (128, 3)), start=1):
            layers[f"conv{index}"] = conv(c_in, width, kernel)
            layers[f"relu{index}"] = nn.ReLU()
            c_in = width
        if batch_norm:
            layers["bn"] = nn.BatchNorm2d(c_in)
        self.features = nn.Sequential(layers)
        self.pool = grid_flatten(image_size)  # "same" convs, no pooling: the map keeps the input side
        self.feature_dim = c_in * image_size * image_size
        self.head = nn.Sequential(
            OrderedDict(dropout=nn.Dropout(dropout), classes=nn.Linear(self.feature_dim, num_classes))
        )

    def cam_layer(self) -> nn.Module:
        return self.features.relu4


class InceptionBlock(nn.Module):
    """GoogLeNet's block: 1x1, 1x1 -> 3x3, 1x1 -> 5x5 and 3x3 max-pool -> 1x1, concatenated."""

    def __init__(
        self,
        c_in: int,
        b1: int,
        b3: tuple[int, int],
        b5: tuple[int, int],
        pool_proj: int,
        batch_norm: bool,
    ):
        super().__init__()
        self.branch1 = _conv_unit(c_in, b1, 1, batch_norm)
        self.branch3 = nn.Sequential(
            _conv_unit(c_in, b3[0], 1, batch_norm), _conv_unit(b3[0], b3[1], 3, batch_norm)
        )
        self.branch5 = nn.Sequential(
            _conv_unit(c_in, b5[0], 1, batch_norm), _conv_unit(b5[0], b5[1], 5, batch_norm)
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1), _conv_unit(c_in, pool_proj, 1, batch_norm)
        )
        self.out_channels = b1 + b3[1] + b5[1] + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch1, self.branch3, self.branch5, self.branch_pool)
        return torch.cat([branch(x) for branch in branches], dim=1)


class CifarInception(StudyCNN):
    """The CIFAR-10 study's inception variant, kept CPU-trainable (about 25 M multiply-adds).

    stem conv 32 (5x5); inception 32x32 -> 64 channels, max-pool; inception -> 128, max-pool;
    inception -> 256 at 8x8; dropout; global average pool; dense classes. Any input side works.
    """

    default_image_size = 32

    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.3, batch_norm: bool = True):
        super().__init__()
        self.in_channels = in_channels
        self.features = nn.Sequential(
            OrderedDict(
                stem=_conv_unit(in_channels, 32, 5, batch_norm),
                inception1=InceptionBlock(32, 16, (16, 32), (8, 8), 8, batch_norm),  # 64
                pool1=nn.MaxPool2d(2),
                inception2=InceptionBlock(64, 32, (32, 64), (16, 16), 16, batch_norm),  # 128
                pool2=nn.MaxPool2d(2),
                inception3=InceptionBlock(128, 64, (48, 96), (16, 32), 64, batch_norm),  # 256
                dropout=nn.Dropout(dropout),
            )
        )
        self.pool = GlobalPool("avg")
        self.feature_dim = self.features.inception3.out_channels
        self.head = nn.Sequential(OrderedDict(classes=nn.Linear(self.feature_dim, num_classes)))

    def cam_layer(self) -> nn.Module:
        return self.features.inception3


class ResidualBlock(nn.Module):
    """Two 3x3 convs with batch norm, added to a shortcut: identity, or a 1x1 projection
    (conv + batch norm) when the channels or the stride change."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, batch_norm: bool = True):
        super().__init__()
        body: OrderedDict[str, nn.Module] = OrderedDict(conv1=nn.Conv2d(c_in, c_out, 3, stride, padding=1))
        if batch_norm:
            body["bn1"] = nn.BatchNorm2d(c_out)
        body["relu1"] = nn.ReLU()
        body["conv2"] = nn.Conv2d(c_out, c_out, 3, padding=1)
        if batch_norm:
            body["bn2"] = nn.BatchNorm2d(c_out)
        self.body = nn.Sequential(body)
        if c_in == c_out and stride == 1:
            self.shortcut: nn.Module = nn.Identity()
        else:
            projection: OrderedDict[str, nn.Module] = OrderedDict(conv=nn.Conv2d(c_in, c_out, 1, stride))
            if batch_norm:
                projection["bn"] = nn.BatchNorm2d(c_out)
            self.shortcut = nn.Sequential(projection)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class CifarResidual(StudyCNN):
    """The CIFAR-10 study's residual variant (about 50 M multiply-adds at 32x32).

    stem conv 32 (3x3) + batch norm + ReLU; residual 32 (identity shortcut); residual 64 and 128
    (stride 2, projection shortcuts); dropout; global average pool; dense classes.
    """

    default_image_size = 32

    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.3, batch_norm: bool = True):
        super().__init__()
        self.in_channels = in_channels
        self.features = nn.Sequential(
            OrderedDict(
                stem=_conv_unit(in_channels, 32, 3, batch_norm),
                res1=ResidualBlock(32, 32, 1, batch_norm),
                res2=ResidualBlock(32, 64, 2, batch_norm),
                res3=ResidualBlock(64, 128, 2, batch_norm),
                dropout=nn.Dropout(dropout),
            )
        )
        self.pool = GlobalPool("avg")
        self.feature_dim = 128
        self.head = nn.Sequential(OrderedDict(classes=nn.Linear(self.feature_dim, num_classes)))

    def cam_layer(self) -> nn.Module:
        return self.features.res3
