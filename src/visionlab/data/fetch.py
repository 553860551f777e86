"""Fetch an archive over http(s) or from a local path, resumably, and verify it before use.

Bytes stream into ``<name>.part`` in the shared download cache; an interrupted transfer resumes with
an HTTP Range request, transient failures are retried with exponential back-off, and the file is
renamed to its final name only after its size and sha256 match what the data set card (or a
mirror's SHA256SUMS) promises. Failures that waiting cannot heal (a host name that does not
resolve, a 4xx answer other than 408/429, bytes that fail their checksum) fail at once.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import requests
from tqdm import tqdm
from urllib3.exceptions import NameResolutionError

from visionlab.errors import ChecksumError, DownloadError

log = logging.getLogger(__name__)

_CHUNK = 1 << 16  # small enough that an interruption loses little of what arrived
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}  # other 4xx answers will not change on a retry


@dataclass(frozen=True)
class Expected:
    """What the fetched bytes must be: each check is optional."""

    sha256: str | None = None
    size: int | None = None
    md5: str | None = None  # CIFAR-10's authors publish only an MD5


class _Transient(Exception):
    """A failure worth retrying (network hiccup, 5xx)."""


def _digests(path: Path) -> tuple[str, str]:
    """sha256 and md5 of a file, in one pass."""
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            sha256.update(block)
            md5.update(block)
    return sha256.hexdigest(), md5.hexdigest()


def local_path(url: str) -> Path | None:
    """The filesystem path a file:// URL or bare path names, or None for http(s)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "":
        return Path(url)
    return None


def join_url(base: str, name: str) -> str:
    """``name`` inside the folder or base URL ``base``."""
    folder = local_path(base)
    if folder is not None:
        return str(folder / name)
    return urljoin(base if base.endswith("/") else base + "/", name)


def read_text(url: str, timeout_s: float) -> str:
    """Small text files (a mirror's SHA256SUMS) from a path or URL."""
    path = local_path(url)
    try:
        if path is not None:
            return path.read_text(encoding="utf-8")
        response = requests.get(url, timeout=timeout_s)
        response.raise_for_status()
        return response.text
    except (OSError, requests.RequestException) as exc:
        raise DownloadError(f"cannot read {url}: {exc}") from None


def verify(path: Path, expected: Expected, label: str) -> str:
    """Check size, sha256 and md5 of ``path`` (each if expected); return its sha256."""
    size = path.stat().st_size
    if expected.size is not None and size != expected.size:
        raise ChecksumError(f"{label}: size mismatch: expected {expected.size:,} bytes, got {size:,} bytes")
    actual, md5 = _digests(path)
    if expected.sha256 is not None and actual.lower() != expected.sha256.lower():
        raise ChecksumError(f"{label}: sha256 mismatch: expected {expected.sha256.lower()}, got {actual}")
    if expected.md5 is not None and md5 != expected.md5.lower():
        raise ChecksumError(f"{label}: md5 mismatch: expected {expected.md5.lower()}, got {md5}")
    return actual


def fetch(
    url: str,
    dest: Path,
    expected: Expected,
    *,
    retries: int = 4,
    backoff_s: float = 2.0,
    timeout_s: float = 60.0,
    progress: bool = True,
) -> tuple[Path, str]:
    """Make ``dest`` hold the verified bytes of ``url``; reuse it if it already verifies.

    A local file (path or file:// URL) is verified where it lies and used in place, not copied.
    Returns the path of the verified archive and its sha256.
    """
    source = local_path(url)
    if source is not None:
        if not source.is_file():
            raise DownloadError(f"archive not found: {source}")
        return source, verify(source, expected, str(source))
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        try:
            digest = verify(dest, expected, dest.name)
            log.info("using cached %s", dest)
            return dest, digest
        except ChecksumError:
            dest.unlink()
    part = dest.with_name(dest.name + ".part")
    _download_with_retries(url, part, expected, retries, backoff_s, timeout_s, progress)
    try:
        digest = verify(part, expected, f"{dest.name} (from {url})")
    except ChecksumError:
        # A bad body must not be resumed next time: start from scratch.
        part.unlink(missing_ok=True)
        raise
    part.replace(dest)
    return dest, digest


def _download_with_retries(
    url: str,
    part: Path,
    expected: Expected,
    retries: int,
    backoff_s: float,
    timeout_s: float,
    progress: bool,
) -> None:
    failures: list[str] = []
    for attempt in range(retries + 1):
        try:
            _download_once(url, part, expected, timeout_s, progress)
            return
        except _Transient as exc:
            failures.append(f"attempt {attempt + 1}: {exc}")
            if attempt < retries:
                delay = backoff_s * 2**attempt
                log.warning("%s failed (%s); retrying in %.1fs", url, exc, delay)
                time.sleep(delay)
    raise DownloadError(f"could not download {url} after {retries + 1} attempts:\n  " + "\n  ".join(failures))


def _download_once(url: str, part: Path, expected: Expected, timeout_s: float, progress: bool) -> None:
    have = part.stat().st_size if part.exists() else 0
    if expected.size is not None and have > expected.size:
        part.unlink()
        have = 0
    if expected.size is not None and have == expected.size:
        return
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        response = requests.get(url, stream=True, timeout=timeout_s, headers=headers)
    except (requests.ConnectionError, requests.Timeout) as exc:
        if _unresolvable(exc):
            host = urlparse(url).hostname
            raise DownloadError(
                f"could not download {url}: host name {host!r} does not resolve (no network, no DNS, "
                "or a wrong address)"
            ) from None
        raise _Transient(f"{type(exc).__name__}: {exc}") from None
    with response:
        if response.status_code == 416:
            # Our partial file is as long as the resource (or longer): let verification decide.
            return
        if response.status_code in _RETRY_STATUS:
            raise _Transient(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise DownloadError(f"could not download {url}: HTTP {response.status_code}")
        resumed = response.status_code == 206
        if have and not resumed:
            log.info("server ignored the Range request; downloading %s from the start", url)
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else expected.size
        mode = "ab" if resumed else "wb"
        try:
            with open(part, mode) as handle, _bar(total, part.name, progress, initial=have) as bar:
                for block in response.iter_content(_CHUNK):
                    handle.write(block)
                    bar.update(len(block))
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            raise _Transient(f"interrupted after {part.stat().st_size:,} bytes: {exc}") from None
        got = part.stat().st_size
        if total is not None and got < total:
            raise _Transient(f"connection closed after {got:,} of {total:,} bytes")


def _unresolvable(exc: BaseException) -> bool:
    """Whether a connection error is a failed name lookup: retrying in seconds will not fix it."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:  # requests wraps urllib3's MaxRetryError, whose reason is the lookup error
        item = stack.pop()
        if id(item) in seen or item is None:
            continue
        seen.add(id(item))
        if isinstance(item, NameResolutionError):
            return True
        if isinstance(item, BaseException):
            stack.extend([*item.args, getattr(item, "reason", None), item.__cause__, item.__context__])
    return False


def _bar(total: int | None, name: str, enabled: bool, initial: int = 0) -> tqdm:
    return tqdm(
        total=total,
        initial=initial,
        desc=name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not enabled,
        mininterval=1.0,
    )
