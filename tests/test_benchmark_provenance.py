"""Every benchmark result file names the commit it measured and holds no path of the machine
that ran it (issue 20: every figure from a committed file naming its commit)."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
# full_scale.py records a commit per row (tests/integration/test_full_scale.py checks it);
# bit_identity.py records both commits it compares. The rest go through provenance.py.
OWN_RECORDS = {"full_scale.py", "bit_identity.py"}
# Helpers, not benchmarks: provenance itself, full_scale.py's modules, paired.py's answer store
# (answers.json, named with paired.py's commit), packing and a data check.
NOT_RESULTS = {"provenance.py", "answer_bits.py", "pack_full_datasets.py", "near_duplicate_check.py"}
NOT_RESULTS |= {f"full_scale_{part}.py" for part in ("project", "seeds", "glance", "tables", "verdicts")}


def _called(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            names.add(node.func.id)
    return names


def test_each_benchmark_writes_its_result_through_provenance_and_names_its_commit():
    scripts = sorted(p for p in BENCHMARKS.glob("*.py") if p.name not in NOT_RESULTS | OWN_RECORDS)
    assert len(scripts) >= 10
    for script in scripts:
        called = _called(script)
        assert {"write_result", "source_commit"} <= called, (
            f"{script.name} writes a result without provenance.write_result / source_commit"
        )


def _provenance():
    spec = importlib.util.spec_from_file_location("provenance", BENCHMARKS / "provenance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_source_commit_says_dirty_when_tracked_files_changed(tmp_path):
    provenance = _provenance()
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.txt").write_text("one\n")
    subprocess.run([*git, "-C", str(tmp_path), "add", "a.txt"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "one"], check=True)
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert provenance.source_commit(tmp_path) == head
    (tmp_path / "a.txt").write_text("two\n")
    assert provenance.source_commit(tmp_path) == f"{head}-dirty"


def test_write_result_writes_the_pair(tmp_path, capsys):
    provenance = _provenance()
    provenance.write_result(tmp_path / "out", "x", {"commit": "abc", "rate": 1.5}, "# x\n\n| a |")
    assert json.loads((tmp_path / "out" / "x.json").read_text()) == {"commit": "abc", "rate": 1.5}
    assert (tmp_path / "out" / "x.md").read_text() == "# x\n\n| a |\n"
    assert "| a |" in capsys.readouterr().out


def test_no_result_file_holds_a_path_of_the_machine_that_ran_it():
    for path in sorted((BENCHMARKS / "results").iterdir()):
        text = path.read_text()
        for prefix in ("/work/", "/root/", "/home/", "/tmp/"):
            assert prefix not in text, f"{path.name} holds a machine path ({prefix}...)"


def test_amp_by_net_times_each_net_trained_whole_on_images_once():
    spec = importlib.util.spec_from_file_location("amp_by_net", BENCHMARKS / "amp_by_net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from visionlab.params import load_params

    found = module.nets(load_params(REPO / "params.yaml"))
    archs = {key[0] for key in found}
    assert {"handmade_cnn", "cifar_inception", "caltech_cnn2"} <= archs
    # A fine-tuned or frozen pretrained base is not trained whole; nets without weights here are left out.
    assert not archs & {"efficientnet_lite0", "efficientnet_lite2", "vgg16"}
    # The budget recipe shares its net, size and batch with the faithful one: one measurement.
    assert ["cifar-inception", "cifar-inception-budget"] in found.values()
    assert {key[3] for key in found if key[0].startswith("cifar")} == {10}


def test_bit_identity_compares_every_output_but_files_of_timing_alone(tmp_path):
    spec = importlib.util.spec_from_file_location("bit_identity", BENCHMARKS / "bit_identity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = tmp_path / "results" / "toy"
    results.mkdir(parents=True)
    (results / "featurize.json").write_text(json.dumps({"seconds": 1.5}))  # a rerun never repeats it
    (results / "training.json").write_text(json.dumps({"epochs": 2, "train_seconds": 3.0}))
    (results / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.5}}))
    found = module.outputs(tmp_path)
    assert set(found) == {"results/toy/training.json", "results/toy/metrics.json"}
    (results / "training.json").write_text(json.dumps({"epochs": 2, "train_seconds": 9.0}))
    assert module.outputs(tmp_path) == found  # the timing inside a file is left out, the rest compared
    (results / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.75}}))
    assert module.outputs(tmp_path)["results/toy/metrics.json"] != found["results/toy/metrics.json"]


# Written before benchmarks recorded their commit (issue 20): each names one from its next run on,
# and then leaves this list. No README figure comes from them.
BEFORE_PROVENANCE = {
    "flowers",
    "training_throughput-14-families-idle",
    "zoo_accuracy",
}


def _named_commit(record: dict) -> str | None:
    meta = record.get("meta") or {}
    rows = record.get("rows") or []
    per_row = [(row.get("provenance") or {}).get("commit") for row in rows if isinstance(row, dict)]
    return (
        record.get("commit")
        or record.get("ref_commit")
        or meta.get("source_commit")
        or meta.get("commit")
        or (per_row and all(per_row) and per_row[0])
        or None
    )


def test_every_result_file_names_the_commit_it_measured_but_the_ones_written_before_that():
    stems = {path.stem for path in (BENCHMARKS / "results").glob("*.json")}
    assert stems >= BEFORE_PROVENANCE, f"gone from benchmarks/results: {BEFORE_PROVENANCE - stems}"
    for stem in sorted(stems):
        commit = _named_commit(json.loads((BENCHMARKS / "results" / f"{stem}.json").read_text()))
        if stem in BEFORE_PROVENANCE:
            assert commit is None, f"{stem}.json names its commit now: take it off BEFORE_PROVENANCE"
        else:
            assert commit and len(commit.removesuffix("-dirty")) == 40, f"{stem}.json names no commit"
