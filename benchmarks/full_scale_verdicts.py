"""What each full-scale row claims against its study: its headline figure (plain or hflip TTA,
chosen on validation), the 95% interval, the verdict beyond chance, and whether the training
seeds bear it out; the row chosen on validation per data set. full_scale_glance.py and
full_scale_tables.py render them.

Intervals are recomputed from the test counts for rows recorded before evaluate wrote them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from visionlab.evaluation.intervals import accuracy_interval, verdict
from visionlab.params import DEGRADATION


def pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def whole_seconds(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def interval_of(row: dict[str, Any]) -> tuple[float, float] | None:
    """The row's 95% Wilson interval: as measured, else from its accuracy and test count (rows
    recorded before evaluate wrote intervals)."""
    if row.get("test_ci95"):
        low, high = row["test_ci95"]
        return float(low), float(high)
    total = test_count(row)
    if row.get("test_accuracy") is None or not total:
        return None
    return accuracy_interval(row["test_accuracy"], total)


class Headline(NamedTuple):
    """What a row's headline shows: its plain test figure, or with hflip TTA where that scored
    higher on validation (rows measured before evaluate scored TTA on validation stay plain)."""

    tta: bool
    val: float | None
    test: float
    interval: tuple[float, float] | None

    @property
    def label(self) -> str:
        return " with hflip TTA" if self.tta else ""


def headline(row: dict[str, Any]) -> Headline:
    plain = Headline(False, row.get("val_accuracy"), row["test_accuracy"], interval_of(row))
    val_tta = (row.get("val_variants") or {}).get("val_tta_hflip")
    test_tta = (row.get("test_variants") or {}).get("test_tta_hflip")
    total = test_count(row)
    if val_tta is None or test_tta is None or not total or val_tta <= (plain.val or 0.0):
        return plain  # ties stay plain: TTA doubles the cost of every prediction
    return Headline(True, val_tta, test_tta, accuracy_interval(test_tta, total))


def chosen_on_validation(
    rows: list[dict[str, Any]], published_only: bool = True
) -> dict[str, dict[str, Any]]:
    """Per data set (with a published figure, unless not ``published_only``): our finished row of
    highest validation accuracy, its headline's (ties: the experiment name), never looking at test."""
    done = [
        r
        for r in rows
        if r.get("status") == "done" and (r.get("published_accuracy") is not None or not published_only)
    ]
    chosen = {}
    for dataset in sorted({r["dataset"] for r in done}):
        candidates = sorted((r for r in done if r["dataset"] == dataset), key=lambda r: r["experiment"])
        chosen[dataset] = max(candidates, key=lambda r: headline(r).val or -1.0)
    return chosen


HOUR = 3600.0  # issue 24's compute budget: CIFAR-10 >= 94% within an hour on this 2-core CPU


def compute_seconds(row: dict[str, Any]) -> float | None:
    """What the row's model cost here: featurize + train seconds of its first seed."""
    trained = row.get("train_seconds")
    return None if trained is None else trained + (row.get("featurize_seconds") or 0)


def chosen_within(rows: list[dict[str, Any]], budget: float = HOUR) -> dict[str, dict[str, Any]]:
    """Per data set: the row validation chooses (as :func:`chosen_on_validation`) among our finished
    rows whose model cost no more than ``budget`` seconds here. A faster row's test never enters:
    the budget filters on cost, validation chooses, test only reports."""
    affordable = [r for r in rows if (compute_seconds(r) or float("inf")) <= budget]
    return chosen_on_validation(affordable, published_only=False)


def tied_on_validation(rows: list[dict[str, Any]], chosen: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Our other finished rows of ``chosen``'s data set whose validation accuracy (their headline's)
    lies within the chosen headline's 95% Wilson interval on its validation images: rows validation
    cannot tell from the choice, so the choice between them is chance's. None when the chosen row's
    validation count was never recorded."""
    total = (chosen.get("split_counts") or {}).get("val")
    val = headline(chosen).val
    if not total or val is None:
        return None
    low = accuracy_interval(val, total)[0]
    return [
        r
        for r in rows
        if r is not chosen
        and r.get("status") == "done"
        and r["dataset"] == chosen["dataset"]
        and (headline(r).val or -1.0) >= low
    ]


def test_count(row: dict[str, Any]) -> int | None:
    return row.get("test_images") or (row.get("split_counts") or {}).get("test")


def seed_verdicts(row: dict[str, Any]) -> list[str]:
    """Each training seed's plain test figure against the study, from its own Wilson interval
    (the seeds share one test split, so each is judged as the headline seed is)."""
    published, total = row.get("published_accuracy"), test_count(row)
    if published is None or not total:
        return []
    return [
        verdict(*accuracy_interval(run["test_accuracy"], total), published)
        for run in row.get("seeds") or []
        if run.get("test_accuracy") is not None
    ]


class SeedCount(NamedTuple):
    """How many of a row's training seeds reach ``claim`` against the study."""

    claim: str
    count: int
    seeds: int

    @property
    def unanimous(self) -> bool:
        return self.count == self.seeds

    def __str__(self) -> str:
        if self.unanimous:
            return "both seeds" if self.seeds == 2 else f"all {self.seeds} seeds"
        return f"{self.claim} for {self.count} of {self.seeds} seeds"


def across_seeds(row: dict[str, Any], said: str) -> SeedCount | None:
    """Whether the seeds bear out the headline's verdict ``said``: None with one seed; else how
    many reach it, or, where the headline is within chance, how many reach the others' verdict."""
    verdicts = seed_verdicts(row)
    if len(verdicts) < 2:
        return None
    others = [v for v in verdicts if v != said]
    claim = said if said != "within chance" or not others else others[0]
    return SeedCount(claim, verdicts.count(claim), len(verdicts))


