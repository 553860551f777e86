"""The tables benchmarks/full_scale.py writes: full_scale.md, the README's glance and docs/results.md's table.

Every figure comes from the rows of benchmarks/results/full_scale.json; intervals are recomputed
from the test counts for rows recorded before evaluate wrote them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import click

from visionlab.evaluation.intervals import accuracy_interval, verdict


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def _seconds(value: float | None) -> str:
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
        return (
            f"all {self.seeds} seeds"
            if self.unanimous
            else f"{self.claim} for {self.count} of {self.seeds} seeds"
        )


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
            f"{_pct(shown.val)}% val) tests {_pct(shown.test)}% (95% interval {_pct(low)}-{_pct(high)}%) "
            f"against {_pct(figure)}% ({study}): {outcome}."
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
    mean = _pct((row.get("seed_summary") or {}).get("test_accuracy_mean"))
    if seeds.claim == said:
        return (
            f" with this seed; but only {seeds.count} of its {seeds.seeds} training seeds do "
            f"(seed mean {mean}%), so the claim does not hold beyond seed noise"
        )
    return f"; {seeds} (seed mean {mean}%), so neither holds across seeds"


DEGRADED = ("downscale_", "jpeg_", "blur_")  # evaluate.robustness's kinds (squash: see docs/results.md)
ROBUST_MARGIN = 0.02  # issue 24's target: every degraded test copy within 2 points of clean


def worst_degraded(row: dict[str, Any], split: str) -> tuple[str, float] | None:
    """The row's lowest accuracy over the degraded copies of ``split`` evaluate scored, and which."""
    scored = {
        key.removeprefix(f"{split}_"): value
        for key, value in (row.get(f"{split}_variants") or {}).items()
        if key.removeprefix(f"{split}_").startswith(DEGRADED) and value is not None
    }
    if not scored:
        return None
    name = min(sorted(scored), key=scored.__getitem__)
    return name, scored[name]


def robustness_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Per finished row with degraded test copies: the worst one against clean test, and the same
    on validation where evaluate scored it (what a robust recipe is chosen on)."""
    lines = []
    for row in rows:
        worst = worst_degraded(row, "test")
        if row.get("status") != "done" or worst is None:
            continue
        name, accuracy = worst
        drop = row["test_accuracy"] - accuracy
        within = "within" if drop <= ROBUST_MARGIN else "not within"
        line = (
            f"- `{row['experiment']}`: worst degraded test copy {name} {_pct(accuracy)}%, "
            f"{100 * drop:.2f} points below clean ({within} 2 points)"
        )
        val_worst = worst_degraded(row, "val")
        if val_worst is not None and row.get("val_accuracy") is not None:
            val_name, val_accuracy = val_worst
            line += (
                f"; on validation {val_name} {_pct(val_accuracy)}%, "
                f"{100 * (row['val_accuracy'] - val_accuracy):.2f} points below clean"
            )
        lines.append(line + ".")
    return lines


GLANCE_BEGIN = (
    "<!-- results at a glance: written from benchmarks/results/full_scale.json by "
    "`uv run python benchmarks/full_scale.py --table-only`; do not edit by hand -->"
)
GLANCE_END = "<!-- end of the results at a glance -->"


def render_glance(rows: list[dict[str, Any]]) -> str:
    """The README's first-screen block: a row per data set, our row chosen on validation against
    the study's best, its interval and verdict, and its seeds where it has them."""
    lines = [
        GLANCE_BEGIN,
        "| data set | the study's best | ours, chosen on validation | test (95% interval) "
        "| beyond chance? | seeds: test mean ± sd |",
        "|---|---:|---|---:|---|---:|",
    ]
    for dataset, chosen in chosen_on_validation(rows, published_only=False).items():
        shown = headline(chosen)
        interval = shown.interval
        if interval is None:
            continue
        summary = chosen.get("seed_summary")
        seeds = (
            f"{_pct(summary['test_accuracy_mean'])}% ± {_pct(summary['test_accuracy_sd'])} "
            f"({summary['seeds']} seeds)"
            if summary
            else "one seed"
        )
        published = chosen.get("published_accuracy")
        study = (
            "– (none published)" if published is None else f"{_pct(published)}% ({chosen['published_model']})"
        )
        chance = "–" if published is None else chance_cell(chosen, interval, published)
        lines.append(
            f"| {dataset} | {study} | `{chosen['experiment']}`{shown.label} | {_pct(shown.test)}% "
            f"({_pct(interval[0])}–{_pct(interval[1])}%) | {chance} | {seeds} |"
        )
    lines.append(GLANCE_END)
    return "\n".join(lines)


