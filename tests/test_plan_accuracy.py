"""benchmarks/plan_accuracy.py's page: each row's featurize laid apart into the parts plan adds up."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from visionlab.params import load_params
from visionlab.training import plan_counts, plan_probe, planning

REPO = Path(__file__).resolve().parents[1]


def _benchmark(name: str):
    """A benchmark script loaded as a module (they import provenance from their own folder)."""
    if str(REPO / "benchmarks") not in sys.path:
        sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _plan_accuracy():
    return _benchmark("plan_accuracy")


def test_featurize_counts_the_augmented_copies_and_validation():
    params = load_params(REPO / "params.yaml")
    counts = plan_counts.Counts(100, 30, 20, True, 5)
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
        result.get("plan_seconds_runs"),
    )
    assert page.strip() == expected.strip()


def test_a_row_is_within_what_plan_printed_when_its_span_widened_by_2x_holds_the_measured_seconds():
    module = _plan_accuracy()
    stopped_early = {"planned_s": 800.0, "measured_s": 390.0, "planned_span_s": [420.0, 1100.0]}
    assert module.within_span(stopped_early)  # the middle (800) is 2.05x; the span holds it
    assert not module.within_span({**stopped_early, "measured_s": 205.0})  # below half the earliest
    assert module.within_span({**stopped_early, "measured_s": 2200.0})
    assert not module.within_span({**stopped_early, "measured_s": 2201.0})  # past twice the latest
    no_early_stop = {"planned_s": 100.0, "measured_s": 201.0, "planned_span_s": None}
    assert not module.within_span(no_early_stop)  # its one estimate, as the ratio column
    assert module.within_span({**no_early_stop, "measured_s": 50.0})
    assert module._span(stopped_early) == "420-1,100" and module._span(no_early_stop) == "-"
    assert module._ends(planning.Span(6, 25)) == (6, 25) and module._ends(None) == ()


def test_the_probe_spread_policies_replay_plan_probes_rule_and_the_steadier_ones():
    module = _benchmark("probe_spread")
    slow_first = [0.30, 0.20, 0.21, 0.19, 0.50]  # one call spends the 0.2 s budget
    assert module.replay(slow_first, module.budget_only) == 0.30  # the rule before: that call alone
    assert module.replay([0.05, 0.04, 0.06, 0.03, 0.01], module.budget_only) == 0.03  # at most 4 calls
    table = module.policies([{"images": 30, "seconds": slow_first}], plan_probe.enough)
    assert table[module.BEFORE] == [100.0]
    assert table[module.PLANS_RULE] == [100.0]  # as shipped: the same rule
    assert table[module.TWO_CALLS] == [150.0]  # the rule tried at ab024d6: the second call counts
    assert table["fastest of the first 2"] == [150.0]
    assert table["median of the first 3"] == [30 / 0.21]
    assert table["fastest of the first 4"] == [30 / 0.19]
    page = module.render(
        [{"images": 30, "seconds": slow_first}] * 2, table | {"x": [100.0, 150.0]}, "c" * 40, 0.5
    )
    assert "| x | 100.0, 150.0 | 100.0 | 150.0 | 1.50 | 1-4 |" in page


def test_the_probe_stops_once_its_budget_is_spent_and_can_be_made_to_time_two_calls(monkeypatch):
    enough = plan_probe.enough
    assert not enough([]) and not enough([0.05, 0.1])  # under the 0.2 s budget: more calls
    assert enough([0.1, 0.11])
    assert enough([0.3])  # one call of a large batch spends it (probe_spread.md: the cost of a second)
    assert enough([0.01] * plan_probe.MAX_REPEATS)
    monkeypatch.setattr(plan_probe, "MIN_REPEATS", 2)
    assert not enough([0.3]) and enough([0.3, 0.2])
    assert enough([plan_probe.LONG_CALL])  # a large net's step: one call all the same


def test_a_net_with_nothing_to_featurize_gets_no_featurize_ratio():
    module = _plan_accuracy()
    assert module._ratio(0.0, 0.27) == "-"  # trains on the images: the stage only wrote an empty cache
    assert module._ratio(0.0, 0.0) == "-"
    assert module._ratio(0.0, 120.0) == "0.00"  # plan counted none where the stage took 2 minutes: a miss
    assert module._ratio(150.0, 100.0) == "1.50"
