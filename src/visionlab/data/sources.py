"""Where a data set's archive comes from and which bytes it must be: the card's pin or a mirror's.

Shared by the download stage (which fetches from there) and the resolve stage (which records the
pin alone, so that a new address for the same bytes reruns nothing).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from visionlab import paths
from visionlab.data import kaggle_source
from visionlab.data.fetch import Expected, join_url, local_path, read_text
from visionlab.errors import DownloadError
from visionlab.params import DownloadParams, Params, Source
from visionlab.redaction import redact

log = logging.getLogger(__name__)


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


def source_pin(params: Params, name: str) -> dict[str, object]:
    """Which bytes ``download@<name>`` extracts, without where they come from: the resolve stage's record.

    The archive's checksum pins its content, so a mirror holding the card's bytes, a new URL for
    them or other retries leave this record, and so the extracted data, as they are. A mirror
    whose SHA256SUMS names other bytes (a sample) changes it. Unpinned bytes are known by their
    address only. A mirror that cannot answer is recorded as such: download says why, with advice.
    """
    card = params.dataset(name)
    if card.source.folder is not None:
        return _folder_pin(name, card.root)
    record: dict[str, object] = {"dataset": name, "archive": card.source.archive_name, "root": card.root}
    try:
        expected = resolve_source(card.source, params.download).expected
    except DownloadError as exc:
        return {**record, "pin": None, "problem": redact(str(exc))}
    if expected.sha256:
        return {**record, "pin": f"sha256:{expected.sha256.lower()}"}
    if expected.md5:
        return {**record, "pin": f"md5:{expected.md5.lower()}"}
    return {**record, "pin": None, "url": redact(card.source.url or f"kaggle:{card.source.kaggle}")}


def _folder_pin(name: str, root: str) -> dict[str, object]:
    """A folder's pin: the survey stage's content hash (not where the folder is, nor its times)."""
    record: dict[str, object] = {"dataset": name, "folder": True, "root": root}
    try:
        surveyed = json.loads(paths.folder_record(name).read_text())
    except (OSError, ValueError):
        return {**record, "pin": None, "problem": f"no survey of the folder yet (run survey@{name})"}
    return {**record, "pin": f"sha256:{surveyed['sha256']}"}
