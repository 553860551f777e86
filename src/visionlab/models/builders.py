"""The builders the architecture catalog names (``visionlab.params.architectures``).

Each is called as ``build(spec, num_classes, channels, pretrained, initialise)``; the heavy
modules are imported inside, so building one network never loads the others' code.
"""

from __future__ import annotations

from visionlab.models.base import Classifier
from visionlab.params import ModelParams


def handmade_cnn(
    spec: ModelParams, num_classes: int, channels: int, pretrained: bool, initialise: bool
) -> Classifier:
    from visionlab.models.handmade_cnn import HandmadeCNN

    return HandmadeCNN(num_classes, spec.dropout, spec.dense_dropout, channels)


def simple_cnn(
    spec: ModelParams, num_classes: int, channels: int, pretrained: bool, initialise: bool
) -> Classifier:
    from visionlab.models import study_cnns

    size = spec.image_size or study_cnns.SimpleCNN.default_image_size
    return study_cnns.SimpleCNN(
        num_classes, channels, spec.dropout, spec.dense_dropout, spec.batch_norm, size
    )


def catsdogs_cnn(
    spec: ModelParams, num_classes: int, channels: int, pretrained: bool, initialise: bool
) -> Classifier:
    from visionlab.models import study_cnns

    size = spec.image_size or study_cnns.CatsDogsCNN.default_image_size
    return study_cnns.CatsDogsCNN(num_classes, channels, size)


def cifar_base(
    spec: ModelParams, num_classes: int, channels: int, pretrained: bool, initialise: bool
) -> Classifier:
    from visionlab.models import cifar_cnns

    return cifar_cnns.CifarBase(num_classes, channels, spec.dropout, spec.batch_norm, spec.image_size or 32)


def cifar_inception(
    spec: ModelParams, num_classes: int, channels: int, pretrained: bool, initialise: bool
) -> Classifier:
    from visionlab.models import cifar_cnns

    return cifar_cnns.CifarInception(num_classes, channels, spec.dropout, spec.batch_norm)


def cifar_residual(
    spec: ModelParams, num_classes: int, channels: int, pretrained: bool, initialise: bool
) -> Classifier:
    from visionlab.models import cifar_cnns

    return cifar_cnns.CifarResidual(num_classes, channels, spec.dropout, spec.batch_norm)


def caltech_cnn(
    spec: ModelParams, num_classes: int, channels: int, pretrained: bool, initialise: bool
) -> Classifier:
    """The Caltech study's three CNNs, ``caltech_cnn1`` to ``caltech_cnn3``: the digit picks one."""
    from visionlab.models import study_cnns

    return study_cnns.CaltechCNN(int(spec.arch[-1]), num_classes, channels, spec.image_size or 224)


def efficientnet_lite(
    spec: ModelParams, num_classes: int, channels: int, pretrained: bool, initialise: bool
) -> Classifier:
    from visionlab.models.efficientnet_lite import EfficientNetLite

    return EfficientNetLite(num_classes, pretrained, spec.head, spec.arch)


def torchvision_backbone(
    spec: ModelParams, num_classes: int, channels: int, pretrained: bool, initialise: bool
) -> Classifier:
    from visionlab.models.torchvision_backbones import build_transfer_model

    return build_transfer_model(spec.arch, num_classes, spec.head, pretrained, initialise=initialise)
