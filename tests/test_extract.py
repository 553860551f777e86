import io
import stat
import struct
import tarfile
import zipfile

import pytest

from visionlab.atomic import atomic_dir
from visionlab.data.extract import extract
from visionlab.errors import UnsafeArchiveError

CAP = 10_000_000


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name, data=b"hello"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def test_benign_tar(tmp_path):
    archive = _tar(tmp_path / "ok.tgz", [_file("root/a/x.txt"), _file("root/b.txt", b"bye")])
    target = tmp_path / "out"
    target.mkdir()
    extract(archive, target, CAP)
    assert (target / "root/a/x.txt").read_bytes() == b"hello"
    assert (target / "root/b.txt").read_bytes() == b"bye"


def test_chained_links_cannot_escape(tmp_path):
    # Each link looks harmless alone; together 'c' would point at the target's parent.
    archive = _tar(tmp_path / "chain.tgz", [_link("a", "."), _link("c", "a/..")])
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(UnsafeArchiveError, match="refusing link 'a' -> '.': links are not allowed"):
        extract(archive, target, CAP)
    assert list(target.iterdir()) == []


def test_corrupt_archive_is_named(tmp_path):
    good = _tar(tmp_path / "cut.tgz", [_file("root/x.bin", bytes(range(256)) * 400)])
    good.write_bytes(good.read_bytes()[:300])
    with pytest.raises(UnsafeArchiveError, match="cut.tgz is corrupt or incomplete"):
        extract(good, tmp_path, CAP)


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (_file("/etc/evil"), "'/etc/evil': absolute path"),
        (_file("root/../../evil"), "'root/../../evil': '..' leaves the target"),
        (_link("root/escape", "../../etc/passwd"), "refusing link 'root/escape'"),
        (_link("root/abs", "/etc/passwd"), "refusing link 'root/abs'"),
        (_link("root/hard", "../outside", tarfile.LNKTYPE), "refusing link 'root/hard'"),
    ],
)
def test_hostile_tar_members_are_refused(tmp_path, member, message):
    archive = _tar(tmp_path / "bad.tgz", [_file("root/ok.txt"), member])
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(UnsafeArchiveError, match="bad.tgz: refusing") as caught:
        extract(archive, target, CAP)
    assert message in str(caught.value)
    assert list(target.iterdir()) == []  # refused before anything was written


def test_device_is_refused(tmp_path):
    info = tarfile.TarInfo("root/null")
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    archive = _tar(tmp_path / "dev.tar.gz", [(info, None)])
    with pytest.raises(UnsafeArchiveError, match="device or FIFO"):
        extract(archive, tmp_path, CAP)


def test_tar_size_cap(tmp_path):
    archive = _tar(tmp_path / "big.tgz", [_file("root/zeros", b"\0" * 5000)])
    with pytest.raises(UnsafeArchiveError, match="expands to more than 4,096 bytes"):
        extract(archive, tmp_path, 4096)


def test_zip_traversal_and_symlink_refused(tmp_path):
    for name, make in [
        ("trav.zip", lambda z: z.writestr("../evil.txt", "x")),
        ("abs.zip", lambda z: z.writestr("/abs.txt", "x")),
    ]:
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as zf:
            make(zf)
        with pytest.raises(UnsafeArchiveError, match=f"{name}: refusing member"):
            extract(path, tmp_path / "out", CAP)
    link = zipfile.ZipInfo("root/link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(link, "../../etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="refusing link 'root/link': symbolic link"):
        extract(path, tmp_path / "out", CAP)


def test_zip_declared_size_cap(tmp_path):
    path = tmp_path / "big.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("root/zeros", b"\0" * 2_000_000)
    with pytest.raises(UnsafeArchiveError, match="big.zip: expands to more than 1,000,000 bytes"):
        extract(path, tmp_path / "out", 1_000_000)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_zip_whose_headers_understate_the_size_is_refused_while_inflating(tmp_path):
    # 10 MB of zeros deflate to ~10 kB; both headers claim 3,000,000 bytes, under the 4,000,000 cap,
    # so the declared-size check passes and the member is refused while it is being written.
    # CPython's zipfile stops each member at its declared size and then checks its CRC-32, so the
    # lie surfaces as a CRC error after at most the declared bytes; the running count in
    # extract() is the second line, should a reader ever hand out more.
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("root/before.txt", b"first member, extracted before the bomb")
        zf.writestr("root/zeros", b"\0" * 10_000_000)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        local = zf.getinfo("root/zeros").header_offset
        central = zf.start_dir + data[zf.start_dir :].index(b"PK\x01\x02", 1)  # second entry
    struct.pack_into("<I", data, local + 22, 3_000_000)  # local file header: uncompressed size
    struct.pack_into("<I", data, central + 24, 3_000_000)  # central directory: uncompressed size
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as zf:
        assert [i.file_size for i in zf.infolist()] == [39, 3_000_000]

    out = tmp_path / "raw"
    refused = pytest.raises(UnsafeArchiveError, match="bomb.zip is corrupt or incomplete .*Bad CRC-32")
    with refused, atomic_dir(out) as scratch:  # as download_dataset extracts
        try:
            extract(path, scratch, 4_000_000)
        finally:
            # The refusal came mid-write: the first member and part of the bomb are on disk.
            assert (scratch / "root/before.txt").stat().st_size == 39
            assert 0 < (scratch / "root/zeros").stat().st_size < 3_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.zip"]  # no output, no scratch folder


def test_not_an_archive(tmp_path):
    path = tmp_path / "x.tgz"
    path.write_bytes(b"<html>404</html>")
    with pytest.raises(UnsafeArchiveError, match="not a tar or zip archive"):
        extract(path, tmp_path, CAP)


def test_a_member_whose_data_overruns_its_header_is_not_silently_cut_short(tmp_path):
    """tarfile reads past a broken header as the end of the archive; extraction must say so instead."""
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w") as tar:
        for name in ("root/a.txt", "root/b.txt", "root/c.txt"):
            info, data = _file(name, b"x" * 600)
            tar.addfile(info, io.BytesIO(data))
    raw = bytearray(body.getvalue())
    header = tarfile.TarInfo("root/a.txt")
    header.size = 100  # the data that follows is 600 bytes: they overrun into the next header's place
    raw[:512] = header.tobuf(format=tarfile.GNU_FORMAT)
    archive = tmp_path / "overrun.tar"
    archive.write_bytes(bytes(raw))
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(UnsafeArchiveError, match=r"overrun.tar is corrupt or incomplete.*after 'root/a.txt'"):
        extract(archive, target, CAP)


def test_zero_padding_after_the_last_member_is_a_normal_end(tmp_path):
    archive = _tar(tmp_path / "ok.tgz", [_file("root/a.txt")])
    padded = tmp_path / "padded.tar"
    with tarfile.open(archive) as tar:
        plain = io.BytesIO()
        with tarfile.open(fileobj=plain, mode="w") as out:
            for member in tar:
                out.addfile(member, tar.extractfile(member))
    padded.write_bytes(plain.getvalue() + bytes(512 * 40))
    target = tmp_path / "out"
    target.mkdir()
    extract(padded, target, CAP)
    assert (target / "root/a.txt").read_bytes() == b"hello"
