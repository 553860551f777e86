"""The README's glance and docs/results.md's full-scale table are generated from the committed
result file, never typed in."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]


def _benchmark(name: str):
    if str(REPO / "benchmarks") not in sys.path:  # the modules beside it import each other by name
        sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _full_scale():
    """The tables, the glance and the verdicts they render, as one namespace."""
    modules = [_benchmark(name) for name in ("full_scale_verdicts", "full_scale_glance", "full_scale_tables")]
    return SimpleNamespace(**{k: v for module in modules for k, v in vars(module).items()})


def _verdicts():
    return _benchmark("full_scale_verdicts")


def _block(path: Path, begin: str, end: str) -> str:
    text = path.read_text()
    start, stop = text.index(begin), text.index(end)
    return text[start : stop + len(end)]


def _rows() -> list[dict]:
    return json.loads((REPO / "benchmarks/results/full_scale.json").read_text())["rows"]


def test_the_results_page_table_is_the_one_the_result_file_gives():
    full_scale, rows = _full_scale(), _rows()
    written = _block(REPO / full_scale.RESULTS_PAGE, full_scale.TABLE_BEGIN, full_scale.TABLE_END)
    assert written == full_scale.render_readme_table(rows), (
        f"{full_scale.RESULTS_PAGE}'s full-scale table differs from benchmarks/results/full_scale.json: "
        "run `uv run python benchmarks/full_scale.py --table-only`"
    )
    done = [row for row in rows if row.get("status") == "done"]
    assert done and all(f"| `{row['experiment']}`" in written for row in done)


def test_the_readme_glance_is_the_one_the_result_file_gives():
    full_scale, rows = _full_scale(), _rows()
    written = _block(REPO / "README.md", full_scale.GLANCE_BEGIN, full_scale.GLANCE_END)
    assert written == full_scale.render_glance(rows), (
        "README.md's results at a glance differ from benchmarks/results/full_scale.json: run "
        "`uv run python benchmarks/full_scale.py --table-only`"
    )
    # A row per data set the studies published a figure for, each naming the row chosen on validation.
    chosen = full_scale.chosen_on_validation(rows)
    assert set(chosen) >= {"flowers", "flowers_uncurated", "cifar10", "caltech101_5"}
    for dataset, row in chosen.items():
        assert f"| {dataset} |" in written and f"`{row['experiment']}`" in written


def test_the_glance_chooses_on_validation_not_test():
    full_scale = _full_scale()
    common = {"status": "done", "dataset": "toy", "published_accuracy": 0.5, "published_model": "m"}
    rows = [
        {**common, "experiment": "a", "val_accuracy": 0.9, "test_accuracy": 0.7, "test_ci95": [0.6, 0.8]},
        {**common, "experiment": "b", "val_accuracy": 0.8, "test_accuracy": 0.95, "test_ci95": [0.9, 0.99]},
    ]
    glance = full_scale.render_glance(rows)
    assert "`a`" in glance and "`b`" not in glance
    assert "better beyond chance" in glance and "one seed" in glance
    assert glance.splitlines()[3].endswith("| one seed | – (not scored) | – |")  # no seconds recorded


def test_the_glance_says_what_the_chosen_model_cost_featurize_and_train():
    full_scale = _full_scale()
    row = {"train_seconds": 1542.4, "featurize_seconds": 131.8}
    assert full_scale.compute_cell(row) == "28 min"
    assert full_scale.compute_cell({"train_seconds": 12.0, "featurize_seconds": None}) == "12 s"
    assert full_scale.compute_cell({"train_seconds": 3569.0}) == "59 min"
    assert full_scale.compute_cell({}) == "–"


def test_the_robustness_lines_take_the_worst_degraded_copy_of_each_split():
    full_scale = _full_scale()
    row = {
        "experiment": "x-robust",
        "status": "done",
        "test_accuracy": 0.95,
        "val_accuracy": 0.96,
        "test_variants": {"test_tta_hflip": 0.90, "test_downscale_128": 0.94, "test_jpeg_30": 0.925},
        "val_variants": {"val_downscale_128": 0.93, "val_jpeg_30": 0.95},
    }
    assert full_scale.worst_degraded(row, "test") == ("jpeg_30", 0.925)  # TTA is not a degradation
    assert full_scale.worst_degraded(row, "val") == ("downscale_128", 0.93)
    (line,) = full_scale.robustness_lines([row, {**row, "experiment": "unscored", "test_variants": {}}])
    assert "x-robust" in line and "jpeg_30 92.50%, 2.50 points below clean (not within 2 points)" in line
    assert "on validation downscale_128 93.00%, 3.00 points below clean" in line
    older = {**row, "test_variants": {"test_jpeg_30": 0.94}}
    del older["val_variants"]  # rows measured before evaluate degraded validation
    (line,) = full_scale.robustness_lines([older])
    assert "(within 2 points)" in line and "validation" not in line


def test_the_row_for_degraded_photos_is_chosen_on_degraded_validation_not_test():
    full_scale = _full_scale()

    def row(name: str, val: float, test: float, val_copies: dict, test_copies: dict) -> dict:
        return {
            **{"status": "done", "dataset": "toy", "published_accuracy": 0.5, "published_model": "m"},
            **{"experiment": name, "val_accuracy": val, "test_accuracy": test},
            **{
                "test_ci95": [test - 0.03, test + 0.02],
                "val_variants": val_copies,
                "test_variants": test_copies,
            },
        }

    # plain: best on clean validation, the worst on JPEG 30 validation, the best on JPEG 30 test
    plain = row(
        "plain", 0.95, 0.96, {"val_downscale_128": 0.94, "val_jpeg_30": 0.80}, {"test_jpeg_30": 0.945}
    )
    robust = row(
        "robust", 0.93, 0.94, {"val_downscale_128": 0.92, "val_jpeg_30": 0.91}, {"test_jpeg_30": 0.90}
    )
    unscored = row("older", 0.97, 0.97, {}, {})
    twin = {**robust, "experiment": "a-twin", "val_accuracy": 0.92}  # same degraded val, lower clean val
    rows = [plain, robust, unscored, twin]
    assert full_scale.chosen_on_validation(rows)["toy"]["experiment"] == "older"
    assert full_scale.chosen_for_degraded(rows)["toy"]["experiment"] == "robust"
    assert full_scale.unscored_rivals(rows, robust) == ["older"]
    assert full_scale.unscored_rivals(rows, unscored) == []
    glance = full_scale.render_glance(rows)
    assert (
        "| toy | `robust` | 91.00% at JPEG 30 | 94.00% | 90.00% at JPEG 30 (-4.00) | no | `older` | – |"
        in glance
    )
    assert "| – (not scored) |" in glance  # the clean choice's own worst copy: never measured
    assert "| 94.50% at JPEG 30 (-1.50) |" in full_scale.render_glance([plain])
    assert "within 2 points of clean? |" not in full_scale.render_glance([unscored])  # nothing to choose on


def test_the_degraded_choice_keeps_only_rows_within_chance_of_the_best_clean_validation():
    choose = _full_scale().chosen_for_degraded

    def rows(val_images: int | None, *named: tuple[str, float, float]) -> list[dict]:
        return [
            {
                **{"status": "done", "dataset": "toy", "experiment": name, "val_accuracy": val},
                **{"test_accuracy": val, "val_variants": {"val_jpeg_30": worst}},
                **({"split_counts": {"val": val_images}} if val_images else {}),
            }
            for name, val, worst in named
        ]

    best = ("best", 0.95, 0.75)  # 950 of 1,000: its interval reaches down to about 93.5%
    close = ("close", 0.94, 0.90)  # within chance of it on clean validation
    bound = ("bound", 0.90, 0.92)  # the best degraded copy, bought with 5 clean points
    assert choose(rows(1000, best, close, bound))["toy"]["experiment"] == "close"
    assert choose(rows(1000, best, bound))["toy"]["experiment"] == "best"
    # 95 of 100 validation images: an interval wide enough (about 89-98%) to keep the bound
    assert choose(rows(100, best, bound))["toy"]["experiment"] == "bound"
    # no validation count recorded: nothing to measure chance by, so no floor
    assert choose(rows(None, best, bound))["toy"]["experiment"] == "bound"


def test_tta_takes_the_headline_only_where_validation_says_so():
    full_scale = _full_scale()
    base = {"dataset": "flowers", "status": "done", "published_accuracy": 0.93, "published_model": "study"}
    plain = {
        **base,
        "experiment": "a-plain",
        "val_accuracy": 0.955,
        "test_accuracy": 0.99,  # the best test figure, which must not decide anything
        "test_images": 300,
        "test_variants": {"test_tta_hflip": 0.995},
        "val_variants": {"val_tta_hflip": 0.950},
    }
    flipped = {
        **base,
        "experiment": "b-flipped",
        "val_accuracy": 0.950,
        "test_accuracy": 0.90,
        "test_images": 300,
        "test_variants": {"test_tta_hflip": 0.92},
        "val_variants": {"val_tta_hflip": 0.960},
    }
    assert not full_scale.headline(plain).tta  # TTA lower on validation: plain, whatever test says
    shown = full_scale.headline(flipped)
    assert shown.tta and (shown.val, shown.test) == (0.960, 0.92)
    assert shown.interval == _verdicts().accuracy_interval(0.92, 300)
    assert full_scale.chosen_on_validation([plain, flipped])["flowers"]["experiment"] == "b-flipped"
    (sentence,) = full_scale.study_sentences([plain, flipped])
    assert "b-flipped with hflip TTA (chosen on validation: 96.00% val) tests 92.00%" in sentence
    older = {**flipped, "val_variants": {}}  # measured before evaluate scored TTA on validation
    assert full_scale.headline(older) == _verdicts().Headline(
        False, 0.950, 0.90, full_scale.interval_of(older)
    )


def test_a_claim_one_training_seed_makes_and_another_does_not_is_not_made():
    full_scale = _full_scale()
    # 337 test images, as the flowers split: 96.44% excludes 93.06% from its interval, 95.25% does not.
    row = {
        "experiment": "flowers-x",
        "dataset": "flowers",
        "status": "done",
        "published_accuracy": 0.9306,
        "published_model": "ResNet50",
        "val_accuracy": 0.96,
        "test_accuracy": 325 / 337,
        "test_images": 337,
        "seeds": [{"test_accuracy": 325 / 337}, {"test_accuracy": 321 / 337}, {"test_accuracy": 323 / 337}],
        "seed_summary": {
            "seeds": 3,
            "test_accuracy_mean": 969 / 1011,
            "test_accuracy_sd": 0.006,
            "val_accuracy_mean": 0.96,
            "val_accuracy_sd": 0.007,
        },
    }
    assert _verdicts().seed_verdicts(row) == ["better beyond chance", "within chance", "better beyond chance"]
    (sentence,) = full_scale.study_sentences([row])
    assert "only 2 of its 3 training seeds do" in sentence and "does not hold beyond seed noise" in sentence
    assert "better beyond chance for 2 of 3 seeds" in full_scale.render_glance([row])

    # Every seed beyond chance: the table says so; a headline within chance names the seeds that are not.
    agreed = {**row, "seeds": [{"test_accuracy": 325 / 337}] * 3}
    assert "better beyond chance (all 3 seeds)" in full_scale.render_readme_table([agreed])
    pair = {**row, "seeds": [{"test_accuracy": 325 / 337}] * 2}
    assert "better beyond chance (both seeds)" in full_scale.render_readme_table([pair])
    within = {**row, "test_accuracy": 321 / 337, "test_ci95": None}
    cell = full_scale.chance_cell(within, full_scale.interval_of(within), 0.9306)
    assert cell == "within chance; better beyond chance for 2 of 3 seeds"
    (sentence,) = full_scale.study_sentences([within])
    assert "neither holds across seeds" in sentence
    # One seed: the verdict alone, and the sentence says the seed spread is not measured.
    single = {**row, "seeds": None}
    assert full_scale.chance_cell(single, full_scale.interval_of(single), 0.9306) == "better beyond chance"
    (sentence,) = full_scale.study_sentences([single])
    assert sentence.endswith(
        "we beat the study beyond chance (one training seed: how far seed noise moves it is not measured)."
    )


def _two_seeds(first_commit: str, later: dict) -> dict:
    """A finished row measured at ``first_commit`` (seed 42) with one seed added later."""
    summary = {"seeds": 2, "test_accuracy_mean": 0.95, "test_accuracy_sd": 0.01}
    summary |= {"val_accuracy_mean": 0.94, "val_accuracy_sd": 0.01}
    return {
        "experiment": "flowers-x",
        "status": "done",
        "provenance": {"commit": first_commit},
        "seeds": [{"seed": 42, "commit": first_commit}, later],
        "seed_summary": summary,
    }


def test_seeds_added_to_a_finished_row_later_say_when_and_on_what_code():
    full_scale = _full_scale()
    row = _two_seeds("aaaaaaaaaaaa", {"seed": 43, "commit": "bbbbbbbbbbbb", "code_changed": []})
    (line,) = full_scale.seed_lines([row])
    assert line.endswith(
        "Added later (seed 43 at bbbbbbbbbbbb), "
        "on the code and features the first seed's featurize and train ran."
    )
    changed = [f"src/visionlab/training/{name}.py" for name in ("loop", "epoch", "phase", "inputs")]
    row["seeds"][1]["code_changed"] = changed
    (line,) = full_scale.seed_lines([row])
    assert line.endswith(
        "featurize and train ran changed code or inputs: src/visionlab/training/epoch.py, "
        "src/visionlab/training/inputs.py, src/visionlab/training/loop.py and 1 more."
    )
    # Seeds trained in one run with the row (no commit of their own, or the row's): nothing to add.
    row["seeds"] = [{"seed": 42}, {"seed": 43, "commit": "aaaaaaaaaaaa"}]
    assert full_scale.seed_lines([row])[0].endswith("val 94.00% ± 1.00.")


def test_a_later_seed_whose_first_ran_elsewhere_compares_the_code_by_git(tmp_path):
    import subprocess

    seeds = _benchmark("full_scale_seeds")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t", "-C", str(tmp_path)]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    commits = []
    for text in ("one", "two"):
        for name in ("src/a.py", "src/b.py") if text == "one" else ("src/a.py",):
            (tmp_path / name).parent.mkdir(exist_ok=True)
            (tmp_path / name).write_text(text)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", text], check=True)
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        commits.append(head.stdout.strip())
    now = {"src/a.py": "x", "src/b.py": "y", "data/prepared/flowers": "z"}
    # The first seed's dvc.lock entries are in the copy: every input compared by hash.
    same = seeds.code_changes(now, now, None, None, tmp_path)
    assert same == {"code_changed": [], "code_compared": "dvc.lock"}
    # Not in the copy: the code by git between the commits (only a.py changed), the data not at all.
    found = seeds.code_changes({}, now, commits[0], commits[1], tmp_path)
    assert found == {"code_changed": ["src/a.py"], "code_compared": "git"}
    # A commit unknown or with uncommitted changes: nothing to compare against.
    unknown = {"code_changed": None, "code_compared": None}
    assert seeds.code_changes({}, now, None, commits[1], tmp_path) == unknown
    assert seeds.code_changes({}, now, commits[0], f"{commits[1]}-dirty", tmp_path) == unknown

    tables = _full_scale()
    row = _two_seeds(commits[0], {"seed": 43, "commit": commits[1], **found})
    (line,) = tables.seed_lines([row])
    assert line.endswith(
        f"Added later (seed 43 at {commits[1][:12]}); code featurize and train run changed since the "
        "first seed's commit: src/a.py (git; their data inputs were not compared)."
    )
    row["seeds"][1].update(unknown)
    (line,) = tables.seed_lines([row])
    assert line.endswith("whether featurize and train ran the first seed's code is not known.")


def test_on_cache_is_what_the_row_trained_on_not_whether_featurize_ran():
    """A fine-tuned base with activation_cache: off runs a featurize that caches nothing (a fraction
    of a second), then trains the whole net on images: its speed is no cache's."""
    on_cache = _full_scale().on_cache
    assert not on_cache({"featurize_seconds": 0.25, "trained_on": "images"})
    assert on_cache({"featurize_seconds": 50.0, "trained_on": "cached features, then cached activations"})
    assert on_cache({"featurize_seconds": 50.0})  # rows measured before trained_on was recorded
    assert not on_cache({"featurize_seconds": None})
    rows = {row["experiment"]: row for row in _rows()}
    assert rows["cifar-best-robust-deep"]["trained_on"] == "images"
    assert not on_cache(rows["cifar-best-robust-deep"]) and on_cache(rows["catsdogs-all-lite2-bnfrozen"])


