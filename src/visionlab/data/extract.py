"""Extract tar and zip archives without trusting them.

Every member is checked before a single byte is written: absolute names, ``..`` components,
links, devices and FIFOs are refused with the member's name, and so is an archive with too many
members or whose declared expanded size passes the cap. A zip's declared sizes can lie: zipfile
stops each member at its declared size and then fails its CRC-32 check (tested), and the bytes
written are counted against the cap too, should a reader ever hand out more. A tar whose listing
stops at an unreadable header before its end is refused too, rather than cut short. Links are refused
even when they point inside: two harmless-looking links can chain out of the folder, and image
data sets never need them.
"""

from __future__ import annotations

import gzip
import lzma
import os
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from visionlab.errors import UnsafeArchiveError

_CHUNK = 1 << 20


def _check_name(name: str, archive: Path) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or (path.parts and ":" in path.parts[0]):
        raise UnsafeArchiveError(f"{archive.name}: refusing member {name!r}: absolute path")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{archive.name}: refusing member {name!r}: '..' leaves the target")
    return path


def _refuse_link(name: str, target: str, hard: bool, archive: Path) -> None:
    """Refuse a link, saying whether it would leave the extraction folder."""
    member = PurePosixPath(name)
    base = PurePosixPath() if hard else member.parent
    resolved: list[str] = []
    if PurePosixPath(target).is_absolute():
        raise UnsafeArchiveError(
            f"{archive.name}: refusing link {name!r} -> {target!r}: it leaves the target folder"
        )
    for part in (base / target).parts:
        if part == "..":
            if not resolved:
                raise UnsafeArchiveError(
                    f"{archive.name}: refusing link {name!r} -> {target!r}: it leaves the target folder"
                )
            resolved.pop()
        elif part != ".":
            resolved.append(part)
    raise UnsafeArchiveError(
        f"{archive.name}: refusing link {name!r} -> {target!r}: links are not allowed in data set archives"
    )


def _cap_message(archive: Path, total: int, cap: int) -> str:
    return (
        f"{archive.name}: expands to more than {cap:,} bytes (at least {total:,}); "
        "raise download.max_extracted_gb if the archive is trusted"
    )


MAX_MEMBERS = 2_000_000


def extract(archive: Path, target: Path, max_bytes: int) -> None:
    """Extract ``archive`` (tar, tar.gz/bz2/xz or zip) into the existing folder ``target``."""
    archive = Path(archive)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, target, max_bytes)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, target, max_bytes)
        else:
            raise UnsafeArchiveError(f"{archive.name}: not a tar or zip archive")
    except (
        tarfile.TarError,
        zipfile.BadZipFile,
        EOFError,
        zlib.error,
        gzip.BadGzipFile,
        lzma.LZMAError,
    ) as exc:
        raise UnsafeArchiveError(
            f"{archive} is corrupt or incomplete ({type(exc).__name__}: {exc}); delete it to download again"
        ) from None


def _extract_tar(archive: Path, target: Path, max_bytes: int) -> None:
    with tarfile.open(archive) as tar:
        members = []
        total = 0
        for member in tar:
            members.append(member)
            if len(members) > MAX_MEMBERS:
                raise UnsafeArchiveError(f"{archive.name}: more than {MAX_MEMBERS:,} members")
            _check_name(member.name, archive)
            if member.issym() or member.islnk():
                _refuse_link(member.name, member.linkname, member.islnk(), archive)
            elif member.isdev() or member.isfifo():
                raise UnsafeArchiveError(f"{archive.name}: refusing member {member.name!r}: device or FIFO")
            elif not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(f"{archive.name}: refusing member {member.name!r}: unsupported type")
            total += max(member.size, 0)
            if total > max_bytes:
                raise UnsafeArchiveError(_cap_message(archive, total, max_bytes))
        _check_end(tar, members[-1] if members else None)
        # The 'data' filter repeats the checks above in the standard library: defence in depth.
        tar.extractall(target, members=members, filter="data")


def _check_end(tar: tarfile.TarFile, last: tarfile.TarInfo | None) -> None:
    """Refuse an archive whose member listing stopped before its end.

    tarfile takes a header it cannot read (after the first member) for the end of the archive,
    so a member whose data overruns its declared size would silently drop every later member.
    A real end is zero blocks, or nothing.
    """
    tar.fileobj.seek(tar.offset)
    if tar.fileobj.read(tarfile.BLOCKSIZE).strip(b"\0"):
        where = f"after {last.name!r}" if last is not None else "at its start"
        raise tarfile.ReadError(
            f"the bytes {where} (offset {tar.offset:,}) are not a tar header, so later members would be lost"
        )


def _extract_zip(archive: Path, target: Path, max_bytes: int) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise UnsafeArchiveError(f"{archive.name}: more than {MAX_MEMBERS:,} members")
        declared = 0
        for info in infos:
            _check_name(info.filename, archive)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafeArchiveError(f"{archive.name}: refusing link {info.filename!r}: symbolic link")
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                raise UnsafeArchiveError(f"{archive.name}: refusing member {info.filename!r}: device or FIFO")
            declared += info.file_size
            if declared > max_bytes:
                raise UnsafeArchiveError(_cap_message(archive, declared, max_bytes))
        written = 0
        root = target.resolve()
        for info in infos:
            dest = (target / _check_name(info.filename, archive)).resolve()
            if root != dest and root not in dest.parents:
                raise UnsafeArchiveError(
                    f"{archive.name}: refusing member {info.filename!r}: it leaves the target"
                )
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as dst:
                while block := src.read(_CHUNK):
                    written += len(block)
                    if written > max_bytes:
                        raise UnsafeArchiveError(_cap_message(archive, written, max_bytes))
                    dst.write(block)
            os.chmod(dest, 0o644)
