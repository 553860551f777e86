"""Fetch a data set with the official ``kaggle`` package, keeping credentials out of every output.

The package is imported only when credentials exist: without them, importing it prints help and
exits the process. Any message it raises is scrubbed of the key before it reaches a log or error.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

from visionlab.errors import DownloadError

HOW_TO = (
    "set KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN), or save ~/.kaggle/kaggle.json; "
    "or give the data set a source.url, or set download.mirror to a folder holding the archive"
)


def _config_dir() -> Path:
    return Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))


def credentials_present() -> bool:
    env = os.environ
    if env.get("KAGGLE_API_TOKEN") or (env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY")):
        return True
    folder = _config_dir()
    return (folder / "kaggle.json").is_file() or (folder / "access_token").is_file()


def secrets() -> list[str]:
    """Every credential value this process could hand to Kaggle: what must never be printed."""
    values = [os.environ.get(name, "") for name in ("KAGGLE_KEY", "KAGGLE_API_TOKEN")]
    with contextlib.suppress(OSError, ValueError, AttributeError):
        values.append(json.loads((_config_dir() / "kaggle.json").read_text()).get("key", ""))
    with contextlib.suppress(OSError):
        values.append((_config_dir() / "access_token").read_text().strip())
    return [v for v in values if len(v) >= 4]


def scrub(text: str) -> str:
    for secret in secrets():
        text = text.replace(secret, "***")
    return text


def download(slug: str, dest: Path) -> Path:
    """Download Kaggle data set ``slug`` (owner/name) as a zip to ``dest``."""
    if not credentials_present():
        raise DownloadError(f"Kaggle data set {slug}: no Kaggle credentials found; {HOW_TO}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".kaggle-", dir=dest.parent))
    chatter = io.StringIO()  # swallowed, never shown: with VERBOSE set it can hold request headers
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            from kaggle.api.kaggle_api_extended import KaggleApi

            api = KaggleApi()
            api.authenticate()
            api.dataset_download_files(slug, path=str(scratch), quiet=True, unzip=False)
        archives = list(scratch.glob("*.zip"))
        if len(archives) != 1:
            raise DownloadError(f"Kaggle data set {slug}: expected one zip, got {archives}")
        archives[0].replace(dest)
        return dest
    except DownloadError:
        raise
    except (Exception, SystemExit) as exc:
        detail = scrub(f"{type(exc).__name__}: {exc}")
        raise DownloadError(f"Kaggle download of {slug} failed: {detail}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
