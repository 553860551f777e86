"""A self-contained HTML page of every explanation of an experiment.

Every image is embedded as a ``data:`` URI, so the page shows everything on its own: opened from
disk, mailed, or in MLflow's artifact viewer, which renders HTML in a sandboxed frame where paths
relative to the page lead nowhere. It loads nothing from the network (no external CSS, fonts or
scripts). Each picture also links to its PNG beside the page, for full size from disk.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ccc; }
figure { display: inline-block; margin: 0.3em; vertical-align: top; text-align: center; }
figure img { max-width: 220px; max-height: 220px; image-rendering: pixelated; border: 1px solid #ddd; }
figure.wide img { max-width: 900px; max-height: none; }
figcaption { font-size: 0.75em; max-width: 220px; }
figure.wide figcaption { max-width: 900px; }
.row { margin: 0.8em 0; padding: 0.4em; border-left: 4px solid #4a4; }
.row.wrong { border-left-color: #c44; }
.meta { font-size: 0.85em; color: #555; }
"""


# Turns a file name relative to the explain folder into the <img> source: a data URI.
Embed = Callable[[str], str]


def _embedder(folder: Path) -> Embed:
    def embed(file: str) -> str:
        payload = (folder / file).read_bytes()
        return "data:image/png;base64," + base64.b64encode(payload).decode("ascii")

    return embed


def _figure(embed: Embed, file: str, caption: str, wide: bool = False) -> str:
    cls = ' class="wide"' if wide else ""
    return (
        f'<figure{cls}><a href="{escape(file)}"><img src="{embed(file)}" alt="{escape(caption)}">'
        f"</a><figcaption>{escape(caption)}</figcaption></figure>"
    )


def _image_rows(embed: Embed, index: dict[str, Any]) -> list[str]:
    parts = ["<h2>Grad-CAM, Grad-CAM++ and guided backpropagation</h2>"]
    parts.append(
        f'<p class="meta">Layer <code>{escape(index["layer"])}</code>. Each row: one test image; '
        "each group: the explained class and the model's probability for it.</p>"
    )
    for record in index["images"]:
        verdict = "correct" if record["correct"] else "wrong"
        head = (
            f"{Path(record['source']).name}: true {record['label']}, predicted {record['predicted']} "
            f"(p = {record['confidence']:.3f})"
        )
        parts.append(f'<div class="row {verdict}"><div>{escape(head)}</div>')
        parts.append(_figure(embed, record["image"], "input"))
        for item in record["explanations"]:
            what = f"class {item['class']} (p = {item['probability']:.3f})"
            parts.append(_figure(embed, item["gradcam"], f"Grad-CAM heatmap, {what}"))
            parts.append(_figure(embed, item["gradcam_overlay"], f"Grad-CAM, {what}"))
            parts.append(_figure(embed, item["gradcam_pp"], f"Grad-CAM++ heatmap, {what}"))
            parts.append(_figure(embed, item["gradcam_pp_overlay"], f"Grad-CAM++, {what}"))
            parts.append(_figure(embed, item["guided_backprop"], f"guided backprop, {what}"))
            parts.append(_figure(embed, item["guided_gradcam"], f"guided Grad-CAM, {what}"))
        parts.append("</div>")
    return parts


def _feature_maps(embed: Embed, section: dict[str, Any]) -> list[str]:
    source = section["image"]
    parts = [
        "<h2>Feature maps</h2>",
        f'<p class="meta">Image {escape(Path(source["source"]).name)}: true {escape(source["label"])}, '
        f"predicted {escape(source['predicted'])} (p = {source['confidence']:.3f}). Raw conv outputs, "
        "one tile per channel, each channel scaled to its own range.</p>",
    ]
    parts.append(_figure(embed, source["file"], "input"))
    for layer in section["layers"]:
        caption = (
            f"{layer['layer']}: {layer['shown']} of {layer['channels']} channels, "
            f"{layer['map_size'][0]}x{layer['map_size'][1]}"
        )
        parts.append(_figure(embed, layer["file"], caption, wide=True))
    return parts


def _filters(embed: Embed, section: dict[str, Any]) -> list[str]:
    parts = [
        "<h2>First-layer filters</h2>",
        f'<p class="meta">Layer <code>{escape(section["layer"])}</code>: {section["kernels"]} kernels of '
        f"{section['kernel_size'][0]}x{section['kernel_size'][1]} over {section['in_channels']} input "
        "channel(s), all on one scale.</p>",
    ]
    if section.get("colour"):
        parts.append(_figure(embed, section["colour"], "one colour tile per kernel", wide=True))
    caption = "one row per kernel, one tile per input channel"
    parts.append(_figure(embed, section["channels"], caption, wide=True))
    return parts


def _patches(embed: Embed, section: dict[str, Any]) -> list[str]:
    parts = [
        "<h2>Maximally activating patches</h2>",
        f'<p class="meta">Among {section["images_scanned"]} test images. Score: the model on the patch '
        "alone, pasted at its place into a neutral (mean-coloured) canvas: the class logit, or the "
        "unit's activation.</p>",
    ]
    for target in section["targets"]:
        parts.append(
            f"<h3>{escape(target['kind'])} {escape(target['name'])} "
            f'<span class="meta">(layer {escape(target["layer"])}, '
            f"patch side {target['side']} px)</span></h3>"
        )
        for patch in target["patches"]:
            caption = (
                f"score {patch['score']:.3f}: {Path(patch['source']).name} "
                f"(true {patch['label']}, predicted {patch['predicted']})"
            )
            parts.append(_figure(embed, patch["file"], caption))
    return parts


def render(index: dict[str, Any], folder: Path) -> str:
    """The HTML page for the index of the explain folder ``folder`` (see explain_stage)."""
    embed = _embedder(Path(folder))
    title = f"Explanations: {index['experiment']} ({index['arch']})"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">Model {escape(index["arch"])}, {index["image_size"]} px input, classes: '
        f"{escape(', '.join(index['classes']))}.</p>",
    ]
    if index.get("grid"):
        parts.append(
            _figure(embed, index["grid"], "overview: input, Grad-CAM, Grad-CAM++, guided Grad-CAM", wide=True)
        )
    parts += _image_rows(embed, index)
    if index.get("feature_maps"):
        parts += _feature_maps(embed, index["feature_maps"])
    if index.get("filters"):
        parts += _filters(embed, index["filters"])
    if index.get("patches"):
        parts += _patches(embed, index["patches"])
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_gallery(folder: Path, index: dict[str, Any]) -> Path:
    path = Path(folder) / "index.html"
    path.write_text(render(index, folder), encoding="utf-8")
    return path
