"""The fit loop's resume state: everything one epoch leaves behind that the next one needs.

Saved after every epoch (weights, optimizer, schedule, early-stopping counters, the result so far
and the RNG states), so a killed run that reloads it ends with the same weights as one that was
never interrupted. The file is written whole or not at all, and one written for other params or
data (another ``key``) is ignored.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


def capture_rng() -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class ResumeState:
    epoch: int  # the last finished epoch, counted within this fit call
    finished: bool  # the loop had ended (last epoch or early stop): nothing left to train
    model: dict
    optimizer: dict
    scheduler: dict | None
    best_state: dict  # the best epoch's weights, restored at the end
    waited: int  # epochs since the best one, for early stopping
    result: dict  # the loop's FitResult so far, as a plain dict
    rng: dict
    # Data-parallel runs: every rank's RNG state, in rank order (rank 0's is ``rng`` too).
    rng_per_rank: list[dict] | None = None

    def save(self, path: Path, key: str) -> None:
        """A kill during the write leaves the previous checkpoint, never half a file."""
        state = {"key": key, **{f.name: getattr(self, f.name) for f in fields(self)}}
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(path.name + ".tmp")
        torch.save(state, scratch)
        os.replace(scratch, path)

    @classmethod
    def load(cls, path: Path | None, key: str) -> ResumeState | None:
        """The state saved at ``path`` for ``key``; None when there is none to continue from."""
        if path is None or not path.is_file():
            return None
        try:
            # Our own file, but it holds numpy RNG state: a full unpickle, from a folder DVC does not sync.
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a file cut short by a crash during the very first save
            log.warning("%s: unreadable resume checkpoint (%s); starting over", path, exc)
            return None
        if state.get("key") != key:
            log.info("%s: written for other params or data; starting over", path)
            return None
        return cls(**{f.name: state[f.name] for f in fields(cls) if f.name in state})

    def restore(
        self,
        net: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        rank: int = 0,
    ) -> None:
        """Put the weights, optimizer, schedule and RNG (``rank``'s) back where the saved epoch left them."""
        net.load_state_dict(self.model)
        optimizer.load_state_dict(self.optimizer)
        if scheduler is not None:
            scheduler.load_state_dict(self.scheduler)
        restore_rng(self.rng_per_rank[rank] if self.rng_per_rank else self.rng)
