"""The download stage: fetch one data set's archive (or its mirror copy) and extract it safely."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from visionlab import paths
from visionlab.atomic import atomic_dir, atomic_write_text
from visionlab.data import kaggle_source
from visionlab.data.extract import extract
from visionlab.data.fetch import fetch, verify
from visionlab.data.folder_source import checked_folder
from visionlab.data.sources import ResolvedSource, resolve_source
from visionlab.errors import ChecksumError, DownloadError, UnsafeArchiveError
from visionlab.locks import file_lock
from visionlab.params import DownloadParams, Params
from visionlab.redaction import redact

log = logging.getLogger(__name__)

MIRROR_HINT = (
    "to use archives you already have, put them in a folder with a SHA256SUMS file (sha256sum output) "
    "and set download.mirror to it, e.g. `uv run dvc exp run -S download.mirror=../archives "
    "train@<experiment>` or edit params.yaml (README: Pointing the pipeline at local archives)"
)


def _fetch(
    resolved: ResolvedSource, dest: Path, download: DownloadParams, progress: bool
) -> tuple[Path, str]:
    if resolved.via == "kaggle":
        if not dest.exists():
            kaggle_source.download(resolved.url.removeprefix("kaggle:"), dest)
        try:
            return dest, verify(dest, resolved.expected, dest.name)
        except ChecksumError:
            dest.unlink()  # never reuse bytes that failed their check
            raise
    return fetch(
        resolved.url,
        dest,
        resolved.expected,
        retries=download.retries,
        backoff_s=download.backoff_s,
        timeout_s=download.timeout_s,
        progress=progress,
    )


def download_dataset(params: Params, name: str, progress: bool = True) -> Path:
    """Fetch, verify and extract data set ``name`` into ``data/raw/<name>``."""
    card = params.dataset(name)
    if card.source.folder is not None:
        return _record_folder(params, name)
    resolved = resolve_source(card.source, params.download)
    # The cache is keyed by address too: an unpinned archive from one URL is never reused for another.
    key = hashlib.sha256(resolved.url.encode()).hexdigest()[:12]
    cached = paths.downloads_dir() / f"{key}-{card.source.archive_name}"
    # One writer per cached archive and per raw folder: queued runs share both.
    with file_lock(cached), file_lock(paths.downloads_dir() / f"extract-{name}"):
        try:
            archive, digest = _fetch(resolved, cached, params.download, progress)
        except DownloadError as exc:
            if params.download.mirror or "download.mirror" in str(exc):
                raise
            raise type(exc)(f"datasets.{name}: {exc}\n{MIRROR_HINT}") from None
        return _extract_and_record(params, name, resolved, archive, digest, cached)


def _extract_and_record(
    params: Params, name: str, resolved: ResolvedSource, archive: Path, digest: str, cached: Path
) -> Path:
    card = params.dataset(name)
    out = paths.raw_dir(name)
    max_bytes = int(params.download.max_extracted_gb * 1e9)
    with atomic_dir(out) as scratch:
        try:
            extract(archive, scratch, max_bytes)
        except UnsafeArchiveError:
            if archive == cached and resolved.expected.sha256 is None and resolved.expected.md5 is None:
                cached.unlink(missing_ok=True)  # unverifiable and broken: fetch afresh next time
            raise
        if card.root and not (scratch / card.root).is_dir():
            raise DownloadError(
                f"{archive.name}: has no folder {card.root!r} "
                f"(datasets.{name}.root); top level holds: "
                f"{', '.join(sorted(p.name for p in scratch.iterdir()))}"
            )
    record = {
        "dataset": name,
        "archive": card.source.archive_name,
        "url": redact(resolved.url),
        "via": redact(resolved.via),
        "sha256": digest,
        "bytes": archive.stat().st_size,
    }
    atomic_write_text(paths.raw_record(name), json.dumps(record, indent=2) + "\n")
    log.info("extracted %s into %s", archive.name, out)
    return out


def _record_folder(params: Params, name: str) -> Path:
    """A folder source is read where it is: ``data/raw/<name>`` holds its survey, not its images."""
    card = params.dataset(name)
    folder = checked_folder(card, name)
    if card.root and not (folder / card.root).is_dir():
        raise DownloadError(f"{folder}: has no folder {card.root!r} (datasets.{name}.root)")
    surveyed = json.loads(paths.folder_record(name).read_text())
    out = paths.raw_dir(name)
    with atomic_dir(out) as scratch:
        (scratch / "survey.json").write_text(json.dumps(surveyed, indent=1) + "\n")
    record = {
        "dataset": name,
        "folder": folder.as_posix(),
        "url": folder.as_posix(),
        "via": "folder",
        "sha256": surveyed["sha256"],  # of the folder's listing (data/folders/<name>.json)
        "files": surveyed["files"],
        "bytes": surveyed["bytes"],
    }
    atomic_write_text(paths.raw_record(name), json.dumps(record, indent=2) + "\n")
    log.info("%s: reading %d files in place from %s", name, surveyed["files"], folder)
    return out
