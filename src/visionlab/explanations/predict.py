"""Classify image files with a trained checkpoint: top-k classes, optionally a Grad-CAM per image.

A file that cannot be classified (missing, corrupt, not an image) gets a result with a one-line
error, and the other files are still classified. Overlays go beside each image
(``<stem>-gradcam.png``) or into one folder; walking a folder skips such overlays, so predicting
twice does not classify the first run's output. A heavily compressed JPEG gets a note with its
quality and the model's validation accuracy measured at that compression (``photo_notes``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from visionlab.data.jpeg_quality import jpeg_quality
from visionlab.explanations.gradcam import grad_cam, overlay, target_layer
from visionlab.explanations.grids import save_png
from visionlab.explanations.photo_notes import CompressionScores, compression_note
from visionlab.explanations.scores import evaluating, model_device, probabilities
from visionlab.models import load_checkpoint
from visionlab.runtime.device import use_amp
from visionlab.runtime.folding import fold_batch_norms
from visionlab.runtime.preprocess import as_rgb, is_grey, load_pixels, to_tensor

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
# Images per batch. On a CPU a smaller batch runs faster per image (its activations stay in cache):
# Lite0 at 224 px on 2 cores, 130 images/s at 16 against 104 at 32 (benchmarks/predict_speed.py);
# an accelerator wants large ones.
CPU_BATCH = 16
ACCELERATOR_BATCH = 64


def default_batch(device: torch.device) -> int:
    return CPU_BATCH if device.type == "cpu" else ACCELERATOR_BATCH


CAM_SUFFIX = "-gradcam.png"


@dataclass
class PredictionResult:
    """One input file: its top classes with probabilities (best first), or why it failed."""

    path: Path
    top: list[tuple[str, float]] = field(default_factory=list)
    cam: Path | None = None  # the Grad-CAM overlay written for the best class
    error: str | None = None  # why the file could not be classified
    cam_error: str | None = None  # classified, but its overlay could not be written
    jpeg_quality: int | None = None  # estimated from the file's tables; None: not a JPEG
    note: str | None = None  # a heavily compressed photo: how the model scored at that compression

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


@dataclass(frozen=True)
class _Preprocess:
    """What a loader worker needs to turn a file into the model's input (picklable, no model)."""

    size: int
    grey: bool
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


class _Files(Dataset):
    """Each file as (its index, the input tensor or None, uint8 pixels or None, error or None, its
    JPEG quality or None).

    Decoding runs in the loader's workers; a bad file is its own result, never a crash.
    """

    def __init__(self, files: list[Path], pre: _Preprocess, keep_pixels: bool) -> None:
        self.files, self.pre, self.keep_pixels = files, pre, keep_pixels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        path = self.files[index]
        if not path.is_file():
            return index, None, None, f"{path}: {'not a file' if path.exists() else 'no such file'}", None
        try:
            pixels = load_pixels(path, self.pre.size, self.pre.grey)
        except Exception as exc:  # any decoding failure is this file's problem only
            return index, None, None, f"{path}: cannot read the image ({_reason(exc)})", None
        kept = pixels if self.keep_pixels else None
        return index, to_tensor(pixels, self.pre), kept, None, jpeg_quality(path)


def _as_list(items):
    return items  # keep failures beside tensors: the batch is stacked after dropping them


