"""The architectures ``model.arch`` may name: one entry each, the only list of them.

An entry says what params validation and the planner need without building anything (whether
ImageNet weights exist and where they come from, the input side they were trained at, whether the
network keeps its own classifier for ``head.native``) and names its builder: a function of
``visionlab.models.builders``, or ``module:function`` for one outside visionlab, imported only
when a model is built (``visionlab.models.factory.build_model``), so validating params.yaml
never loads torch.

A builder is called as ``build(spec, num_classes, channels, pretrained, initialise)`` and returns a
:class:`~visionlab.models.base.Classifier`: ``channels`` is 1 for grey data sets on networks
trained from scratch (pretrained ones take 3), ``pretrained`` loads the ImageNet weights,
``initialise=False`` may skip a slow initialisation that loaded weights overwrite anyway.

Adding an architecture is one :func:`register` call (or one entry below) plus its params; see
docs/development.md ("Adding an architecture").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

WeightsSource = Literal["torchvision", "efficientnet_lite"]


@dataclass(frozen=True)
class Architecture:
    name: str
    # A function of visionlab.models.builders by name, or "module:function" for one defined elsewhere
    # (a plain name keeps this base layer from naming a module above it).
    builder: str
    weights: WeightsSource | None = None  # where its ImageNet weights come from; None: from scratch only
    native_size: int | None = None  # the input side its weights were trained at, unless params set one
    native_head: bool = False  # keeps its own ImageNet classifier, retrained with head.native

    @property
    def pretrainable(self) -> bool:
        return self.weights is not None


_CATALOG: dict[str, Architecture] = {}


def register(architecture: Architecture) -> None:
    if architecture.name in _CATALOG:
        raise ValueError(f"architecture {architecture.name!r} is already registered")
    _CATALOG[architecture.name] = architecture


def unregister(name: str) -> None:
    _CATALOG.pop(name, None)


def architecture(name: str) -> Architecture:
    return _CATALOG[name]


def names() -> tuple[str, ...]:
    return tuple(_CATALOG)


for _entry in (
    # The studies' own networks, trained from scratch.
    Architecture("handmade_cnn", "handmade_cnn"),
    Architecture("simple_cnn", "simple_cnn"),
    Architecture("catsdogs_cnn", "catsdogs_cnn"),
    Architecture("cifar_base", "cifar_base"),
    Architecture("cifar_inception", "cifar_inception"),
    Architecture("cifar_residual", "cifar_residual"),
    Architecture("caltech_cnn1", "caltech_cnn"),
    Architecture("caltech_cnn2", "caltech_cnn"),
    Architecture("caltech_cnn3", "caltech_cnn"),
    # Transfer backbones. EfficientNet-Lite scales its input side with its size.
    Architecture("efficientnet_lite0", "efficientnet_lite", "efficientnet_lite"),
    Architecture("efficientnet_lite1", "efficientnet_lite", "efficientnet_lite", 240),
    Architecture("efficientnet_lite2", "efficientnet_lite", "efficientnet_lite", 260),
    Architecture("mobilenet_v2", "torchvision_backbone", "torchvision"),
    Architecture("vgg16", "torchvision_backbone", "torchvision", native_head=True),
    Architecture("vgg19", "torchvision_backbone", "torchvision", native_head=True),
    Architecture("alexnet", "torchvision_backbone", "torchvision", native_head=True),
    Architecture("inception_v3", "torchvision_backbone", "torchvision"),
    Architecture("resnet50", "torchvision_backbone", "torchvision"),
):
    register(_entry)
