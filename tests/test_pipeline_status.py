"""`visionlab status`: `dvc status --json` entries summarised per data set.

The entries below are in the shape `dvc status --json` prints them (checked on this project):
``{stage: [{"changed deps": {path: state, "params.yaml": {key: state}}}, {"changed outs": ...},
"always changed"]}``. The real command runs after a `--keep-going` run in
tests/integration/test_first_run.py.
"""

from __future__ import annotations

from visionlab.reporting.pipeline_status import PIPELINE, group_of, render, stage_reasons, summarize

DATASETS = {"flowers-cnn": "flowers", "cifar-base": "cifar10"}
STAGES = [
    "resolve",
    "download@flowers",
    "prepare@flowers",
    "train@flowers-cnn",
    "evaluate@flowers-cnn",
    "download@cifar10",
    "train@cifar-base",
    "report",
]


def test_each_stage_belongs_to_its_data_set_or_to_the_pipeline():
    assert group_of("prepare@flowers", DATASETS) == "flowers"
    assert group_of("explain@cifar-base", DATASETS) == "cifar10"
    assert group_of("survey@mine", DATASETS) == "mine"  # a folder source's survey
    assert group_of("resolve", DATASETS) == group_of("report", DATASETS) == PIPELINE


def test_reasons_name_the_kind_of_change_not_every_file():
    entries = [
        {
            "changed deps": {
                "src/visionlab/training/loop.py": "modified",
                "stages/train.py": "modified",
                "data/resolved/train/flowers-cnn.json": "modified",
                "data/prepared/flowers": "deleted",
                "params.yaml": {"train.lr": "modified", "evaluate.tta": "new"},
            }
        },
        {"changed outs": {"data/models/flowers-cnn": "deleted"}},
        "always changed",
    ]
    assert stage_reasons(entries, in_lock=True) == [
        "always changed",
        "code",
        "needs data/prepared/flowers",
        "outputs missing",
        "params (train record)",
        "params evaluate.tta, train.lr",
    ]
    assert stage_reasons([{"changed outs": {"results/x/metrics.json": "modified"}}], True) == [
        "outputs edited"
    ]
    assert stage_reasons(entries, in_lock=False) == ["never run"]


def test_one_line_per_data_set_counts_stages_to_run_and_their_reasons():
    code = [{"changed deps": {"src/visionlab/training/loop.py": "modified"}}]
    status = {"train@flowers-cnn": code, "evaluate@flowers-cnn": code, "download@cifar10": [], "report": []}
    locked = set(STAGES) - {"download@cifar10", "report"}
    groups = summarize(STAGES, status, locked, DATASETS)
    assert [g.group for g in groups] == ["cifar10", "flowers", PIPELINE]
    by_name = {g.group: g for g in groups}
    assert (by_name["flowers"].stages, by_name["flowers"].to_run) == (
        4,
        ["train@flowers-cnn", "evaluate@flowers-cnn"],
    )
    assert dict(by_name["flowers"].reasons) == {"code": 2}
    assert dict(by_name["cifar10"].reasons) == {"never run": 1} and by_name["cifar10"].stages == 2

    text = render(groups, width=80, list_stages=True)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["data", "set", "stages"]
    assert lines[1].split()[:4] == ["cifar10", "2", "1", "never"]
    flowers = next(line for line in lines if line.startswith("flowers"))
    assert flowers.split() == ["flowers", "4", "2", "code", "2"]
    assert "train@flowers-cnn evaluate@flowers-cnn" in text
    assert lines[-1].startswith("4 of 8 stages to run")
    assert all(len(line) <= 80 for line in lines)


def test_an_up_to_date_pipeline_says_so():
    groups = summarize(STAGES, {}, set(STAGES), DATASETS)
    text = render(groups)
    assert all("up to date" in line for line in text.splitlines()[1:-1])
    assert text.splitlines()[-1].startswith("0 of 8 stages to run")


def test_a_data_set_that_cannot_be_had_here_says_why_under_its_line():
    status = {"download@cifar10": [], "train@cifar-base": []}
    why = "no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY"
    groups = summarize(STAGES, status, set(), DATASETS, {"cifar10": why, "flowers": "not asked"})
    by_name = {g.group: g for g in groups}
    assert by_name["cifar10"].blocked == why
    assert by_name["flowers"].blocked is None  # nothing left to run: nothing was skipped
    lines = render(groups, width=120).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("cifar10"))
    said = " ".join(line.strip() for line in lines[at + 1 : at + 3])  # wrapped under the counts
    assert said == f"cannot run here: {why}"
