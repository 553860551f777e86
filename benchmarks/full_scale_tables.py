"""The tables benchmarks/full_scale.py writes: full_scale.md and docs/results.md's table, and both
generated blocks in place (the README's glance is full_scale_glance.py's).

Every figure comes from the rows of benchmarks/results/full_scale.json; what each row claims
(headline, interval, verdict, seeds) comes from full_scale_verdicts.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the modules beside this script

from full_scale_glance import GLANCE_BEGIN, GLANCE_END, budget_lines, degraded_glance, render_glance
from full_scale_verdicts import (
    ROBUST_MARGIN,
    chance_cell,
    interval_of,
    pct,
    study_sentences,
    whole_seconds,
    worst_degraded,
)


def on_cache(row: dict) -> bool:
    """Whether the row's loop trained a head (or the top blocks) on featurize's cache rather than a
    net on decoded images: its summary says so; rows measured before it was recorded had a
    featurize only where something was cached."""
    trained_on = row.get("trained_on")
    if trained_on is not None:
        return trained_on.startswith("cached")
    return bool(row.get("featurize_seconds"))


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
            f"- `{row['experiment']}`: worst degraded test copy {name} {pct(accuracy)}%, "
            f"{100 * drop:.2f} points below clean ({within} 2 points)"
        )
        val_worst = worst_degraded(row, "val")
        if val_worst is not None and row.get("val_accuracy") is not None:
            val_name, val_accuracy = val_worst
            line += (
                f"; on validation {val_name} {pct(val_accuracy)}%, "
                f"{100 * (row['val_accuracy'] - val_accuracy):.2f} points below clean"
            )
        lines.append(line + ".")
    return lines


def seed_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Rows trained with several seeds on the same split: how much of a margin is seed noise."""
    lines = []
    for row in rows:
        summary = row.get("seed_summary")
        if row.get("status") != "done" or not summary:
            continue
        lines.append(
            f"- `{row['experiment']}`: {summary['seeds']} training seeds on the same split, test "
            f"{pct(summary['test_accuracy_mean'])}% ± {pct(summary['test_accuracy_sd'])} (sd), val "
            f"{pct(summary['val_accuracy_mean'])}% ± {pct(summary['val_accuracy_sd'])}." + later_seeds(row)
        )
    return lines


def later_seeds(row: dict[str, Any]) -> str:
    """Seeds added to a finished row at a later commit, and what featurize and train ran
    differently from the first seed's run (full_scale_seeds.code_changes), so a mean never hides
    a code change."""
    first = (row.get("provenance") or {}).get("commit")
    later = [run for run in row.get("seeds") or [] if run.get("commit") not in (None, first)]
    if not later:
        return ""
    which = ", ".join(f"seed {run['seed']} at {str(run['commit'])[:12]}" for run in later)
    if any(run.get("code_changed") is None for run in later):
        return f" Added later ({which}); whether featurize and train ran the first seed's code is not known."
    changed = sorted({path for run in later for path in run["code_changed"]})
    by_git = any(run.get("code_compared") == "git" for run in later)
    if not changed:
        if by_git:
            return (
                f" Added later ({which}); no code featurize and train run changed since the first "
                "seed's commit (git; their data inputs were not compared)."
            )
        return f" Added later ({which}), on the code and features the first seed's featurize and train ran."
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    if by_git:
        return (
            f" Added later ({which}); code featurize and train run changed since the first seed's "
            f"commit: {shown} (git; their data inputs were not compared)."
        )
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
        study = f"{pct(published)}% ({row['published_model']})" if published is not None else "–"
        chance = chance_cell(row, interval, published) or "–"
        shown = f"{pct(interval[0])}–{pct(interval[1])}%" if interval else "–"
        variants = row.get("test_variants") or {}
        cells = "".join(
            f"| {pct(variants[key])}% " if variants.get(key) is not None else "| – " for key in VARIANTS
        )
        splits = row.get("split_counts") or {}
        counts = " / ".join(f"{splits.get(s, 0):,}" for s in ("train", "val", "test")) if splits else "–"
        f1 = "–" if row.get("test_macro_f1") is None else f"{row['test_macro_f1']:.3f}"
        commit = ((row.get("provenance") or {}).get("commit") or "–")[:7]
        star = " *" if row.get("note") else ""
        lines.append(
            f"| `{row['experiment']}`{star} | {pct(row['test_accuracy'])}% | {shown} | {study} | {chance} "
            f"| {pct(row.get('val_accuracy'))}% | {f1} {cells}| {whole_seconds(row.get('train_seconds'))} "
            f"| {counts} | {commit} |"
        )
    notes = sorted({(r["dataset"], r["note"]) for r in rows if r.get("status") == "done" and r.get("note")})
    lines += [""] + [f"\\* {dataset}: {note}." for dataset, note in notes] if notes else []
    seeds = seed_lines(rows)
    budget = budget_lines(rows)
    lines += ["", *study_sentences(rows), *(["", *budget] if budget else [])]
    lines += [*(["", "Seeds:", "", *seeds] if seeds else []), TABLE_END]
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
        study = f"{pct(published)} ({row['published_model']})" if published is not None else ""
        delta = "" if published is None else f"{100 * (row['test_accuracy'] - published):+.2f}"
        splits = row.get("split_counts") or {}
        counts = " / ".join(f"{splits.get(s, 0):,}" for s in ("train", "val", "test")) if splits else ""
        epochs = "" if row.get("epochs") is None else f"{row['epochs']:.0f}"
        speed = "" if row.get("images_per_second") is None else f"{row['images_per_second']:.1f}"
        if speed and on_cache(row):
            speed += " (on cache)"
        f1 = "" if row.get("test_macro_f1") is None else f"{row['test_macro_f1']:.4f}"
        interval = interval_of(row)
        shown = f"{pct(interval[0])}-{pct(interval[1])}" if interval else ""
        chance = chance_cell(row, interval, published)
        commit = ((row.get("provenance") or {}).get("commit") or "-")[:12]
        marker = ""
        if row.get("note"):
            notes[row["dataset"]] = row["note"]
            marker = " *"
        lines.append(
            f"| {row['experiment']} | {row['dataset']}{marker} | {pct(row['test_accuracy'])} | {shown} "
            f"| {study} | {delta} | {chance} "
            f"| {pct(row.get('val_accuracy'))} | {pct(row.get('train_accuracy'))} "
            f"| {f1} | {epochs} "
            f"| {whole_seconds(row.get('train_seconds'))} "
            f"| {whole_seconds(row.get('featurize_seconds'))} | {speed} "
            f"| {whole_seconds(row.get('wall_seconds'))} | {counts} | {commit} |"
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
        lines += degraded_glance(rows)
    return "\n".join(lines) + "\n"
