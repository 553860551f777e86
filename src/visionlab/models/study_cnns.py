"""The studies' CNNs trained from scratch, rebuilt Keras-style: every conv has a bias.

CIFAR-10's three nets are in cifar_cnns.py.

Parameter counts match the Keras summaries (see tests/test_zoo.py). Nets that flatten a feature
map into a dense layer size it for one input side (``default_image_size`` unless the params give
``image_size``). So that they still run at another side (a quick experiment at 64x64), the map is
max-pooled adaptively onto that design grid before flattening: at the design size this is the
identity, and the net is exactly the study's.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from visionlab.errors import VisionlabError
from visionlab.models.base import Classifier, kernels
from visionlab.models.heads import TwoClassLogits


class SamePad2d(nn.Module):
    """TensorFlow's "same" padding for a strided conv: out = ceil(in / stride), extra pixel after.

    PyTorch's padding="same" refuses strides; symmetric padding gives 55 where Keras gives 56 for
    an 11x11/4 conv on 224 (TF pads 3 before and 4 after).
    """

    def __init__(self, kernel: int, stride: int):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad wants the last dimension first
            total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads)


class StudyCNN(Classifier):
    """Shared plumbing: ``features`` (spatial), then ``pool`` (flatten or global pool), then ``head``."""

    features: nn.Sequential
    pool: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x))

    def l2_weights(self) -> Iterator[torch.Tensor]:
        """Every conv and dense kernel: the studies regularised the whole net."""
        return kernels(self)


def grid_flatten(side: int) -> nn.Sequential:
    """Flatten a ``side`` x ``side`` map; other sides are max-pooled onto that grid first."""
    return nn.Sequential(OrderedDict(grid=nn.AdaptiveMaxPool2d(side), flatten=nn.Flatten()))


def conv(c_in: int, c_out: int, kernel: int, padding: str = "same", stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding)


class SimpleCNN(StudyCNN):
    """The flowers study's simple CNN.

    Five blocks of conv (32, 64, 96, 128, 160 filters; 5x5 then 3x3, same) + ReLU, max-pool 2,
    batch norm, dropout; flatten; dense 256 + ReLU + dropout; dense classes. At 224x224x3, 5
    classes: convs 2,432 + 18,496 + 55,392 + 110,720 + 184,480 = 371,520; batch norm
    2 x (32 + 64 + 96 + 128 + 160) = 960; dense 7*7*160*256 + 256 = 2,007,296; classes
    256*5 + 5 = 1,285; trainable 2,381,061 (2,380,101 without batch norm).
    """

    WIDTHS = (32, 64, 96, 128, 160)
    default_image_size = 224

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        dropout: float = 0.3,
        dense_dropout: float = 0.1,
        batch_norm: bool = True,
        image_size: int = 224,
    ):
        super().__init__()
        self.in_channels = in_channels
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        c_in, side = in_channels, image_size
        for index, width in enumerate(self.WIDTHS, start=1):
            layers: OrderedDict[str, nn.Module] = OrderedDict(
                conv=conv(c_in, width, 5 if index == 1 else 3), relu=nn.ReLU(), pool=nn.MaxPool2d(2)
            )
            if batch_norm:
                layers["bn"] = nn.BatchNorm2d(width)
            layers["dropout"] = nn.Dropout(dropout)
            blocks[f"block{index}"] = nn.Sequential(layers)
            c_in, side = width, side // 2
        if side < 1:
            raise VisionlabError(f"simple_cnn needs inputs of at least 32x32 (got {image_size})")
        self.features = nn.Sequential(blocks)
        self.pool = grid_flatten(side)
        self.feature_dim = c_in * side * side
        self.head = nn.Sequential(
            OrderedDict(
                fc=nn.Linear(self.feature_dim, 256),
                relu=nn.ReLU(),
                dropout=nn.Dropout(dense_dropout),
                classes=nn.Linear(256, num_classes),
            )
        )

    def cam_layer(self) -> nn.Module:
        return self.features.block5.relu  # the last conv's activation, before its pooling


class CatsDogsCNN(StudyCNN):
    """The cats-and-dogs study's CNN on 200x200 grey images: one sigmoid unit, 4,737,473 params.

    conv 32 (3x3 valid) ReLU, max-pool 2, conv 64 (3x3 valid) ReLU, max-pool 2, flatten
    (48*48*64 = 147,456), dense 32 ReLU, dense 1; the head's last step turns the logit into 2-class
    logits (see TwoClassLogits).
    """

    default_image_size = 200

    def __init__(self, num_classes: int, in_channels: int = 1, image_size: int = 200):
        super().__init__()
        if num_classes != 2:
            raise VisionlabError(
                f"catsdogs_cnn ends in one sigmoid unit, so it separates exactly 2 classes; "
                f"the data set has {num_classes}"
            )
        self.in_channels = in_channels
        self.features = nn.Sequential(
            OrderedDict(
                conv1=conv(in_channels, 32, 3, "valid"),
                relu1=nn.ReLU(),
                pool1=nn.MaxPool2d(2),
                conv2=conv(32, 64, 3, "valid"),
                relu2=nn.ReLU(),
                pool2=nn.MaxPool2d(2),
            )
        )
        side = ((image_size - 2) // 2 - 2) // 2
        if side < 1:
            raise VisionlabError(f"catsdogs_cnn needs inputs of at least 10x10 (got {image_size})")
        self.pool = grid_flatten(side)
        self.feature_dim = 64 * side * side
        self.head = nn.Sequential(
            OrderedDict(
                fc=nn.Linear(self.feature_dim, 32),
                relu=nn.ReLU(),
                logit=nn.Linear(32, 1),
                two_class=TwoClassLogits(),
            )
        )

    def cam_layer(self) -> nn.Module:
        return self.features.conv2  # its ReLU is not in-place, so the conv's output is safe to hook


class CaltechCNN(StudyCNN):
    """The Caltech-101 study's three small CNNs on 224x224x3 (5 classes).

    conv 8 (11x11, stride 4, same -> 56) ReLU, max-pool 3/2 (-> 27), conv 16 (5x5 same) ReLU,
    max-pool 3/2 (-> 13), then variant 1: flatten, dense 128 ReLU, dense classes (353,013);
    2: + conv 32 (3x3 same) ReLU, max-pool 3/2 (-> 6) first (158,997); 3: + conv 32 and conv 64
    (3x3 same) ReLU, max-pool 3/2 first (324,949).
    """

    default_image_size = 224

    def __init__(self, variant: int, num_classes: int, in_channels: int = 3, image_size: int = 224):
        super().__init__()
        self.in_channels = in_channels
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            pad1=SamePad2d(11, 4),
            conv1=nn.Conv2d(in_channels, 8, 11, stride=4),
            relu1=nn.ReLU(),
            pool1=nn.MaxPool2d(3, 2),
            conv2=conv(8, 16, 5),
            relu2=nn.ReLU(),
            pool2=nn.MaxPool2d(3, 2),
        )
        extra = {1: (), 2: (32,), 3: (32, 64)}[variant]
        c_in = 16
        for index, width in enumerate(extra, start=3):
            layers[f"conv{index}"] = conv(c_in, width, 3)
            layers[f"relu{index}"] = nn.ReLU()
            c_in = width
        side = (math.ceil(image_size / 4) - 3) // 2 + 1
        side = (side - 3) // 2 + 1
        if extra:
            layers[f"pool{2 + len(extra)}"] = nn.MaxPool2d(3, 2)
            side = (side - 3) // 2 + 1
        if side < 1:
            raise VisionlabError(f"caltech_cnn{variant} needs larger inputs (got {image_size})")
        self.features = nn.Sequential(layers)
        self.pool = grid_flatten(side)
        self.feature_dim = c_in * side * side
        self.head = nn.Sequential(
            OrderedDict(
                fc=nn.Linear(self.feature_dim, 128), relu=nn.ReLU(), classes=nn.Linear(128, num_classes)
            )
        )
        self._cam = f"relu{2 + len(extra)}"

    def cam_layer(self) -> nn.Module:
        return self.features.get_submodule(self._cam)
