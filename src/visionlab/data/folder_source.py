"""A local folder of photos as a data set's source: where it is and what it holds, byte for byte.

The folder is read in place (no copy). DVC hashes its content as the survey stage's dependency;
the survey stage records each file's sha256 (``content_listing``), the resolve stage pins that
record, and so only a change of the folder's bytes reruns download, prepare and what follows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from visionlab import paths
from visionlab.errors import MissingArtifactError
from visionlab.params import DatasetCard, normalise_folder

CHUNK = 1 << 20


def folder_path(card: DatasetCard) -> Path:
    """The card's folder, absolute: a relative one is relative to the project (also in DVC's copies)."""
    assert card.source.folder is not None
    path = Path(normalise_folder(card.source.folder))
    return path if path.is_absolute() else paths.project_root() / path


def checked_folder(card: DatasetCard, dataset: str) -> Path:
    """The folder, or one message naming it when it was moved, removed or emptied."""
    folder = folder_path(card)
    where = f"datasets.{dataset}.source.folder"
    if not folder.is_dir():
        raise MissingArtifactError(
            f"{where}: {folder} is not a folder any more (moved or removed?): put it back, or point "
            f"{where} and folders.{dataset} at its new place"
        )
    if not any(p.is_file() for p in folder.rglob("*")):
        raise MissingArtifactError(f"{where}: {folder} holds no files (emptied?)")
    return folder


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def content_listing(folder: Path) -> list[dict[str, object]]:
    """Every file under ``folder`` (hidden ones and archiver debris included: prepare judges them)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return [
        {"path": f.relative_to(folder).as_posix(), "bytes": f.stat().st_size, "sha256": _sha256(f)}
        for f in files
    ]


def listing_digest(listing: list[dict[str, object]]) -> str:
    """One hash of the folder's content: paths and bytes, not times."""
    digest = hashlib.sha256()
    for entry in listing:
        digest.update(f"{entry['sha256']}  {entry['path']}\n".encode())
    return digest.hexdigest()


def image_root(card: DatasetCard, dataset: str) -> Path:
    """Where the class folders sit: inside the extracted archive, or inside the folder itself."""
    if card.source.folder is not None:
        return checked_folder(card, dataset) / card.root
    return paths.raw_dir(dataset) / card.root
