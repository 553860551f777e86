"""``visionlab plan``: how long each experiment's featurize + train + evaluate would take here."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from visionlab import paths, quick_exit
from visionlab.errors import VisionlabError

if TYPE_CHECKING:  # the command loads params and torch only once it runs: `--help` stays instant
    import torch

    from visionlab.params import Params
    from visionlab.training.plan_counts import Counts
    from visionlab.training.plan_rate_store import Kept
    from visionlab.training.planning import PipelineState


@click.command()
@click.option("--study", "studies", multiple=True, help="Only this data set (repeatable).")
@click.option("--experiment", "experiments", multiple=True, help="Only this experiment (repeatable).")
@click.option(
    "--retime",
    is_flag=True,
    help="Time every network again, not reusing the rates an earlier plan here measured.",
)
def plan(studies: tuple[str, ...], experiments: tuple[str, ...], retime: bool) -> None:
    """Estimate how long featurize + train + evaluate of each experiment would take here.

    Times each network on a few synthetic batches on this machine, the way the stages run it,
    and multiplies by image counts x epochs; the output's last line says what is counted. Rates
    are kept in .visionlab/plan_rates.json for a week: a later plan on this machine reuses them.
    """
    root = paths.workspace_root()
    params = _checked_params(root, studies, experiments)
    import torch  # after validation: a typo is answered before torch loads

    from visionlab.runtime.device import select_device, use_amp

    device = select_device(params.train.device)
    precision = "bfloat16 autocast" if use_amp(device, params.train.amp) else "float32"
    click.echo(f"visionlab plan: {root} ({device.type}, {torch.get_num_threads()} threads, {precision})")
    from visionlab.training import plan_rate_store
    from visionlab.training.planning import stale_records

    kept = plan_rate_store.Kept() if retime else plan_rate_store.load(root, device)
    context = _Planning(root, device, _pipeline_state(root), stale_records(params, root), kept)
    from visionlab.runtime import cpu_share

    started = cpu_share.sample()  # what other processes take while the networks are timed
    total, counted, skipped = 0.0, 0, 0
    for dataset in studies or tuple(params.datasets):
        names = [
            n
            for n, e in params.experiments.items()
            if e.dataset == dataset and (not experiments or n in experiments)
        ]
        if names:
            seconds, ran, missed = _study(params, dataset, names, context)
            total, counted, skipped = total + seconds, counted + ran, skipped + missed
    _footer(total, counted, skipped, device.type)
    _keep_rates(context, cpu_share.others_cores(started), torch.get_num_threads())
    quick_exit.request()  # printed and saved: nothing left for the interpreter's teardown to finalise


def _keep_rates(context: _Planning, others: float | None, threads: int) -> None:
    """Store the networks timed now, marked as not to be reused where other processes took the cores
    they were timed on (``others``: cores' worth, cpu_share); say which rates were reused, and how
    to time them again."""
    from visionlab.runtime import cpu_share
    from visionlab.training import plan_rate_store

    timed = sum(1 for key in context.rates if key not in context.reused and key[:1] != ("decode",))
    busy = bool(timed) and context.device.type == "cpu" and cpu_share.contended(others, threads)
    if busy:
        click.echo(
            f"note: other processes kept {others:.1f} cores busy while {timed} networks were timed; a "
            "shared CPU slows the probes many times over (cpu_share), so these estimates run long, and "
            "no later plan reuses their rates: plan again on an idle machine",
            err=True,
        )
    try:
        plan_rate_store.save(context.root, context.device, context.rates, context.kept, contended=busy)
    except OSError as exc:  # a read-only project: the plan stands, the next one times again
        click.echo(f"note: rates not kept ({exc})", err=True)
    if context.reused:
        oldest = min(context.kept.timed_at[key] for key in context.reused)
        click.echo(
            f"rates: {timed} networks timed now, {len(context.reused)} reused from "
            f"{plan_rate_store.STORE} (timed here since {oldest:%Y-%m-%d %H:%M} UTC; "
            "`visionlab plan --retime` times them again)"
        )


@dataclass
class _Planning:
    """What every experiment's estimate reads: the project, the device, what DVC would skip."""

    root: Path
    device: torch.device
    state: PipelineState | None
    stale: set[str]
    kept: Kept  # rates an earlier plan here timed (plan_rate_store)
    rates: dict = field(default_factory=dict)  # plan_probe's cache: each network timed once
    reused: set = field(default_factory=set)  # the keys of ``rates`` taken from ``kept``


def _pipeline_state(root: Path) -> PipelineState | None:
    """DVC's view of the project, or None before anything ran (no dvc.lock: every stage would run)."""
    if not (root / "dvc.lock").is_file():
        return None
    from visionlab.reporting.pipeline_status import read_pipeline_state

    try:
        return read_pipeline_state(root)
    except Exception as exc:  # e.g. a running `dvc repro` holds the lock: plan still answers
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        click.echo(f"note: `dvc status` failed ({first}); every stage counted as if it would run", err=True)
        return None


def _checked_params(root: Path, studies: tuple[str, ...], experiments: tuple[str, ...]) -> Params:
    """params.yaml, with every named study and experiment checked: a typo exits with "did you mean"."""
    from visionlab.params import load_params

    try:
        params = load_params(root / "params.yaml")
        for study in studies:
            params.dataset(study)
        for name in experiments:
            params.experiment(name)
    except VisionlabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    return params


def _study(params: Params, dataset: str, names: list[str], context: _Planning) -> tuple[float, int, int]:
    """Print one data set's line and its experiments' estimates; (seconds, counted, skipped)."""
    from visionlab.training import plan_counts, planning

    counts = plan_counts.image_counts(params, dataset, context.root)
    if counts is None:
        click.echo(f"{dataset}: image count unknown until `uv run dvc repro prepare@{dataset}`")
        return 0.0, 0, 0
    source = "prepared" if counts.measured else "published archive"
    if not counts.measured and params.dataset(dataset).source.folder is not None:
        source = "image files in its folder"
    why = planning.unavailable(params, dataset)
    lines, seconds, skipped = [], 0.0, 0
    for name in names:
        missing = planning.missing_weights(params, name)
        if missing or why:
            lines.append(f"  {name:<28} cannot run here: {missing or why}")
            skipped += 1
            continue
        line, estimated = _experiment(params, name, counts, context)
        seconds += estimated
        lines.append(line)
    click.echo(
        f"{dataset}: {counts.train:,}/{counts.val:,}/{counts.test:,} train/val/test images ({source}): "
        f"about {planning.duration(seconds)} for the experiments that can run here"
        + (f"; skipped by `dvc repro --keep-going` ({why})" if why else "")
    )
    click.echo("\n".join(lines))
    return seconds, len(names) - skipped, skipped


def _experiment(params: Params, name: str, counts: Counts, context: _Planning) -> tuple[str, float]:
    """One experiment's line and seconds: only the stages `dvc repro` would run are timed."""
    from visionlab.training import plan_probe, planning

    runs = planning.stages_to_run(params, name, context.state, context.stale)
    if not runs:
        return f"  {name:<28} up to date: `dvc repro` would skip featurize, train and evaluate", 0.0
    key = plan_probe.network_key(params, name)
    if key in context.kept.rates and key not in context.rates:  # timed by an earlier plan here
        context.rates[key] = context.kept.rates[key]
        context.reused.add(key)
    rates = plan_probe.measure(params, name, counts, context.device, context.rates, context.root)
    estimate = planning.estimate(params, name, counts, rates).only(runs)
    stopped = planning.last_stop(params, name, context.root) if "train" in runs else None
    note = ""
    if stopped is not None:  # early stopping ended the last run: this one likely ends near there too
        every = estimate.train
        estimate = planning.estimate(params, name, counts, rates, epochs=stopped).only(runs)
        epochs = params.recipe_of(name).epochs
        note = (
            f"; train as long as the last run, which early stopping ended at epoch {stopped} of {epochs} "
            f"(all {epochs}: {planning.duration(every)})"
        )
    elif "train" in runs and (span := planning.stopping_span(params, name)) is not None:
        # A first run: it may stop anywhere in the span.
        every = estimate.train
        shortest = planning.estimate(params, name, counts, rates, epochs=span.earliest).train
        estimate = planning.estimate(params, name, counts, rates, epochs=span.middle).only(runs)
        note = (
            f"; early stopping ends train between epoch {span.earliest} and {span.latest} "
            f"({planning.duration(shortest)} to {planning.duration(every)}), counted at epoch {span.middle}"
        )
    parts = ", ".join(
        f"{stage} {planning.duration(getattr(estimate, stage))}" if stage in runs else f"{stage} up to date"
        for stage in planning.PLANNED
    )
    return f"  {name:<28} about {planning.duration(estimate.seconds):>7}  ({parts}){note}", estimate.seconds


def _footer(total: float, counted: int, skipped: int, device: str) -> None:
    from visionlab.training import plan_reading, planning

    click.echo(
        f"total: about {planning.duration(total)} of featurize + train + evaluate on {device} for "
        f"{counted} experiments; {skipped} cannot run here"
    )
    click.echo(
        "how: each network timed here on synthetic batches as the stages run it (their batch sizes, "
        "precision, folded batch norms, training steps, the activation cache), plus reading each file "
        f"once in featurize and evaluate (timed on {plan_reading.DECODE_FILES} of the data set's files, "
        "or a synthetic photo before they are here) and degrading the training share that "
        "train_degradations names; x the images (augmented experiments: "
        "augment.factor x) x the recipe's epochs, capped by train.epochs_cap (where early stopping can "
        "end a run: the middle of the epochs it may stop at, or where it ended the experiment's last "
        "run here, that run's epochs). Not counted: "
        "downloads, prepare, augment, explain, report, and stages `dvc repro` "
        "would skip (dvc status, and the resolve records a params edit would change)."
    )
