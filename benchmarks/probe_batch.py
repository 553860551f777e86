"""Could `visionlab plan` time its probes on half a batch, and is its one timed call too slow?

`plan_probe` times inference (featurize, evaluate) on a full ``evaluate.batch_size`` batch: for the
large nets that one call is most of a first plan's seconds (issue 23: a first plan over every study
in 15 s). And a large net gets one timed call, its first at that batch shape: plan's estimates run
above the measured rows (benchmarks/results/plan_accuracy.md), which a cold call would explain.
This times every shipped network's probe as shipped, at half the inference batch, and each with
exactly two timed calls (the faster counted), and with a slow training step (a whole net's, a
cached top's) on the recipe's full batch rather than half of it (``train-full``: is the half step's
rate the full one's?), alternating on the same machine, and writes the rates' ratios to the shipped
probe's and each probe's seconds.

    uv run python benchmarks/probe_batch.py [--rounds 2] [--experiment NAME ...] [--results DIR]
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from benchmarks.provenance import source_commit, write_result  # noqa: E402
from visionlab.params import Params, load_params  # noqa: E402
from visionlab.training import plan_counts, plan_probe, planning  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
FIELDS = ("forward", "train", "featurize", "top")


def networks(params: Params, only: tuple[str, ...]) -> dict[tuple, str]:
    """One experiment per distinct probe key (plan_probe.network_key), runnable here."""
    found: dict[tuple, str] = {}
    for name in only or tuple(params.experiments):
        if planning.missing_weights(params, name) is None:
            found.setdefault(plan_probe.network_key(params, name), name)
    return found


def with_inference_batch(params: Params, batch: int) -> Params:
    return params.model_copy(update={"evaluate": params.evaluate.model_copy(update={"batch_size": batch})})


@contextlib.contextmanager
def halving(on: bool) -> Iterator[None]:
    """A slow training step timed on half its batch (as shipped) or on the full one."""
    shipped = plan_probe.HALVE_SLOW_STEPS
    plan_probe.HALVE_SLOW_STEPS = on
    try:
        yield
    finally:
        plan_probe.HALVE_SLOW_STEPS = shipped


@contextlib.contextmanager
def timed_calls(exactly: int | None) -> Iterator[None]:
    """``exactly`` timed calls per probe (the fastest counts), or as shipped (None): one call once
    a call takes ``TIME_PER_PROBE``, which every large net's full batch does."""
    if exactly is None:
        yield
        return
    shipped = plan_probe.MAX_REPEATS, plan_probe.TIME_PER_PROBE
    plan_probe.MAX_REPEATS, plan_probe.TIME_PER_PROBE = exactly, float("inf")
    try:
        yield
    finally:
        plan_probe.MAX_REPEATS, plan_probe.TIME_PER_PROBE = shipped


def probe(params: Params, experiment: str, device: torch.device) -> tuple[dict, float]:
    """The probe's rates for ``experiment`` and the seconds it took (model build included)."""
    # The class count sizes the head only; plan's own count, where the card or archive gives one.
    known = plan_counts.image_counts(params, params.experiment(experiment).dataset, REPO)
    counts = plan_counts.Counts(1000, 100, 100, measured=True, classes=known.classes if known else 2)
    started = time.perf_counter()
    rates = plan_probe.measure(params, experiment, counts, device, {})
    seconds = time.perf_counter() - started
    return {f: getattr(rates, f) for f in FIELDS if getattr(rates, f) is not None}, seconds


