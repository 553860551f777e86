"""Penalties and loss weights that a recipe adds on top of the cross-entropy."""

from __future__ import annotations

from collections.abc import Callable

import torch

from visionlab.models import Classifier
from visionlab.params import ModelParams


def l2_penalty(model: Classifier, spec: ModelParams) -> Callable[[], torch.Tensor | float]:
    """Keras-style kernel_regularizer per layer group: ``spec.l2`` on the backbone's (or the
    from-scratch net's) kernels, ``spec.head.l2`` on the new head's dense kernels.

    Frozen kernels are skipped: a constant term would only slow every step down.
    """
    groups = [(spec.l2, model.l2_weights), (spec.head.l2, getattr(model, "head_l2_weights", lambda: ()))]
    groups = [(rate, kernels) for rate, kernels in groups if rate > 0]

    def penalty() -> torch.Tensor | float:
        total: torch.Tensor | float = 0.0
        for rate, kernels in groups:
            trainable = [w for w in kernels() if w.requires_grad]
            if trainable:
                total = total + rate * sum(w.pow(2).sum() for w in trainable)
        return total

    return penalty


def balanced_class_weights(labels: list[int] | torch.Tensor, num_classes: int) -> torch.Tensor:
    """``n / (k * n_c)`` per class, as scikit-learn's ``class_weight="balanced"``."""
    counts = torch.bincount(torch.as_tensor(labels, dtype=torch.long), minlength=num_classes).float()
    weights = counts.sum() / (num_classes * counts.clamp(min=1))
    return torch.where(counts > 0, weights, torch.zeros_like(weights))
