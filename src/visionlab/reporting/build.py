"""Build the comparison report: collect every experiment's outputs, register each data set's best
model, and write reports/index.html, summary.md, comparison.csv and learning_curves.csv."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from visionlab.atomic import atomic_write_text
from visionlab.params import Params
from visionlab.params.scale import quick_try
from visionlab.reporting.collect import DatasetRecord, read_datasets
from visionlab.reporting.frames import comparison_frame, history_frame
from visionlab.reporting.html import render_html
from visionlab.reporting.markdown import render_markdown
from visionlab.tracking.choice import ALIAS, ROBUST_ALIAS, Candidate, best_candidate
from visionlab.tracking.mlflow_run import git_commit
from visionlab.tracking.registry import Registration, register_best, registered_name

log = logging.getLogger(__name__)

REPORT_DIR = Path("reports")


@dataclass
class ReportFiles:
    html: Path
    summary: Path
    comparison: Path
    learning_curves: Path
    registrations: dict[str, list[Registration]] = field(default_factory=dict)  # @best, then @robust

    def paths(self) -> list[Path]:
        return [self.html, self.summary, self.comparison, self.learning_curves]


def candidates_of(params: Params, dataset: DatasetRecord) -> list[Candidate]:
    """The data set's evaluated experiments, scored on validation, quick tries marked."""
    return [
        Candidate(
            e.name,
            e.run_id,
            val_accuracy=e.metric("val", "accuracy"),
            val_loss=e.metric("val", "loss"),
            test_accuracy=e.metric("test", "accuracy"),
            test_macro_f1=e.metric("test", "macro_f1"),
            quick_try=quick_try(params, e.name) if e.name in params.experiments else None,
            val_worst_degraded=e.worst_degraded("val"),
            val_accuracy_low=e.interval("val")[0],
        )
        for e in dataset.run
    ]


def register_datasets(params: Params, datasets: list[DatasetRecord]) -> dict[str, list[Registration]]:
    """Each data set's best run into the registry (@best), and where evaluate scored degraded
    validation copies, the run for degraded photos (@robust). A registry failure costs its line in
    the report, never the report: the tables are worth having even with the store unreachable."""
    prefix = params.report.registry_prefix
    registrations: dict[str, list[Registration]] = {}
    for dataset in datasets:
        if not dataset.run:
            continue
        candidates = candidates_of(params, dataset)
        aliases = [ALIAS] + ([ROBUST_ALIAS] if best_candidate(candidates, ROBUST_ALIAS) else [])
        registrations[dataset.name] = [
            _register(dataset.name, candidates, prefix, alias) for alias in aliases
        ]
    return registrations


def _register(dataset: str, candidates: list[Candidate], prefix: str, alias: str) -> Registration:
    try:
        return register_best(dataset, candidates, prefix=prefix, alias=alias)
    except Exception as exc:  # any store failure (locked, unreachable, older schema): same answer
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        reason = f"the MLflow store failed: {type(exc).__name__}: {first_line}"
        log.warning("registry: %s@%s: %s", dataset, alias, reason)
        return Registration(dataset, registered_name(dataset, prefix), skipped=reason, alias=alias)


def build_report(
    params: Params,
    out_dir: Path = REPORT_DIR,
    root: Path = Path("."),
    register: bool | None = None,
) -> ReportFiles:
    """Write the report from whatever experiments have outputs under ``root``.

    ``register``: update the MLflow model registry; None = as ``report.register_best`` says.
    """
    out_dir = Path(out_dir)
    datasets = read_datasets(params, Path(root))
    frame = comparison_frame(datasets)
    register = params.report.register_best if register is None else register
    registrations = register_datasets(params, datasets) if register else {}
    commit = git_commit()
    files = ReportFiles(
        out_dir / "index.html",
        out_dir / "summary.md",
        out_dir / "comparison.csv",
        out_dir / "learning_curves.csv",
        registrations,
    )
    atomic_write_text(
        files.html, render_html(datasets, frame, registrations, out_dir, params.report.thumbnail_px, commit)
    )
    atomic_write_text(files.summary, render_markdown(datasets, frame, registrations, commit))
    atomic_write_text(files.comparison, frame.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(files.learning_curves, history_frame(datasets).to_csv(index=False, float_format="%.6g"))
    done = int((frame.status == "done").sum())
    log.info("report: %d of %d experiments have results; %s", done, len(frame), files.html)
    return files
