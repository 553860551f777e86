"""`visionlab compare`: one line per (DVC experiment, pipeline experiment) that a person can read.

`dvc exp show` puts every params key and every metrics file of every experiment in its own column
(hundreds); this table pivots it: a row per experiment a DVC experiment recomputed, with what it
changed against its baseline commit, validation and test accuracy with the test's 95% interval,
and what training cost; "on val" marks, among the runs of one experiment on the same validation
split, the best one and those validation cannot tell from it (``tie``). Committed full-scale
results (``benchmarks/results/full_scale.json``) join as rows of their own, so a variant and the
committed figure sit side by side.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from visionlab.evaluation.intervals import accuracy_interval, mcnemar

METRICS_PREFIX, METRICS_SUFFIX = "results/", "/metrics.json"
GLOBAL_SECTIONS = ("train.", "augment.", "prepare.", "evaluate.", "explain.", "download.")


@dataclass(frozen=True)
class CompareRow:
    source: str  # a DVC experiment's name, "workspace", a commit, or "full-scale <commit>"
    experiment: str  # the pipeline experiment (params.yaml experiments.<name>)
    changed: str  # params that differ from the baseline, as key=value
    val: float | None
    test: float | None
    interval: tuple[float, float] | None
    seconds: float | None  # what the model cost: training, plus the frozen base's features
    val_images: float | None = None  # how many validation images val was measured on
    evaluated: str | None = None  # the hash of its evaluate output (data/eval/<experiment>)
    baseline_evaluated: str | None = None  # a variant's baseline's, for the paired test against it
    paired: str = ""  # that test, in words (with_paired)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values, empty maps have no keys."""
    if not isinstance(tree, Mapping):
        return {prefix.rstrip("."): tree} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}{key}."))
    return flat


def as_number(value: Any) -> float | None:
    """A finite float from a JSON value, else None (missing, text, NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _interval(test: Mapping[str, Any]) -> tuple[float, float] | None:
    low, high = as_number(test.get("accuracy_ci_low")), as_number(test.get("accuracy_ci_high"))
    if low is not None and high is not None:
        return low, high
    accuracy, images = as_number(test.get("accuracy")), as_number(test.get("images"))
    if accuracy is None or not images:
        return None
    return accuracy_interval(accuracy, int(images))


def relevant(key: str, experiment: str, params: Mapping[str, Any]) -> str | None:
    """``key`` as the experiment's row shows it, or None when the change cannot touch it."""
    own = f"experiments.{experiment}."
    if key.startswith(own):
        return key.removeprefix(own)
    spec = (params.get("experiments") or {}).get(experiment) or {}
    for section, name in (
        ("models", spec.get("model")),
        ("recipes", spec.get("recipe")),
        ("datasets", spec.get("dataset")),
    ):
        if name and (key == f"{section}.{name}" or key.startswith(f"{section}.{name}.")):
            return key
    return key if key.startswith(GLOBAL_SECTIONS) else None


def changed_params(params: Mapping[str, Any], baseline: Mapping[str, Any], experiment: str) -> str:
    """What differs from the baseline's params.yaml and can touch ``experiment``, as ``k=v, ...``."""
    new, old = flatten(params), flatten(baseline)
    parts = []
    for key in sorted(set(new) | set(old)):
        value = new.get(key)  # None: the variant removed the key
        shown = relevant(key, experiment, params if key in new else baseline)
        if value != old.get(key) and shown is not None:
            parts.append(f"{shown}={value if isinstance(value, str) else json.dumps(value)}")
    return ", ".join(parts)


