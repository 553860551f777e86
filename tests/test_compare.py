"""`visionlab compare`: DVC experiments and committed results, one readable line each."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from visionlab.cli import main
from visionlab.reporting.compare import (
    CompareRow,
    changed_params,
    render,
    rows_from_exp_show,
    rows_from_full_scale,
    validation_choices,
    with_paired,
)

PARAMS = {
    "train": {"lr": 0.001, "device": "auto"},
    "models": {"cnn": {"dropout": 0.3}, "effnet": {"dropout": 0.3}},
    "recipes": {"default": {}},
    "experiments": {
        "flowers-cnn": {"dataset": "flowers", "model": "cnn", "recipe": "default", "train_overrides": {}},
        "flowers-effnet": {
            "dataset": "flowers",
            "model": "effnet",
            "recipe": "default",
            "train_overrides": {},
        },
    },
}


def _metrics(val: float, correct: int, images: int = 50, seconds: float = 10.0) -> dict:
    return {
        "data": {
            "val": {"accuracy": val},
            "test": {"accuracy": correct / images, "correct": correct, "images": images},
            "training": {"seconds": seconds, "featurize_seconds": 0.0},
        }
    }


def _rev(params: dict, metrics: dict) -> dict:
    return {"params": {"params.yaml": {"data": params}}, "metrics": metrics}


def _exp_show() -> list[dict]:
    base_metrics = {
        "results/flowers-cnn/metrics.json": _metrics(0.70, 35),
        "results/flowers-effnet/metrics.json": _metrics(0.90, 45, seconds=2.0),
    }
    tuned = json.loads(json.dumps(PARAMS))
    tuned["experiments"]["flowers-effnet"]["train_overrides"] = {"lr": 0.0002}
    tuned["models"]["cnn"]["dropout"] = 0.5  # not flowers-effnet's model: not shown on its row
    metrics = dict(base_metrics, **{"results/flowers-effnet/metrics.json": _metrics(0.92, 46, seconds=3.0)})
    base, variant = _rev(PARAMS, base_metrics), _rev(tuned, metrics)
    base["outs"] = {
        "data/eval/flowers-cnn": {"hash": "h-cnn.dir"},
        "data/eval/flowers-effnet": {"hash": "h-b.dir"},
    }
    variant["outs"] = {**base["outs"], "data/eval/flowers-effnet": {"hash": "h-v.dir"}}
    return [
        {
            "rev": "0123456789abcdef",
            "name": "main",
            "data": base,
            "experiments": [{"revs": [{"rev": "fedcba98", "name": "slow-lr", "data": variant}]}],
        }
    ]


def test_a_dvc_experiment_shows_the_experiments_it_recomputed_with_what_it_changed():
    rows = rows_from_exp_show(_exp_show())
    assert [(r.source, r.experiment) for r in rows] == [
        ("main", "flowers-cnn"),
        ("main", "flowers-effnet"),
        ("slow-lr", "flowers-effnet"),  # flowers-cnn's metrics are the baseline's: not repeated
    ]
    tuned = rows[-1]
    assert tuned.changed == "train_overrides.lr=0.0002"
    assert tuned.val == pytest.approx(0.92) and tuned.test == pytest.approx(0.92)
    assert tuned.interval == pytest.approx((0.8116, 0.9685), abs=1e-3)  # Wilson, 46 of 50
    assert tuned.seconds == pytest.approx(3.0)


def test_changed_params_keep_what_can_touch_the_experiment():
    new = json.loads(json.dumps(PARAMS))
    new["train"]["lr"] = 0.01
    new["models"]["cnn"]["dropout"] = 0.1
    new["models"]["effnet"]["dropout"] = 0.2
    assert changed_params(new, PARAMS, "flowers-effnet") == "models.effnet.dropout=0.2, train.lr=0.01"
    assert changed_params(PARAMS, PARAMS, "flowers-effnet") == ""


def test_committed_rows_name_their_commit_and_interval():
    document = {
        "rows": [
            {
                "experiment": "flowers-best",
                "status": "done",
                "val_accuracy": 0.95,
                "test_accuracy": 0.94,
                "test_images": 367,
                "test_ci95": [0.91, 0.96],
                "train_seconds": 900.0,
                "featurize_seconds": 300.0,
                "provenance": {"commit": "68ce3bc0123"},
                "seed_summary": {"seeds": 3, "test_accuracy_sd": 0.004},
            },
            {"experiment": "cifar-base", "status": "not run"},
        ]
    }
    (row,) = rows_from_full_scale(document)
    assert row.source == "full-scale 68ce3bc" and row.interval == (0.91, 0.96)
    assert row.seconds == 1200.0 and row.changed == "3 seeds: test sd 0.40%"


def test_the_table_fits_the_width_asked_for():
    rows = rows_from_exp_show(_exp_show())
    long = rows[-1].__class__(**{**rows[-1].__dict__, "changed": "x=1, " * 60})
    text = render([*rows, long], width=120)
    assert all(len(line) <= 120 for line in text.splitlines())
    assert "81.16-96.85" in text and "(baseline)" in text


def test_the_command_reads_committed_results_without_dvc(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    results = tmp_path / "full_scale.json"
    results.write_text(
        json.dumps({"rows": [{"experiment": "flowers-best", "status": "done", "test_accuracy": 0.9}]})
    )
    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(main, ["compare", "--no-dvc", "--results", str(results)])
    assert done.exit_code == 0, done.output
    assert "flowers-best" in done.output and "90.00" in done.output
    empty = CliRunner().invoke(main, ["compare", "--no-dvc", "--results", str(tmp_path / "none.json")])
    assert empty.exit_code == 1 and "no results yet" in empty.output


def test_runs_validation_cannot_tell_from_the_best_are_marked_ties():
    """On one split of 800 validation images, 99.0% and 98.5% are 4 photos apart, inside the best
    one's 95% interval (98.04-99.49%): a tie. 96% is not; another split or experiment is not compared."""

    def row(source: str, val: float, images: float | None = 800, experiment: str = "cats-best") -> CompareRow:
        return CompareRow(source, experiment, "", val, 0.9, None, None, images)

    rows = [
        row("main", 0.985),
        row("lr-high", 0.99),
        row("lr-low", 0.96),
        row("small", 0.999, images=80),  # a quick try on another split
        row("main", 0.70, experiment="cats-cnn"),  # alone: nothing to choose between
        row("old", 0.98, images=None),  # no count recorded: no interval
    ]
    assert validation_choices(rows) == ["tie", "best", "", "", "", ""]
    text = render(rows, width=120)
    assert "lr-high" in text and " best " in text and " tie " in text