def test_the_glance_names_the_rows_validation_cannot_tell_from_the_choice():
    """Rows whose validation accuracy lies within the chosen one's 95% Wilson interval on its
    validation images are chance's to choose between: the glance counts them and gives their test."""
    full_scale = _full_scale()
    common = {"status": "done", "dataset": "toy", "split_counts": {"val": 800}, "test_ci95": [0.9, 0.99]}
    chosen = {**common, "experiment": "a", "val_accuracy": 0.99, "test_accuracy": 0.96}
    near = {**common, "experiment": "b", "val_accuracy": 0.985, "test_accuracy": 0.99}  # 4 photos lower
    far = {**common, "experiment": "c", "val_accuracy": 0.95, "test_accuracy": 0.97}  # beyond chance
    assert full_scale.tied_on_validation([chosen, near, far], chosen) == [near]
    row = lambda rows: next(line for line in full_scale.render_glance(rows).splitlines() if "`a`" in line)  # noqa: E731
    assert "| `a` | `b` (test 99.00%) |" in row([chosen, near, far])
    assert "| `a` | 2 rows (test 97.00–99.00%) |" in row([chosen, near, {**far, "val_accuracy": 0.984}])
    assert "| `a` | none |" in row([chosen, far])
    assert "| `a` | no other row |" in row([chosen])
    assert "| `a` | – |" in row([{**chosen, "split_counts": None}, near])  # no count: no interval


