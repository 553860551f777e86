"""What one ``fit`` call is told: the phase it trains, and the hooks every phase of a run shares.

A run is one phase (``trainable``, ``frozen``) or two (``finetune``: the head alone, then the
unfrozen top). What differs between the two is a :class:`Phase`; the L2 term, the class weights,
the resume key, the per-epoch logging and the run's name stay the same and travel as one
:class:`RunHooks`, so neither the loop nor its callers pass a dozen loose keywords.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from visionlab.training.epoch import Penalty


def _no_penalty() -> float:
    return 0.0


def _ignore(row: dict) -> None:
    pass


@dataclass(frozen=True)
class Phase:
    """One phase of a run.

    ``epochs`` and ``lr`` default to the recipe's; ``first_epoch`` numbers the history rows when
    this is a second phase of one run, and ``best_so_far`` (the first phase's best loss and epoch,
    whose weights the model holds) is the mark to beat: a second phase that never beats it leaves
    the first phase's best in place. ``checkpoint`` is the file the phase saves after each epoch
    and resumes from; ``amp`` defaults to what ``train.amp`` gives on the device, and
    ``channels_last`` to ``amp``.
    """

    name: str = "train"
    epochs: int | None = None
    lr: float | None = None
    first_epoch: int = 1
    best_so_far: tuple[float, int] | None = None
    checkpoint: Path | None = None
    amp: bool | None = None
    channels_last: bool | None = None


@dataclass(frozen=True)
class RunHooks:
    """What every phase of one run shares.

    ``penalty`` returns the L2 term added to the objective; ``class_weights`` weigh the loss (never
    the reported one); ``checkpoint_key`` names the params a checkpoint may be resumed under;
    ``on_epoch`` sees each history row as it is made; ``desc`` names the run in logs and errors.
    """

    penalty: Penalty = _no_penalty
    class_weights: torch.Tensor | None = None
    checkpoint_key: str = ""
    on_epoch: Callable[[dict], None] = _ignore
    desc: str = "train"


ONE_PHASE = Phase()  # a run of one phase: the recipe's epochs and lr, no checkpoint
NO_HOOKS = RunHooks()
