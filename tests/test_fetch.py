import hashlib
import io
import json
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import minimal_params, write_image
from tests.http_server import Behaviour, serve
from visionlab.data.download_stage import download_dataset
from visionlab.data.fetch import Expected, fetch
from visionlab.errors import ChecksumError, DownloadError, UnsafeArchiveError
from visionlab.params import parse_params

PAYLOAD = bytes(range(256)) * 4000  # about 1 MB


@pytest.fixture
def site(tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "blob.bin").write_bytes(PAYLOAD)
    return folder


def _expected(data=PAYLOAD):
    return Expected(sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def test_plain_download_is_verified(site, tmp_path):
    with serve(site) as (url, _):
        path, digest = fetch(f"{url}/blob.bin", tmp_path / "dl/blob.bin", _expected(), progress=False)
    assert path.read_bytes() == PAYLOAD and digest == _expected().sha256
    assert not (tmp_path / "dl/blob.bin.part").exists()


def test_transient_failures_are_retried(site, tmp_path):
    with serve(site, Behaviour(fail_first=2)) as (url, behaviour):
        path, _ = fetch(f"{url}/blob.bin", tmp_path / "b.bin", _expected(), backoff_s=0, progress=False)
    assert path.read_bytes() == PAYLOAD and len(behaviour.requests) == 3


def test_interrupted_download_resumes_with_range(site, tmp_path):
    with serve(site, Behaviour(cut_after=300_000, cut_times=1)) as (url, behaviour):
        path, _ = fetch(f"{url}/blob.bin", tmp_path / "b.bin", _expected(), backoff_s=0, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert behaviour.requests[0]["range"] is None
    resumed_from = int(behaviour.requests[1]["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_from <= 300_000


def test_server_ignoring_range_restarts_cleanly(site, tmp_path):
    (tmp_path / "b.bin.part").write_bytes(PAYLOAD[:1000])
    with serve(site, Behaviour(ignore_range=True)) as (url, _):
        path, _ = fetch(f"{url}/blob.bin", tmp_path / "b.bin", _expected(), progress=False)
    assert path.read_bytes() == PAYLOAD


def test_wrong_checksum_names_archive_and_both_hashes(site, tmp_path):
    wrong = Expected(sha256="0" * 64)
    with serve(site) as (url, _), pytest.raises(ChecksumError) as caught:
        fetch(f"{url}/blob.bin", tmp_path / "b.bin", wrong, progress=False)
    message = str(caught.value)
    assert "blob.bin" in message and "0" * 64 in message and hashlib.sha256(PAYLOAD).hexdigest() in message
    assert not (tmp_path / "b.bin").exists() and not (tmp_path / "b.bin.part").exists()


def test_unreachable_url_lists_attempts(tmp_path):
    url = "http://127.0.0.1:9/never.tgz"
    with pytest.raises(DownloadError) as caught:
        fetch(url, tmp_path / "n.tgz", Expected(), retries=2, backoff_s=0, timeout_s=2, progress=False)
    message = str(caught.value)
    assert url in message and "after 3 attempts" in message and "attempt 3:" in message


def test_http_404_is_not_retried(site, tmp_path):
    with serve(site) as (url, behaviour), pytest.raises(DownloadError, match="HTTP 404"):
        fetch(f"{url}/missing.tgz", tmp_path / "m.tgz", Expected(), backoff_s=0, progress=False)
    assert len(behaviour.requests) == 1


def _toy_archive(folder, name="toy.tgz", extra=None):
    images = folder / "build"
    write_image(images / "toy/a/1.jpg")
    write_image(images / "toy/b/1.jpg", seed=1)
    with tarfile.open(folder / name, "w:gz") as tar:
        tar.add(images / "toy", arcname="toy")
        if extra:
            info = tarfile.TarInfo(extra)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    data = (folder / name).read_bytes()
    (folder / "SHA256SUMS").write_text(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
    return data


def _params(url, **download):
    raw = minimal_params(download={"backoff_s": 0, **download})
    raw["datasets"]["toy"]["source"]["url"] = url
    return parse_params(raw)


def test_download_stage_through_a_mirror(in_tmp, site):
    _toy_archive(site)
    with serve(site) as (url, _):
        out = download_dataset(_params("https://example.invalid/toy.tgz", mirror=url), "toy", progress=False)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) == ["toy/a/1.jpg", "toy/b/1.jpg"]
    record = json.loads((in_tmp / "data/raw/toy.json").read_text())
    assert record["via"] == f"mirror {url}" and record["url"] == f"{url}/toy.tgz"


def test_mirror_without_the_file_says_what_it_has(in_tmp, site):
    (site / "SHA256SUMS").write_text(f"{'a' * 64}  other.zip\n")
    with pytest.raises(DownloadError, match="has no 'toy.tgz' in its SHA256SUMS .*other.zip"):
        download_dataset(_params("x/toy.tgz", mirror=str(site)), "toy", progress=False)


def test_hostile_archive_keeps_earlier_output(in_tmp, site):
    _toy_archive(site, extra="../escape.txt")
    earlier = in_tmp / "data/raw/toy/keep.txt"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("from the last good run")
    with pytest.raises(UnsafeArchiveError, match="'../escape.txt'"):
        download_dataset(_params(str(site / "toy.tgz")), "toy", progress=False)
    assert earlier.read_text() == "from the last good run"
    assert not (in_tmp / "data/raw/escape.txt").exists()
    assert [p.name for p in (in_tmp / "data/raw").iterdir()] == ["toy"]  # no scratch left


def test_wrong_root_is_named(in_tmp, site):
    _toy_archive(site)
    raw = yaml.safe_load(yaml.safe_dump(minimal_params()))
    raw["datasets"]["toy"].update(root="flowers", source={"url": str(site / "toy.tgz")})
    with pytest.raises(DownloadError, match="has no folder 'flowers' .*top level holds: toy"):
        download_dataset(parse_params(raw), "toy", progress=False)


def test_local_archive_is_verified_in_place(tmp_path):
    archive = tmp_path / "local.bin"
    archive.write_bytes(PAYLOAD)
    path, digest = fetch(f"file://{archive}", tmp_path / "cache/local.bin", _expected(), progress=False)
    assert path == archive and digest == _expected().sha256
    assert not (tmp_path / "cache").exists()
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        fetch(str(archive), tmp_path / "cache/local.bin", Expected(sha256="1" * 64), progress=False)
    with pytest.raises(DownloadError, match="archive not found"):
        fetch(str(tmp_path / "nope.tgz"), tmp_path / "x", Expected(), progress=False)


def test_credentials_in_addresses_are_redacted():
    from visionlab.redaction import redact

    assert redact("https://user:s3cret@mirror.example/data") == "https://***@mirror.example/data"
    assert redact("/local/folder") == "/local/folder"


def test_parallel_stages_share_one_download(in_tmp, site):
    """Queued experiments download the same archive at once: one fetches, the other reuses it."""
    from concurrent.futures import ThreadPoolExecutor

    _toy_archive(site)
    raw = minimal_params(download={"backoff_s": 0})
    with serve(site) as (url, behaviour):
        raw["datasets"]["toy"]["source"] = {"url": f"{url}/toy.tgz"}
        params = parse_params(raw)
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda _: download_dataset(params, "toy", progress=False), range(2)))
    assert all((r / "toy/a/1.jpg").is_file() for r in results)
    assert sum(r["path"] == "/toy.tgz" for r in behaviour.requests) == 1
    assert not list((in_tmp / "data/.downloads").glob("*.part"))


def test_an_unresolvable_host_fails_at_once_and_says_so(tmp_path):
    url = "http://no-such-host.invalid/never.tgz"  # .invalid never resolves (RFC 2606)
    started = time.perf_counter()
    with pytest.raises(DownloadError) as caught:
        fetch(url, tmp_path / "n.tgz", Expected(), retries=4, backoff_s=5, timeout_s=5, progress=False)
    assert time.perf_counter() - started < 5  # no back-off sleep: a retry cannot heal it
    assert "host name 'no-such-host.invalid' does not resolve" in str(caught.value)
    assert "attempt" not in str(caught.value)


@pytest.mark.parametrize(("status", "retried"), [(403, False), (410, False), (408, True), (429, True)])
def test_only_client_errors_that_can_heal_are_retried(site, tmp_path, status, retried):
    behaviour = Behaviour(fail_first=1, fail_status=status)
    with serve(site, behaviour) as (url, _):
        if retried:
            path, _ = fetch(f"{url}/blob.bin", tmp_path / "b.bin", _expected(), backoff_s=0, progress=False)
            assert path.read_bytes() == PAYLOAD
        else:
            with pytest.raises(DownloadError, match=f"HTTP {status}"):
                fetch(f"{url}/blob.bin", tmp_path / "b.bin", _expected(), backoff_s=0, progress=False)
    assert len(behaviour.requests) == (2 if retried else 1)


def test_a_checksum_mismatch_is_not_downloaded_again(site, tmp_path):
    with serve(site) as (url, behaviour), pytest.raises(ChecksumError):
        fetch(f"{url}/blob.bin", tmp_path / "b.bin", Expected(sha256="0" * 64), backoff_s=0, progress=False)
    assert len(behaviour.requests) == 1


def test_a_failed_download_says_how_to_use_local_archives(in_tmp, site):
    with serve(site) as (url, behaviour), pytest.raises(DownloadError) as caught:
        download_dataset(_params(f"{url}/missing.tgz", retries=3), "toy", progress=False)
    message = str(caught.value)
    assert message.startswith(f"datasets.toy: could not download {url}/missing.tgz: HTTP 404")
    assert "set download.mirror" in message and "SHA256SUMS" in message
    assert "Pointing the pipeline at local archives" in message
    assert len(behaviour.requests) == 1
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "## Pointing the pipeline at local archives" in readme
