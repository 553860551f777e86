"""A heavily compressed photo gets a note from `visionlab predict`: its JPEG quality, read from the
file's tables, and the model's validation accuracy at that compression from evaluate's metrics."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from visionlab.data.jpeg_quality import jpeg_quality
from visionlab.explanations.photo_notes import CompressionScores, compression_note


def _photo(path, quality=None, fmt="JPEG", tables=None):
    pixels = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    options = {"quality": quality} if quality is not None else {}
    if tables is not None:
        options = {"qtables": tables}
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, fmt, **options)
    return path


@pytest.mark.parametrize("quality", [5, 20, 30, 50, 75, 90, 100])
def test_the_quality_a_file_was_saved_at_is_read_back_from_its_tables(tmp_path, quality):
    assert jpeg_quality(_photo(tmp_path / "a.jpg", quality)) == quality


def test_other_encoders_tables_get_the_nearest_quality_and_non_jpegs_none(tmp_path):
    # A camera's own table: the IJG luminance table at quality 30, each step a little off.
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG", quality=30)
    buffer.seek(0)
    camera = [max(1, int(step * 1.05)) for step in Image.open(buffer).quantization[0]]
    assert jpeg_quality(_photo(tmp_path / "camera.jpg", tables=[camera, camera])) in range(27, 31)
    assert jpeg_quality(_photo(tmp_path / "a.png", fmt="PNG")) is None
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    assert jpeg_quality(tmp_path / "broken.jpg") is None
    assert jpeg_quality(tmp_path / "missing.jpg") is None


def test_the_note_quotes_the_scored_quality_nearest_the_photos():
    metrics = {
        "val": {"accuracy": 0.9543},
        "val_jpeg_30": {"accuracy": 0.8733},
        "val_jpeg_10": {"accuracy": 0.61},
        "val_downscale_128": {"accuracy": 0.95},
        "test_jpeg_30": {"accuracy": 0.8},  # never quoted: test is not what a user's photo is judged by
        "training": None,
    }
    scores = CompressionScores.from_metrics(metrics)
    assert scores == CompressionScores(0.9543, {30: 0.8733, 10: 0.61})
    assert compression_note(25, scores) == "JPEG quality 25: validation 87.33% at JPEG 30, 95.43% clean"
    assert compression_note(12, scores) == "JPEG quality 12: validation 61.00% at JPEG 10, 95.43% clean"
    assert compression_note(20, scores).endswith("at JPEG 10, 95.43% clean")  # a tie: the harsher copy
    assert compression_note(51, scores) is None and compression_note(None, scores) is None
    unscored = (
        "JPEG quality 40: this model was not scored on compressed photos (evaluate.robustness: jpeg_30)"
    )
    assert compression_note(40, None) == unscored
    assert compression_note(40, CompressionScores.from_metrics({"val": {"accuracy": 0.9}})) == unscored


def test_metrics_that_are_missing_or_broken_give_no_scores(tmp_path):
    assert CompressionScores.read(tmp_path / "missing.json") is None
    (tmp_path / "broken.json").write_text("{")
    assert CompressionScores.read(tmp_path / "broken.json") is None
    (tmp_path / "list.json").write_text("[]")
    assert CompressionScores.read(tmp_path / "list.json") is None


def test_predict_notes_a_heavily_compressed_photo_with_the_models_own_figures(in_tmp):
    import csv

    from click.testing import CliRunner

    from visionlab.cli import main
    from visionlab.models import build_model, save_checkpoint
    from visionlab.params import ModelParams

    spec = ModelParams(arch="handmade_cnn", weights="none", base="trainable", augmented=False)
    checkpoint = in_tmp / "data/models/toy-cnn/model.pt"
    checkpoint.parent.mkdir(parents=True)
    save_checkpoint(checkpoint, build_model(spec, 3), spec, ["a", "b", "c"], 48)
    metrics = {"val": {"accuracy": 0.9}, "val_jpeg_30": {"accuracy": 0.8}}
    (in_tmp / "results/toy-cnn").mkdir(parents=True)
    (in_tmp / "results/toy-cnn/metrics.json").write_text(json.dumps(metrics))
    low, high = _photo(in_tmp / "photos/low.jpg", 20), _photo(in_tmp / "photos/high.jpg", 90)
    flat = _photo(in_tmp / "photos/flat.png", fmt="PNG")

    text = CliRunner().invoke(main, ["predict", "--experiment", "toy-cnn", str(in_tmp / "photos")])
    assert text.exit_code == 0, text.output
    lines = {line.split(":")[0]: line for line in text.stdout.splitlines()}
    assert lines[str(low)].endswith("  [JPEG quality 20: validation 80.00% at JPEG 30, 90.00% clean]")
    assert "[" not in lines[str(high)] and "[" not in lines[str(flat)]

    out = in_tmp / "predictions.csv"
    CliRunner().invoke(
        main,
        [
            "predict",
            "--experiment",
            "toy-cnn",
            "--format",
            "csv",
            "--output",
            str(out),
            str(in_tmp / "photos"),
        ],
    )
    rows = {row["path"]: row for row in csv.DictReader(out.open())}
    assert (
        rows[str(low)]["jpeg_quality"],
        rows[str(high)]["jpeg_quality"],
        rows[str(flat)]["jpeg_quality"],
    ) == (
        "20",
        "90",
        "",
    )
    assert (
        rows[str(low)]["note"].startswith("JPEG quality 20: validation 80.00%")
        and rows[str(high)]["note"] == ""
    )

    # Trained again since evaluate ran (dvc.lock says so): the earlier model's figures are not quoted.
    stages = {
        "train@toy-cnn": {"outs": [{"path": "data/models/toy-cnn", "md5": "new.dir"}]},
        "evaluate@toy-cnn": {"deps": [{"path": "data/models/toy-cnn", "md5": "old.dir"}]},
    }
    (in_tmp / "dvc.lock").write_text(json.dumps({"schema": "2.0", "stages": stages}))
    again = CliRunner().invoke(main, ["predict", "--experiment", "toy-cnn", str(low)])
    assert again.stdout.rstrip().endswith(
        "evaluate has not scored this model since it was trained (rerun its evaluate stage)]"
    )
    (in_tmp / "dvc.lock").unlink()

    # A checkpoint of its own has no evaluate figures: the note says the model was not scored.
    own = CliRunner().invoke(main, ["predict", "--checkpoint", str(checkpoint), "--format", "json", str(low)])
    (record,) = json.loads(own.stdout)
    assert record["jpeg_quality"] == 20 and "not scored on compressed photos" in record["note"]


def test_figures_of_an_earlier_model_are_not_quoted_after_a_train_alone(tmp_path):
    from pathlib import Path

    import yaml

    from visionlab.explanations.photo_notes import evaluated_current_model

    model = Path("data/models/toy-cnn")

    def lock(trained: str, evaluated: str) -> None:
        stages = {
            "train@toy-cnn": {"outs": [{"path": str(model), "md5": trained}]},
            "evaluate@toy-cnn": {
                "deps": [{"path": "src/x.py", "md5": "0"}, {"path": str(model), "md5": evaluated}]
            },
        }
        (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}))

    assert evaluated_current_model(tmp_path, model) is None  # nothing ran yet
    lock("a.dir", "a.dir")
    assert evaluated_current_model(tmp_path, model) is True
    lock("b.dir", "a.dir")  # `dvc exp run train@toy-cnn` alone: evaluate read the earlier model
    assert evaluated_current_model(tmp_path, model) is False
    assert evaluated_current_model(tmp_path, Path("data/models/other")) is None
    (tmp_path / "dvc.lock").write_text("stages: [")
    assert evaluated_current_model(tmp_path, model) is None

    stale = CompressionScores(0.9, {30: 0.8}, stale=True)
    assert compression_note(20, stale) == (
        "JPEG quality 20: evaluate has not scored this model since it was trained (rerun its evaluate stage)"
    )
