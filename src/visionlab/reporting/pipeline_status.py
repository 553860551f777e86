"""`visionlab status`: `dvc status` summarised per data set, one line each.

`dvc status` names every changed dependency of every stage: after a code change or a
`--keep-going` run that is thousands of lines, the same dozen source files under each of a hundred
stages. What a person needs is which data sets have work left, how much, and why: here each stage
gets a few reasons ("never run", "code", "params train.lr", "needs data/prepared/flowers"), and
each data set a line counting its stages, those left to run, and its reasons by frequency.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from visionlab.training.planning import PipelineState

PER_DATASET = ("survey", "download", "prepare", "augment")
PER_EXPERIMENT = ("featurize", "train", "evaluate", "explain")
PIPELINE = "(pipeline)"  # resolve and report: every data set's


def read_pipeline_state(root: Path) -> PipelineState:
    """DVC's view of the project at ``root``: its stages, their dvc.lock entries, what `dvc status`
    names. DVC's own errors (a running `dvc repro` holding the lock) pass through."""
    import yaml
    from dvc.repo import Repo

    from visionlab.training.planning import PipelineState

    lock = root / "dvc.lock"
    locked = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}) if lock.is_file() else {}
    repo = Repo(str(root))
    try:
        stages = tuple(stage.addressing for stage in repo.index.stages)
        return PipelineState(stages, frozenset(locked), repo.status())
    finally:
        repo.close()


@dataclass
class GroupStatus:
    group: str  # a data set, or PIPELINE
    stages: int = 0
    to_run: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    blocked: str | None = None  # why its data cannot be had here (no credentials, a folder gone)


def group_of(stage: str, experiment_datasets: Mapping[str, str]) -> str:
    """The data set a stage works for: its own (download@<dataset>) or its experiment's."""
    kind, _, item = stage.partition("@")
    if kind in PER_DATASET and item:
        return item
    if kind in PER_EXPERIMENT and item in experiment_datasets:
        return experiment_datasets[item]
    return PIPELINE


def _dep_reason(path: str, state: Any) -> str:
    if isinstance(state, Mapping):  # a params file: {key: "modified" | "new" | "deleted"}
        return "params " + ", ".join(sorted(state))
    if path.startswith(("src/", "stages/")):
        return "code"
    if path.startswith("data/resolved/"):
        # A record of the params it reads: name the record, the params behind it are the cause.
        return f"params ({path.removeprefix('data/resolved/').partition('/')[0]} record)"
    if state == "deleted":
        return f"needs {path}"
    return f"input {path}"


def stage_reasons(entries: Iterable[Any], in_lock: bool) -> list[str]:
    """Short reasons from one stage's `dvc status --json` entries; "never run" without a lock entry."""
    if not in_lock:
        return ["never run"]
    reasons: set[str] = set()
    for entry in entries:
        if isinstance(entry, str):  # "always changed", "changed command"
            reasons.add(entry.removeprefix("changed "))
            continue
        for kind, changes in entry.items():
            if kind == "changed deps":
                reasons.update(_dep_reason(p, s) for p, s in changes.items())
            elif kind == "changed outs":
                states = set(changes.values())
                reasons.add("outputs missing" if states <= {"deleted", "not in cache"} else "outputs edited")
            else:
                reasons.add(kind.removeprefix("changed "))
    return sorted(reasons)


def summarize(
    stages: Iterable[str],
    status: Mapping[str, Any],
    locked: set[str],
    experiment_datasets: Mapping[str, str],
    blocked: Mapping[str, str] | None = None,
) -> list[GroupStatus]:
    """Per data set (then the pipeline's own stages): stage count, those to run, their reasons.

    ``blocked``: data sets whose data cannot be had here, with why: what a `--keep-going` run
    skipped them for.
    """
    groups: dict[str, GroupStatus] = {}
    for stage in stages:
        name = group_of(stage, experiment_datasets)
        group = groups.setdefault(name, GroupStatus(name))
        group.stages += 1
        if stage in status:
            group.to_run.append(stage)
            group.reasons.update(stage_reasons(status[stage], stage in locked))
    for name, why in (blocked or {}).items():
        if name in groups and groups[name].to_run:
            groups[name].blocked = why
    return sorted(groups.values(), key=lambda g: (g.group == PIPELINE, g.group))


def render(groups: list[GroupStatus], width: int = 120, list_stages: bool = False) -> str:
    name_width = max([len("data set"), *(len(g.group) for g in groups)])
    head = f"{'data set':<{name_width}}  stages  to run  "
    lines = [head + "why (stages)"]
    indent = " " * len(head)
    for group in groups:
        why = "; ".join(f"{reason} {count}" for reason, count in group.reasons.most_common())
        first = f"{group.group:<{name_width}}  {group.stages:>6}  {len(group.to_run):>6}  "
        wrapped = textwrap.wrap(why or "up to date", max(width - len(head), 20)) or [""]
        lines.append(first + wrapped[0])
        lines += [indent + part for part in wrapped[1:]]
        if group.blocked:
            lines += textwrap.wrap(
                f"cannot run here: {group.blocked}", max(width - len(head), 20),
                initial_indent=indent, subsequent_indent=indent,
            )  # fmt: skip
        if list_stages:
            lines += textwrap.wrap(
                " ".join(group.to_run), width, initial_indent=indent, subsequent_indent=indent
            )
    total, stages = sum(len(g.to_run) for g in groups), sum(g.stages for g in groups)
    lines.append(f"{total} of {stages} stages to run; `uv run dvc status <stage>` for one in full")
    return "\n".join(lines) + "\n"
