"""Rates for `visionlab plan`, measured here: each experiment's network on synthetic batches.

Each distinct network (architecture, input side, channels, classes, base mode and cut) is built
without its ImageNet weights (same cost, works offline) and timed the way the stages run it: in
bfloat16 autocast and channels-last where the stages would use them (``train.amp``), a real
training step (forward, backward, Adam update) of what trains, and, for a fine-tuned base with an
activation cache, the part below the cut and the cached top apart, on activations of the real shape.
Two warm-up batches, then up to ``MAX_REPEATS`` timed ones of ``PROBE_BATCH`` images (or the
recipe's batch if smaller), the fastest counted: short enough for every shipped experiment in
seconds on a CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from visionlab.models import build_model
from visionlab.models.base import CachedTop
from visionlab.params import Params
from visionlab.runtime.base_mode import base_mode
from visionlab.runtime.device import use_amp, use_amp_on_cached_top
from visionlab.training.planning import Counts, Rates

PROBE_BATCH = 8
WARMUP = 2
MAX_REPEATS = 5
TIME_PER_PROBE = 0.5  # seconds: stop repeating once a probe has taken this long


def _rate(step: Callable[[], None], images: int, device: torch.device) -> float:
    """Images per second of ``step`` over ``images`` images: its fastest call after a warm-up.

    The fastest, not the mean: on a CPU the first calls of a new shape build kernels and a busy
    machine adds spikes, neither of which a long stage run pays per batch.
    """

    def timed() -> float:
        started = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    for _ in range(WARMUP):  # allocation, kernel building, autotuning, lazy initialisation
        timed()
    best, spent = float("inf"), 0.0
    for _ in range(MAX_REPEATS):
        seconds = timed()
        best, spent = min(best, seconds), spent + seconds
        if spent > TIME_PER_PROBE:
            break
    return images / max(best, 1e-9)


def _inference(module: nn.Module, batch: torch.Tensor, device: torch.device, amp: bool) -> Callable[[], None]:
    def step() -> None:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            module(batch)

    return step


def _training(module: nn.Module, batch: torch.Tensor, classes: int, device: torch.device, amp: bool):
    trainable = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=1e-6)
    targets = torch.arange(len(batch), device=device) % classes

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = nn.functional.cross_entropy(module(batch).float(), targets)
        loss.backward()
        optimizer.step()

    return step


def _key(params: Params, experiment: str, counts: Counts) -> tuple:
    spec = params.model_of(experiment)
    cut = spec.unfreeze_from if spec.base == "finetune" and spec.activation_cache != "off" else None
    return (
        spec.arch,
        params.image_size_of(experiment),
        params.dataset_of(experiment).grayscale,
        counts.classes,
        spec.base,
        spec.unfreeze_from,
        cut,
        params.recipe_of(experiment).amp,
        min(params.recipe_of(experiment).batch_size, PROBE_BATCH),
    )


def measure(params: Params, experiment: str, counts: Counts, device: torch.device, cache: dict) -> Rates:
    """This experiment's rates; networks already timed (``cache``) are not timed again."""
    key = _key(params, experiment, counts)
    if key not in cache:
        cache[key] = _measure(params, experiment, counts, device)
    return cache[key]


def _measure(params: Params, experiment: str, counts: Counts, device: torch.device) -> Rates:
    spec = params.model_of(experiment)
    recipe = params.recipe_of(experiment)
    size, grayscale = params.image_size_of(experiment), params.dataset_of(experiment).grayscale
    model = build_model(
        spec.model_copy(update={"weights": "none"}), counts.classes, load_weights=False, grayscale=grayscale
    )
    model.to(device)
    amp = use_amp(device, recipe.amp)
    if amp:
        model = model.to(memory_format=torch.channels_last)
    n = min(recipe.batch_size, PROBE_BATCH)
    batch = torch.randn(n, model.in_channels, size, size, device=device)
    if amp:
        batch = batch.contiguous(memory_format=torch.channels_last)
    model.eval()
    forward = _rate(_inference(model, batch, device, amp), n, device)
    mode = base_mode(spec)
    part = mode.frozen_part(model)  # a fine-tuned base is unfrozen from its cut here
    if part is not None and not mode.trains_base:
        return Rates(forward, forward, featurize=_rate(_inference(part.lower, batch, device, amp), n, device))
    if part is not None and part.upper is not None:
        featurize = _rate(_inference(part.lower, batch, device, amp), n, device)
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            activations = part.lower(batch).float()
        top = CachedTop(part.upper, model.head)
        top_amp = use_amp_on_cached_top(device, recipe.amp)
        top_forward = _rate(_inference(top, activations, device, top_amp), n, device)
        top.train()
        train = _rate(_training(top, activations, counts.classes, device, top_amp), n, device)
        return Rates(forward, train, featurize=featurize, top=top_forward)
    model.train()
    return Rates(forward, _rate(_training(model, batch, counts.classes, device, amp), n, device))
