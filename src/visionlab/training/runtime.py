"""Seeds and devices: the parts of a run that must be pinned for it to repeat."""

from __future__ import annotations

import logging
import random

import numpy as np
import torch

from visionlab.errors import VisionlabError

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def select_device(setting: str, key: str = "train.device") -> torch.device:
    """``auto`` takes CUDA when present; ``cuda`` without a GPU is an error, not a silent CPU run.

    ``key`` is the params.yaml setting the choice came from, for the error message.
    """
    if setting == "cuda" and not torch.cuda.is_available():
        raise VisionlabError(f"{key}: cuda was requested but no CUDA device is available; set auto or cpu")
    if setting == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def use_amp(device: torch.device, setting: str = "auto") -> bool:
    """Mixed precision on CUDA only (train.amp: auto): bfloat16 needs no loss scaling."""
    return setting == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
