"""Pack the full public data sets into the archive formats the pipeline reads, plus SHA256SUMS.

The shared samples (``../shared/datasets``) stay for tests; benchmarks on the full data sets point
``download.mirror`` at the folder this script writes. Each source is a folder fetched from a public
copy of the data set (see issue 11), given as an argument, so no machine path lives in the repo:

    uv run python benchmarks/pack_full_datasets.py OUT \\
        --flowers REPO/dataset            # Oldpel/flower_photos: train/<class>, val/<class>
        --cifar REPO                      # cyizhuo/CIFAR-10-dataset: train/<class>, test/<class> PNGs
        --catsdogs REPO/PetImages         # karemsaeed21/cat_vs_dog_classification_CNN: Cat/, Dog/
        --copy SAMPLES/101_ObjectCategories.tar.gz --copy SAMPLES/flowers-recognition.zip

Written (only those whose source is given):

- ``flower_photos.tgz``: ``flower_photos/<class>/*.jpg`` (train and val merged) and a
  ``LICENSE.txt`` beside the class folders, as in TensorFlow's archive.
- ``cifar-10-python.tar.gz``: the official pickle layout (``cifar-10-batches-py/data_batch_1..5``,
  ``test_batch``, ``batches.meta``; ``b'data'`` uint8 N x 3072 row-major CHW, ``b'labels'``,
  ``b'filenames'``, ``b'batch_label'``), pickle protocol 2 like the original.
- ``kagglecatsanddogs_5340.zip``: ``PetImages/Cat|Dog/*.jpg``. The public copy holds 12,499 per
  class at 180 px, smaller than Microsoft's originals: say so beside any figure measured on it.
- ``--copy`` files are copied through unchanged (the Caltech sample already holds the study's five
  classes complete; the Kaggle flowers full set is not available, so its sample stands in).

Archives are deterministic (sorted members, fixed timestamps and owners): packing twice gives the
same bytes, so the sha256 in SHA256SUMS is stable.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import shutil
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import numpy as np
from PIL import Image

CIFAR_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"
]  # fmt: skip
CIFAR_BATCHES = 5
FIXED_MTIME = 1_500_000_000  # 2017-07-14: any fixed time keeps the archive's bytes reproducible
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
FLOWERS_LICENSE = (
    "All images in this archive are licensed under the Creative Commons By-Attribution License,\n"
    "available at: https://creativecommons.org/licenses/by/2.0/\n\n"
    "Repacked from a public copy of TensorFlow's flower_photos.tgz (train and val folders\n"
    "merged); per-image attributions are listed in TensorFlow's original archive.\n"
)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _class_files(folder: Path) -> dict[str, list[Path]]:
    """Image files per class sub-folder of ``folder`` (sorted, dotfiles skipped)."""
    if not folder.is_dir():
        _fail(f"{folder}: no such folder")
    classes = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        classes[sub.name] = sorted(
            p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
    return classes


def _tar_member(name: str, size: int, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = FIXED_MTIME, 0, 0, "", ""
    if directory:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.size, info.mode = size, 0o644
    return info


class _TarWriter:
    """Adds members with fixed timestamps and owners, so the bytes depend only on the content."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self._tar = tar

    def folder(self, name: str) -> None:
        self._tar.addfile(_tar_member(name, 0, directory=True))

    def file(self, name: str, data: bytes) -> None:
        self._tar.addfile(_tar_member(name, len(data)), io.BytesIO(data))


@contextmanager
def _deterministic_tar(path: Path) -> Iterator[_TarWriter]:
    """A gzipped tar without the gzip header's timestamp (mtime=0)."""
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        yield _TarWriter(tar)


def pack_flowers(dataset: Path, out: Path) -> dict[str, int]:
    """``dataset/{train,val}/<class>/`` merged into ``flower_photos/<class>/`` in a .tgz."""
    merged: dict[str, dict[str, Path]] = {}
    for part in ("train", "val"):
        for label, files in _class_files(dataset / part).items():
            for file in files:
                if file.name in merged.setdefault(label, {}):
                    _fail(f"{file}: the same file name is also under another split folder")
                merged[label][file.name] = file
    if not merged:
        _fail(f"{dataset}: expected train/<class>/ and val/<class>/ folders")
    with _deterministic_tar(out / "flower_photos.tgz") as archive:
        archive.folder("flower_photos/")
        archive.file("flower_photos/LICENSE.txt", FLOWERS_LICENSE.encode())
        for label in sorted(merged):
            archive.folder(f"flower_photos/{label}/")
            for name in sorted(merged[label]):
                archive.file(f"flower_photos/{label}/{name}", merged[label][name].read_bytes())
    return {label: len(files) for label, files in sorted(merged.items())}


def _cifar_rows(folder: Path) -> list[tuple[str, int, Path]]:
    found = _class_files(folder)
    unknown = sorted(set(found) - set(CIFAR_CLASSES))
    if unknown or not found:
        _fail(f"{folder}: expected the CIFAR-10 class folders {CIFAR_CLASSES}, found {sorted(found)}")
    return [(file.name, CIFAR_CLASSES.index(label), file) for label in sorted(found) for file in found[label]]


