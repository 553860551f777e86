"""`visionlab plan`'s estimates against the measured full-set rows of benchmarks/results/full_scale.json.

For every finished row whose experiment params.yaml still ships, the planner's estimate on that
row's split counts (featurize + train, the part the row measures) is set beside the row's measured
featurize and train seconds, twice: with the recipe's epochs (what `plan` prints: an upper bound,
since early stopping ends runs sooner) and with the epochs the run actually took (the rates' error
alone). Then the whole `visionlab plan` over every study is timed. Featurize and train are also set apart
(each row's own seconds against the plan's), and each row names the commit it was measured at: a
row measured before a stage got faster is slower than what `plan` now estimates. Run it on an idle
machine: the probes time this CPU, and a busy one makes every estimate longer.

    uv run python benchmarks/plan_accuracy.py [--work DIR]   # -> benchmarks/results/plan_accuracy.{json,md}

``--work`` is the full-scale work copy (``full_scale.py --work``), whose prepared manifests name the
files decoding is timed on.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import click
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import source_commit, write_result

from visionlab.params import load_params
from visionlab.training import plan_counts, plan_probe, planning

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
# Where the full-scale rows ran by default: their prepared manifests name the files decoding is timed on.
WORK = REPO / "benchmarks" / "work" / "full_scale"
PLAN_RUNS = 3  # `plan --retime` timed this many times; the median counts


def _counts(row: dict, classes: int) -> plan_counts.Counts:
    split = row["split_counts"]
    return plan_counts.Counts(split["train"], split["val"], split["test"], True, classes)


def measure_rows(work: Path) -> list[dict]:
    params = load_params(REPO / "params.yaml")
    rows = json.loads((RESULTS / "full_scale.json").read_text())["rows"]
    device, cache, out = torch.device("cpu"), {}, []
    for row in rows:
        name = row["experiment"]
        if row.get("status") != "done" or name not in params.experiments:
            continue
        classes = plan_counts.image_counts(params, row["dataset"], REPO)
        counts = _counts(row, classes.classes if classes else 5)
        rates = plan_probe.measure(params, name, counts, device, cache, work if work.is_dir() else REPO)
        span = planning.stopping_span(params, name)  # a first run: the middle of where it may stop
        planned_epochs = span.middle if span else params.recipe_of(name).epochs
        planned = planning.estimate(params, name, counts, rates, epochs=planned_epochs)
        at_epochs = planning.estimate(params, name, counts, rates, epochs=int(row["epochs"]))
        # What plan prints beside a first run's estimate: the seconds at the earliest and the latest
        # epoch early stopping may end it at.
        ends = [planning.estimate(params, name, counts, rates, epochs=e) for e in _ends(span)]
        featurized = row.get("featurize_seconds") or 0.0
        # plan's train is the stage's epochs, validation passes included: set beside the row's
        # epoch seconds where it has them, else its training passes alone (rows recorded before).
        trained = row.get("epoch_seconds") or row["train_seconds"]
        measured = featurized + trained
        out.append(
            {
                "experiment": name,
                "commit": (row.get("provenance") or {}).get("commit"),
                "measured_s": round(measured, 1),
                "measured_featurize_s": round(featurized, 1),
                "measured_train_s": round(trained, 1),
                "measured_with_validation": bool(row.get("epoch_seconds")),
                "planned_featurize_s": round(planned.featurize, 1),
                "planned_train_at_run_epochs_s": round(at_epochs.train, 1),
                "recipe_epochs": params.recipe_of(name).epochs,
                "planned_epochs": planned_epochs,
                "run_epochs": int(row["epochs"]),
                "planned_s": round(planned.featurize + planned.train, 1),
                "planned_at_run_epochs_s": round(at_epochs.featurize + at_epochs.train, 1),
                "ratio": round((planned.featurize + planned.train) / measured, 2),
                "ratio_at_run_epochs": round((at_epochs.featurize + at_epochs.train) / measured, 2),
                "planned_span_s": [round(e.featurize + e.train, 1) for e in ends] or None,
                "reruns": _reruns(row, at_epochs.train),
                "featurized_images": planning.featurized_images(params, name, counts)[1],
                "rates": _rates_record(rates),
            }
        )
        print(out[-1], flush=True)
    return out


def _ends(span: planning.Span | None) -> tuple[int, ...]:
    """Early stopping's earliest and latest epoch, or none where it cannot end the run early."""
    return () if span is None else (span.earliest, span.latest)


