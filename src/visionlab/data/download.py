"""The download stage: fetch one data set's archive (or its mirror copy) and extract it safely."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from visionlab import paths
from visionlab.atomic import atomic_dir, atomic_write_text
from visionlab.data import kaggle_source
from visionlab.data.extract import extract
from visionlab.data.fetch import Expected, fetch, join_url, local_path, read_text, verify
from visionlab.errors import ChecksumError, DownloadError, UnsafeArchiveError
from visionlab.locks import file_lock
from visionlab.params import DownloadParams, Params, Source
from visionlab.redaction import redact

log = logging.getLogger(__name__)

MIRROR_HINT = (
    "to use archives you already have, put them in a folder with a SHA256SUMS file (sha256sum output) "
    "and set download.mirror to it, e.g. `uv run dvc exp run -S download.mirror=../archives "
    "train@<experiment>` or edit params.yaml (README: Pointing the pipeline at local archives)"
)


@dataclass(frozen=True)
class ResolvedSource:
    url: str
    expected: Expected
    via: str


def parse_sha256sums(text: str, where: str) -> dict[str, str]:
    """Parse ``sha256sum`` output: ``<hash>  <name>`` or ``<hash> *<name>`` per line."""
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, _, name = line.partition(" ")
        name = name.strip().lstrip("*")
        if len(digest) != 64 or not name:
            raise DownloadError(f"{where}: line {number} is not '<sha256>  <file name>': {line!r}")
        sums[name] = digest.lower()
    return sums


def _anchor(location: str) -> str:
    """Relative local paths are relative to the project, also inside DVC's temporary copies."""
    path = local_path(location)
    if path is not None and not path.is_absolute():
        return str(paths.project_root() / path)
    return location


def resolve_source(source: Source, download: DownloadParams) -> ResolvedSource:
    """Where to fetch the archive from and what it must hash to."""
    if download.mirror:
        base = _anchor(download.mirror)
        sums_url = join_url(base, "SHA256SUMS")
        sums = parse_sha256sums(read_text(sums_url, download.timeout_s), sums_url)
        name = source.archive_name
        if name not in sums:
            raise DownloadError(
                f"mirror {base} has no {name!r} in its SHA256SUMS (it lists: {', '.join(sums)})"
            )
        return ResolvedSource(join_url(base, name), Expected(sha256=sums[name]), f"mirror {base}")
    pinned = Expected(sha256=source.sha256, size=source.size, md5=source.md5)
    if source.kaggle and (kaggle_source.credentials_present() or source.url is None):
        return ResolvedSource(f"kaggle:{source.kaggle}", pinned, "kaggle")
    assert source.url is not None  # the params schema requires a url or a kaggle slug
    if source.sha256 is None and source.md5 is None:
        log.warning("no checksum pinned for %s: its bytes are not verified", source.url)
    return ResolvedSource(_anchor(source.url), pinned, "source url")


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