def test_within_the_hour_validation_chooses_among_the_rows_that_cost_no_more():
    """Issue 24's budget (CIFAR-10 >= 94% within an hour): the budget filters rows on what they cost
    here, validation chooses among the rest, and a row over it is named beside, never chosen."""
    full_scale, verdicts = _full_scale(), _verdicts()
    common = {"status": "done", "dataset": "toy", "split_counts": {"val": 800, "test": 400}}

    def row(name: str, val: float, test: float, seconds: float) -> dict:
        measured = {"val_accuracy": val, "test_accuracy": test, "train_seconds": seconds}
        return {**common, "experiment": name, **measured}

    slow, fast = row("slow", 0.97, 0.96, 4000.0), row("fast", 0.95, 0.90, 3000.0)
    lucky = row("lucky", 0.94, 0.99, 60.0)  # better on test and cheap, but lower on validation: never chosen
    # Cheap to train, but its featurize takes it over the hour.
    cached = {
        **common,
        "experiment": "cached",
        "val_accuracy": 0.96,
        "test_accuracy": 0.95,
        "train_seconds": 3000.0,
        "featurize_seconds": 700.0,
    }
    rows = [slow, fast, lucky, cached]
    assert verdicts.chosen_within(rows) == {"toy": fast}
    assert verdicts.chosen_within(rows, budget=3700.0) == {"toy": cached}
    assert verdicts.chosen_within([slow]) == {}
    lines = full_scale.budget_lines(rows)
    assert lines[0].startswith("Within 60 minutes of compute")
    assert lines[-1] == (
        "| toy | `fast` | 50 min | 95.00% | 90.00% (86.67–92.57%) | `slow`: 67 min, test 96.00% |"
    )
    assert full_scale.budget_lines([slow]) == []
    assert full_scale.budget_lines([fast])[-1].endswith("| the same |")