def _rates_record(rates: planning.Rates) -> dict:
    """The rates the row was planned with (images/s; reading and degrading in ms an image), so a
    miss can be laid at one part's door without timing again."""
    return {
        "forward": round(rates.forward, 1),
        "train": round(rates.train, 1),
        "featurize": None if rates.featurize is None else round(rates.featurize, 1),
        "top": None if rates.top is None else round(rates.top, 1),
        "decode_ms": round(1000 * rates.decode, 2),
        "degrade_ms": round(1000 * rates.degrade, 2),
    }


def _reruns(row: dict, planned_train: float) -> list[dict]:
    """The row's later training seeds against plan's estimate for a rerun: at the epochs the first
    seed's run took (what `plan` counts once early stopping ended a run here: planning.last_stop).
    Each later seed retrained on the first one's cached features, so train alone is compared. A
    frozen base's head (seconds, which plan counts as free) has none."""
    if planned_train <= 0:
        return []
    found = []
    for seed in (row.get("seeds") or [])[1:]:
        measured = seed.get("epoch_seconds") or seed.get("train_seconds")  # as measure_rows does
        if measured:
            found.append(
                {
                    "seed": seed["seed"],
                    "measured_train_s": round(measured, 1),
                    "ratio": round(planned_train / measured, 2),
                }
            )
    return found


def time_plan(*flags: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "visionlab.cli", "plan", *flags], cwd=REPO, check=True, capture_output=True
    )
    return time.perf_counter() - started


def within_span(row: dict) -> bool:
    """Whether the measured seconds fall within 2x of what plan printed for the row: the span from
    early stopping's earliest to its latest epoch where it has one, else its one estimate."""
    low, high = row.get("planned_span_s") or (row["planned_s"], row["planned_s"])
    return low / 2 <= row["measured_s"] <= 2 * high


def _span(row: dict) -> str:
    span = row.get("planned_span_s")
    return f"{span[0]:,.0f}-{span[1]:,.0f}" if span else "-"


def _ratio(planned: float, measured: float) -> str:
    """planned / measured; "-" where there was nothing to time: a net that trains on the images has
    no features to compute, and its featurize stage's fraction of a second is not a 0.00 ratio."""
    if not measured or (not planned and measured < 1):
        return "-"
    return f"{planned / measured:.2f}"


def render(
    rows: list[dict],
    plan_seconds: float,
    reused_seconds: float,
    load: float,
    commit: str,
    plan_runs: list[float] | None = None,
) -> str:
    runs = (
        f" (the median of {len(plan_runs)} runs: {', '.join(f'{s:.1f}' for s in plan_runs)} s)"
        if plan_runs
        else ""
    )
    lines = [
        "# `visionlab plan` against measured full-set runs",
        "",
        f"Plan at commit `{commit[:7]}`. Planned featurize + train seconds on each row's split counts",
        "against the row's measured ones (`benchmarks/results/full_scale.json`, at the row's commit).",
        "ratio = planned / measured: within 2x means 0.5-2.0; the featurize and train columns set each",
        "part apart (train at the run's epochs). Planned epochs: where early stopping can end a run,",
        "the middle of the epochs it may stop at (`planning.stopping_span`), as `visionlab plan` counts",
        "a first run; else the recipe's. Measured train: the train stage's epochs with their",
        "validation passes (what plan estimates) where the row recorded them (marked +val), else",
        "its training passes alone. Span: featurize + train at early stopping's earliest and latest",
        "epoch, the range plan prints beside a first run's estimate.",
        f"`visionlab plan --retime` over every study (every network timed) took {plan_seconds:.1f} s{runs},",
        f"and a plan right after it (the networks' rates reused) {reused_seconds:.1f} s; load average at",
        f"the start {load:.2f}.",
        "",
        "| experiment | row commit | measured s | recipe epochs | planned epochs | run epochs | planned s "
        "| ratio | span s "
        "| planned at run epochs s | ratio | featurize ratio | train ratio at run epochs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['experiment']}` | `{(r['commit'] or '?')[:7]}` | {r['measured_s']:,.0f}"
            f"{' +val' if r.get('measured_with_validation') else ''} | "
            f"{r['recipe_epochs']} | {r.get('planned_epochs', r['recipe_epochs'])} | {r['run_epochs']} | "
            f"{r['planned_s']:,.0f} | {r['ratio']:.2f} | {_span(r)} | "
            f"{r['planned_at_run_epochs_s']:,.0f} | {r['ratio_at_run_epochs']:.2f} | "
            f"{_ratio(r['planned_featurize_s'], r['measured_featurize_s'])} | "
            f"{_ratio(r['planned_train_at_run_epochs_s'], r['measured_train_s'])} |"
        )
    within = sum(0.5 <= r["ratio"] <= 2.0 for r in rows)
    at_run = sum(0.5 <= r["ratio_at_run_epochs"] <= 2.0 for r in rows)
    spanned = [r for r in rows if "planned_span_s" in r]  # rows measured before spans were recorded: none
    lines += [
        "",
        f"Within 2x: {within} of {len(rows)} rows as planned, {at_run} of {len(rows)} at the run's epochs.",
    ]
    if spanned:
        inside = sum(within_span(r) for r in spanned)
        lines.append(
            f"Within 2x of what plan prints (its span where early stopping may end the run): "
            f"{inside} of {len(spanned)}."
        )
    lines += [
        "",
    ]
    return "\n".join(lines + _featurize_lines(rows) + _rerun_lines(rows))


