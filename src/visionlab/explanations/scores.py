"""What an explanation explains: the score of one class, computed the same way by every method.

The score of class ``c`` is its logit ``z_c``. A logit that does not depend on the input (the
binary cats-and-dogs net outputs ``[0, z]`` from one sigmoid logit) has no gradient, so its
explanations would be blank; for such a *fixed* logit the score is the margin
``z_c - mean(z_j, j != c)`` instead (``-z`` for the binary net's first class), which is what makes
the model lean towards ``c``.

A logit is fixed when it is bit-for-bit equal over a batch of different inputs: an image and a
*probe* (the image mirrored, plus noise). Being fixed is a property of the architecture, so the
answer is kept per model object and costs one extra forward pass per model, not per explanation.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

PROBE_SEED = 20240
_FIXED: weakref.WeakKeyDictionary[nn.Module, frozenset[int]] = weakref.WeakKeyDictionary()


def model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode (batch norm frozen, no dropout), restored to its mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def with_probe(image: torch.Tensor) -> torch.Tensor:
    """A batch of two: ``image`` (one CHW tensor) and a different input that reveals fixed logits."""
    generator = torch.Generator().manual_seed(PROBE_SEED)
    noise = torch.randn(image.shape, generator=generator).to(image.device, image.dtype)
    return torch.stack([image, image.flip(-1) + noise])


def fixed_logits(logits: torch.Tensor) -> frozenset[int]:
    """Columns of a (batch >= 2, classes) logit matrix that are identical on every row."""
    if logits.shape[0] < 2:
        return frozenset()
    constant = (logits == logits[:1]).all(dim=0)
    return frozenset(int(i) for i in torch.nonzero(constant).flatten())


def model_fixed_logits(model: nn.Module, example: torch.Tensor) -> frozenset[int]:
    """Which of ``model``'s logits ignore the input, tried on one CHW ``example`` and its probe."""
    known = _FIXED.get(model)
    if known is None:
        with evaluating(model), torch.no_grad():
            known = fixed_logits(model(with_probe(example.to(model_device(model)))))
        _FIXED[model] = known
    return known


def class_scores(logits: torch.Tensor, class_index: int, fixed: frozenset[int]) -> torch.Tensor:
    """Per row, the score explained for ``class_index``: its logit, or the margin if it is fixed."""
    score = logits[:, class_index]
    if class_index not in fixed or logits.shape[1] < 2:
        return score
    others = torch.cat([logits[:, :class_index], logits[:, class_index + 1 :]], dim=1)
    return score - others.mean(dim=1)


def probabilities(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.detach().float(), dim=-1).cpu().numpy()
