"""Grad-CAM (Selvaraju et al., 2017) and Grad-CAM++ (Chattopadhay et al., 2018) for any model.

Implemented with a forward hook rather than a library: it needs only torch, and works the same for
a frozen base (gradients are requested on the activation itself, not on the weights). Both maps
come from one forward and one backward pass.

The explained score is the class logit (see :mod:`visionlab.explanations.scores` for the binary
net whose first logit is a constant 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from torch import nn

from visionlab.errors import VisionlabError
from visionlab.explanations.scores import (
    class_scores,
    evaluating,
    model_device,
    model_fixed_logits,
    probabilities,
)
from visionlab.models import Classifier

_EPS = 1e-7


def target_layer(
    model: Classifier, name: str | None, setting: str = "explain.target_layer"
) -> tuple[str, nn.Module]:
    """The layer named ``name``, or the model's last spatial layer; an unknown name is an error
    that names ``setting``, where the user gave it."""
    modules = dict(model.named_modules())
    if name is None:
        layer = model.cam_layer()
        found = next(n for n, m in modules.items() if m is layer)
        return found, layer
    if name not in modules:
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)][-5:]
        raise VisionlabError(
            f"{setting}: the model has no layer {name!r} (its last conv layers are: {', '.join(convs)})"
        )
    return name, modules[name]


@dataclass(frozen=True)
class ClassMaps:
    """Both heatmaps for one image and class, in [0, 1] at the image's size, and the softmax."""

    gradcam: np.ndarray
    gradcam_pp: np.ndarray
    probabilities: np.ndarray


def layer_activation_and_gradient(
    model: nn.Module, layer: nn.Module, image: torch.Tensor, class_index: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``layer``'s output for one CHW ``image``, d score / d output, and the logits (1, K)."""
    fixed = model_fixed_logits(model, image)  # before the hook: its forward pass must not be captured
    captured: dict[str, torch.Tensor] = {}

    def keep(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        if not isinstance(output, torch.Tensor):
            raise VisionlabError(
                f"explain: layer {type(_module).__name__} returns {type(output).__name__}, not a tensor; "
                "pick another explain.target_layer"
            )
        captured["activation"] = output

    handle = layer.register_forward_hook(keep)
    try:
        with evaluating(model), torch.enable_grad():
            batch = image.to(model_device(model)).unsqueeze(0).requires_grad_(True)
            logits = model(batch)
            if "activation" not in captured:
                raise VisionlabError("explain: the target layer never ran in the model's forward pass")
            activation = captured["activation"]
            score = class_scores(logits, class_index, fixed)[0]
            (gradient,) = torch.autograd.grad(score, activation)
    finally:
        handle.remove()
    if activation.dim() != 4 or activation.shape[-1] * activation.shape[-2] < 1:
        raise VisionlabError(
            f"explain: the target layer's output has shape {tuple(activation.shape[1:])}, not a spatial "
            "map (channels, height, width); pick a convolutional explain.target_layer"
        )
    return activation.detach(), gradient, logits.detach()


def _upsampled(cam: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    cam = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)[0, 0]
    peak = cam.max()
    return (cam / peak if peak > 0 else cam).float().cpu().numpy()


def gradcam_from(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """ReLU(sum_k w_k A_k), w_k the spatial mean of d score / d A_k: shape (1, 1, h, w)."""
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    return F.relu((weights * activation).sum(dim=1, keepdim=True))


def gradcam_pp_from(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++: per-position weights alpha = g^2 / (2 g^2 + sum(A) g^3) on ReLU(g).

    This is the usual closed form for an exponential score (as in the paper's and the
    pytorch-grad-cam implementations), which needs first-order gradients only.
    """
    g2 = gradient.pow(2)
    g3 = g2 * gradient
    total = activation.sum(dim=(2, 3), keepdim=True)
    alpha = g2 / (2 * g2 + total * g3 + _EPS)
    alpha = torch.where(gradient != 0, alpha, torch.zeros_like(alpha))
    weights = (alpha * F.relu(gradient)).sum(dim=(2, 3), keepdim=True)
    return F.relu((weights * activation).sum(dim=1, keepdim=True))


def class_maps(model: nn.Module, layer: nn.Module, image: torch.Tensor, class_index: int) -> ClassMaps:
    """Grad-CAM and Grad-CAM++ of ``class_index`` for one normalised CHW ``image``."""
    activation, gradient, logits = layer_activation_and_gradient(model, layer, image, class_index)
    size = tuple(image.shape[-2:])
    return ClassMaps(
        gradcam=_upsampled(gradcam_from(activation, gradient), size),
        gradcam_pp=_upsampled(gradcam_pp_from(activation, gradient), size),
        probabilities=probabilities(logits)[0],
    )


def grad_cam(model: nn.Module, layer: nn.Module, image: torch.Tensor, class_index: int) -> np.ndarray:
    """A [0, 1] heatmap of ``image``'s size: where ``layer`` saw evidence for ``class_index``.

    ``image`` is one normalised CHW tensor. The map is ReLU(sum_k w_k A_k), with w_k the
    spatial mean of d logit / d A_k, upsampled bilinearly.
    """
    return class_maps(model, layer, image, class_index).gradcam


def colour(heatmap: np.ndarray) -> np.ndarray:
    """The heatmap alone as uint8 RGB, with the jet colour map."""
    return (colormaps["jet"](heatmap)[..., :3] * 255).astype(np.uint8)


def overlay(rgb: np.ndarray, heatmap: np.ndarray, alpha: float) -> np.ndarray:
    """The coloured heatmap blended over the uint8 image with opacity ``alpha``."""
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    blended = (1 - alpha) * rgb.astype(np.float32) + alpha * colour(heatmap).astype(np.float32)
    return np.clip(blended, 0, 255).astype(np.uint8)
