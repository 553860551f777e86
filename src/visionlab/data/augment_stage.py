"""The augment stage: multiply the training split offline, as the studies did.

Each training image keeps its original and gains ``factor - 1`` transformed copies written as
JPEG files. Every copy's randomness is seeded from (seed, image hash, copy index), so the output
does not depend on how the work is spread over processes. Validation and test are never touched.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from visionlab import paths
from visionlab.atomic import atomic_dir
from visionlab.data.images import load_rgb
from visionlab.data.manifest import read_manifest, write_manifest
from visionlab.params import AugmentParams, Params, TransformParams

log = logging.getLogger(__name__)

AUGMENTED_COLUMNS = ["path", "label", "split", "sha256", "source", "copy_index"]


def build_transform(t: TransformParams) -> A.Compose:
    """The study's transforms: flip, zoom, shift, rotation, shear and contrast; then, when set,
    the degradations a model must hold up to: downscaling, blur and JPEG quality."""
    steps: list[A.BasicTransform] = []
    if t.hflip > 0:
        steps.append(A.HorizontalFlip(p=t.hflip))
    if any((t.zoom, t.translate, t.rotate, t.shear)):
        steps.append(
            A.Affine(
                scale=(1 - t.zoom, 1 + t.zoom),
                translate_percent=(-t.translate, t.translate),
                rotate=(-t.rotate, t.rotate),
                shear=(-t.shear, t.shear),
                border_mode=cv2.BORDER_REPLICATE,  # Keras' fill_mode="nearest"
                p=1.0,
            )
        )
    if t.contrast > 0:
        steps.append(A.RandomBrightnessContrast(brightness_limit=0, contrast_limit=t.contrast, p=1.0))
    if t.downscale > 0:
        steps.append(A.Downscale(scale_range=(0.25, 0.5), p=t.downscale))
    if t.blur > 0:
        steps.append(A.GaussianBlur(blur_limit=(3, 7), p=t.blur))
    if t.jpeg > 0:
        steps.append(A.ImageCompression(quality_range=(30, 90), p=t.jpeg))
    return A.Compose(steps)


def copy_seed(seed: int, sha256: str, copy: int) -> int:
    """A seed that depends only on the run seed, the image's bytes and the copy index."""
    sequence = np.random.SeedSequence([seed, int(sha256[:16], 16), copy])
    return int(sequence.generate_state(1)[0])


_transform: A.Compose | None = None
_settings: AugmentParams | None = None


def _init_worker(settings_json: str) -> None:
    global _transform, _settings
    cv2.setNumThreads(1)
    _settings = AugmentParams.model_validate_json(settings_json)
    _transform = build_transform(_settings.transforms)


def _augment_one(job: tuple[str, str, str, str]) -> list[tuple[str, str]]:
    """Write the copies of one image; return ``(path, copy index)`` pairs."""
    assert _transform is not None and _settings is not None
    source, label, sha256, out_folder = job
    pixels = np.asarray(load_rgb(Path(source), _settings.image_size))
    written = []
    for copy in range(1, _settings.factor):
        _transform.set_random_seed(copy_seed(_settings.seed, sha256, copy))
        augmented = _transform(image=pixels)["image"]
        name = f"{Path(source).stem}-{sha256[:8]}-aug{copy}.jpg"
        target = Path(out_folder) / label / name
        Image.fromarray(augmented).save(target, quality=_settings.jpeg_quality)
        written.append((str(target), str(copy)))
    return written


def augment_dataset(params: Params, dataset: str) -> Path:
    """Write ``data/augmented/<dataset>/``: copies of the training images plus a manifest."""
    settings = params.augment
    size = params.dataset(dataset).image_size
    if size is not None:
        settings = settings.model_copy(update={"image_size": size})
    prepared, classes = read_manifest(paths.prepared_dir(dataset))
    train = prepared[prepared.split == "train"].reset_index(drop=True)
    out = paths.augmented_dir(dataset)
    with atomic_dir(out) as scratch:
        images = scratch / "images"
        for label in classes:
            (images / label).mkdir(parents=True, exist_ok=True)
        # Paths in the manifest must name the final folder, not the scratch one.
        final_images = out / "images"
        jobs = [(r.path, r.label, r.sha256, str(images)) for r in train.itertuples()]
        rows = [(r.path, r.label, "train", r.sha256, r.path, 0) for r in train.itertuples()]
        if settings.factor > 1:
            workers = settings.workers or os.cpu_count() or 1
            with ProcessPoolExecutor(
                workers, initializer=_init_worker, initargs=(settings.model_dump_json(),)
            ) as pool:
                results = pool.map(_augment_one, jobs, chunksize=8)
                for job, written in tqdm(
                    zip(jobs, results, strict=True), total=len(jobs), desc="augmenting", mininterval=1.0
                ):
                    for path, copy in written:
                        final = final_images / Path(path).relative_to(images)
                        rows.append((final.as_posix(), job[1], "train", job[2], job[0], int(copy)))
        manifest = pd.DataFrame(rows, columns=AUGMENTED_COLUMNS)
        write_manifest(scratch, manifest, classes)
        summary = {
            "dataset": dataset,
            "factor": settings.factor,
            "originals": len(train),
            "augmented_copies": len(manifest) - len(train),
            "training_images": len(manifest),
            "per_class": manifest.label.value_counts().reindex(classes).fillna(0).astype(int).to_dict(),
        }
        (scratch / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info(
        "%s: %d training images (%d originals x %d)", dataset, len(manifest), len(train), settings.factor
    )
    return out
