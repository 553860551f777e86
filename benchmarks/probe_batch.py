"""Would `visionlab plan` time its inference probes on half a batch at the same rates?

`plan_probe` times inference (featurize, evaluate) on a full ``evaluate.batch_size`` batch: for the
large nets that one call is most of a first plan's seconds (issue 23: a first plan over every study
in 15 s). This times every shipped network's probe at that batch and at half of it, in alternating
rounds on the same machine, and writes the rates' ratios (half / full) and each probe's seconds.
Rates within a few percent would let the probe time half the images for the same estimate.

    uv run python benchmarks/probe_batch.py [--rounds 2] [--experiment NAME ...] [--results DIR]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from benchmarks.provenance import source_commit, write_result  # noqa: E402
from visionlab.params import Params, load_params  # noqa: E402
from visionlab.training import plan_probe, planning  # noqa: E402

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


def probe(params: Params, experiment: str, device: torch.device) -> tuple[dict, float]:
    """The probe's rates for ``experiment`` and the seconds it took (model build included)."""
    dataset = params.experiment(experiment).dataset
    classes = len(params.dataset(dataset).classes or ()) or 10  # CIFAR-10's card lists none
    counts = planning.Counts(1000, 100, 100, measured=True, classes=classes)
    started = time.perf_counter()
    rates = plan_probe.measure(params, experiment, counts, device, {})
    seconds = time.perf_counter() - started
    return {f: getattr(rates, f) for f in FIELDS if getattr(rates, f) is not None}, seconds


def measure(params: Params, only: tuple[str, ...], rounds: int) -> list[dict]:
    device = torch.device("cpu")
    full = params.evaluate.batch_size
    variants = {"full": params, "half": with_inference_batch(params, max(full // 2, 1))}
    rows = []
    probe(params, next(iter(networks(params, only).values())), device)  # first-use costs, discarded
    for experiment in networks(params, only).values():
        best: dict[str, dict] = {name: {} for name in variants}
        seconds: dict[str, float] = {name: float("inf") for name in variants}
        for round_ in range(rounds):
            order = list(variants.items())  # alternating, each first in turn: drift hits both alike
            for name, variant in order if round_ % 2 == 0 else reversed(order):
                rates, took = probe(variant, experiment, device)
                seconds[name] = min(seconds[name], took)
                for field, rate in rates.items():
                    best[name][field] = max(best[name].get(field, 0.0), rate)
        rows.append(
            {
                "experiment": experiment,
                "full_batch": full,
                "probe_seconds": {name: round(s, 2) for name, s in seconds.items()},
                "rates": best,
                "ratio": {f: round(best["half"][f] / best["full"][f], 3) for f in best["full"]},
            }
        )
        print(experiment, rows[-1]["probe_seconds"], rows[-1]["ratio"], flush=True)
    return rows


def render(rows: list[dict], rounds: int, load: float, commit: str) -> str:
    full = sum(r["probe_seconds"]["full"] for r in rows)
    half = sum(r["probe_seconds"]["half"] for r in rows)
    ratios = [v for r in rows for v in r["ratio"].values()]
    lines = [
        "# plan's probes: the inference batch halved",
        "",
        f"Commit `{commit[:12]}`, {torch.get_num_threads()} torch threads, load average at the start "
        f"{load:.2f}. Each network's probe (`plan_probe.measure`) at `evaluate.batch_size` "
        f"({rows[0]['full_batch'] if rows else '-'}) and at half of it, alternating, {rounds} rounds; "
        "the fastest of each. ratio = rate at half / rate at full (training steps stay at the "
        "recipe's batch, so `train` differs by noise alone).",
        "",
        "| experiment | probe s full | probe s half | " + " | ".join(f"{f} ratio" for f in FIELDS) + " |",
        "|---|---:|---:|" + "---:|" * len(FIELDS),
    ]
    for r in rows:
        cells = " | ".join(f"{r['ratio'][f]:.3f}" if f in r["ratio"] else "-" for f in FIELDS)
        took = r["probe_seconds"]
        lines.append(f"| `{r['experiment']}` | {took['full']:.2f} | {took['half']:.2f} | {cells} |")
    if ratios:
        lines += [
            "",
            f"Probes: {full:.1f} s at the full batch, {half:.1f} s at half. Rate ratios "
            f"{min(ratios):.3f} to {max(ratios):.3f}.",
        ]
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
