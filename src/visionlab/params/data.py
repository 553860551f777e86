"""The data sections of params.yaml: data set cards, download, prepare and augment."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import Field, StringConstraints, model_validator

from visionlab.params.common import Fraction, Name, Section, YamlOff


class Source(Section):
    """Where a data set's images come from: an archive (and what its bytes must hash to) or a folder.

    A folder (``folder: /path/to/photos``) is read in place, never copied; DVC tracks its content
    through the top-level ``folders`` map (dvc.yaml's survey stage), which must name the same path.
    """

    folder: str | None = None
    url: str | None = None
    kaggle: Annotated[str, StringConstraints(pattern=r"^[\w.-]+/[\w.-]+$")] | None = None
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")] | None = None
    md5: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{32}$")] | None = None
    size: Annotated[int, Field(gt=0)] | None = None
    filename: str | None = None

    @model_validator(mode="after")
    def _usable(self) -> Source:
        if self.folder is not None:
            archive_keys = [
                k for k in ("url", "kaggle", "sha256", "md5", "size", "filename") if getattr(self, k)
            ]
            if archive_keys:
                raise ValueError(
                    f"a folder source takes no {', '.join(archive_keys)}: DVC hashes the folder's "
                    "content itself (give either folder or an archive's url/kaggle)"
                )
            if not self.folder.strip():
                raise ValueError("folder is empty: give the path of the folder of class folders")
            return self
        if self.url is None and self.kaggle is None:
            raise ValueError("give a url, a kaggle dataset slug (owner/name), or both")
        if self.url is not None and urlparse(self.url).scheme not in ("http", "https", "file", ""):
            raise ValueError(f"url must be http, https, file or a local path (got {self.url!r})")
        if self.url is None and self.filename is None:
            raise ValueError("a Kaggle-only source needs a filename (the archive's name in a mirror)")
        return self

    @property
    def archive_name(self) -> str:
        """The archive's file name: also its key in a mirror's SHA256SUMS (a folder's own name)."""
        if self.folder is not None:
            return Path(self.folder).name
        if self.filename:
            return self.filename
        assert self.url is not None
        return Path(urlparse(self.url).path).name


def normalise_folder(path: str) -> str:
    """A folder as written (``~``, ``..``, a trailing slash) in one spelling: what DVC and MLflow see."""
    return os.path.normpath(os.path.expanduser(path))


class DownloadParams(Section):
    mirror: str | None = None
    retries: Annotated[int, Field(ge=0, le=20)] = 4
    backoff_s: Annotated[float, Field(ge=0)] = 2.0
    timeout_s: Annotated[float, Field(gt=0)] = 60.0
    max_extracted_gb: Annotated[float, Field(gt=0)] = 20.0


class SplitFractions(Section):
    train: Annotated[float, Field(gt=0, le=1)] = 0.7  # with an official test set, test is unused
    val: Fraction = 0.2
    test: Fraction = 0.1

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitFractions:
        total = self.train + self.val + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"train + val + test must sum to 1 (got {total:g})")
        return self


class NearDuplicateParams(Section):
    """Near-copies (a perceptual hash within ``threshold`` bits of 64): one split, or one kept."""

    method: Literal["phash", "dhash"] = "phash"
    threshold: Annotated[int, Field(ge=0, le=32)] = 6
    policy: Annotated[Literal["same_split", "keep_one", "off"], YamlOff] = "same_split"


class PrepareParams(Section):
    split: SplitFractions = SplitFractions()
    seed: int = 42
    max_per_class: Annotated[int, Field(gt=0)] | None = None
    workers: Annotated[int, Field(ge=0)] = 0
    near_duplicates: NearDuplicateParams = NearDuplicateParams()


class DatasetCard(Section):
    """One data set: its archive, where the class folders sit inside it, and cleaning rules."""

    source: Source
    root: str = ""  # folder inside the archive (or the folder) that holds the class folders
    format: Literal["image_folder", "cifar10_pickle"] = "image_folder"
    classes: list[Name] | None = None  # class folders to keep, in label order; null = all
    # A CSV of path,label[,split] rows inside the root (paths relative to it): the classes come
    # from its rows, not from folders (src/visionlab/data/layouts.py).
    labels: str | None = None
    exclusions: str | None = None
    image_size: Annotated[int, Field(ge=8, le=2048)] | None = None  # default input side
    grayscale: bool = False  # train on one grey channel (the cats-and-dogs study)
    max_per_class: Annotated[int, Field(gt=0)] | None = None  # overrides prepare.max_per_class
    split: SplitFractions | None = None  # overrides prepare.split
    near_duplicates: NearDuplicateParams | None = None  # overrides prepare.near_duplicates

    @model_validator(mode="after")
    def _folder_of_images(self) -> DatasetCard:
        if self.source.folder is not None and self.format != "image_folder":
            raise ValueError("a folder source holds class folders of images: format must be image_folder")
        return self


class TransformParams(Section):
    """Strengths of the offline augmentation; 0 switches a transform off."""

    hflip: Fraction = 0.5
    zoom: Annotated[float, Field(ge=0, lt=1)] = 0.2
    translate: Annotated[float, Field(ge=0, le=0.5)] = 0.1
    contrast: Fraction = 0.3
    rotate: Annotated[float, Field(ge=0, le=180)] = 10.0
    shear: Annotated[float, Field(ge=0, le=45)] = 10.0
    # Degradations users' photos show (evaluate.robustness scores them), each a probability per
    # copy; 0 (the study's setting) = off. downscale: to 25-50% of the side and back; blur:
    # Gaussian, kernel 3-7 px; jpeg: re-compressed at quality 30-90.
    downscale: Fraction = 0.0
    blur: Fraction = 0.0
    jpeg: Fraction = 0.0


class AugmentParams(Section):
    factor: Annotated[int, Field(ge=1, le=100)] = 5
    image_size: Annotated[int, Field(ge=8, le=2048)] = 224
    seed: int = 42
    workers: Annotated[int, Field(ge=0)] = 0
    jpeg_quality: Annotated[int, Field(ge=50, le=100)] = 95
    transforms: TransformParams = TransformParams()
