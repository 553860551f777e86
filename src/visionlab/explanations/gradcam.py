"""Grad-CAM (Selvaraju et al., 2017) for any model of the zoo, on a chosen layer.

Implemented with two hooks rather than a library: it needs only torch, and works the same for a
frozen base (gradients are requested on the activation itself, not on the weights).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from torch import nn

from visionlab.errors import VisionlabError
from visionlab.models import Classifier


def target_layer(model: Classifier, name: str | None) -> tuple[str, nn.Module]:
    """The layer named ``name`` (explain.target_layer), or the model's last spatial layer."""
    modules = dict(model.named_modules())
    if name is None:
        layer = model.cam_layer()
        found = next(n for n, m in modules.items() if m is layer)
        return found, layer
    if name not in modules:
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)][-5:]
        raise VisionlabError(
            f"explain.target_layer: the model has no layer {name!r} "
            f"(its last conv layers are: {', '.join(convs)})"
        )
    return name, modules[name]


def grad_cam(model: nn.Module, layer: nn.Module, image: torch.Tensor, class_index: int) -> np.ndarray:
    """A [0, 1] heatmap of ``image``'s size: where ``layer`` saw evidence for ``class_index``.

    ``image`` is one normalised CHW tensor. The map is ReLU(sum_k w_k A_k), with w_k the
    spatial mean of d logit / d A_k, upsampled bilinearly.
    """
    captured: dict[str, torch.Tensor] = {}

    def keep(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        output.retain_grad() if output.requires_grad else output.requires_grad_(True)
        captured["activation"] = output

    handle = layer.register_forward_hook(keep)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            batch = image.unsqueeze(0).requires_grad_(True)
            logits = model(batch)
            activation = captured["activation"]
            (gradient,) = torch.autograd.grad(logits[0, class_index], activation)
    finally:
        handle.remove()
        model.train(was_training)
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation.detach()).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=image.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    peak = cam.max()
    return (cam / peak if peak > 0 else cam).numpy()


def colour(heatmap: np.ndarray) -> np.ndarray:
    """The heatmap alone as uint8 RGB, with the jet colour map."""
    return (colormaps["jet"](heatmap)[..., :3] * 255).astype(np.uint8)


def overlay(rgb: np.ndarray, heatmap: np.ndarray, alpha: float) -> np.ndarray:
    """The coloured heatmap blended over the uint8 image with opacity ``alpha``."""
    blended = (1 - alpha) * rgb.astype(np.float32) + alpha * colour(heatmap).astype(np.float32)
    return np.clip(blended, 0, 255).astype(np.uint8)
