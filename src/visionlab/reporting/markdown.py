"""reports/summary.md: the report's tables as Markdown, small enough to read in a pull request."""

from __future__ import annotations

import pandas as pd

from visionlab.reporting import tables
from visionlab.reporting.collect import DatasetRecord
from visionlab.reporting.paired_table import paired_table
from visionlab.reporting.tables import Table
from visionlab.tracking.registry import Registration


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_table(table: Table) -> list[str]:
    lines = ["| " + " | ".join(_escape(h) for h in table.headers) + " |"]
    lines.append("|" + "|".join("---:" if n else "---" for n in table.numeric) + "|")
    for row in table.rows:
        cells = [f"**{_escape(c.text)}**" if c.best else _escape(c.text) for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _registry(registrations: list[Registration]) -> list[str]:
    lines = []
    for registration in registrations:
        where = f"`models:/{registration.name}@{registration.alias}`"
        if registration.skipped:
            lines += [f"Model registry {where}: not updated ({registration.skipped}).", ""]
            continue
        state = "new version" if registration.changed else "unchanged"
        lines += [
            f"Chosen on {registration.chosen_on}: **{registration.experiment}** -> {where} "
            f"(version {registration.version}, {state}).",
            "",
        ]
    return lines


def render_markdown(
    datasets: list[DatasetRecord],
    frame: pd.DataFrame,
    registrations: dict[str, list[Registration]],
    commit: str | None = None,
) -> str:
    done = int((frame.status == "done").sum()) if not frame.empty else 0
    lines = ["# visionlab: experiment comparison", ""]
    meta = f"{done} of {len(frame)} experiments have results"
    if commit:
        meta += f"; git commit `{commit[:12]}`"
    lines += [
        meta + ". Bold: the best value of each column. Figures and explanations: `reports/index.html`.",
        "",
    ]
    for dataset in datasets:
        rows = frame[frame.dataset == dataset.name]
        lines += [f"## {dataset.name}", ""]
        lines += _registry(registrations.get(dataset.name, []))
        if dataset.run:
            lines += [*render_table(tables.comparison_table(rows)), ""]
        else:
            lines += ["No experiment of this data set has results yet.", ""]
        per_class = tables.per_class_table(dataset) if dataset.run else None
        if per_class is not None:
            lines += ["Per-class precision, recall and F1 on the test split:", ""]
            lines += [*render_table(per_class), ""]
        if dataset.not_run:
            lines += ["Not run yet: " + ", ".join(f"{e.name} ({e.arch})" for e in dataset.not_run) + ".", ""]
        if dataset.published:
            study = next(iter(dataset.published.values())).study
            lines += [f"Published figures ({study}):" if study else "Published figures:", ""]
            lines += [*render_table(tables.published_table(dataset)), ""]
        paired = paired_table(dataset)
        if paired is not None:
            lines += [
                "Paired on the same test images (McNemar's exact test); the last two columns test "
                "the same pair on the validation images, where the choice was made:",
                "",
            ]
            lines += [*render_table(paired), ""]
        if dataset.cleaning:
            cleaning = dataset.cleaning
            reasons = cleaning.get("dropped_by_reason") or {}
            dropped = ", ".join(f"{reason} {count}" for reason, count in reasons.items()) or "none"
            lines += [
                f"Cleaning: {cleaning.get('files_seen', '?')} files seen, "
                f"{cleaning.get('images_kept', '?')} images kept; dropped: {dropped}.",
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"