def _metrics(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Pipeline experiment -> its metrics.json, from one `dvc exp show --json` revision."""
    found = {}
    for path, entry in (data.get("metrics") or {}).items():
        if path.startswith(METRICS_PREFIX) and path.endswith(METRICS_SUFFIX) and isinstance(entry, Mapping):
            values = entry.get("data")
            if isinstance(values, Mapping):
                found[path.removeprefix(METRICS_PREFIX).removesuffix(METRICS_SUFFIX)] = dict(values)
    return found


def _params(data: Mapping[str, Any]) -> dict[str, Any]:
    return dict(((data.get("params") or {}).get("params.yaml") or {}).get("data") or {})


def _evaluated(data: Mapping[str, Any], experiment: str) -> str | None:
    """The hash `dvc exp show` gives the experiment's evaluate output in one revision."""
    out = (data.get("outs") or {}).get(f"data/eval/{experiment}")
    return out.get("hash") if isinstance(out, Mapping) else None


def _row(source: str, experiment: str, metrics: Mapping[str, Any], changed: str) -> CompareRow:
    test = metrics.get("test") or {}
    training = metrics.get("training") or {}
    return CompareRow(
        source=source,
        experiment=experiment,
        changed=changed,
        val=as_number((metrics.get("val") or {}).get("accuracy")),
        test=as_number(test.get("accuracy")),
        interval=_interval(test),
        seconds=_compute_seconds(training),
        val_images=as_number((metrics.get("val") or {}).get("images")),
    )


def _compute_seconds(training: Mapping[str, Any]) -> float | None:
    seconds = as_number(training.get("seconds"))
    features = as_number(training.get("featurize_seconds"))
    if seconds is None:
        return None
    return seconds + (features if features and features > 0 else 0.0)


def rows_from_exp_show(shown: Iterable[Mapping[str, Any]]) -> list[CompareRow]:
    """Rows from `dvc exp show --json`: every experiment of each baseline commit, then each DVC
    experiment's rows (the workspace's too) for the pipeline experiments it recomputed, that is
    whose metrics differ from its baseline's, with the params it changed against that baseline."""
    entries = list(shown)
    rows: list[CompareRow] = []
    workspace = [e for e in entries if e.get("rev") == "workspace"]
    commits = [e for e in entries if e.get("rev") != "workspace"]
    for index, baseline in enumerate(commits):
        base = baseline.get("data") or {}
        base_params, base_metrics = _params(base), _metrics(base)
        label = str(baseline.get("name") or str(baseline.get("rev") or "")[:7])
        rows += [
            replace(_row(label, name, m, ""), evaluated=_evaluated(base, name))
            for name, m in sorted(base_metrics.items())
        ]
        variants = [
            (str(rev.get("name") or group.get("name") or str(rev.get("rev"))[:7]), rev.get("data") or {})
            for group in baseline.get("experiments") or []
            for rev in group.get("revs") or []
        ]
        if index == 0:  # the workspace sits on the newest baseline (HEAD)
            variants = [("workspace", w.get("data") or {}) for w in workspace] + variants
        for name, data in variants:
            params = _params(data)
            for experiment, metrics in sorted(_metrics(data).items()):
                if metrics != base_metrics.get(experiment):
                    row = _row(name, experiment, metrics, changed_params(params, base_params, experiment))
                    evaluated = {"evaluated": _evaluated(data, experiment)}
                    evaluated["baseline_evaluated"] = _evaluated(base, experiment)
                    rows.append(replace(row, **evaluated))
    return rows


def rows_from_full_scale(document: Mapping[str, Any]) -> list[CompareRow]:
    """Rows from a committed ``full_scale.json``: the source names the commit each row was run at."""
    rows = []
    for row in document.get("rows") or []:
        if row.get("status") != "done":
            continue
        commit = str((row.get("provenance") or {}).get("commit") or "n/a")[:7]
        test, images = as_number(row.get("test_accuracy")), as_number(row.get("test_images"))
        interval = row.get("test_ci95") if isinstance(row.get("test_ci95"), list) else None
        if interval is None and test is not None and images:
            interval = accuracy_interval(test, int(images))
        summary = row.get("seed_summary") or {}
        changed = f"{summary['seeds']} seeds: test sd {summary['test_accuracy_sd']:.2%}" if summary else ""
        seconds = sum(
            v for v in (as_number(row.get("train_seconds")), as_number(row.get("featurize_seconds"))) if v
        )
        rows.append(
            CompareRow(
                source=f"full-scale {commit}",
                experiment=str(row["experiment"]),
                changed=changed,
                val=as_number(row.get("val_accuracy")),
                test=test,
                interval=tuple(interval) if interval else None,
                seconds=seconds or None,
                val_images=as_number((row.get("split_counts") or {}).get("val")),
            )
        )
    return rows


def with_paired(
    rows: list[CompareRow], answers: Callable[[str], Mapping[str, bool] | None]
) -> list[CompareRow]:
    """Each DVC experiment's test answers against its baseline's on the same images: the images
    only one of the two gets right, and McNemar's exact p (a variant beats its baseline beyond
    chance only where p is small, whatever the two accuracies). ``answers``: image -> right, by
    the hash of an evaluate output; None where that output is gone from the cache."""
    return [replace(row, paired=_against_baseline(row, answers)) for row in rows]


def _against_baseline(row: CompareRow, answers: Callable[[str], Mapping[str, bool] | None]) -> str:
    if not (row.evaluated and row.baseline_evaluated) or row.evaluated == row.baseline_evaluated:
        return ""  # a baseline, or a variant that did not re-evaluate
    mine, base = answers(row.evaluated), answers(row.baseline_evaluated)
    if not mine or base is None or set(mine) != set(base):
        return ""  # an output gone from the cache, or another test split
    images = sorted(mine)
    ours, theirs = [mine[i] for i in images], [base[i] for i in images]
    only_here = sum(1 for a, b in zip(ours, theirs, strict=True) if a and not b)
    only_base = sum(1 for a, b in zip(ours, theirs, strict=True) if b and not a)
    p = mcnemar(ours, theirs)
    return (
        f"test vs baseline: {only_here} right only here, {only_base} only there, "
        f"McNemar p={p:.2g}{' (differ at 5%)' if p < 0.05 else ''}"
    )


def validation_choices(rows: list[CompareRow]) -> list[str]:
    """Per row: ``best`` for the highest validation accuracy among the rows of its pipeline
    experiment measured on as many validation images (the same split), ``tie`` for the others
    inside that best one's 95% Wilson interval (validation cannot tell them from it: choosing
    between them is chance's), else empty. A row alone on its split gets nothing to compare."""
    groups: dict[tuple[str, int], list[int]] = {}
    for index, row in enumerate(rows):
        if row.val is not None and row.val_images:
            groups.setdefault((row.experiment, int(row.val_images)), []).append(index)
    labels = [""] * len(rows)
    for (_, images), members in groups.items():
        if len(members) < 2:
            continue
        best = max(members, key=lambda i: rows[i].val or 0.0)
        low = accuracy_interval(rows[best].val or 0.0, images)[0]
        for index in members:
            labels[index] = "best" if index == best else ("tie" if (rows[index].val or 0.0) >= low else "")
    return labels


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _line(cells: list[str], widths: list[int]) -> str:
    """Names left-aligned, figures right-aligned, each clipped to its width; the last runs to the end."""
    padded = [
        _clip(cell, width).ljust(width) if i < 2 or i == len(cells) - 1 else _clip(cell, width).rjust(width)
        for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
    ]
    return "  ".join(padded).rstrip()


def render(rows: list[CompareRow], width: int = 120) -> str:
    """A plain-text table no wider than ``width``; what changed comes last, in the room left, wrapped."""
    header = ["source", "experiment", "val %", "on val", "test %", "test 95% CI", "compute s", "changed"]
    widths = [18, 24, 6, 6, 6, 13, 9, 0]
    widths[-1] = max(12, width - sum(widths) - 2 * (len(widths) - 1))
    lines = [_line(header, widths)]
    for row, choice in zip(rows, validation_choices(rows), strict=True):
        baseline = "" if row.source.startswith("full-scale") else "(baseline)"
        cells = [
            row.source,
            row.experiment,
            _pct(row.val),
            choice,
            _pct(row.test),
            f"{_pct(row.interval[0])}-{_pct(row.interval[1])}" if row.interval else "",
            "" if row.seconds is None else f"{row.seconds:.0f}",
            "",
        ]
        # What changed wraps onto continuation lines rather than being cut: it is the point.
        said = "; ".join(part for part in (row.changed or baseline, row.paired) if part)
        wrapped = textwrap.wrap(said, widths[-1], break_on_hyphens=False) or [""]
        lines.append(_line([*cells[:-1], wrapped[0]], widths))
        lines += [_line([""] * (len(cells) - 1) + [more], widths) for more in wrapped[1:]]
    return "\n".join(lines) + "\n"
