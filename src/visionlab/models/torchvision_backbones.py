"""Transfer-learning models on torchvision backbones, with ImageNet weights loaded by weights.py.

Each torchvision network is built with ``weights=None``, given its ImageNet weights under
torchvision's own key names, then taken apart: its convolutional trunk becomes ``backbone`` (an
``nn.Sequential`` whose names read like the papers' and Keras' layer names, e.g.
``backbone.layer4`` for ResNet50 or ``backbone.block5_conv1`` for VGG, so ``unfreeze_from`` and
``explain.target_layer`` name blocks naturally), its ImageNet classifier is dropped, and a new
``head`` is put on a global pool. With ``head.native`` VGG and AlexNet keep their classifier and
retrain its last layer(s) instead.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

import torch
import torchvision.models as tvm
from torch import nn

from visionlab.errors import VisionlabError
from visionlab.models.base import Classifier, dense_kernels, kernels
from visionlab.models.heads import GlobalPool, build_head
from visionlab.models.weights import load_imagenet_weights
from visionlab.params import HeadParams

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TransferClassifier(Classifier):
    """``head(pool(backbone(x)))`` around a torchvision trunk."""

    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(self, backbone: nn.Sequential, pool: nn.Module, head: nn.Module, feature_dim: int, cam: str):
        super().__init__()
        self.backbone = backbone
        self.pool = pool  # parameter-free: global pooling, or nothing when the trunk ends flat
        self.head = head
        self.feature_dim = feature_dim
        self._cam = cam

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.backbone(x))

    def cam_layer(self) -> nn.Module:
        return self.get_submodule(self._cam)

    def l2_weights(self) -> Iterator[torch.Tensor]:
        return kernels(self.backbone)

    def head_l2_weights(self) -> Iterator[torch.Tensor]:
        return dense_kernels(self.head)


class InceptionV3Classifier(TransferClassifier):
    # The Google weights were trained on [-1, 1] inputs; torchvision's transform_input=True
    # converts ImageNet-normalised input to that. We run with transform_input=False and normalise
    # with 0.5/0.5 directly: the same numbers, without a hidden step inside the network.
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)
    default_image_size = 299


def _new_head(head: HeadParams, feature_dim: int, num_classes: int) -> tuple[nn.Module, nn.Module]:
    return GlobalPool(head.pool), build_head(head, feature_dim, num_classes)


def _resnet50(num_classes: int, head: HeadParams, pretrained: bool, initialise: bool) -> TransferClassifier:
    net = tvm.resnet50(weights=None)
    if pretrained:
        load_imagenet_weights(net, "resnet50")
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    backbone = nn.Sequential(OrderedDict((name, getattr(net, name)) for name in names))
    return TransferClassifier(backbone, *_new_head(head, 2048, num_classes), 2048, "backbone.layer4")


def _mobilenet_v2(
    num_classes: int, head: HeadParams, pretrained: bool, initialise: bool
) -> TransferClassifier:
    net = tvm.mobilenet_v2(weights=None)
    if pretrained:
        load_imagenet_weights(net, "mobilenet_v2")
    features = list(net.features)
    # Keras' numbering: stem conv, inverted-residual blocks 0 ("expanded_conv") to 16, final 1x1 conv.
    layers = OrderedDict([("stem", features[0])])
    layers.update((f"block{index}", block) for index, block in enumerate(features[1:-1]))
    layers["top"] = features[-1]
    return TransferClassifier(
        nn.Sequential(layers), *_new_head(head, 1280, num_classes), 1280, "backbone.top"
    )


def _inception_v3(
    num_classes: int, head: HeadParams, pretrained: bool, initialise: bool
) -> TransferClassifier:
    # aux_logits=True only so the ImageNet state dict (which has AuxLogits) loads; the auxiliary
    # classifier is then dropped: our forward has a single output.
    net = tvm.inception_v3(weights=None, aux_logits=True, transform_input=False, init_weights=initialise)
    if pretrained:
        load_imagenet_weights(net, "inception_v3")
    skipped = {"AuxLogits", "avgpool", "dropout", "fc"}
    backbone = nn.Sequential(OrderedDict((n, m) for n, m in net.named_children() if n not in skipped))
    return InceptionV3Classifier(backbone, *_new_head(head, 2048, num_classes), 2048, "backbone.Mixed_7c")


def _vgg_features(features: nn.Sequential) -> OrderedDict[str, nn.Module]:
    """torchvision's flat ``features`` renamed as Keras names them: block5_conv3, block5_pool..."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    block, conv = 1, 0
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            conv += 1
            layers[f"block{block}_conv{conv}"] = layer
        elif isinstance(layer, nn.ReLU):
            layers[f"block{block}_relu{conv}"] = layer
        else:
            layers[f"block{block}_pool"] = layer
            block, conv = block + 1, 0
    return layers


