"""The fit loop: Adam or SGD, cross-entropy plus L2, an LR schedule, early stopping, resume.

Early stopping watches the validation loss and restores the weights of the best epoch, like
Keras' ``EarlyStopping(restore_best_weights=True)``. Reported losses are the plain cross-entropy
(no L2, no label smoothing, no class weights), so every recipe compares on the same scale.

With a ``checkpoint`` path, the loop saves its whole state after every epoch
(:class:`~visionlab.training.resume.ResumeState`) and a rerun continues from there: a killed run
resumed this way ends with the same weights as one that was never interrupted.

In a data-parallel worker (``training/distributed.py``) the same loop trains the model under
DistributedDataParallel on this rank's shard: the epoch's loss and accuracy, train and validation,
are summed over every rank, so early stopping and the plateau schedule decide alike everywhere,
and rank 0 alone saves the checkpoint (with every rank's RNG state).
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from visionlab.errors import VisionlabError
from visionlab.params import TrainParams
from visionlab.runtime.device import use_amp
from visionlab.training import distributed
from visionlab.training.epoch import (
    EpochStats,
    StepRecipe,
    evaluate_loss,
    make_optimizer,
    make_schedule,
    step_schedule,
    train_epoch,
)
from visionlab.training.phase import NO_HOOKS, ONE_PHASE, Phase, RunHooks
from visionlab.training.resume import ResumeState, capture_rng

log = logging.getLogger(__name__)

HISTORY_COLUMNS = [
    "epoch",
    "phase",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "seconds",
]


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_loss: float = float("inf")
    stopped_early: bool = False
    seconds: float = 0.0
    samples_seen: int = 0
    resumed_from: int = 0  # epochs taken from a checkpoint instead of being trained again

    @property
    def samples_per_second(self) -> float:
        return self.samples_seen / self.seconds if self.seconds else 0.0


def _history_row(
    epoch: int, phase: str, stats: EpochStats, val: tuple[float, float], lr: float, seconds: float
) -> dict:
    """One row of history.csv (HISTORY_COLUMNS), logged as it is made."""
    row = {
        "epoch": epoch,
        "phase": phase,
        "train_loss": stats.loss,
        "train_accuracy": stats.accuracy,
        "val_loss": val[0],
        "val_accuracy": val[1],
        "lr": lr,
        "seconds": seconds,
    }
    (log.info if distributed.world().is_main else log.debug)(
        "epoch %d: train loss %.4f acc %.4f | val loss %.4f acc %.4f",
        epoch,
        stats.loss,
        stats.accuracy,
        val[0],
        val[1],
    )
    return row


@dataclass
class _Epochs:
    """What every epoch of one ``fit`` call uses, fixed for the whole call."""

    net: nn.Module
    stepped: nn.Module  # ``net``, wrapped in DDP when data-parallel
    train_batches: DataLoader
    val_batches: DataLoader
    optimizer: torch.optim.Optimizer
    scheduler: object
    device: torch.device
    step: StepRecipe

    @property
    def settings(self) -> TrainParams:
        return self.step.settings

    @property
    def has_val(self) -> bool:
        return len(self.val_batches.dataset) > 0

    @property
    def per_batch(self) -> bool:
        """The schedule steps after every optimiser step, not once an epoch."""
        return self.settings.schedule == "cosine_batch"

    def reseed(self, epoch: int) -> None:
        """The shuffle order depends on the epoch alone, so a resumed run sees the same batches."""
        if self.train_batches.generator is not None:
            self.train_batches.generator.manual_seed(self.settings.seed * 100_003 + epoch)
        if hasattr(self.train_batches.sampler, "set_epoch"):
            self.train_batches.sampler.set_epoch(epoch)  # a new shuffle of the shards, same on resume
        if hasattr(self.train_batches.dataset, "set_epoch"):
            self.train_batches.dataset.set_epoch(epoch)  # redrawn degradations: this epoch's, on resume too

    def run(self, label: str) -> tuple[EpochStats, float, float]:
        """Train one epoch, then score the validation split: (train stats, val loss, val accuracy)."""
        stats = train_epoch(
            self.stepped,
            self.train_batches,
            self.optimizer,
            self.device,
            self.step,
            desc=label,
            batch_schedule=self.scheduler if self.per_batch else None,  # type: ignore[arg-type]
        )
        if not self.has_val:
            return stats, float("nan"), float("nan")
        distributed.sync_buffers(self.net)
        return stats, *evaluate_loss(self.net, self.val_batches, self.device, self.step.amp)


@dataclass
class _Best:
    """Early stopping's memory: the best weights so far and the epochs waited since."""

    result: FitResult
    state: dict
    waited: int = 0

    def observe(self, watched: float, epoch: int, net: nn.Module, patience: int) -> bool:
        """Record one epoch's watched loss; True when patience has run out."""
        if watched < self.result.best_loss:
            self.result.best_loss, self.result.best_epoch, self.waited = watched, epoch, 0
            self.state = copy.deepcopy(net.state_dict())
            return False
        self.waited += 1
        if patience > 0 and self.waited >= patience:
            self.result.stopped_early = True
            if distributed.world().is_main:
                log.info("early stopping after epoch %d; best was %d", epoch, self.result.best_epoch)
            return True
        return False