def test_a_variant_is_tested_against_its_baseline_on_the_same_test_images():
    """The images only one of the two gets right and McNemar's p, from the answers of the two
    evaluate outputs `dvc exp show` names; no test where either is gone or they answered others."""
    rows = rows_from_exp_show(_exp_show())
    assert [(r.evaluated, r.baseline_evaluated) for r in rows] == [
        ("h-cnn.dir", None),
        ("h-b.dir", None),
        ("h-v.dir", "h-b.dir"),
    ]
    images = [f"img{i}.jpg" for i in range(40)]
    base = dict.fromkeys(images, True) | {f"img{i}.jpg": False for i in range(12)}
    variant = dict.fromkeys(images, True) | {"img39.jpg": False}
    answers = {"h-b.dir": base, "h-v.dir": variant}
    paired = with_paired(rows, answers.get)
    assert [r.paired for r in paired[:2]] == ["", ""]  # baselines: nothing to test against
    said = paired[2].paired
    assert said.startswith("test vs baseline: 12 right only here, 1 only there, McNemar p=0.0034")
    assert said.endswith("(differ at 5%)")
    assert "12 right only here" in render(paired, 160).replace("\n", " ")
    assert with_paired(rows, {"h-v.dir": variant}.get)[2].paired == ""  # the baseline's are gone
    other = {f"other{i}.jpg": True for i in range(40)}  # another test split: not paired
    assert with_paired(rows, {"h-b.dir": base, "h-v.dir": other}.get)[2].paired == ""
