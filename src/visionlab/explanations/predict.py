"""Classify image files with a trained checkpoint: top-k classes, optionally a Grad-CAM per image.

A file that cannot be classified (missing, corrupt, not an image) gets a result with a one-line
error, and the other files are still classified. Overlays go beside each image
(``<stem>-gradcam.png``) or into one folder; walking a folder skips such overlays, so predicting
twice does not classify the first run's output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from visionlab.explanations.gradcam import grad_cam, overlay, target_layer
from visionlab.explanations.grids import save_png
from visionlab.explanations.pixels import as_rgb, is_grey, load_pixels, to_tensor
from visionlab.explanations.scores import evaluating, model_device, probabilities
from visionlab.models import load_checkpoint

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
BATCH = 32
CAM_SUFFIX = "-gradcam.png"


@dataclass
class PredictionResult:
    """One input file: its top classes with probabilities (best first), or why it failed."""

    path: Path
    top: list[tuple[str, float]] = field(default_factory=list)
    cam: Path | None = None  # the Grad-CAM overlay written for the best class
    error: str | None = None  # why the file could not be classified
    cam_error: str | None = None  # classified, but its overlay could not be written

    @property
    def ok(self) -> bool:
        return self.error is None


def image_files(inputs: list[Path]) -> list[Path]:
    """Files as given, and the image files under folders (recursively, sorted); missing paths kept
    so that they are reported."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(
                p
                for p in item.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.endswith(CAM_SUFFIX)
            )
        else:
            found.append(item)
    return list(dict.fromkeys(found))


def _cam_path(cam_dir: Path | None, source: Path, taken: set[Path]) -> Path:
    """``<stem>-gradcam.png`` in cam_dir (None: beside the image), numbered when two share a stem."""
    folder = source.parent if cam_dir is None else cam_dir
    candidate = folder / f"{source.stem}{CAM_SUFFIX}"
    number = 1
    while candidate in taken:
        number += 1
        candidate = folder / f"{source.stem}-{number}{CAM_SUFFIX}"
    taken.add(candidate)
    return candidate


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    return text


def predict_paths(
    checkpoint_path: Path,
    inputs: list[Path],
    top_k: int = 3,
    cam_dir: Path | None = None,
    alpha: float = 0.5,
    cam_beside: bool = False,
    layer: str | None = None,
) -> list[PredictionResult]:
    """Classify every image file among ``inputs`` (files or folders), in input order.

    With ``cam_dir`` or ``cam_beside``, also write the best class's Grad-CAM overlay per image, on
    ``layer`` (None: the model's own choice).

    Raises MissingArtifactError for a missing or unreadable checkpoint; a bad image only fails its
    own result.
    """
    model, checkpoint = load_checkpoint(Path(checkpoint_path))
    # Resolve the layer before any work, so a wrong name fails the call, not every file.
    cam_layer = target_layer(model, layer, "--layer")[1] if cam_dir is not None or cam_beside else None
    classes: list[str] = list(checkpoint["classes"])
    size = int(checkpoint["image_size"])
    grey = is_grey(model, bool(checkpoint.get("grayscale", False)))
    k = max(1, min(top_k, len(classes)))

    results: list[PredictionResult] = []
    loaded: list[tuple[PredictionResult, np.ndarray]] = []
    for path in image_files(inputs):
        result = PredictionResult(path)
        results.append(result)
        if not path.is_file():
            result.error = f"{path}: {'not a file' if path.exists() else 'no such file'}"
            continue
        try:
            loaded.append((result, load_pixels(path, size, grey)))
        except Exception as exc:  # any decoding failure is this file's problem only
            result.error = f"{path}: cannot read the image ({_reason(exc)})"

    device = model_device(model)
    for start in range(0, len(loaded), BATCH):
        part = loaded[start : start + BATCH]
        batch = torch.stack([to_tensor(pixels, model) for _, pixels in part]).to(device)
        with evaluating(model), torch.no_grad():
            probs = probabilities(model(batch))
        for (result, _), row in zip(part, probs, strict=True):
            order = np.argsort(-row, kind="stable")[:k]
            result.top = [(classes[i], float(row[i])) for i in order]

    if cam_layer is not None and loaded:
        if cam_dir is not None:
            cam_dir = Path(cam_dir)
            cam_dir.mkdir(parents=True, exist_ok=True)
        taken: set[Path] = set()
        for result, pixels in loaded:
            best = classes.index(result.top[0][0])
            target = _cam_path(cam_dir, result.path, taken)
            try:
                heat = grad_cam(model, cam_layer, to_tensor(pixels, model), best)
                save_png(overlay(as_rgb(pixels), heat, alpha), target)
            except Exception as exc:  # e.g. a read-only folder: this image's overlay only
                result.cam_error = f"{target}: cannot write the Grad-CAM overlay ({_reason(exc)})"
                continue
            result.cam = target
    return results


def format_result(result: PredictionResult) -> str:
    """One line: ``path: class 0.912, class 0.050 [cam: file]``, or the error."""
    if result.error is not None:
        return f"error: {result.error}"
    ranked = ", ".join(f"{name} {probability:.3f}" for name, probability in result.top)
    cam = f"  [cam: {result.cam}]" if result.cam is not None else ""
    if result.cam_error is not None:
        cam = f"  [no cam: {result.cam_error}]"
    return f"{result.path}: {ranked}{cam}"
