"""Guided backpropagation (Springenberg et al., 2015) and guided Grad-CAM, for every rectifier.

Guided backpropagation changes the backward pass of each rectifier: the gradient passes only where
the rectifier's input was in its linear range (``x > 0``; ``0 < x < 6`` for ReLU6) *and* the
incoming gradient is positive. Swapping ``nn.ReLU`` modules would miss the functional calls that
real models make (torchvision's Inception calls ``F.relu`` inside ``BasicConv2d``; MobileNetV2's
``nn.ReLU6`` calls ``F.hardtanh``), so :func:`guided_rectifiers` installs a
:class:`~torch.overrides.TorchFunctionMode` for the forward pass instead: every call of ``relu``,
``relu_``, ``relu6``, ``hardtanh`` with a lower bound of 0, ``threshold`` and ``clamp`` with a
lower bound of 0 -- as ``nn`` module, ``F`` function, ``torch`` function or tensor method, in
place or not -- is routed through a custom autograd function with the guided backward. Nothing
about the model is modified, so nothing needs restoring.

Smooth activations (GELU, SiLU, leaky ReLU) have no guided rule and keep their ordinary gradient.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from visionlab.explanations.gradcam import grad_cam
from visionlab.explanations.scores import class_scores, evaluating, model_device, model_fixed_logits

log = logging.getLogger(__name__)
_WARNED: set[str] = set()  # model classes already warned about, so a gallery logs it once


class _GuidedRectifier(torch.autograd.Function):
    """``where(lo < x < hi, x, clamp)`` forward; guided backward: grad > 0 inside (lo, hi) only."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, low: float, high: float | None, fill: float | None
    ) -> torch.Tensor:
        inside = x > low if high is None else (x > low) & (x < high)
        ctx.save_for_backward(inside)
        if fill is not None:  # threshold: values at or below the threshold become ``fill``
            return torch.where(inside, x, torch.full_like(x, fill))
        return x.clamp(min=low, max=high)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        (inside,) = ctx.saved_tensors
        return grad.clamp(min=0) * inside, None, None, None


def _arg(args: tuple, kwargs: dict, position: int, name: str, default: Any) -> Any:
    if len(args) > position:
        return args[position]
    return kwargs.get(name, default)


# Each rectifier: (lower bound, upper bound, fill value, in place) from the call's arguments, or
# None when the call is not a rectifier (a hardtanh from -1, a clamp above some epsilon).
_Rule = Callable[[tuple, dict], tuple[float, float | None, float | None, bool] | None]


def _relu_rule(inplace_default: bool) -> _Rule:
    return lambda args, kwargs: (0.0, None, None, bool(_arg(args, kwargs, 1, "inplace", inplace_default)))


def _relu6_rule(inplace_default: bool) -> _Rule:
    return lambda args, kwargs: (0.0, 6.0, None, bool(_arg(args, kwargs, 1, "inplace", inplace_default)))


def _hardtanh_rule(inplace_default: bool) -> _Rule:
    def rule(args: tuple, kwargs: dict) -> tuple[float, float | None, float | None, bool] | None:
        low = float(_arg(args, kwargs, 1, "min_val", -1.0))
        high = float(_arg(args, kwargs, 2, "max_val", 1.0))
        inplace = bool(_arg(args, kwargs, 3, "inplace", inplace_default))
        return (0.0, high, None, inplace) if low == 0 else None

    return rule


def _threshold_rule(inplace_default: bool) -> _Rule:
    def rule(args: tuple, kwargs: dict) -> tuple[float, float | None, float | None, bool] | None:
        threshold = float(_arg(args, kwargs, 1, "threshold", 0.0))
        value = float(_arg(args, kwargs, 2, "value", 0.0))
        inplace = bool(_arg(args, kwargs, 3, "inplace", inplace_default))
        return (threshold, None, value, inplace)

    return rule


def _clamp_rule(inplace: bool) -> _Rule:
    def rule(args: tuple, kwargs: dict) -> tuple[float, float | None, float | None, bool] | None:
        low = _arg(args, kwargs, 1, "min", None)
        high = _arg(args, kwargs, 2, "max", None)
        numbers = all(v is None or isinstance(v, int | float) for v in (low, high))
        if not numbers or low is None or float(low) != 0:
            return None
        return (0.0, None if high is None else float(high), None, inplace)

    return rule


