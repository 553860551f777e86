"""Rates for `visionlab plan`, measured here: each experiment's network on synthetic batches.

Each distinct network (architecture, input side, base mode and cut; not its classes or grey input,
which change a layer at either end only) is built without its ImageNet weights (same cost, works
offline) and timed the way the stages run it: at the stages' own batch sizes (a training step at
the recipe's ``batch_size``, inference at ``evaluate.batch_size``: on a CPU the images/s of one net
differ up to 2x between batch sizes), in bfloat16 autocast and channels-last where the stages would
use them (``train.amp``), inference with batch norms folded (as featurize and evaluate score), a
real training step (forward, backward, Adam update) of what trains, and, for a fine-tuned base with
an activation cache, the part below the cut and the cached top apart, on activations of the real
shape. Warm-up calls on two images, then timed calls of the full batch until ``TIME_PER_PROBE``
seconds have passed (at most ``MAX_REPEATS``), the fastest counted (:func:`enough`); a slow
training step is timed on half its batch (``SLOW_HALF_STEP``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from visionlab.params import Params
from visionlab.runtime.base_mode import base_mode
from visionlab.runtime.degrade import TrainDegradations
from visionlab.runtime.device import use_amp, use_amp_on_cached_top
from visionlab.training import plan_reading
from visionlab.training.plan_counts import Counts
from visionlab.training.planning import Rates

WARMUP = 1
WARMUP_IMAGES = 2  # images per warm-up call (see _rate)
# Tried at 115971f: 0.1 s or 3 calls saved `plan --retime` about 1.5 s, but left the mid-sized nets
# on their slow first full-batch calls (the warm-up's 2 images do not warm a batch's shapes), and
# estimates came out 1.3-2x slower (cifar-best: 1.44 of its measured seconds, 0.78 at 0.2 s or 4 calls).
MAX_REPEATS = 4
TIME_PER_PROBE = 0.2  # seconds: stop repeating once a probe has taken this long
# The first full-batch call is the slowest (benchmarks/results/probe_spread.md: 1.0-1.5x the next
# ones), but timing a second one where the first spent the budget cost `plan --retime` 4.3 s
# (16.0 -> 20.3 s over every study) without moving the estimates beyond the 1.4x by which fresh
# processes differ anyway: one call of a large batch is kept.
MIN_REPEATS = 1
LONG_CALL = 1.0  # with MIN_REPEATS above 1: a call this long is timed once all the same
# A training step (a whole net's, a cached top's) is timed on half the recipe's batch when that
# half alone takes this long: a net that large runs as many images/s on 16 images as on 32
# (benchmarks/results/probe_batch.md, train-full), and its one full call would cost twice the seconds.
# Below it the half call is spent (cheap), and the full batch is timed as before: a small net's
# rate depends on the batch. Inference keeps the full batch: at half it reads up to 1.5x faster.
SLOW_HALF_STEP = TIME_PER_PROBE / 2
HALVE_SLOW_STEPS = True


def _rate(
    step: Callable[[int | None], None], images: int, device: torch.device, halve_if_slow: bool = False
) -> float:
    """Images per second of ``step`` over ``images`` images: its fastest call after a warm-up.

    ``step(n)`` runs the first ``n`` images of its batch (None: all). The warm-up runs
    ``WARMUP_IMAGES`` of them: what a first call pays (weight layouts, thread pools, lazy
    initialisation, Adam's state) is paid by any batch, and a full one of a large net costs seconds.
    The fastest timed call counts, not the mean: a busy machine adds spikes a long stage run
    spreads out. With ``halve_if_slow``, a first call on half the images that takes
    ``SLOW_HALF_STEP`` or longer makes every timed call a half one (see ``SLOW_HALF_STEP``).
    """

    def timed(n: int | None = None) -> float:
        started = time.perf_counter()
        step(n)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    for _ in range(WARMUP):
        timed(WARMUP_IMAGES)
    calls: list[float] = []
    n, timed_images = None, images
    if halve_if_slow and HALVE_SLOW_STEPS and images >= 2:
        half = timed(images // 2)
        if half >= SLOW_HALF_STEP:
            calls, n, timed_images = [half], images // 2, images // 2
    while not enough(calls):
        calls.append(timed(n))
    return timed_images / max(min(calls), 1e-9)


def enough(
    calls: list[float],
    min_repeats: int | None = None,
    budget: float | None = None,
    max_repeats: int | None = None,
) -> bool:
    """Whether the full-batch calls timed so far (``calls``, seconds each) settle the rate: ``budget``
    seconds spent (default ``TIME_PER_PROBE``) or ``max_repeats`` calls (default ``MAX_REPEATS``), and
    at least ``min_repeats`` of them (default ``MIN_REPEATS``) unless the first took ``LONG_CALL``.
    The defaults are read at each call, so a test or benchmark that sets the constants is heard."""
    if len(calls) >= (MAX_REPEATS if max_repeats is None else max_repeats):
        return True
    if not calls or sum(calls) <= (TIME_PER_PROBE if budget is None else budget):
        return False
    return len(calls) >= (MIN_REPEATS if min_repeats is None else min_repeats) or calls[0] >= LONG_CALL


def _inference(
    module: nn.Module | Callable,
    batch: torch.Tensor,
    device: torch.device,
    amp: bool,
    outputs: list[torch.Tensor] | None = None,
):
    """One forward pass of ``module``; with ``outputs``, a full batch's result is kept there."""

    def step(n: int | None = None) -> None:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            result = module(batch[:n])
        if outputs is not None and n is None:
            outputs[:] = [result]

    return step


def _training(module: nn.Module, batch: torch.Tensor, classes: int, device: torch.device, amp: bool):
    trainable = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=1e-6)
    targets = torch.arange(len(batch), device=device) % classes

    def step(n: int | None = None) -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = nn.functional.cross_entropy(module(batch[:n]).float(), targets[:n])
        loss.backward()
        optimizer.step()

    return step


