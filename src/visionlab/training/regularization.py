"""Penalties, loss weights and input mixing that a recipe adds on top of the cross-entropy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
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


@dataclass
class Mixed:
    """A batch blended with a shuffled copy of itself: each input is ``share`` of its own and
    ``1 - share`` of its partner's, and so is its label."""

    inputs: torch.Tensor
    partners: torch.Tensor  # the partner's label of each input
    share: float


def mix_batch(inputs: torch.Tensor, targets: torch.Tensor, alpha: float) -> Mixed:
    """mixup (Zhang et al., 2018): one share ~ Beta(alpha, alpha) per batch, partners by permutation.

    Draws from numpy's and torch's global generators, which the epoch checkpoint saves: a resumed
    run mixes as an unbroken one would.
    """
    share = float(np.random.beta(alpha, alpha))
    order = torch.randperm(len(inputs), device=inputs.device)
    mixed = inputs.lerp(inputs[order], 1.0 - share)  # share x own + (1 - share) x partner's
    return Mixed(mixed, targets[order], share)