def chance_cell(row: dict[str, Any], interval: tuple[float, float] | None, published: float | None) -> str:
    """A table's "beyond chance?" cell: the headline's verdict, and whether the seeds bear it out."""
    if interval is None or published is None:
        return ""
    said = verdict(*interval, published)
    seeds = across_seeds(row, said)
    if seeds is None:
        return said
    if seeds.unanimous:
        return f"{said} ({seeds})"
    return str(seeds) if seeds.claim == said else f"{said}; {seeds}"


def study_sentences(rows: list[dict[str, Any]]) -> list[str]:
    """Per data set: our full-scale row chosen on validation, against the study's best figure."""
    lines = []
    for dataset, chosen in chosen_on_validation(rows).items():
        shown = headline(chosen)
        if shown.interval is None:
            continue
        low, high = shown.interval
        figure, study = chosen["published_accuracy"], chosen["published_model"]
        said = verdict(low, high, figure)
        outcome = {
            "better beyond chance": "we beat the study beyond chance",
            "worse beyond chance": "the study is better beyond chance",
            "within chance": "no difference beyond chance: the study's figure lies inside our interval",
        }.get(said, said)
        outcome += _seed_clause(chosen, said)
        lines.append(
            f"- **{dataset}**: {chosen['experiment']}{shown.label} (chosen on validation: "
            f"{pct(shown.val)}% val) tests {pct(shown.test)}% (95% interval {pct(low)}-{pct(high)}%) "
            f"against {pct(figure)}% ({study}): {outcome}."
        )
    return lines


def _seed_clause(row: dict[str, Any], said: str) -> str:
    """The study sentence's word on the training seeds: a claim one seed makes and another does
    not is not made yet."""
    seeds = across_seeds(row, said)
    if seeds is None:
        return " (one training seed: how far seed noise moves it is not measured)"
    if seeds.unanimous:
        return f" ({seeds} agree)"
    mean = pct((row.get("seed_summary") or {}).get("test_accuracy_mean"))
    if seeds.claim == said:
        return (
            f" with this seed; but only {seeds.count} of its {seeds.seeds} training seeds do "
            f"(seed mean {mean}%), so the claim does not hold beyond seed noise"
        )
    return f"; {seeds} (seed mean {mean}%), so neither holds across seeds"


def is_degraded(name: str) -> bool:
    """Whether a copy's name (``jpeg_30``, ``tta_hflip``, ...) is one of evaluate.robustness's
    degradations: the params' own pattern (squash: see docs/results.md)."""
    return DEGRADATION.match(name) is not None


ROBUST_MARGIN = 0.02  # issue 24's target: every degraded test copy within 2 points of clean


def worst_degraded(row: dict[str, Any], split: str) -> tuple[str, float] | None:
    """The row's lowest accuracy over the degraded copies of ``split`` evaluate scored, and which."""
    scored = {
        key.removeprefix(f"{split}_"): value
        for key, value in (row.get(f"{split}_variants") or {}).items()
        if is_degraded(key.removeprefix(f"{split}_")) and value is not None
    }
    if not scored:
        return None
    name = min(sorted(scored), key=scored.__getitem__)
    return name, scored[name]


def degraded_label(name: str) -> str:
    """A degraded copy's name as a reader says it: jpeg_30 -> "at JPEG 30", downscale_128 -> "at 128 px"."""
    kind, _, amount = name.partition("_")
    return {"jpeg": f"at JPEG {amount}", "downscale": f"at {amount} px", "blur": f"blurred ({amount})"}.get(
        kind, name
    )


def clean_floor(rows: list[dict[str, Any]]) -> float:
    """The lowest clean validation accuracy still within chance of the best of ``rows``: the lower
    end of the best row's 95% Wilson interval on its validation images (no floor when its image
    count was never recorded)."""
    best = max(rows, key=lambda r: r.get("val_accuracy") or -1.0)
    total = (best.get("split_counts") or {}).get("val")
    if not total or best.get("val_accuracy") is None:
        return -1.0
    return accuracy_interval(best["val_accuracy"], total)[0]


def chosen_for_degraded(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per data set: among our finished rows whose clean validation accuracy is within chance of
    the best one's (:func:`clean_floor`), the one whose worst degraded validation copy scores
    highest (ties: clean validation, then the experiment name), the row for smaller and re-encoded
    photos, chosen as the clean one is, never on test. The floor keeps out a recipe that buys a
    degraded point with several clean ones (cifar-best-jpeg-all: docs/results.md). Rows whose
    validation copies were never scored (measured before evaluate degraded validation) take no
    part: nothing says how they would fare."""
    scored = [r for r in rows if r.get("status") == "done" and worst_degraded(r, "val") is not None]
    chosen = {}
    for dataset in sorted({r["dataset"] for r in scored}):
        candidates = sorted((r for r in scored if r["dataset"] == dataset), key=lambda r: r["experiment"])
        floor = clean_floor(candidates)
        chosen[dataset] = max(
            (r for r in candidates if (r.get("val_accuracy") or -1.0) >= floor),
            key=lambda r: (worst_degraded(r, "val")[1], r.get("val_accuracy") or -1.0),
        )
    return chosen


def unscored_rivals(rows: list[dict[str, Any]], chosen: dict[str, Any]) -> list[str]:
    """Rows of ``chosen``'s data set above it on clean validation whose degraded validation copies
    were never scored: the choice on degraded copies cannot rule on them until they rerun."""
    return sorted(
        r["experiment"]
        for r in rows
        if r.get("status") == "done"
        and r["dataset"] == chosen["dataset"]
        and worst_degraded(r, "val") is None
        and (r.get("val_accuracy") or -1.0) > (chosen.get("val_accuracy") or -1.0)
    )