def network_key(params: Params, experiment: str) -> tuple:
    """What a network's rates depend on in params: experiments with one key share one probe."""
    spec = params.model_of(experiment)
    cut = spec.unfreeze_from if spec.base == "finetune" and spec.activation_cache != "off" else None
    # Not the classes nor grey input: they change the last and first layer only, not the rate (a
    # grey image enters a pretrained net as three equal channels), so catsdogs-best and -colour
    # share one probe.
    return (
        spec.arch,
        params.image_size_of(experiment),
        spec.base,
        spec.unfreeze_from,
        cut,
        params.recipe_of(experiment).amp,
        params.recipe_of(experiment).batch_size,
        params.evaluate.batch_size,
    )


def measure(
    params: Params,
    experiment: str,
    counts: Counts,
    device: torch.device,
    cache: dict,
    root: Path | None = None,
) -> Rates:
    """This experiment's rates; networks already timed (``cache``) are not timed again.

    With ``root`` (the project), also the seconds per image of reading its data set's files
    (:func:`plan_reading.decode_seconds`); without, decoding is not counted.
    """
    key = network_key(params, experiment)
    if key not in cache:
        cache[key] = _measure(params, experiment, counts, device)
    if root is None:
        return cache[key]
    size, grey = params.image_size_of(experiment), params.grayscale_of(experiment)
    dataset = params.experiment(experiment).dataset
    decode_key = ("decode", dataset, size, grey)
    if decode_key not in cache:
        cache[decode_key] = plan_reading.decode_seconds(params, dataset, size, grey, root)
    degrade = 0.0
    settings = params.model_of(experiment).train_degradations
    degradations = TrainDegradations.of(settings.model_dump() if settings else None)
    if degradations is not None:  # keyed "decode" too: seconds of file reading, never kept
        degrade_key = ("decode", dataset, size, "train_degradations", *dataclasses.astuple(degradations))
        if degrade_key not in cache:
            cache[degrade_key] = plan_reading.degrade_seconds(params, dataset, size, degradations, root)
        degrade = cache[degrade_key]
    return dataclasses.replace(cache[key], decode=cache[decode_key], degrade=degrade)


def _batch(model: nn.Module, n: int, size: int, device: torch.device, amp: bool) -> torch.Tensor:
    batch = torch.randn(n, model.in_channels, size, size, device=device)
    return batch.contiguous(memory_format=torch.channels_last) if amp else batch


def _measure(params: Params, experiment: str, counts: Counts, device: torch.device) -> Rates:
    # Here, not at the top: the model zoo imports timm and torchvision (about 2 s), which a plan
    # reusing every kept rate (plan_rate_store) never needs.
    from visionlab.models import build_model
    from visionlab.models.base import CachedTop
    from visionlab.runtime.folding import fold_batch_norms

    spec = params.model_of(experiment)
    recipe = params.recipe_of(experiment)
    size, grayscale = params.image_size_of(experiment), params.grayscale_of(experiment)
    model = build_model(
        spec.model_copy(update={"weights": "none"}), counts.classes, load_weights=False, grayscale=grayscale
    )
    model.to(device)
    amp = use_amp(device, recipe.amp)
    if amp:
        model = model.to(memory_format=torch.channels_last)
    infer = _batch(model, params.evaluate.batch_size, size, device, amp)
    mode = base_mode(spec)
    part = mode.frozen_part(model)  # a fine-tuned base is unfrozen from its cut here
    if part is None or (mode.trains_base and part.upper is None):  # the whole net trains on images
        train_batch = _batch(model, recipe.batch_size, size, device, amp)
        model.train()
        step = _training(model, train_batch, counts.classes, device, amp)
        train = _rate(step, len(train_batch), device, halve_if_slow=True)
        fold_batch_norms(model.eval())  # then scored as evaluate scores: batch norms folded
        return Rates(_rate(_inference(model, infer, device, amp), len(infer), device), train)
    if not mode.trains_base:  # featurize runs the folded base once; the head trains on its features
        fold_batch_norms(model.eval())
        lower = mode.frozen_part(model).lower
        outputs: list[torch.Tensor] = []
        featurize = _rate(_inference(lower, infer, device, amp, outputs), len(infer), device)
        # The head's epochs on the cached features: seconds a run, but dozens of epochs of tiny steps
        # add up (cifar-effnet: about 60 s on 38,890 features over 42 epochs).
        features = outputs[-1][: recipe.batch_size].float().detach()
        model.head.train()
        step = _training(model.head, features, counts.classes, device, False)
        head = _rate(step, len(features), device, halve_if_slow=True)
        return Rates(featurize, head, featurize=featurize)
    # Featurize folds the part below the cut; the top trains unfolded (the train stage builds its
    # own model), so only the lower part is folded here, and its output feeds the top's probes.
    fold_batch_norms(part.lower.eval())
    outputs: list[torch.Tensor] = []
    featurize = _rate(_inference(part.lower, infer, device, amp, outputs), len(infer), device)
    activations = outputs[-1][: recipe.batch_size].float()
    top = CachedTop(part.upper, model.head)
    top_amp = use_amp_on_cached_top(device, recipe.amp)
    top.eval()
    top_forward = _rate(_inference(top, activations, device, top_amp), len(activations), device)
    top.train()
    step = _training(top, activations, counts.classes, device, top_amp)
    train = _rate(step, len(activations), device, halve_if_slow=True)
    # Evaluate's whole-net pass: the part below the cut, then the top.
    return Rates(1 / (1 / featurize + 1 / top_forward), train, featurize=featurize, top=top_forward)