def _resume(best: _Best, epochs: _Epochs, checkpoint: Path | None, key: str, desc: str) -> tuple[int, bool]:
    """Load a saved state into ``best`` and the model: (first epoch to train, whether fit was done)."""
    saved = ResumeState.load(checkpoint, key)
    if saved is None:
        return 1, False
    saved.restore(epochs.net, epochs.optimizer, epochs.scheduler, distributed.world().rank)
    best.state, best.waited = saved.best_state, saved.waited
    best.result = FitResult(**saved.result)
    best.result.resumed_from = saved.epoch
    log.info("%s: resuming after epoch %d from %s", desc, saved.epoch, checkpoint)
    return saved.epoch + 1, saved.finished


def _save(best: _Best, epochs: _Epochs, checkpoint: Path, key: str, epoch: int, finished: bool) -> None:
    """Save the whole state after ``epoch`` (rank 0 writes; every rank hands over its RNG)."""
    here = distributed.world()
    rng = distributed.gather(capture_rng())
    if not here.is_main:
        return
    ResumeState(
        epoch=epoch,
        finished=finished,
        model=epochs.net.state_dict(),
        optimizer=epochs.optimizer.state_dict(),
        scheduler=epochs.scheduler.state_dict() if epochs.scheduler is not None else None,
        best_state=best.state,
        waited=best.waited,
        result=asdict(best.result),
        rng=rng[0],
        rng_per_rank=rng if here.size > 1 else None,
    ).save(checkpoint, key)


def _epoch(run: _Epochs, best: _Best, number: int, label: str, phase: str) -> tuple[dict, bool]:
    """Train and score epoch ``number`` of the run, and let early stopping see it.

    Returns its history row and whether patience has run out.
    """
    run.reseed(number + 1)  # fit has always seeded epoch n with n + 1: saved checkpoints resume alike
    started = time.perf_counter()
    stats, val_loss, val_accuracy = run.run(label)
    best.result.samples_seen += stats.seen
    best.result.seconds += stats.seconds
    watched = val_loss if run.has_val else stats.loss
    row = _history_row(
        number,
        phase,
        stats,
        (val_loss, val_accuracy),
        run.optimizer.param_groups[0]["lr"],
        time.perf_counter() - started,
    )
    best.result.history.append(row)
    if not run.per_batch:
        step_schedule(run.scheduler, watched)
    return row, best.observe(watched, number, run.net, run.settings.early_stopping_patience)


def fit(
    net: nn.Module,
    train_batches: DataLoader,
    val_batches: DataLoader,
    settings: TrainParams,
    device: torch.device,
    phase: Phase = ONE_PHASE,
    hooks: RunHooks = NO_HOOKS,
) -> FitResult:
    """Train ``net`` in place for one :class:`Phase` and leave it holding the best epoch's weights."""
    amp = use_amp(device, settings.amp) if phase.amp is None else phase.amp
    total = settings.epochs if phase.epochs is None else phase.epochs
    desc = hooks.desc
    net.to(device)
    trainable = [p for p in net.parameters() if p.requires_grad]
    if not trainable:
        raise VisionlabError(f"{desc}: the model has no trainable parameters (is its whole base frozen?)")
    optimizer = make_optimizer(trainable, settings, settings.lr if phase.lr is None else phase.lr)
    run = _Epochs(
        net=net,
        stepped=distributed.wrap(net, device),  # gradients averaged each step; ``net`` holds the weights
        train_batches=train_batches,
        val_batches=val_batches,
        optimizer=optimizer,
        scheduler=make_schedule(optimizer, settings, total, len(train_batches)),
        device=device,
        step=StepRecipe(
            settings=settings,
            amp=amp,
            channels_last=amp if phase.channels_last is None else phase.channels_last,
            class_weights=hooks.class_weights.to(device) if hooks.class_weights is not None else None,
            penalty=hooks.penalty,
        ),
    )
    if not run.has_val:
        log.warning("no validation images: early stopping and the LR schedule watch the train loss")
    best = _Best(FitResult(), copy.deepcopy(net.state_dict()))
    if phase.best_so_far is not None:
        best.result.best_loss, best.result.best_epoch = phase.best_so_far
    start, finished = _resume(best, run, phase.checkpoint, hooks.checkpoint_key, desc)
    for row in best.result.history:  # epochs from the checkpoint: a killed run may not have logged its last
        hooks.on_epoch(row)

    for epoch in range(start, total + 1):
        if finished:
            break
        label = f"{desc} {phase.name} epoch {epoch}/{total}"
        row, stop = _epoch(run, best, phase.first_epoch + epoch - 1, label, phase.name)
        finished = stop or epoch == total
        if phase.checkpoint is not None:
            _save(best, run, phase.checkpoint, hooks.checkpoint_key, epoch, finished)
        hooks.on_epoch(row)
    if best.result.best_epoch == 0:
        raise VisionlabError(
            f"{desc}: the loss was never finite (diverged from the first epoch); lower the recipe's lr"
        )
    net.load_state_dict(best.state)
    log.info("%s: trained %.1fs (%.1f samples/s)", desc, best.result.seconds, best.result.samples_per_second)
    return best.result
