"""What every model in the zoo offers the training, evaluation and explanation code."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn


class Classifier(nn.Module):
    """A backbone that ends in a feature vector, and a head that maps it to class logits.

    Splitting the two lets a frozen backbone's features be computed once and cached, and lets
    Grad-CAM find the last spatial layer by name.
    """

    # Input normalisation the weights expect, applied to pixels scaled to [0, 1].
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    in_channels: int = 3
    head: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        head_ids = {id(p) for p in self.head.parameters()}
        return (p for p in self.parameters() if id(p) not in head_ids)

    def cam_layer(self) -> nn.Module:
        """The last layer with a spatial output: Grad-CAM's default target."""
        raise NotImplementedError

    def l2_weights(self) -> Iterator[torch.Tensor]:
        """Kernels that the model's L2 penalty applies to (Keras' kernel_regularizer)."""
        return iter(())

    backbone_frozen: bool = False

    def freeze_backbone(self) -> None:
        for parameter in self.backbone_parameters():
            parameter.requires_grad_(False)
        self.backbone_frozen = True

    def train(self, mode: bool = True) -> Classifier:
        """A frozen backbone stays in eval mode: its batch-norm statistics must not drift."""
        super().train(mode)
        if mode and self.backbone_frozen:
            head = set(self.head.modules())
            for module in self.modules():
                if module is not self and module not in head:
                    module.eval()
        return self


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
