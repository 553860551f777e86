"""The README's first-screen block (the glance), written from benchmarks/results/full_scale.json:
per data set the row chosen on validation, the row for degraded photos, and the choice within a
compute budget (the last in docs/results.md's table). What each row claims comes from
full_scale_verdicts.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # full_scale_verdicts beside this script

from full_scale_verdicts import (
    HOUR,
    ROBUST_MARGIN,
    chance_cell,
    chosen_for_degraded,
    chosen_on_validation,
    chosen_within,
    compute_seconds,
    degraded_label,
    headline,
    pct,
    tied_on_validation,
    unscored_rivals,
    worst_degraded,
)

GLANCE_BEGIN = (
    "<!-- results at a glance: written from benchmarks/results/full_scale.json by "
    "`uv run python benchmarks/full_scale.py --table-only`; do not edit by hand -->"
)
GLANCE_END = "<!-- end of the results at a glance -->"


def render_glance(rows: list[dict[str, Any]]) -> str:
    """The README's first-screen block: a row per data set, our row chosen on validation against
    the study's best, its interval and verdict, its seeds where it has them and its worst degraded
    test copy; then the row chosen for degraded photos (:func:`degraded_glance`)."""
    lines = [
        GLANCE_BEGIN,
        "| data set | the study's best | ours, chosen on validation | within chance of it on val. "
        "| test (95% interval) | beyond chance? | seeds: test mean ± sd | worst degraded test copy "
        "| compute |",
        "|---|---:|---|---|---:|---|---:|---:|---:|",
    ]
    for dataset, chosen in chosen_on_validation(rows, published_only=False).items():
        shown = headline(chosen)
        interval = shown.interval
        if interval is None:
            continue
        summary = chosen.get("seed_summary")
        seeds = (
            f"{pct(summary['test_accuracy_mean'])}% ± {pct(summary['test_accuracy_sd'])} "
            f"({summary['seeds']} seeds)"
            if summary
            else "one seed"
        )
        published = chosen.get("published_accuracy")
        study = (
            "– (none published)" if published is None else f"{pct(published)}% ({chosen['published_model']})"
        )
        chance = "–" if published is None else chance_cell(chosen, interval, published)
        lines.append(
            f"| {dataset} | {study} | `{chosen['experiment']}`{shown.label} | {_tied_cell(rows, chosen)} "
            f"| {pct(shown.test)}% "
            f"({pct(interval[0])}–{pct(interval[1])}%) | {chance} | {seeds} | {_worst_cell(chosen)} "
            f"| {compute_cell(chosen)} |"
        )
    lines += degraded_glance(rows)
    lines.append(GLANCE_END)
    return "\n".join(lines)


def _tied_cell(rows: list[dict[str, Any]], chosen: dict[str, Any]) -> str:
    """Which of our other rows validation cannot tell from the choice, and what they test: a choice
    among them is chance's, and their test figures are what it could have been."""
    tied = tied_on_validation(rows, chosen)
    if tied is None:
        return "–"
    if not tied:
        others = [r for r in rows if r.get("status") == "done" and r["dataset"] == chosen["dataset"]]
        return "none" if len(others) > 1 else "no other row"
    tests = sorted(headline(r).test for r in tied)
    if len(tied) == 1:
        return f"`{tied[0]['experiment']}` (test {pct(tests[0])}%)"
    return f"{len(tied)} rows (test {pct(tests[0])}–{pct(tests[-1])}%)"


def compute_cell(row: dict[str, Any]) -> str:
    """What the row's model cost here: featurize + train seconds (its first seed), in minutes from one."""
    seconds = compute_seconds(row)
    if seconds is None:
        return "–"
    return f"{seconds:.0f} s" if seconds < 60 else f"{round(seconds / 60)} min"


def budget_lines(rows: list[dict[str, Any]], budget: float = HOUR) -> list[str]:
    """Per data set, the row validation chooses among those whose model cost no more than
    ``budget`` here (issue 24: CIFAR-10 >= 94% within an hour), beside the choice without a budget."""
    within = chosen_within(rows, budget)
    if not within:
        return []
    unbudgeted = chosen_on_validation(rows, published_only=False)
    lines = [
        f"Within {round(budget / 60)} minutes of compute (featurize + train here; validation chooses "
        "among the rows that cost no more, test only reports):",
        "",
        "| data set | chosen on validation within the budget | compute | val. acc. | test (95% interval) "
        "| the choice without a budget |",
        "|---|---|---:|---:|---:|---|",
    ]
    for dataset, row in within.items():
        shown, free = headline(row), unbudgeted[dataset]
        interval = f" ({pct(shown.interval[0])}–{pct(shown.interval[1])}%)" if shown.interval else ""
        free_shown = headline(free)
        cost = f"{compute_cell(free)}, test {pct(free_shown.test)}%"
        other = "the same" if free is row else f"`{free['experiment']}`{free_shown.label}: {cost}"
        lines.append(
            f"| {dataset} | `{row['experiment']}`{shown.label} | {compute_cell(row)} | {pct(shown.val)}% "
            f"| {pct(shown.test)}%{interval} | {other} |"
        )
    return lines


def _worst_cell(row: dict[str, Any]) -> str:
    """The row's worst degraded test copy and how far below its plain clean test figure."""
    worst = worst_degraded(row, "test")
    if worst is None:
        return "– (not scored)"
    name, accuracy = worst
    return f"{pct(accuracy)}% {degraded_label(name)} ({100 * (accuracy - row['test_accuracy']):+.2f})"


def degraded_glance(rows: list[dict[str, Any]]) -> list[str]:
    """Per data set, the row chosen on its worst degraded validation copy (the one to use on
    smaller, re-encoded photos), its clean test figure and worst degraded test copy against issue
    24's 2 points."""
    chosen = chosen_for_degraded(rows)
    if not chosen:
        return []
    lines = [
        "",
        "For smaller and re-encoded photos (evaluate.robustness; chosen on the worst degraded "
        "validation copy among the rows within chance of the best clean validation, never on test):",
        "",
        "| data set | ours, chosen on degraded validation | worst degraded val copy | clean test "
        "| worst degraded test copy | within 2 points of clean? "
        "| above it on clean val, copies never scored | compute |",
        "|---|---|---:|---:|---:|---|---|---:|",
    ]
    for dataset, row in chosen.items():
        val_name, val_accuracy = worst_degraded(row, "val")
        _, accuracy = worst_degraded(row, "test") or (None, None)
        within = (
            "–" if accuracy is None else ("yes" if row["test_accuracy"] - accuracy <= ROBUST_MARGIN else "no")
        )
        lines.append(
            f"| {dataset} | `{row['experiment']}` | {pct(val_accuracy)}% {degraded_label(val_name)} "
            f"| {pct(row['test_accuracy'])}% | {_worst_cell(row)} | {within} "
            f"| {', '.join(f'`{name}`' for name in unscored_rivals(rows, row)) or '–'} "
            f"| {compute_cell(row)} |"
        )
    return lines