def seed_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Rows trained with several seeds on the same split: how much of a margin is seed noise."""
    lines = []
    for row in rows:
        summary = row.get("seed_summary")
        if row.get("status") != "done" or not summary:
            continue
        lines.append(
            f"- `{row['experiment']}`: {summary['seeds']} training seeds on the same split, test "
            f"{_pct(summary['test_accuracy_mean'])}% ± {_pct(summary['test_accuracy_sd'])} (sd), val "
            f"{_pct(summary['val_accuracy_mean'])}% ± {_pct(summary['val_accuracy_sd'])}." + later_seeds(row)
        )
    return lines


def later_seeds(row: dict[str, Any]) -> str:
    """Seeds added to a finished row at a later commit, and whether featurize and train ran the
    first seed's code (from each seed's dvc.lock entries), so a mean never hides a code change."""
    first = (row.get("provenance") or {}).get("commit")
    later = [run for run in row.get("seeds") or [] if run.get("commit") not in (None, first)]
    if not later:
        return ""
    which = ", ".join(f"seed {run['seed']} at {str(run['commit'])[:12]}" for run in later)
    changed = sorted({path for run in later for path in run.get("code_changed") or []})
    if not changed:
        return f" Added later ({which}), on the code and features the first seed's featurize and train ran."
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    return f" Added later ({which}); featurize and train ran changed code or inputs: {shown}."


TABLE_BEGIN = (
    "<!-- full-scale table: written from benchmarks/results/full_scale.json by "
    "`uv run python benchmarks/full_scale.py --table-only`; do not edit by hand -->"
)
TABLE_END = "<!-- end of the full-scale table -->"
VARIANTS = {"test_tta_hflip": "hflip TTA", "test_downscale_128": "at 128 px", "test_jpeg_30": "at JPEG 30"}


def render_readme_table(rows: list[dict[str, Any]]) -> str:
    """The README's results block: every finished row, its interval and verdict, its commit."""
    lines = [
        TABLE_BEGIN,
        "| experiment | test acc. | 95% interval | study | beyond chance? | val. acc. | macro F1 "
        + "".join(f"| {label} " for label in VARIANTS.values())
        + "| train s | train / val / test | commit |",
        "|---|---:|---:|---:|---|---:|---:|" + "---:|" * len(VARIANTS) + "---:|---|---|",
    ]
    for row in rows:
        if row.get("status") != "done":
            continue
        published = row.get("published_accuracy")
        interval = interval_of(row)
        study = f"{_pct(published)}% ({row['published_model']})" if published is not None else "–"
        chance = chance_cell(row, interval, published) or "–"
        shown = f"{_pct(interval[0])}–{_pct(interval[1])}%" if interval else "–"
        variants = row.get("test_variants") or {}
        cells = "".join(
            f"| {_pct(variants[key])}% " if variants.get(key) is not None else "| – " for key in VARIANTS
        )
        splits = row.get("split_counts") or {}
        counts = " / ".join(f"{splits.get(s, 0):,}" for s in ("train", "val", "test")) if splits else "–"
        f1 = "–" if row.get("test_macro_f1") is None else f"{row['test_macro_f1']:.3f}"
        commit = ((row.get("provenance") or {}).get("commit") or "–")[:7]
        star = " *" if row.get("note") else ""
        lines.append(
            f"| `{row['experiment']}`{star} | {_pct(row['test_accuracy'])}% | {shown} | {study} | {chance} "
            f"| {_pct(row.get('val_accuracy'))}% | {f1} {cells}| {_seconds(row.get('train_seconds'))} "
            f"| {counts} | {commit} |"
        )
    notes = sorted({(r["dataset"], r["note"]) for r in rows if r.get("status") == "done" and r.get("note")})
    lines += [""] + [f"\\* {dataset}: {note}." for dataset, note in notes] if notes else []
    seeds = seed_lines(rows)
    lines += ["", *study_sentences(rows), *(["", "Seeds:", "", *seeds] if seeds else []), TABLE_END]
    return "\n".join(lines)


RESULTS_PAGE = "docs/results.md"  # the whole table, beside the discussion of it