def _featurize_lines(rows: list[dict]) -> list[str]:
    """Featurize apart: its images/s as planned against the row's, and the parts plan adds up."""
    shown = [r for r in rows if r.get("measured_featurize_s") and r.get("rates") and r["planned_featurize_s"]]
    if not shown:
        return []
    lines = [
        "## Featurize apart",
        "",
        "Images featurize reads (offline augmented training copies and validation) per second, as",
        "planned and as the row measured (its stage's seconds, the backbone's loading included); then",
        "what plan adds up per image: the part below the cut (or the frozen base) and the cached top",
        "timed on random batches, and reading a file (the loader's item) and degrading a training",
        "image timed on the data set's files.",
        "",
        "| experiment | row commit | images | measured img/s | planned img/s | ratio | featurize img/s "
        "| top img/s | reading ms | degrading ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in shown:
        images, rates = r["featurized_images"], r["rates"]
        measured, planned = images / r["measured_featurize_s"], images / r["planned_featurize_s"]
        top = "-" if rates["top"] is None else f"{rates['top']:.1f}"
        lines.append(
            f"| `{r['experiment']}` | `{(r['commit'] or '?')[:7]}` | {images:,} | {measured:.1f} "
            f"| {planned:.1f} | {planned / measured:.2f} | {rates['featurize'] or rates['forward']:.1f} "
            f"| {top} "
            f"| {rates['decode_ms']:.2f} | {rates['degrade_ms']:.2f} |"
        )
    return [*lines, ""]


def _rerun_lines(rows: list[dict]) -> list[str]:
    """The reruns table: what `plan` says before retraining a row with another seed."""
    seeded = [r for r in rows if r.get("reruns")]
    if not seeded:
        return []
    lines = [
        "## A rerun with another training seed",
        "",
        "Once a run is here, `plan` counts a rerun at the epochs early stopping ended it at",
        "(`planning.last_stop`). Each row's later seeds are such reruns (same split, featurize cached):",
        "their measured train seconds against plan's train estimate at the first seed's epochs.",
        "",
        "| experiment | first seed's epochs | planned train s | later seeds: measured train s (ratio) |",
        "|---|---:|---:|---|",
    ]
    for r in seeded:
        seeds = ", ".join(
            f"{x['seed']}: {x['measured_train_s']:,.0f} ({x['ratio']:.2f})" for x in r["reruns"]
        )
        lines.append(
            f"| `{r['experiment']}` | {r['run_epochs']} of {r['recipe_epochs']} | "
            f"{r['planned_train_at_run_epochs_s']:,.0f} | {seeds} |"
        )
    reruns = [x for r in seeded for x in r["reruns"]]
    within = sum(0.5 <= x["ratio"] <= 2.0 for x in reruns)
    return [*lines, "", f"Within 2x: {within} of {len(reruns)} reruns.", ""]


@click.command()
@click.option(
    "--work",
    type=click.Path(path_type=Path),
    default=WORK,
    show_default=True,
    help="the full-scale work copy (full_scale.py --work): decoding is timed on its prepared files",
)
def main(work: Path) -> None:
    load = os.getloadavg()[0]
    commit = source_commit(REPO)
    rows = measure_rows(work)
    # A first plan on this machine (every network timed), a few times: one run of about 15 s moves
    # by a second with whatever else the machine does, so the median is reported beside each run.
    runs = [round(time_plan("--retime"), 1) for _ in range(PLAN_RUNS)]
    plan_seconds = statistics.median(runs)
    reused_seconds = time_plan()  # a plan after a params edit: the rates the first one kept
    result = {
        "commit": commit,
        "load_average": load,
        "plan_seconds": plan_seconds,
        "plan_seconds_runs": runs,
        "plan_seconds_reused": round(reused_seconds, 1),
        "rows": rows,
    }
    page = render(rows, plan_seconds, reused_seconds, load, commit, runs)
    write_result(RESULTS, "plan_accuracy", result, page)


if __name__ == "__main__":
    main()