def _vgg(
    arch: str, num_classes: int, head: HeadParams, pretrained: bool, initialise: bool
) -> TransferClassifier:
    net = getattr(tvm, arch)(weights=None, init_weights=initialise)
    if pretrained:
        load_imagenet_weights(net, arch)
    layers = _vgg_features(net.features)
    cam = "backbone." + [name for name in layers if "_relu" in name][-1]
    if not head.native:
        return TransferClassifier(nn.Sequential(layers), *_new_head(head, 512, num_classes), 512, cam)
    # Keep ImageNet's fc1/fc2 (and their dropout); retrain only the class layer.
    classifier = net.classifier
    layers.update(
        avgpool=net.avgpool,
        flatten=nn.Flatten(),
        fc1=classifier[0],
        fc1_relu=classifier[1],
        fc1_dropout=classifier[2],
        fc2=classifier[3],
        fc2_relu=classifier[4],
        fc2_dropout=classifier[5],
    )
    new_head = nn.Sequential(OrderedDict(predictions=nn.Linear(4096, num_classes)))
    return TransferClassifier(nn.Sequential(layers), nn.Identity(), new_head, 4096, cam)


def _alexnet(num_classes: int, head: HeadParams, pretrained: bool, initialise: bool) -> TransferClassifier:
    net = tvm.alexnet(weights=None)
    if pretrained:
        load_imagenet_weights(net, "alexnet")
    # Caffe's names: conv1, relu1, pool1, ..., conv5, relu5, pool5.
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    conv = 0
    for layer in net.features:
        conv += isinstance(layer, nn.Conv2d)
        kind = "conv" if isinstance(layer, nn.Conv2d) else "relu" if isinstance(layer, nn.ReLU) else "pool"
        layers[f"{kind}{conv}"] = layer
    if not head.native:
        return TransferClassifier(
            nn.Sequential(layers), *_new_head(head, 256, num_classes), 256, "backbone.relu5"
        )
    # The study's variant: keep fc6 from ImageNet, replace fc7 by a 2048-wide layer and fc8 by
    # the classes; the head is everything after fc6's ReLU.
    classifier = net.classifier
    layers.update(
        avgpool=net.avgpool, flatten=nn.Flatten(), drop6=classifier[0], fc6=classifier[1], relu6=classifier[2]
    )
    new_head = nn.Sequential(
        OrderedDict(
            drop7=classifier[3],
            fc7=nn.Linear(4096, 2048),
            relu7=nn.ReLU(inplace=True),
            fc8=nn.Linear(2048, num_classes),
        )
    )
    return TransferClassifier(nn.Sequential(layers), nn.Identity(), new_head, 4096, "backbone.relu5")


def build_transfer_model(
    arch: str, num_classes: int, head: HeadParams, pretrained: bool, initialise: bool = True
) -> TransferClassifier:
    """``arch`` with ImageNet weights when ``pretrained``; ``initialise=False`` skips torchvision's
    slow custom initialisation when the weights will be overwritten anyway (weights or checkpoint)."""
    if head.native and (head.hidden or head.batch_norm):
        raise VisionlabError(
            "head.native keeps the network's own classifier: head.hidden and head.batch_norm do not apply"
        )
    if arch in ("vgg16", "vgg19"):
        return _vgg(arch, num_classes, head, pretrained, initialise)
    builders = {
        "resnet50": _resnet50,
        "mobilenet_v2": _mobilenet_v2,
        "inception_v3": _inception_v3,
        "alexnet": _alexnet,
    }
    return builders[arch](num_classes, head, pretrained, initialise)
