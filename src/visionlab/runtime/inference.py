"""Run a model over a loader and collect logits: shared by validation, evaluation and features."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from visionlab.runtime.device import use_amp


@torch.no_grad()
def gather_outputs(
    fn: Callable[[torch.Tensor], torch.Tensor],
    batches: DataLoader,
    device: torch.device,
    desc: str | None = None,
    amp: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs of ``fn`` on every batch (float32, on the CPU) and the labels, in loader order.

    ``amp`` None means bfloat16 autocast wherever the device supports it.
    """
    outputs, labels = [], []
    amp = use_amp(device) if amp is None else amp
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        for inputs, targets in tqdm(batches, desc=desc, disable=desc is None, mininterval=1.0):
            outputs.append(fn(inputs.to(device, non_blocking=True)).float().cpu())
            labels.append(torch.as_tensor(targets))
    if not outputs:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.cat(outputs), torch.cat(labels)
