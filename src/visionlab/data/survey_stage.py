"""The survey stage: what a folder source holds, file by file (``data/folders/<dataset>.json``).

DVC reruns it only when the folder's content changes (the folder is its dependency, hashed by
DVC). Its record changes with the bytes and names of the files, so the resolve stage's pin, and
from it download and prepare, follow the folder and nothing else.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from visionlab import paths
from visionlab.atomic import atomic_write_text
from visionlab.data.folder_source import checked_folder, content_listing, listing_digest
from visionlab.errors import VisionlabError
from visionlab.params import Params

log = logging.getLogger(__name__)


def survey_folder(params: Params, dataset: str) -> Path:
    card = params.dataset(dataset)
    if card.source.folder is None:
        raise VisionlabError(f"datasets.{dataset}: its source is an archive, not a folder: nothing to survey")
    folder = checked_folder(card, dataset)
    listing = content_listing(folder)
    record = {
        "dataset": dataset,
        "folder": folder.as_posix(),
        "files": len(listing),
        "bytes": sum(int(entry["bytes"]) for entry in listing),
        "sha256": listing_digest(listing),
        "listing": listing,
    }
    out = paths.folder_record(dataset)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=1) + "\n")
    log.info("%s: %d files, %.1f MB in %s", dataset, record["files"], record["bytes"] / 1e6, folder)
    return out
