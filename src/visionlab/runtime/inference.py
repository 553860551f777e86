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
    channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs of ``fn`` on every batch (float32, on the CPU, in the usual memory layout) and the
    labels, in loader order.

    ``amp`` None means bfloat16 autocast wherever the device supports it. ``channels_last`` feeds
    image batches channels-last, for a module already converted to it (``runtime/folding.py``
    says why featurize and evaluate do: 2-3x the images/s of a bfloat16 pass on this CPU).
    """
    outputs, labels = [], []
    amp = use_amp(device) if amp is None else amp
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        for inputs, targets in tqdm(batches, desc=desc, disable=desc is None, mininterval=1.0):
            inputs = inputs.to(device, non_blocking=True)
            if channels_last and inputs.dim() == 4:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            outputs.append(fn(inputs).float().contiguous().cpu())
            labels.append(torch.as_tensor(targets))
    if not outputs:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.cat(outputs), torch.cat(labels)
