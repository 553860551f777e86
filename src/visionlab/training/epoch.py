"""One epoch of training and the validation loss, with the optimizer and LR schedule they use.

Reported losses are the plain cross-entropy (no L2, no label smoothing, no class weights), so every
recipe compares on the same scale; the objective that is optimised has all three. With mixup, the
training figures score each mixed input against both its labels, weighted by their shares.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from visionlab.params import TrainParams
from visionlab.runtime.inference import gather_outputs
from visionlab.training import distributed
from visionlab.training.regularization import mix_batch

Penalty = Callable[[], torch.Tensor | float]


def make_optimizer(parameters: list[nn.Parameter], settings: TrainParams, lr: float) -> torch.optim.Optimizer:
    if settings.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=settings.momentum, nesterov=settings.nesterov)
    return torch.optim.Adam(parameters, lr=lr)


def make_schedule(
    optimizer: torch.optim.Optimizer, settings: TrainParams, epochs: int, steps_per_epoch: int = 1
):
    """The recipe's LR schedule; ``cosine_batch`` counts optimiser steps (``steps_per_epoch`` each epoch)."""
    if settings.schedule in ("cosine", "cosine_batch"):
        steps = epochs * (steps_per_epoch if settings.schedule == "cosine_batch" else 1)
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(steps, 1), eta_min=settings.min_lr
        )
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


@dataclass(frozen=True)
class StepRecipe:
    """What every optimiser step of a fit computes, fixed for the whole fit.

    ``settings`` gives mixup and label smoothing; ``amp`` runs the forward pass in bfloat16 and
    ``channels_last`` feeds the batches in that memory format (as train_stage converted the model);
    ``class_weights`` and ``penalty`` (L2) complete the objective.
    """

    settings: TrainParams
    amp: bool
    channels_last: bool
    class_weights: torch.Tensor | None
    penalty: Penalty


def train_epoch(
    net: nn.Module,
    batches: DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    step: StepRecipe,
    *,
    desc: str,
    batch_schedule: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> EpochStats:
    """One epoch of optimisation steps on the objective (label smoothing, class weights and L2).

    ``batch_schedule`` steps after every optimiser step (``train.schedule: cosine_batch``).

    ``net`` may be a DistributedDataParallel wrapper: the figures are then summed over every rank.
    """
    settings = step.settings
    smoothing = settings.label_smoothing
    started = time.perf_counter()
    net.train()
    total_loss, correct, seen = 0.0, 0, 0
    bar = tqdm(batches, desc=desc, mininterval=1.0, disable=not distributed.world().is_main)
    for inputs, targets in bar:
        inputs = inputs.to(device, non_blocking=True)
        if step.channels_last and inputs.dim() == 4:  # as train_stage converted the model
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        targets = torch.as_tensor(targets).to(device, non_blocking=True)
        # (label, weight) pairs each input is scored against: its own, and with mixup its partner's
        labels: list[tuple[torch.Tensor, float]] = [(targets, 1.0)]
        if settings.mixup_alpha > 0:
            mixed = mix_batch(inputs, targets, settings.mixup_alpha)
            inputs, labels = mixed.inputs, [(targets, mixed.share), (mixed.partners, 1.0 - mixed.share)]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=step.amp):
            logits = net(inputs)
        logits = logits.float()
        objective = sum(
            weight * F.cross_entropy(logits, label, weight=step.class_weights, label_smoothing=smoothing)
            for label, weight in labels
        )
        objective = objective + step.penalty()
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        if batch_schedule is not None:
            batch_schedule.step()
        with torch.no_grad():
            predicted = logits.argmax(1)
            for label, weight in labels:
                total_loss += weight * F.cross_entropy(logits, label, reduction="sum").item()
                correct += weight * (predicted == label).sum().item()
        seen += len(targets)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}", refresh=False)
    if distributed.world().size > 1:
        total_loss, correct, seen = distributed.all_sum([total_loss, correct, seen], device)
        seen = int(seen)
    seconds = time.perf_counter() - started
    return EpochStats(total_loss / max(seen, 1), correct / max(seen, 1), seen, seconds)


def step_schedule(scheduler, watched: float) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(watched)
    elif scheduler is not None:
        scheduler.step()
