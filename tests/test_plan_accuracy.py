"""benchmarks/plan_accuracy.py's page: each row's featurize laid apart into the parts plan adds up."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from visionlab.params import load_params
from visionlab.training import planning

REPO = Path(__file__).resolve().parents[1]


def _plan_accuracy():
    if str(REPO / "benchmarks") not in sys.path:
        sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("plan_accuracy", REPO / "benchmarks" / "plan_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_featurize_counts_the_augmented_copies_and_validation():
    params = load_params(REPO / "params.yaml")
    counts = planning.Counts(100, 30, 20, True, 5)
    factor = params.augment.factor
    assert params.model_of("flowers-best").augmented and not params.model_of("cifar-best").augmented
    assert planning.featurized_images(params, "flowers-best", counts) == (100 * factor, 100 * factor + 30)
    assert planning.featurized_images(params, "cifar-best", counts) == (100, 130)


def test_the_featurize_table_sets_planned_images_per_second_beside_the_rows_and_names_its_parts():
    module = _plan_accuracy()
    rates = planning.Rates(
        forward=150.0, train=100.0, featurize=200.0, top=600.0, decode=0.002, degrade=0.0012
    )
    row = {
        "experiment": "flowers-best",
        "commit": "abcdef0123",
        "measured_featurize_s": 100.0,
        "planned_featurize_s": 50.0,
        "featurized_images": 10_000,
        "rates": module._rates_record(rates),
    }
    assert row["rates"] == {
        "forward": 150.0,
        "train": 100.0,
        "featurize": 200.0,
        "top": 600.0,
        "decode_ms": 2.0,
        "degrade_ms": 1.2,
    }
    frozen = {
        **row,
        "experiment": "flowers-effnet",
        "rates": module._rates_record(planning.Rates(120.0, 9e3)),
    }
    older = {k: v for k, v in row.items() if k != "rates"}  # a row planned before rates were recorded
    lines = module._featurize_lines([row, frozen, older, {**row, "measured_featurize_s": 0.0}])
    table = [line for line in lines if line.startswith("| `")]
    assert table == [
        "| `flowers-best` | `abcdef0` | 10,000 | 100.0 | 200.0 | 2.00 | 200.0 | 600.0 | 2.00 | 1.20 |",
        "| `flowers-effnet` | `abcdef0` | 10,000 | 100.0 | 200.0 | 2.00 | 120.0 | - | 0.00 | 0.00 |",
    ]
    assert module._featurize_lines([older]) == []


def test_the_committed_page_is_rendered_from_its_result_file():
    module = _plan_accuracy()
    result = json.loads((REPO / "benchmarks/results/plan_accuracy.json").read_text())
    page = (REPO / "benchmarks/results/plan_accuracy.md").read_text()
    expected = module.render(
        result["rows"],
        result["plan_seconds"],
        result["plan_seconds_reused"],
        result["load_average"],
        result["commit"],
    )
    assert page.strip() == expected.strip()