def _rules() -> dict[Callable, _Rule]:
    rules: dict[Callable, _Rule] = {
        F.relu: _relu_rule(False),
        torch.relu: _relu_rule(False),
        torch.Tensor.relu: _relu_rule(False),
        F.relu_: _relu_rule(True),
        torch.relu_: _relu_rule(True),
        torch.Tensor.relu_: _relu_rule(True),
        F.relu6: _relu6_rule(False),
        F.hardtanh: _hardtanh_rule(False),
        F.hardtanh_: _hardtanh_rule(True),
        torch._C._nn.hardtanh: _hardtanh_rule(False),
        torch._C._nn.hardtanh_: _hardtanh_rule(True),
        F.threshold: _threshold_rule(False),
        torch.threshold: _threshold_rule(False),
        torch.threshold_: _threshold_rule(True),
        torch.clamp: _clamp_rule(False),
        torch.Tensor.clamp: _clamp_rule(False),
        torch.clamp_: _clamp_rule(True),
        torch.Tensor.clamp_: _clamp_rule(True),
        torch.clamp_min: _clamp_rule(False),
        torch.Tensor.clamp_min: _clamp_rule(False),
        torch.Tensor.clamp_min_: _clamp_rule(True),
    }
    for name, inplace in (("relu6", False), ("relu6_", True)):
        function = getattr(torch._C._nn, name, None)
        if function is not None:
            rules[function] = _relu6_rule(inplace)
    return rules


class guided_rectifiers(TorchFunctionMode):  # lower case: used like torch.no_grad
    """Within this block, every rectifier the forward pass calls gets the guided backward.

    ``calls`` counts the rectifier calls rerouted, so a caller can tell when a model has none
    (its guided backpropagation would equal the plain gradient).
    """

    def __init__(self) -> None:
        super().__init__()
        self.rules = _rules()
        self.calls = 0

    def __torch_function__(self, func: Callable, types: tuple, args: tuple = (), kwargs: dict | None = None):
        kwargs = kwargs or {}
        rule = self.rules.get(func)
        bounds = rule(args, kwargs) if rule is not None else None
        if bounds is None or not isinstance(args[0], torch.Tensor) or not args[0].is_floating_point():
            return func(*args, **kwargs)
        low, high, fill, inplace = bounds
        x = args[0]
        self.calls += 1
        y = _GuidedRectifier.apply(x, low, high, fill)
        if inplace:
            # Callers of an in-place rectifier may keep using ``x``: write the result into it. The
            # guided function saved only its mask, so the write cannot invalidate its backward.
            return x.copy_(y)
        return y


def _input_gradient(model: nn.Module, image: torch.Tensor, class_index: int, guided: bool) -> torch.Tensor:
    fixed = model_fixed_logits(model, image)
    with evaluating(model), torch.enable_grad():
        batch = image.to(model_device(model)).unsqueeze(0).requires_grad_(True)
        if guided:
            with guided_rectifiers() as mode:
                logits = model(batch)
            if mode.calls == 0 and type(model).__name__ not in _WARNED:
                _WARNED.add(type(model).__name__)
                log.warning(
                    "guided backpropagation: %s calls no rectifier; its result is the plain gradient",
                    type(model).__name__,
                )
        else:
            logits = model(batch)
        score = class_scores(logits, class_index, fixed)[0]
        (gradient,) = torch.autograd.grad(score, batch)
    return gradient[0].detach().cpu()


def guided_backprop(model: nn.Module, image: torch.Tensor, class_index: int) -> torch.Tensor:
    """Guided backpropagation of the class score to the CHW ``image``: same shape as the image."""
    return _input_gradient(model, image, class_index, guided=True)


def guided_grad_cam(
    model: nn.Module,
    layer: nn.Module,
    image: torch.Tensor,
    class_index: int,
    cam: np.ndarray | None = None,
    guided: torch.Tensor | None = None,
) -> torch.Tensor:
    """Guided backpropagation times the upsampled Grad-CAM map: fine detail, class-discriminative.

    ``cam`` and ``guided`` may be passed when already computed for the same image and class.
    """
    if cam is None:
        cam = grad_cam(model, layer, image, class_index)
    if guided is None:
        guided = guided_backprop(model, image, class_index)
    return guided * torch.from_numpy(cam).to(guided.dtype)


def gradient_image(gradient: torch.Tensor) -> np.ndarray:
    """A CHW gradient as a uint8 picture: 0 is mid-grey, +-3 standard deviations span the range.

    One channel gives a grey HxW image, three give RGB, any other count is summed to grey.
    """
    g = gradient.detach().float()
    if g.shape[0] not in (1, 3):
        g = g.sum(dim=0, keepdim=True)
    spread = g.std()
    g = (g - g.mean()) / (spread if spread > 0 else 1.0)
    pixels = ((g * 0.15 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return pixels[..., 0] if pixels.shape[2] == 1 else pixels