def _cifar_batch(rows: list[tuple[str, int, Path]], batch_label: str) -> bytes:
    data = np.empty((len(rows), 3072), dtype=np.uint8)
    for index, (_, _, file) in enumerate(rows):
        with Image.open(file) as image:
            if image.size != (32, 32):
                _fail(f"{file}: {image.size[0]}x{image.size[1]}, CIFAR-10 images are 32x32")
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
        # The official layout: each row is the red plane, then green, then blue (CHW, row-major).
        data[index] = pixels.transpose(2, 0, 1).reshape(-1)
    batch = {
        b"batch_label": batch_label.encode(),
        b"labels": [label for _, label, _ in rows],
        b"data": data,
        b"filenames": [name.encode() for name, _, _ in rows],
    }
    return pickle.dumps(batch, protocol=2)


def pack_cifar(root: Path, out: Path, seed: int = 0) -> dict[str, int]:
    """``root/{train,test}/<class>/*.png`` as CIFAR-10's python batches in a .tar.gz.

    The class folders do not say which training batch an image came from, so the 50,000 training
    images are shuffled (seeded) and dealt into five batches of 10,000, like the originals (random
    order, roughly balanced per batch).
    """
    train, test = _cifar_rows(root / "train"), _cifar_rows(root / "test")
    order = np.random.default_rng(seed).permutation(len(train))
    train = [train[i] for i in order]
    size = -(-len(train) // CIFAR_BATCHES)
    meta = {
        b"num_cases_per_batch": 10000,
        b"label_names": [name.encode() for name in CIFAR_CLASSES],
        b"num_vis": 3072,
    }
    with _deterministic_tar(out / "cifar-10-python.tar.gz") as archive:
        archive.folder("cifar-10-batches-py/")
        for number in range(1, CIFAR_BATCHES + 1):
            rows = train[(number - 1) * size : number * size]
            label = f"training batch {number} of {CIFAR_BATCHES}"
            archive.file(f"cifar-10-batches-py/data_batch_{number}", _cifar_batch(rows, label))
        archive.file("cifar-10-batches-py/test_batch", _cifar_batch(test, "testing batch 1 of 1"))
        archive.file("cifar-10-batches-py/batches.meta", pickle.dumps(meta, protocol=2))
    return {"train": len(train), "test": len(test)}


def pack_catsdogs(pet_images: Path, out: Path) -> dict[str, int]:
    """``PetImages/Cat|Dog/*.jpg`` in a zip, as in Microsoft's archive."""
    counts = {}
    with zipfile.ZipFile(out / "kagglecatsanddogs_5340.zip", "w", zipfile.ZIP_STORED) as archive:
        for label in ("Cat", "Dog"):
            folder = pet_images / label
            if not folder.is_dir():
                _fail(f"{folder}: no such folder (expected PetImages/Cat and PetImages/Dog)")
            files = sorted(p for p in folder.iterdir() if p.is_file())
            for file in files:
                info = zipfile.ZipInfo(f"PetImages/{label}/{file.name}", (2017, 2, 13, 0, 0, 0))
                # JPEGs do not compress: stored members keep packing and extraction fast.
                archive.writestr(info, file.read_bytes(), zipfile.ZIP_STORED)
            counts[label] = len(files)
    return counts


def write_checksums(out: Path) -> Path:
    """``SHA256SUMS`` in ``sha256sum`` format for every archive in ``out``."""
    lines = []
    for file in sorted(p for p in out.iterdir() if p.is_file() and p.name != "SHA256SUMS"):
        digest = hashlib.sha256()
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        lines.append(f"{digest.hexdigest()}  {file.name}\n")
    path = out / "SHA256SUMS"
    path.write_text("".join(lines))
    return path


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--flowers",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="folder holding train/<class>/ and val/<class>/ of the TensorFlow flowers",
)
@click.option(
    "--cifar",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="folder holding train/<class>/ and test/<class>/ CIFAR-10 PNGs",
)
@click.option(
    "--catsdogs",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="the PetImages folder (Cat/, Dog/)",
)
@click.option(
    "--copy",
    "copies",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="an archive to copy through unchanged (repeatable)",
)
def main(out: Path, flowers: Path | None, cifar: Path | None, catsdogs: Path | None,
         copies: tuple[Path, ...]) -> None:  # fmt: skip
    """Write the full data sets' archives and SHA256SUMS into OUT (a folder outside the repo)."""
    if not (flowers or cifar or catsdogs or copies):
        _fail("nothing to pack: give --flowers, --cifar, --catsdogs and/or --copy")
    out.mkdir(parents=True, exist_ok=True)
    if flowers:
        click.echo(f"flower_photos.tgz: {pack_flowers(flowers, out)}")
    if cifar:
        click.echo(f"cifar-10-python.tar.gz: {pack_cifar(cifar, out)}")
    if catsdogs:
        click.echo(f"kagglecatsanddogs_5340.zip: {pack_catsdogs(catsdogs, out)} (180 px copies)")
    for source in copies:
        shutil.copy2(source, out / source.name)
        click.echo(f"{source.name}: copied")
    click.echo(f"{write_checksums(out)}:")
    click.echo((out / "SHA256SUMS").read_text().rstrip())


if __name__ == "__main__":
    main()
