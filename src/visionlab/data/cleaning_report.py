"""The prepare stage's cleaning report: what was kept, dropped (and why), repaired and split.

Written as ``report.json`` for programs and ``report.md`` for people, beside the manifest.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from visionlab.data.split import SPLITS

if TYPE_CHECKING:
    from visionlab.data.scanned import Scanned


def cleaning_report(
    dataset: str,
    image_root: Path,
    classes: list[str],
    scanned: list[Scanned],
    kept: list[Scanned],
    dropped: list[dict],
    unmatched: list[str],
    left_out: Counter,
    manifest: pd.DataFrame,
) -> dict:
    """``report.json``: counts before and after, by class and split, and every dropped file's reason."""
    by_class_reason: dict[str, Counter] = defaultdict(Counter)
    for record in dropped:
        by_class_reason[record["class"] or "(no class)"][record["reason"]] += 1
    converted = Counter(s.mode for s in kept if s.mode not in (None, "RGB"))
    splits = {
        split: {c: int(((manifest.split == split) & (manifest.label == c)).sum()) for c in classes}
        for split in SPLITS
    }
    return {
        "dataset": dataset,
        "image_root": image_root.as_posix(),
        "classes": classes,
        "files_seen": len(scanned),
        "images_kept": len(kept),
        "before": {c: sum(1 for s in scanned if s.label == c) for c in classes},
        "after": {c: sum(1 for s in kept if s.label == c) for c in classes},
        "dropped_by_reason": dict(Counter(d["reason"] for d in dropped).most_common()),
        "dropped_by_class": {c: dict(r) for c, r in sorted(by_class_reason.items())},
        "converted_to_rgb": dict(converted),
        "repaired": [
            {"path": s.path, "class": s.label, "repair": "; ".join(s.repairs())} for s in kept if s.repairs()
        ],
        "left_out_by_choice": dict(left_out),
        "exclusions_not_found": unmatched,
        "splits": splits,
        "split_totals": {s: sum(splits[s].values()) for s in SPLITS},
        "dropped": dropped,
    }


def _near_duplicate_lines(near: dict | None) -> list[str]:
    if not near or near["policy"] == "off":
        return []
    groups = near["groups"]
    lines = [
        "",
        "## Near-duplicate groups",
        "",
        f"{near['method']} within {near['threshold']} bits of 64, policy {near['policy']}: "
        f"{len(groups)} groups, {sum(len(g['members']) for g in groups)} images.",
    ]
    if groups:
        lines += ["", "| group | classes | max distance | split | members |", "|---:|---|---:|---|---|"]
    for number, g in enumerate(groups, 1):
        members = ", ".join(f"`{Path(m).parent.name}/{Path(m).name}`" for m in g["members"])
        splits = ", ".join(g["splits"]) or "dropped"
        lines.append(f"| {number} | {', '.join(g['classes'])} | {g['max_distance']} | {splits} | {members} |")
    return lines


def report_markdown(report: dict) -> str:
    """``report.md``: the same report as tables a person reads."""
    classes = report["classes"]
    lines = [
        f"# Cleaning report: {report['dataset']}",
        "",
        f"{report['files_seen']} files seen under `{report['image_root']}`, "
        f"{report['images_kept']} images kept.",
        "",
        "| class | before | after | " + " | ".join(SPLITS) + " |",
        "|---|---:|---:|" + "---:|" * len(SPLITS),
    ]
    for c in classes:
        cells = [str(report["splits"][s][c]) for s in SPLITS]
        lines.append(f"| {c} | {report['before'][c]} | {report['after'][c]} | " + " | ".join(cells) + " |")
    totals = [str(report["split_totals"][s]) for s in SPLITS]
    lines.append(
        f"| **total** | {sum(report['before'].values())} | {report['images_kept']} | "
        + " | ".join(totals)
        + " |"
    )
    lines += ["", "## Dropped, by reason", "", "| reason | files |", "|---|---:|"]
    lines += [f"| {r} | {n} |" for r, n in report["dropped_by_reason"].items()] or ["| none | 0 |"]
    if report["converted_to_rgb"]:
        lines += ["", "## Converted to RGB", "", "| mode | images |", "|---|---:|"]
        lines += [f"| {m} | {n} |" for m, n in report["converted_to_rgb"].items()]
    if report["repaired"]:
        lines += ["", "## Repaired and kept", "", "| file | class | repair |", "|---|---|---|"]
        lines += [f"| `{r['path']}` | {r['class']} | {r['repair']} |" for r in report["repaired"]]
    if report["left_out_by_choice"]:
        lines += ["", "## Folders left out by choice (not in the class list)", ""]
        lines += [f"- {f}: {n} files" for f, n in report["left_out_by_choice"].items()]
    if report["exclusions_not_found"]:
        lines += ["", "## Exclusion entries that match no file", ""]
        lines += [f"- `{e}`" for e in report["exclusions_not_found"]]
    lines += _near_duplicate_lines(report.get("near_duplicates"))
    lines += ["", "## Every dropped file", "", "| file | class | reason | detail |", "|---|---|---|---|"]
    for d in report["dropped"]:
        detail = d["detail"].replace("|", "\\|")
        lines.append(f"| `{d['path']}` | {d['class'] or ''} | {d['reason']} | {detail} |")
    return "\n".join(lines) + "\n"