@dataclass
class Predictor:
    """A checkpoint ready to classify, streaming: results come batch by batch, in input order, and
    memory holds one batch whatever the number of files.

    bfloat16 autocast and channels-last where the device computes bfloat16 natively (as featurize
    and evaluate run), float32 elsewhere; batch norms folded into their convolutions unless
    Grad-CAM overlays are asked for (``runtime/folding.py``).
    """

    model: torch.nn.Module
    classes: list[str]
    pre: _Preprocess
    k: int
    cam_layer: str | None
    amp: bool
    scores: CompressionScores | None = None  # the model's validation accuracy clean and compressed

    @classmethod
    def load(
        cls,
        checkpoint_path: Path,
        top_k: int = 3,
        cam: bool = False,
        layer: str | None = None,
        fold: bool = True,
        scores: CompressionScores | None = None,
    ) -> Predictor:
        trained = load_checkpoint(Path(checkpoint_path))
        model = trained.model
        # Resolve the layer before any work, so a wrong name fails the call, not every file.
        cam_layer = target_layer(model, layer, "--layer")[1] if cam else None
        classes = trained.classes
        grey = is_grey(model, trained.grayscale)
        pre = _Preprocess(trained.image_size, grey, model.in_channels, tuple(model.mean), tuple(model.std))
        if fold and not cam:  # Grad-CAM reads layers as trained: a named conv stays what it was
            fold_batch_norms(model.eval())
        amp = use_amp(model_device(model), "auto")
        if amp:
            model.to(memory_format=torch.channels_last)
        return cls(model, classes, pre, max(1, min(top_k, len(classes))), cam_layer, amp, scores)

    def stream(
        self,
        inputs: list[Path],
        cam_dir: Path | None = None,
        cam_beside: bool = False,
        alpha: float = 0.5,
        workers: int = 0,
        batch_size: int | None = None,
    ) -> Iterator[PredictionResult]:
        """One result per image file among ``inputs`` (files or folders), in input order.

        ``batch_size`` None: :func:`default_batch` for the model's device.
        """
        files = image_files(inputs)
        cams = self.cam_layer is not None and (cam_dir is not None or cam_beside)
        if cams and cam_dir is not None:
            cam_dir = Path(cam_dir)
            cam_dir.mkdir(parents=True, exist_ok=True)
        batches = DataLoader(
            _Files(files, self.pre, keep_pixels=cams),
            batch_size=batch_size or default_batch(model_device(self.model)),
            num_workers=workers,
            collate_fn=_as_list,
            persistent_workers=False,
        )
        device, taken = model_device(self.model), set()
        for items in batches:
            results = [
                PredictionResult(files[index], error=error, jpeg_quality=quality)
                for index, _, _, error, quality in items
            ]
            for result in results:
                result.note = compression_note(result.jpeg_quality, self.scores)
            good = [
                (result, tensor, pixels)
                for result, (_, tensor, pixels, _, _) in zip(results, items, strict=True)
                if tensor is not None
            ]
            if good:
                self._classify(good, device)
            if cams:
                for result, _, pixels in good:
                    self._cam(result, pixels, _cam_path(cam_dir, result.path, taken), alpha)
            yield from results

    def _classify(self, good, device: torch.device) -> None:
        batch = torch.stack([tensor for _, tensor, _ in good]).to(device)
        if self.amp:
            batch = batch.contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.amp)
        with evaluating(self.model), torch.no_grad(), autocast:
            probs = probabilities(self.model(batch))
        for (result, _, _), row in zip(good, probs, strict=True):
            order = np.argsort(-row, kind="stable")[: self.k]
            result.top = [(self.classes[i], float(row[i])) for i in order]

    def _cam(self, result: PredictionResult, pixels: np.ndarray, target: Path, alpha: float) -> None:
        best = self.classes.index(result.top[0][0])
        try:
            heat = grad_cam(self.model, self.cam_layer, to_tensor(pixels, self.pre), best)
            save_png(overlay(as_rgb(pixels), heat, alpha), target)
        except Exception as exc:  # e.g. a read-only folder: this image's overlay only
            result.cam_error = f"{target}: cannot write the Grad-CAM overlay ({_reason(exc)})"
            return
        result.cam = target


def predict_paths(
    checkpoint_path: Path,
    inputs: list[Path],
    top_k: int = 3,
    cam_dir: Path | None = None,
    alpha: float = 0.5,
    cam_beside: bool = False,
    layer: str | None = None,
    workers: int = 0,
) -> list[PredictionResult]:
    """Classify every image file among ``inputs`` (files or folders), in input order.

    With ``cam_dir`` or ``cam_beside``, also write the best class's Grad-CAM overlay per image, on
    ``layer`` (None: the model's own choice). :class:`Predictor` streams the same results.

    Raises MissingArtifactError for a missing or unreadable checkpoint; a bad image only fails its
    own result.
    """
    predictor = Predictor.load(checkpoint_path, top_k, cam=cam_dir is not None or cam_beside, layer=layer)
    return list(predictor.stream(inputs, cam_dir, cam_beside, alpha, workers))


def format_result(result: PredictionResult) -> str:
    """One line: ``path: class 0.912, class 0.050 [cam: file] [note]``, or the error."""
    if result.error is not None:
        return f"error: {result.error}"
    ranked = ", ".join(f"{name} {probability:.3f}" for name, probability in result.top)
    cam = f"  [cam: {result.cam}]" if result.cam is not None else ""
    if result.cam_error is not None:
        cam = f"  [no cam: {result.cam_error}]"
    note = f"  [{result.note}]" if result.note is not None else ""
    return f"{result.path}: {ranked}{cam}{note}"
