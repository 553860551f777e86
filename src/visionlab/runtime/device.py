"""Seeds and devices: the parts of a run that must be pinned for it to repeat."""

from __future__ import annotations

import functools
import logging
import random
from pathlib import Path

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


# CPU flags that mean native bfloat16 arithmetic (Linux /proc/cpuinfo names): without them
# PyTorch emulates bfloat16 and autocast would make a CPU slower, not faster.
CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def cpu_supports_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); False where unknown."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False  # not Linux, or no /proc: autocast stays off rather than risk a slowdown
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(CPU_BF16_FLAGS & set(line.split(":", 1)[-1].split()))
    return False


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_supports_bf16()


def use_amp(device: torch.device, setting: str = "auto") -> bool:
    """bfloat16 autocast (no loss scaling needed) for train.amp.

    ``auto``: where the device computes bfloat16 natively, CUDA or a CPU with AVX512-BF16/AMX
    (benchmarks/results/cpu_bf16.md: same accuracy, faster). ``bf16``: always, also on a CPU that
    emulates it (slow but correct: tests run the autocast path on every machine). ``off``: float32.
    """
    if setting == "off":
        return False
    if setting == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise VisionlabError("train.amp: bf16 was requested but this GPU lacks bfloat16; set auto or off")
        return True
    return bf16_supported(device)


def use_amp_on_cached_top(device: torch.device, setting: str = "auto") -> bool:
    """Autocast for phase two of ``finetune`` on cached activations (the top blocks, at 14x14).

    ``auto`` trains them in float32 on a CPU: there bfloat16 autocast made a Lite0 training step
    from blocks.5 about 2x slower (649 against 320 ms for batch 32, channels-last), while on whole
    images it is 1.6x faster (benchmarks/results/cpu_bf16.md). ``bf16`` and CUDA keep autocast.
    """
    if setting == "auto" and device.type == "cpu":
        return False
    return use_amp(device, setting)
