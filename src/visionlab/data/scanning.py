"""Checking every file under an image root: bytes hashed, fully decoded, perceptually hashed.

Shared by the prepare stage and `visionlab data inspect`, which must judge a file the same way.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from tqdm import tqdm

from visionlab.data import near_duplicates
from visionlab.data.images import check_image
from visionlab.data.scanned import Scanned


def scan_one(args: tuple[str, str, str | None], hash_method: str | None = None) -> Scanned:
    path, rel, label = args
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    verdict = check_image(Path(path))
    usable = hash_method is not None and verdict.reason is None
    hashed = near_duplicates.fingerprint(Path(path), hash_method) if usable else None
    return Scanned(
        path, rel, label, digest, verdict.reason, verdict.detail, verdict.mode, verdict.format,
        verdict.width * verdict.height, hashed,
    )  # fmt: skip


def is_junk_folder(name: str) -> bool:
    """Archiver debris (``__MACOSX``, ``.DS_Store`` folders) is never a class."""
    return name.startswith(".") or name == "__MACOSX"


def scan(jobs: list, workers: int, hash_method: str | None) -> list[Scanned]:
    workers = workers or os.cpu_count() or 1
    check = partial(scan_one, hash_method=hash_method)
    if workers == 1 or len(jobs) < 64:
        return [check(job) for job in tqdm(jobs, desc="checking images", mininterval=1.0)]
    with ProcessPoolExecutor(workers) as pool:
        return list(
            tqdm(
                pool.map(check, jobs, chunksize=32),
                total=len(jobs),
                desc="checking images",
                mininterval=1.0,
            )
        )
