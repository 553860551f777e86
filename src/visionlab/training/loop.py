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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from visionlab.errors import VisionlabError
from visionlab.params import TrainParams
from visionlab.training import distributed
from visionlab.training.inference import gather_outputs
from visionlab.training.resume import ResumeState, capture_rng
from visionlab.training.runtime import use_amp

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

Penalty = Callable[[], torch.Tensor | float]


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


def make_optimizer(parameters: list[nn.Parameter], settings: TrainParams, lr: float) -> torch.optim.Optimizer:
    if settings.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=settings.momentum, nesterov=settings.nesterov)
    return torch.optim.Adam(parameters, lr=lr)


def make_schedule(optimizer: torch.optim.Optimizer, settings: TrainParams, epochs: int):
    if settings.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=settings.min_lr)
    if settings.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            factor=settings.lr_plateau_factor,
            patience=settings.lr_plateau_patience,
            min_lr=settings.min_lr,
        )
    return None


def evaluate_loss(
    net: nn.Module, batches: DataLoader, device: torch.device, amp: bool = False
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``net`` over ``batches`` in eval mode (over every rank's shard)."""
    net.eval()
    logits, labels = gather_outputs(net, batches, device, amp=amp)
    if distributed.world().size > 1:
        loss_sum = F.cross_entropy(logits, labels, reduction="sum").item() if len(labels) else 0.0
        correct = (logits.argmax(1) == labels).sum().item()
        loss_sum, correct, count = distributed.all_sum([loss_sum, correct, len(labels)], device)
        return (loss_sum / count, correct / count) if count else (float("nan"), float("nan"))
    if len(labels) == 0:
        return float("nan"), float("nan")
    loss = F.cross_entropy(logits, labels).item()
    accuracy = (logits.argmax(1) == labels).float().mean().item()
    return loss, accuracy


@dataclass
class EpochStats:
    """One pass over the training batches: plain cross-entropy and accuracy, as reported."""

    loss: float
    accuracy: float
    seen: int
    seconds: float


def train_epoch(
    net: nn.Module,
    batches: DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    settings: TrainParams,
    *,
    amp: bool,
    class_weights: torch.Tensor | None,
    penalty: Penalty,
    desc: str,
) -> EpochStats:
    """One epoch of optimisation steps on the objective (label smoothing, class weights and L2).

    ``net`` may be a DistributedDataParallel wrapper: the figures are then summed over every rank.
    """
    started = time.perf_counter()
    net.train()
    total_loss, correct, seen = 0.0, 0, 0
    bar = tqdm(batches, desc=desc, mininterval=1.0, disable=not distributed.world().is_main)
    for inputs, targets in bar:
        inputs = inputs.to(device, non_blocking=True)
        if amp and inputs.dim() == 4:  # channels-last goes with AMP (train_stage converts the model)
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        targets = torch.as_tensor(targets).to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = net(inputs)
        logits = logits.float()
        objective = F.cross_entropy(
            logits, targets, weight=class_weights, label_smoothing=settings.label_smoothing
        )
        objective = objective + penalty()
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        with torch.no_grad():
            total_loss += F.cross_entropy(logits, targets, reduction="sum").item()
            correct += (logits.argmax(1) == targets).sum().item()
        seen += len(targets)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}", refresh=False)
    if distributed.world().size > 1:
        total_loss, correct, seen = distributed.all_sum([total_loss, correct, seen], device)
        seen = int(seen)
    seconds = time.perf_counter() - started
    return EpochStats(total_loss / max(seen, 1), correct / max(seen, 1), seen, seconds)


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


def _step_schedule(scheduler, watched: float) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(watched)
    elif scheduler is not None:
        scheduler.step()


def fit(
    net: nn.Module,
    train_batches: DataLoader,
    val_batches: DataLoader,
    settings: TrainParams,
    device: torch.device,
    *,
    epochs: int | None = None,
    lr: float | None = None,
    penalty: Penalty = lambda: 0.0,
    class_weights: torch.Tensor | None = None,
    checkpoint: Path | None = None,
    checkpoint_key: str = "",
    phase: str = "train",
    first_epoch: int = 1,
    on_epoch: Callable[[dict], None] = lambda row: None,
    desc: str = "train",
    best_so_far: tuple[float, int] | None = None,
) -> FitResult:
    """Train ``net`` in place and leave it holding the best epoch's weights.

    ``epochs`` and ``lr`` default to the recipe's; ``penalty`` returns the L2 term added to the
    objective; ``first_epoch`` numbers the rows when this is a second phase of one run, and
    ``best_so_far`` (the first phase's best loss and epoch, whose weights ``net`` holds) is the
    mark to beat: a second phase that never does leaves the first phase's best in place.
    """
    epochs = settings.epochs if epochs is None else epochs
    lr = settings.lr if lr is None else lr
    here = distributed.world()
    net.to(device)
    trainable = [p for p in net.parameters() if p.requires_grad]
    if not trainable:
        raise VisionlabError(f"{desc}: the model has no trainable parameters (is its whole base frozen?)")
    # Trains through DDP (gradients averaged each step); ``net`` itself holds the weights.
    stepped = distributed.wrap(net, device)
    shards = train_batches.sampler if hasattr(train_batches.sampler, "set_epoch") else None
    optimizer = make_optimizer(trainable, settings, lr)
    scheduler = make_schedule(optimizer, settings, epochs)
    amp = use_amp(device, settings.amp)
    weights = class_weights.to(device) if class_weights is not None else None
    has_val = len(val_batches.dataset) > 0
    if not has_val:
        log.warning("no validation images: early stopping and the LR schedule watch the train loss")
    patience = settings.early_stopping_patience
    generator = train_batches.generator

    result = FitResult()
    if best_so_far is not None:
        result.best_loss, result.best_epoch = best_so_far
    best_state = copy.deepcopy(net.state_dict())
    waited = 0
    start_epoch = 1
    saved = ResumeState.load(checkpoint, checkpoint_key)
    if saved is not None:
        saved.restore(net, optimizer, scheduler, here.rank)
        best_state, waited = saved.best_state, saved.waited
        result = FitResult(**saved.result)
        result.resumed_from = saved.epoch
        start_epoch = saved.epoch + 1
        log.info("%s: resuming after epoch %d from %s", desc, saved.epoch, checkpoint)
        if saved.finished:
            net.load_state_dict(best_state)
            return result

    finished = False
    for epoch in range(start_epoch, epochs + 1):
        if generator is not None:
            # The shuffle order depends on the epoch alone, so a resumed run sees the same batches.
            generator.manual_seed(settings.seed * 100_003 + first_epoch + epoch)
        if shards is not None:
            shards.set_epoch(first_epoch + epoch)  # a new shuffle of the shards, the same on resume
        epoch_start = time.perf_counter()
        stats = train_epoch(
            stepped,
            train_batches,
            optimizer,
            device,
            settings,
            amp=amp,
            class_weights=weights,
            penalty=penalty,
            desc=f"{desc} {phase} epoch {epoch}/{epochs}",
        )
        result.samples_seen += stats.seen
        result.seconds += stats.seconds
        if has_val:
            distributed.sync_buffers(net)
            val_loss, val_accuracy = evaluate_loss(net, val_batches, device, amp)
        else:
            val_loss, val_accuracy = float("nan"), float("nan")
        watched = val_loss if has_val else stats.loss
        row = _history_row(
            first_epoch + epoch - 1,
            phase,
            stats,
            (val_loss, val_accuracy),
            optimizer.param_groups[0]["lr"],
            time.perf_counter() - epoch_start,
        )
        result.history.append(row)
        _step_schedule(scheduler, watched)
        if watched < result.best_loss:
            result.best_loss, result.best_epoch, waited = watched, row["epoch"], 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            waited += 1
            if patience > 0 and waited >= patience:
                result.stopped_early = True
                finished = True
                log.info("early stopping after epoch %d; best was %d", row["epoch"], result.best_epoch)
        finished = finished or epoch == epochs
        rng = distributed.gather(capture_rng()) if checkpoint is not None else []
        if checkpoint is not None and here.is_main:
            ResumeState(
                epoch=epoch,
                finished=finished,
                model=net.state_dict(),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict() if scheduler is not None else None,
                best_state=best_state,
                waited=waited,
                result=asdict(result),
                rng=rng[0],
                rng_per_rank=rng if here.size > 1 else None,
            ).save(checkpoint, checkpoint_key)
        on_epoch(row)
        if finished:
            break
    if result.best_epoch == 0:
        raise VisionlabError(
            f"{desc}: the loss was never finite (diverged from the first epoch); lower the recipe's lr"
        )
    net.load_state_dict(best_state)
    log.info("%s: trained %.1fs (%.1f samples/s)", desc, result.seconds, result.samples_per_second)
    return result
