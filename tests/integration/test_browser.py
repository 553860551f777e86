"""What a user sees in a real browser: the MLflow UI over the tiny pipeline's store, and the report.

Chromium comes from Debian (`apt-get install chromium`; .ci/run installs it), driven by
Playwright for Python; `playwright install` is never run. Screenshots are kept under
test-artifacts/browser/ at the repository root.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, TinyProject
from tests.integration.test_pipeline import EXPERIMENTS

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts" / "browser"
TIMEOUT_MS = 90_000  # a loaded 2-core machine renders the MLflow UI slowly


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ignore = ARTIFACTS.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# screenshots of tests/integration/test_browser.py\n*\n")
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium") or (str(CHROMIUM) if CHROMIUM.exists() else None)
    if executable is None:
        message = "chromium is not installed: apt-get install -y --no-install-recommends chromium"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it (.ci/run): its absence is a broken CI, not a skip
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def tiny(tiny_pipeline) -> TinyProject:
    return tiny_pipeline(EXPERIMENTS)  # the pipeline test's run: the same session-wide project


@pytest.fixture
def mlflow_ui(tiny: TinyProject) -> Iterator[str]:
    """`visionlab ui` on a free port, against the tiny project's store; yields its base URL."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "VISIONLAB_"))}
    env["PYTHONPATH"] = str(tiny.path / "src")
    log = (tiny.path / "mlflow-ui.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "visionlab.cli", "ui", "--port", str(port)],
        cwd=tiny.path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the server's workers stop with it
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                request = urllib.request.Request(
                    f"{base}/api/2.0/mlflow/experiments/search",
                    data=json.dumps({"max_results": 10}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                json.load(urllib.request.urlopen(request, timeout=5))
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"the MLflow UI never answered:\n{(tiny.path / 'mlflow-ui.log').read_text()[-3000:]}"
                    )
                time.sleep(1)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        log.close()


def test_mlflow_ui_shows_the_runs_params_and_metrics(tiny, mlflow_ui, browser):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tiny.store_uri)
    experiment = client.get_experiment_by_name("flowers")
    run = next(
        r
        for r in client.search_runs([experiment.experiment_id])
        if r.data.tags.get("visionlab.experiment") == EXPERIMENTS[0]
    )
    shots = _artifacts()
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)

    # The experiment's run list (the model-training view, not MLflow 3's GenAI overview).
    page.goto(
        f"{mlflow_ui}/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning",
        wait_until="domcontentloaded",
    )
    page.get_by_text(run.info.run_name, exact=True).first.wait_for()
    page.screenshot(path=shots / "mlflow-experiment.png", full_page=True)
    for name in EXPERIMENTS:
        assert page.get_by_text(name).count() > 0, f"{name} is not in the run list"

    # One run: its params and metrics.
    page.goto(
        f"{mlflow_ui}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}",
        wait_until="domcontentloaded",
    )
    page.get_by_text("train.lr", exact=True).first.wait_for()
    page.get_by_text("test_accuracy", exact=True).first.wait_for()
    page.screenshot(path=shots / "mlflow-run.png", full_page=True)
    body = page.inner_text("body")
    assert run.data.params["train.lr"] in body and run.data.params["model.arch"] in body
    page.close()
    print(f"screenshots: {shots}")


def test_the_explanation_gallery_renders_in_mlflows_artifact_viewer(tiny, mlflow_ui, browser):
    """MLflow shows an HTML artifact in a sandboxed frame where relative image paths lead nowhere:
    the gallery's images are embedded, so they render there."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tiny.store_uri)
    experiment = client.get_experiment_by_name("flowers")
    run = next(
        r
        for r in client.search_runs([experiment.experiment_id])
        if r.data.tags.get("visionlab.experiment") == EXPERIMENTS[0]
    )
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(
        f"{mlflow_ui}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}"
        "/artifactPath/explanations/index.html",
        wait_until="domcontentloaded",
    )
    # The sandboxed frame is not among page.frames; a frame locator reaches into it.
    images = page.frame_locator("iframe[sandbox]").locator("img")
    images.first.wait_for()
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        sizes = images.evaluate_all("els => els.map(i => [i.complete, i.naturalWidth])")
        if all(complete for complete, _ in sizes) or time.monotonic() > deadline:
            break
        time.sleep(1)
    page.screenshot(path=_artifacts() / "mlflow-gallery.png", full_page=True)
    assert len(sizes) > 10, "the gallery's frame showed no images"
    assert all(width > 0 for _, width in sizes), sizes
    page.close()


def test_report_renders_its_table_and_images(tiny, browser):
    report = tiny.path / "reports" / "index.html"
    shots = _artifacts()
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    # The report must need no network: every request it makes other than its own file fails.
    outside: list[str] = []

    def local_only(route) -> None:
        if route.request.url.startswith(("file://", "data:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", local_only)
    page.goto(report.as_uri(), wait_until="load")
    table = page.locator('table.comparison[data-dataset="flowers"]')
    table.wait_for()
    assert table.locator("tbody tr").count() == len(EXPERIMENTS)
    for name in EXPERIMENTS:
        assert table.get_by_text(name, exact=True).count() == 1
    assert table.locator("td.best strong").count() > 0
    sizes = page.evaluate("Array.from(document.images, i => [i.complete, i.naturalWidth])")
    assert len(sizes) >= 2 * len(EXPERIMENTS)
    assert all(complete and width > 0 for complete, width in sizes), sizes
    page.screenshot(path=shots / "report.png", full_page=True)
    assert outside == []
    page.close()
    print(f"screenshots: {shots}")
