"""Base modes as one strategy: what featurize caches, which phases train, what runs on a cache.

``model.base`` says how a network's base is treated: ``trainable`` (everything trains on
images), ``frozen`` (the base runs once, in featurize, and the head trains on its pooled
features) or ``finetune`` (the head alone, then the blocks from ``unfreeze_from`` on, on the
activations featurize cached at that cut). Featurize, train, evaluate and the planner ask the
:class:`BaseMode` of a spec; none of them branches on the mode's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from visionlab.params import ModelParams, TrainParams

if TYPE_CHECKING:  # torch stays unloaded for the planner's arithmetic (training/planning.py)
    import torch
    from torch import nn

    from visionlab.models import Classifier


@dataclass(frozen=True)
class PhasePlan:
    """One phase of training, as the mode lays it out (the loop's ``Phase`` adds how it runs)."""

    name: str  # the history's phase column and the checkpoint file's name
    epochs: int  # 0: nothing to train in this phase (its unfreeze still happens)
    lr: float
    first_epoch: int = 1
    unfreeze: str | None = None  # make the base trainable from this block as the phase begins
    hold_batch_norm: bool = False  # its batch norms stay on their running statistics


@dataclass(frozen=True)
class FrozenPart:
    """What featurize runs once over each image.

    ``lower`` maps images to what is cached; with ``upper`` (a fine-tuned base cut in two) the cache
    holds ``lower``'s activations and ``upper`` turns them into the pooled features as well.
    """

    lower: Callable[[torch.Tensor], torch.Tensor]
    upper: nn.Module | None = None


class BaseMode:
    """``trainable``: the whole network trains on images, one phase, nothing cached."""

    caches = False  # featurize builds the model and may cache something
    trains_base = True  # some phase trains the base's weights (frozen: only the head ever trains)
    needs_cache = False  # train cannot run without featurize's cache (else: images when absent)
    NOTHING_CACHED = "the base is trainable: nothing to cache"  # featurize's note

    def __init__(self, spec: ModelParams):
        self.spec = spec

    def phases(self, recipe: TrainParams) -> list[PhasePlan]:
        return [PhasePlan("train", recipe.epochs, recipe.lr)]

    def frozen_part(self, model: Classifier) -> FrozenPart | None:
        """What featurize caches of ``model`` (already in its trained-from state), or None: nothing."""
        return None

    def nothing_cached(self) -> str:
        """featurize's note when :meth:`frozen_part` is None."""
        return self.NOTHING_CACHED

    def cached_nets(self, model: Classifier) -> list[tuple[str, nn.Module]]:
        """Per phase that can train on the cache: (the cache's tensor name, the sub-network it feeds).

        Evaluate scores cached splits with the last entry: the part the final phase trained.
        """
        return []


class FrozenBase(BaseMode):
    """``frozen``: featurize runs the base once; the head trains on the pooled features."""

    caches = True
    needs_cache = True
    trains_base = False

    def frozen_part(self, model: Classifier) -> FrozenPart | None:
        return FrozenPart(model.forward_features)

    def cached_nets(self, model: Classifier) -> list[tuple[str, nn.Module]]:
        return [("features", model.head)]


class FinetunedBase(BaseMode):
    """``finetune``: the head on the frozen base, then everything from ``unfreeze_from`` on.

    Featurize caches the activations entering ``unfreeze_from`` (below it nothing trains and batch
    norm runs on its running statistics, so they are fixed) unless ``activation_cache: off`` or the
    architecture cannot be cut there; then both phases train on images.
    """

    caches = True

    def phases(self, recipe: TrainParams) -> list[PhasePlan]:
        head = min(recipe.head_epochs, recipe.epochs)
        return [
            PhasePlan("head", head, recipe.lr),
            PhasePlan(
                "finetune",
                recipe.epochs - head,
                recipe.lr * recipe.finetune_lr_factor,
                first_epoch=head + 1,
                unfreeze=self.spec.unfreeze_from,
                hold_batch_norm=recipe.finetune_batch_norm == "frozen",
            ),
        ]

    def _cut(self, model: Classifier) -> tuple[nn.Module, nn.Module] | None:
        if self.spec.activation_cache == "off" or not self.spec.unfreeze_from:
            return None
        return model.split_at(self.spec.unfreeze_from)

    def frozen_part(self, model: Classifier) -> FrozenPart | None:
        model.unfreeze_from(self.spec.unfreeze_from)  # the frozen part: eval mode, as in phase two
        cut = self._cut(model)
        return None if cut is None else FrozenPart(*cut)

    def nothing_cached(self) -> str:
        spec = self.spec
        return (
            f"activation_cache: {spec.activation_cache}; {spec.arch} cannot be cut at "
            f"{spec.unfreeze_from}: phase two trains on images"
        )

    def cached_nets(self, model: Classifier) -> list[tuple[str, nn.Module]]:
        from visionlab.models.base import CachedTop

        cut = self._cut(model)
        if cut is None:
            return []
        return [("features", model.head), ("activations", CachedTop(cut[1], model.head))]


_MODES: dict[str, type[BaseMode]] = {"trainable": BaseMode, "frozen": FrozenBase, "finetune": FinetunedBase}


def mode_of(base: str) -> type[BaseMode]:
    """The strategy class of a ``model.base`` value (its class attributes need no spec)."""
    return _MODES[base]


def base_mode(spec: ModelParams) -> BaseMode:
    return mode_of(spec.base)(spec)