def variants(params: Params) -> dict[str, tuple[Params, int | None, bool]]:
    """As shipped; the inference batch halved; each with exactly two timed calls (a warm one); and
    training steps always on the recipe's full batch (``train-full``: before SLOW_HALF_STEP)."""
    half = with_inference_batch(params, max(params.evaluate.batch_size // 2, 1))
    return {
        "full": (params, None, True),
        "half": (half, None, True),
        "full-2": (params, 2, True),
        "half-2": (half, 2, True),
        "train-full": (params, None, False),
    }


def measure(params: Params, only: tuple[str, ...], rounds: int) -> list[dict]:
    device = torch.device("cpu")
    kinds = variants(params)
    rows = []
    probe(params, next(iter(networks(params, only).values())), device)  # first-use costs, discarded
    for experiment in networks(params, only).values():
        rates: dict[str, dict[str, list[float]]] = {name: {} for name in kinds}
        seconds: dict[str, list[float]] = {name: [] for name in kinds}
        for round_ in range(rounds):
            order = list(kinds.items())  # each round in turn forwards and backwards: drift hits all
            for name, (variant, calls, halve) in order if round_ % 2 == 0 else reversed(order):
                with timed_calls(calls), halving(halve):
                    found, took = probe(variant, experiment, device)
                seconds[name].append(took)
                for field, rate in found.items():
                    rates[name].setdefault(field, []).append(rate)
        mean = {name: {f: statistics.mean(v) for f, v in by.items()} for name, by in rates.items()}
        rows.append(
            {
                "experiment": experiment,
                "full_batch": params.evaluate.batch_size,
                "probe_seconds": {name: round(statistics.mean(s), 2) for name, s in seconds.items()},
                "rates": {name: {f: round(r, 1) for f, r in by.items()} for name, by in mean.items()},
                "ratio": {
                    name: {f: round(mean[name][f] / mean["full"][f], 3) for f in mean["full"]}
                    for name in kinds
                    if name != "full"
                },
            }
        )
        print(experiment, rows[-1]["probe_seconds"], rows[-1]["ratio"], flush=True)
    return rows


def render(rows: list[dict], rounds: int, load: float, commit: str) -> str:
    others = [name for name in rows[0]["ratio"]] if rows else []
    lines = [
        "# plan's probes: half the inference batch, a second, warm timed call, and full training steps",
        "",
        f"Commit `{commit[:12]}`, {torch.get_num_threads()} torch threads, load average at the start "
        f"{load:.2f}. Each network's probe (`plan_probe.measure`, model build included) as shipped "
        f"(`full`: inference at `evaluate.batch_size`, {rows[0]['full_batch'] if rows else '-'}; one "
        "timed call once a call takes `TIME_PER_PROBE`), at half that batch (`half`), and each with "
        f"exactly two timed calls, the faster counted (`-2`); {rounds} rounds, alternating order, "
        "means. Ratios are rates over the shipped probe's. A slow training step is timed "
        "on half the recipe's batch where half of it takes `SLOW_HALF_STEP` (as shipped, in every "
        "variant but `train-full`, which times the recipe's full batch).",
        "",
        "| experiment | rate | full img/s | " + " | ".join(f"{n} / full" for n in others) + " |",
        "|---|---|---:|" + "---:|" * len(others),
    ]
    for r in rows:
        for field, rate in r["rates"]["full"].items():
            cells = " | ".join(f"{r['ratio'][n][field]:.3f}" for n in others)
            lines.append(f"| `{r['experiment']}` | {field} | {rate:,.1f} | {cells} |")
    lines += ["", "| probe seconds, all networks | " + " | ".join(["full", *others]) + " |"]
    lines += ["|---|" + "---:|" * (1 + len(others))]
    totals = [sum(r["probe_seconds"][n] for r in rows) for n in ["full", *others]]
    lines += ["| sum of the means | " + " | ".join(f"{t:.1f}" for t in totals) + " |"]
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--rounds", default=2, show_default=True, type=click.IntRange(1))
@click.option("--experiment", "experiments", multiple=True, help="only these (default: every network)")
@click.option("--results", type=click.Path(path_type=Path), default=RESULTS, show_default=True)
def main(rounds: int, experiments: tuple[str, ...], results: Path) -> None:
    load = os.getloadavg()[0]
    commit = source_commit(REPO)
    params = load_params(REPO / "params.yaml")
    rows = measure(params, experiments, rounds)
    result = {"commit": commit, "load_average": load, "rounds": rounds, "rows": rows}
    write_result(results, "probe_batch", result, render(rows, rounds, load, commit))


if __name__ == "__main__":
    main()
