"""reports/index.html: one self-contained page (inline CSS, images as data URIs, no script, no
network), so it can be mailed, archived as a CI artefact or opened from a DVC cache as is."""

from __future__ import annotations

import html
import os
from pathlib import Path

import pandas as pd

from visionlab.reporting import figures, tables
from visionlab.reporting.collect import DatasetRecord, ExperimentRecord
from visionlab.reporting.paired_table import paired_table
from visionlab.reporting.tables import Table
from visionlab.tracking.registry import Registration

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem auto; max-width: 1400px;
       padding: 0 1rem; color: #1d232a; background: #fff; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; margin-top: 2.5rem; }
h3 { margin-top: 1.6rem; font-size: 1.1rem; }
nav a { margin-right: 1rem; }
.meta, .note { color: #57606a; font-size: .9rem; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .85rem; }
th, td { border: 1px solid #d0d7de; padding: .25rem .5rem; }
th { background: #f6f8fa; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { background: #dafbe1; }
.scroll { overflow-x: auto; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
figure { margin: 0; border: 1px solid #d0d7de; padding: .4rem; background: #fff; }
figure img { display: block; max-width: 440px; height: auto; }
figure.wide img { max-width: 100%; }
figcaption { font-size: .8rem; color: #57606a; text-align: center; margin-top: .2rem; }
.thumbs { display: flex; flex-wrap: wrap; gap: .3rem; align-items: center; margin: .3rem 0 .8rem; }
.thumbs img { border: 1px solid #d0d7de; }
.thumbs .name { min-width: 12rem; font-weight: 600; }
.registry { background: #ddf4ff; border: 1px solid #54aeff; padding: .5rem .8rem; border-radius: 4px; }
.registry.skipped { background: #fff8c5; border-color: #d4a72c; }
ul.pending li { color: #57606a; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def render_table(table: Table, css_class: str = "", attrs: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in table.headers)
    body = []
    for row in table.rows:
        cells = []
        for cell, numeric in zip(row, table.numeric, strict=True):
            classes = " ".join(c for c in ("num" if numeric else "", "best" if cell.best else "") if c)
            text = f"<strong>{_e(cell.text)}</strong>" if cell.best else _e(cell.text)
            cells.append(f'<td class="{classes}">{text}</td>' if classes else f"<td>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    class_attr = f' class="{css_class}"' if css_class else ""
    return (
        f'<div class="scroll"><table{class_attr}{attrs}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _figure(uri: str | None, caption: str, css_class: str = "") -> str:
    if uri is None:
        return ""
    class_attr = f' class="{css_class}"' if css_class else ""
    return (
        f'<figure{class_attr}><img src="{uri}" alt="{_e(caption)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _link(target: Path, out_dir: Path) -> str:
    """A relative link from the report's folder: it keeps working when the project is moved."""
    return Path(os.path.relpath(Path(target).resolve(), Path(out_dir).resolve())).as_posix()


def _registry(registrations: list[Registration]) -> str:
    return "".join(_registered(registration) for registration in registrations)


def _registered(registration: Registration) -> str:
    if registration.skipped:
        return (
            '<p class="registry skipped">Model registry '
            f"<code>{_e(registration.name)}@{_e(registration.alias)}</code>: "
            f"not updated ({_e(registration.skipped)}).</p>"
        )
    state = "new version" if registration.changed else "unchanged"
    return (
        f'<p class="registry">Chosen on {_e(registration.chosen_on)}: '
        f"<strong>{_e(registration.experiment)}</strong> &rarr; MLflow "
        f"registry <code>models:/{_e(registration.name)}@{_e(registration.alias)}</code> "
        f"(version {_e(registration.version)}, {state}; run <code>{_e(registration.run_id)}</code>).</p>"
    )


def _thumbnails(experiment: ExperimentRecord, out_dir: Path, side: int) -> str:
    explained = experiment.explanations
    if explained is None or not explained.thumbnails:
        return ""
    images = []
    for path in explained.thumbnails:
        uri = figures.thumbnail_uri(path, side)
        if uri is None:
            continue
        target = _link(explained.gallery or path, out_dir)
        images.append(
            f'<a href="{_e(target)}" title="{_e(path.name)}">'
            f'<img src="{uri}" alt="{_e(path.name)}" width="{side}"></a>'
        )
    gallery = (
        f' <a class="gallery" href="{_e(_link(explained.gallery, out_dir))}">gallery</a>'
        if explained.gallery
        else ""
    )
    return (
        f'<div class="thumbs" data-experiment="{_e(experiment.name)}"><span class="name">'
        f"{_e(experiment.name)}{gallery}</span>{''.join(images)}</div>"
    )


def _cleaning(dataset: DatasetRecord) -> str:
    cleaning = dataset.cleaning
    if cleaning is None:
        return '<p class="note">No cleaning report yet (run its prepare stage).</p>'
    parts = [
        f"<p>{_e(cleaning.get('files_seen', '?'))} files seen, "
        f"<strong>{_e(cleaning.get('images_kept', '?'))}</strong> images kept.</p>"
    ]
    counts = tables.cleaning_table(cleaning)
    if counts is not None:
        parts.append(render_table(counts, "cleaning"))
    dropped = tables.dropped_table(cleaning)
    if dropped is not None:
        parts.append(render_table(dropped, "dropped"))
    return "".join(parts)


def _comparison(dataset: DatasetRecord, rows: pd.DataFrame) -> list[str]:
    """The comparison table (or why there is none), what has not run, and the published figures."""
    parts = ["<h3>Comparison</h3>"]
    if dataset.run:
        parts.append(
            render_table(tables.comparison_table(rows), "comparison", f' data-dataset="{_e(dataset.name)}"')
        )
        parts.append(
            '<p class="note">Bold: the best value of each column. Accuracy and loss on each split; '
            "macro F1 on the test split. Compute time: what produced the model, the featurize "
            "stage's frozen-base features (&ldquo;features&rdquo;, none for a trained base) plus the "
            "train stage (&ldquo;training&rdquo;); images/s: the train stage's throughput. "
            "&ldquo;vs published&rdquo;: our test accuracy minus the study's, in percentage points.</p>"
        )
    else:
        parts.append('<p class="note">No experiment of this data set has results yet.</p>')
    if dataset.not_run:
        items = "".join(
            f"<li>{_e(e.name)} ({_e(e.arch)}): {_e(e.problem or 'not run yet')}</li>" for e in dataset.not_run
        )
        parts.append(f'<p>Not run yet:</p><ul class="pending">{items}</ul>')
    if dataset.published:
        parts.append("<h3>Published figures</h3>")
        parts.append(render_table(tables.published_table(dataset), "published"))
    paired = paired_table(dataset)
    if paired is not None:
        parts.append("<h3>Paired on the same test images</h3>")
        parts.append(render_table(paired, "paired"))
        parts.append(
            '<p class="note">McNemar&rsquo;s exact test on the test images exactly one of the two '
            "models gets right: a small p says the difference is beyond chance. The last two columns "
            "test the pair on the validation images, where the choice was made: a large p there says "
            "a few photos, not a clear margin, chose the row.</p>"
        )
    return parts


def _run_figures(dataset: DatasetRecord, out_dir: Path, thumbnail_px: int) -> list[str]:
    """Learning curves, confusion matrices, the per-class table and explanation thumbnails."""
    overview = _figure(figures.overview_uri(dataset), "every experiment", "wide")
    parts = ["<h3>Learning curves</h3>", f'<div class="figures">{overview}</div>']
    curves = []
    for e in dataset.run:
        uri = figures.file_uri(e.curves_png) if e.curves_png else None
        if uri is None and e.history is not None:
            uri = figures.curves_uri(e.history, e.name)
        curves.append(_figure(uri, e.name))
    parts.append(f'<div class="figures">{"".join(curves)}</div>')

    parts.append("<h3>Confusion matrices (test)</h3>")
    matrices = [_figure(figures.file_uri(e.confusion_png), e.name) for e in dataset.run if e.confusion_png]
    parts.append(f'<div class="figures">{"".join(matrices)}</div>')

    per_class = tables.per_class_table(dataset)
    if per_class is not None:
        parts.append("<h3>Per class (test): precision, recall, F1</h3>")
        parts.append(render_table(per_class, "per-class"))

    thumbs = [_thumbnails(e, out_dir, thumbnail_px) for e in dataset.run]
    if any(thumbs):
        parts.append("<h3>Explanations</h3>")
        parts.append('<p class="note">Grad-CAM overlays; each links to the model\'s gallery.</p>')
        parts.append("".join(thumbs))
    return parts


def _dataset_section(
    dataset: DatasetRecord,
    frame: pd.DataFrame,
    registrations: list[Registration],
    out_dir: Path,
    thumbnail_px: int,
) -> str:
    parts = [f'<section id="dataset-{_e(dataset.name)}"><h2>{_e(dataset.name)}</h2>']
    study = next(iter(dataset.published.values())).study if dataset.published else ""
    if study:
        parts.append(f'<p class="meta">Published figures: {_e(study)}.</p>')
    parts.append(_registry(registrations))
    parts += _comparison(dataset, frame[frame.dataset == dataset.name])
    if dataset.run:
        parts += _run_figures(dataset, out_dir, thumbnail_px)
    parts.append("<h3>Data cleaning</h3>")
    parts.append(_cleaning(dataset))
    parts.append("</section>")
    return "".join(parts)


def render_html(
    datasets: list[DatasetRecord],
    frame: pd.DataFrame,
    registrations: dict[str, list[Registration]],
    out_dir: Path,
    thumbnail_px: int = 96,
    commit: str | None = None,
) -> str:
    nav = "".join(f'<a href="#dataset-{_e(d.name)}">{_e(d.name)}</a>' for d in datasets)
    done = int((frame.status == "done").sum()) if not frame.empty else 0
    meta = f"{done} of {len(frame)} experiments have results"
    if commit:
        meta += f" &middot; git commit <code>{_e(commit[:12])}</code>"
    sections = "".join(
        _dataset_section(d, frame, registrations.get(d.name, []), out_dir, thumbnail_px) for d in datasets
    )
    if not datasets:
        sections = '<p class="note">No experiments in params.yaml.</p>'
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>visionlab: experiment comparison</title>"
        f"<style>{CSS}</style></head><body>"
        "<h1>visionlab: experiment comparison</h1>"
        f'<p class="meta">{meta}</p><nav>{nav}</nav>{sections}'
        "</body></html>\n"
    )
