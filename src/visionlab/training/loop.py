"""The fit loop: Adam or SGD, cross-entropy plus L2, ReduceLROnPlateau, early stopping.

Early stopping watches the validation loss and restores the weights of the best epoch, like
Keras' ``EarlyStopping(restore_best_weights=True)``. Reported losses are the cross-entropy alone,
so models with and without L2 compare on the same scale.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from visionlab.errors import VisionlabError
from visionlab.params import TrainParams
from visionlab.training.inference import collect
from visionlab.training.runtime import use_amp

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"]


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    samples_seen: int = 0

    @property
    def samples_per_second(self) -> float:
        return self.samples_seen / self.seconds if self.seconds else 0.0


def make_optimizer(parameters: list[nn.Parameter], settings: TrainParams) -> torch.optim.Optimizer:
    if settings.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=settings.lr, momentum=settings.momentum)
    return torch.optim.Adam(parameters, lr=settings.lr)


def evaluate_loss(net: nn.Module, batches: DataLoader, device: torch.device) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``net`` over ``batches`` in eval mode."""
    net.eval()
    logits, labels = collect(net, batches, device)
    if len(labels) == 0:
        return float("nan"), float("nan")
    loss = F.cross_entropy(logits, labels).item()
    accuracy = (logits.argmax(1) == labels).float().mean().item()
    return loss, accuracy


def fit(
    net: nn.Module,
    train_batches: DataLoader,
    val_batches: DataLoader,
    settings: TrainParams,
    device: torch.device,
    *,
    l2: float = 0.0,
    l2_weights: Callable[[], Iterable[torch.Tensor]] = lambda: (),
    on_epoch: Callable[[dict], None] = lambda row: None,
    desc: str = "train",
) -> FitResult:
    """Train ``net`` in place and leave it holding the best epoch's weights."""
    net.to(device)
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = make_optimizer(trainable, settings)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        factor=settings.lr_plateau_factor,
        patience=settings.lr_plateau_patience,
        min_lr=settings.min_lr,
    )
    amp = use_amp(device)
    has_val = len(val_batches.dataset) > 0
    if not has_val:
        log.warning("no validation images: early stopping and the LR schedule watch the train loss")
    result = FitResult()
    best_loss = float("inf")
    best_state = copy.deepcopy(net.state_dict())
    waited = 0
    started = time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        epoch_start = time.perf_counter()
        net.train()
        total_loss, correct, seen = 0.0, 0, 0
        bar = tqdm(train_batches, desc=f"{desc} epoch {epoch}/{settings.epochs}", mininterval=1.0)
        for inputs, targets in bar:
            inputs = inputs.to(device, non_blocking=True)
            targets = torch.as_tensor(targets).to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = net(inputs)
                loss = F.cross_entropy(logits.float(), targets)
            objective = loss
            if l2 > 0:
                objective = loss + l2 * sum(w.pow(2).sum() for w in l2_weights())
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            optimizer.step()
            total_loss += loss.item() * len(targets)
            correct += (logits.argmax(1) == targets).sum().item()
            seen += len(targets)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}", refresh=False)
        train_seconds = time.perf_counter() - epoch_start
        result.samples_seen += seen
        result.seconds += train_seconds
        train_loss, train_accuracy = total_loss / max(seen, 1), correct / max(seen, 1)
        val_loss, val_accuracy = (
            evaluate_loss(net, val_batches, device)
            if has_val
            else (
                float("nan"),
                float("nan"),
            )
        )
        watched = val_loss if has_val else train_loss
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - epoch_start,
        }
        result.history.append(row)
        on_epoch(row)
        log.info(
            "epoch %d: train loss %.4f acc %.4f | val loss %.4f acc %.4f",
            epoch,
            train_loss,
            train_accuracy,
            val_loss,
            val_accuracy,
        )
        scheduler.step(watched)
        if watched < best_loss:
            best_loss, result.best_epoch, waited = watched, epoch, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            waited += 1
            if waited >= max(settings.early_stopping_patience, 1):
                result.stopped_early = True
                log.info("early stopping after epoch %d; best was %d", epoch, result.best_epoch)
                break
    if result.best_epoch == 0:
        raise VisionlabError(
            f"{desc}: the loss was never finite (diverged from the first epoch); lower train.lr"
        )
    net.load_state_dict(best_state)
    log.info("trained for %.1fs (%.1f samples/s)", time.perf_counter() - started, result.samples_per_second)
    return result
