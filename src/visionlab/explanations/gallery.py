"""A self-contained HTML page of every explanation of an experiment.

Every image is embedded as a ``data:`` URI, so the page shows everything on its own: opened from
disk, mailed, or in MLflow's artifact viewer, which renders HTML in a sandboxed frame where paths
relative to the page lead nowhere. It loads nothing from the network (no external CSS, fonts or
scripts). Embedded copies are re-encoded at the size they are displayed (WebP, or the PNG when that
is smaller), within a byte budget for the whole page: a full data set's gallery held ~300 full-size
PNGs (32 MB) and opened slowly. Each picture links to its full-size PNG beside the page, which the
explain stage logs to MLflow with it.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from PIL import Image

from visionlab.explanations.methods import registered

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

# The whole page, embedded images included, stays under this many bytes (the "about 5 MB").
PAGE_BUDGET = 4_500_000


@dataclass(frozen=True)
class Encoding:
    """How embedded copies are made: the side of normal figures, the width of wide ones, WebP quality."""

    side: int
    wide_side: int
    quality: int


# Tried in order until the page fits PAGE_BUDGET: the first is the CSS display size above.
ENCODINGS = (
    Encoding(220, 900, 80),
    Encoding(220, 900, 60),
    Encoding(180, 720, 50),
    Encoding(140, 560, 40),
    Encoding(110, 440, 30),
)


WEBP_MAX_SIDE = 16383


def embedded_bytes(path: Path, box: tuple[int, int], quality: int) -> tuple[str, bytes]:
    """``(mime type, bytes)`` of the copy of the image at ``path`` to embed, shrunk to fit ``box``."""
    original = path.read_bytes()
    with Image.open(io.BytesIO(original)) as image:
        image.load()
        scale = min(1.0, box[0] / image.width, box[1] / image.height)
        fits = scale == 1.0
        if not fits:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.LANCZOS)
        if image.mode not in ("RGB", "RGBA", "L"):
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        buffer = io.BytesIO()
        # Shrunk pictures (photos, overlays) take lossy WebP; ones shown at their own size
        # (filter tiles, small inputs) stay exact, as the PNG or lossless WebP, whichever is smaller.
        image.save(buffer, "WEBP", quality=quality, method=4, lossless=fits)
    webp = buffer.getvalue()
    if fits and path.suffix.lower() == ".png" and len(original) <= len(webp):
        return "image/png", original
    return "image/webp", webp


# Turns a file name relative to the explain folder, and whether it is a wide figure, into the
# <img> source: a data URI.
Embed = Callable[[str, bool], str]


def _embedder(folder: Path, encoding: Encoding) -> Embed:
    cache: dict[tuple[str, bool], str] = {}

    def embed(file: str, wide: bool) -> str:
        if (file, wide) not in cache:
            # As the CSS shows them: normal figures within a square, wide ones by width only.
            box = (encoding.wide_side, WEBP_MAX_SIDE) if wide else (encoding.side, encoding.side)
            mime, payload = embedded_bytes(folder / file, box, encoding.quality)
            cache[file, wide] = f"data:{mime};base64," + base64.b64encode(payload).decode("ascii")
        return cache[file, wide]

    return embed


def _figure(embed: Embed, file: str, caption: str, wide: bool = False) -> str:
    cls = ' class="wide"' if wide else ""
    return (
        f'<figure{cls}><a href="{escape(file)}"><img src="{embed(file, wide)}" decoding="async" '
        f'alt="{escape(caption)}">'
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
            for method in registered():
                for picture in method.pictures:
                    if item.get(picture.key):
                        parts.append(_figure(embed, item[picture.key], f"{picture.caption}, {what}"))
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


def render(index: dict[str, Any], folder: Path, budget: int = PAGE_BUDGET) -> str:
    """The HTML page for the index of the explain folder ``folder`` (see explain_stage).

    Uses the first of ENCODINGS whose page fits ``budget`` bytes, else the last one.
    """
    for encoding in ENCODINGS:
        page = _page(index, _embedder(Path(folder), encoding))
        if len(page.encode("utf-8")) <= budget:
            break
    return page


def _page(index: dict[str, Any], embed: Embed) -> str:
    title = f"Explanations: {index['experiment']} ({index['arch']})"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">Model {escape(index["arch"])}, {index["image_size"]} px input, classes: '
        f"{escape(', '.join(index['classes']))}. Click a picture for its full-size PNG.</p>",
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