def _write_between(path: Path, begin: str, end: str, block: str) -> None:
    text = path.read_text()
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise click.ClickException(f"{path}: no generated-block markers ({begin!r} ... {end!r})")
    path.write_text(text[:start] + block + text[stop + len(end) :])


def write_generated_blocks(repo: Path, rows: list[dict[str, Any]]) -> None:
    """The README's glance and docs/results.md's table, both from the result file's rows."""
    _write_between(repo / "README.md", GLANCE_BEGIN, GLANCE_END, render_glance(rows))
    _write_between(repo / RESULTS_PAGE, TABLE_BEGIN, TABLE_END, render_readme_table(rows))


def render_markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The results table: one row per experiment, figures beside the study's, or why not run."""
    lines = [
        "# The studies' experiments on the full data sets",
        "",
        f"Real `dvc repro evaluate@<experiment>` per experiment on {meta.get('machine', '?')} "
        f"({meta.get('cpus', '?')} CPUs, device {meta.get('device', '?')}); data from the mirror "
        f'`{meta.get("mirror", "?")}`. Accuracies in %; "vs study" is ours minus the study\'s, in points; '
        "train s is the training stage's own clock, wall s the whole chain of the run that produced the row; "
        'img/s counts training images per second of the train stage\'s loop: "(on cache)" where it '
        "trained on featurize's cached features or activations, not on decoded images.",
        "",
        'The 95% interval is Wilson\'s, from the test count; "beyond chance?" says whether the '
        "study's figure lies outside it. Commit: the visionlab commit the row was measured on "
        '("-": recorded before rows named one).',
        "",
        "| experiment | data set | test acc | 95% interval | study | vs study | beyond chance? | val acc "
        "| train acc | macro F1 | epochs | train s | featurize s | img/s | wall s "
        "| train / val / test images | commit |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    notes: dict[str, str] = {}
    for row in rows:
        if row.get("status") != "done":
            lines.append(
                f"| {row['experiment']} | {row.get('dataset', '')} | not run: {row.get('status')} |"
                + " |" * 14
            )
            continue
        published = row.get("published_accuracy")
        study = f"{_pct(published)} ({row['published_model']})" if published is not None else ""
        delta = "" if published is None else f"{100 * (row['test_accuracy'] - published):+.2f}"
        splits = row.get("split_counts") or {}
        counts = " / ".join(f"{splits.get(s, 0):,}" for s in ("train", "val", "test")) if splits else ""
        epochs = "" if row.get("epochs") is None else f"{row['epochs']:.0f}"
        speed = "" if row.get("images_per_second") is None else f"{row['images_per_second']:.1f}"
        if speed and row.get("featurize_seconds"):
            # A head (or the top blocks) on featurize's cache, not a net on decoded images.
            speed += " (on cache)"
        f1 = "" if row.get("test_macro_f1") is None else f"{row['test_macro_f1']:.4f}"
        interval = interval_of(row)
        shown = f"{_pct(interval[0])}-{_pct(interval[1])}" if interval else ""
        chance = chance_cell(row, interval, published)
        commit = ((row.get("provenance") or {}).get("commit") or "-")[:12]
        marker = ""
        if row.get("note"):
            notes[row["dataset"]] = row["note"]
            marker = " *"
        lines.append(
            f"| {row['experiment']} | {row['dataset']}{marker} | {_pct(row['test_accuracy'])} | {shown} "
            f"| {study} | {delta} | {chance} "
            f"| {_pct(row.get('val_accuracy'))} | {_pct(row.get('train_accuracy'))} "
            f"| {f1} | {epochs} "
            f"| {_seconds(row.get('train_seconds'))} | {_seconds(row.get('featurize_seconds'))} | {speed} "
            f"| {_seconds(row.get('wall_seconds'))} | {counts} | {commit} |"
        )
    if notes:
        lines += [""] + [f"\\* {dataset}: {note}." for dataset, note in sorted(notes.items())]
    sentences = study_sentences(rows)
    if sentences:
        lines += ["", "Against each study (our row chosen on validation, never on test):", "", *sentences]
    seeds = seed_lines(rows)
    if seeds:
        lines += ["", "Seeds:", "", *seeds]
    degraded = robustness_lines(rows)
    if degraded:
        lines += ["", "Degraded copies (evaluate.robustness; the clean figures above are the studies'):", ""]
        lines += degraded
    return "\n".join(lines) + "\n"
