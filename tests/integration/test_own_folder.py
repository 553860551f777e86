"""Your own images: a generated folder of photos through `visionlab data add` and the real
`dvc exp run` of a `--like` experiment on the shipped params.yaml (tiny -S settings); then DVC
follows the folder's content: one added photo reruns prepare and what follows it, an unchanged
folder reruns nothing.
"""

from __future__ import annotations

import json
import shutil
import sys

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from tests.conftest import photo_folder, write_image
from tests.integration.conftest import copy_project, dvc, git, mlflow_runs, ran_stages, run
from visionlab.cli import main
from visionlab.models import build_model
from visionlab.params import load_params

pytestmark = pytest.mark.slow

# evaluate.num_workers stays as shipped (auto): featurize and evaluate decode as users' runs do.
TINY = [
    "-S", "train.epochs_cap=1", "-S", "train.batch_size=8", "-S", "train.num_workers=0",
    "-S", "explain.images_per_class=1",
    "-S", "explain.patches_max_images=4", "-S", "explain.feature_map_max_channels=4",
    "-S", "explain.patches_top_k=1",
]  # fmt: skip


def test_a_folder_of_photos_runs_like_a_study_and_dvc_follows_its_content(tmp_path):
    photos = tmp_path / "my_photos"
    photo_folder(photos, {"apples": 10, "pears": 10, "plums": 10}, size=(48, 40))
    (photos / "pears" / "broken.jpg").write_bytes((photos / "pears" / "0.jpg").read_bytes()[:150])
    shutil.copy(photos / "plums" / "1.jpg", photos / "plums" / "copy.jpg")
    (photos / "apples" / "notes.txt").write_text("picked in october")
    project = copy_project(tmp_path / "project")

    added = CliRunner().invoke(
        main,
        ["data", "add", "mine", str(photos), "--like", "flowers-simplecnn", "--params",
         str(project / "params.yaml"), "--workers", "1"],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "next: uv run dvc exp run explain@mine-simplecnn" in added.stdout
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "baseline with my photos")

    first = dvc(project, "exp", "run", *TINY, "explain@mine-simplecnn")
    ran = ran_stages(first)
    assert {"survey@mine", "download@mine", "prepare@mine", "train@mine-simplecnn",
            "evaluate@mine-simplecnn", "explain@mine-simplecnn"} <= ran  # fmt: skip
    assert not any(stage.startswith(("download@flowers", "prepare@flowers")) for stage in ran)
    report = json.loads((project / "data/prepared/mine/report.json").read_text())
    dropped = {
        d["path"].rsplit("/", 2)[-2] + "/" + d["path"].rsplit("/", 1)[-1]: d["reason"]
        for d in report["dropped"]
    }
    assert dropped["pears/broken.jpg"] == "undecodable"
    assert dropped["apples/notes.txt"] == "not_an_image"
    assert any(k in dropped and dropped[k] == "duplicate" for k in ("plums/1.jpg", "plums/copy.jpg"))
    manifest = pd.read_csv(project / "data/prepared/mine/manifest.csv")
    assert len(manifest) == 30 and all(p.startswith(str(photos)) for p in manifest.path)  # read in place
    assert not (project / "data/raw/mine/plums").exists()  # no copy of the folder
    assert (project / "data/explain/mine-simplecnn/index.html").is_file()
    metrics = json.loads((project / "results/mine-simplecnn/metrics.json").read_text())
    assert "test" in metrics

    client, runs = mlflow_runs(project, "mine")
    tracked = next(r for r in runs if r.data.tags.get("visionlab.experiment") == "mine-simplecnn")
    inputs = client.get_run(tracked.info.run_id).inputs.dataset_inputs
    source = json.loads(inputs[0].dataset.source)
    assert inputs[0].dataset.source_type == "local" and source["url"] == str(photos)
    surveyed = json.loads((project / "data/folders/mine.json").read_text())
    assert source["content_sha256"] == surveyed["sha256"] and surveyed["files"] == 33

    # The report lists it with no study to compare with; predict reads its model like any other.
    reported = run(project, sys.executable, "-m", "visionlab.cli", "report", "--register")
    # The registry's rule for any data set: a quick try (epochs capped) never becomes @best.
    assert "registry visionlab-mine@best: not updated (only quick tries" in reported, reported[-1500:]
    assert "mine-simplecnn" in (project / "reports/summary.md").read_text()
    predicted = run(project, sys.executable, "-m", "visionlab.cli", "predict", "--experiment",
                    "mine-simplecnn", str(photos / "pears" / "3.jpg"))  # fmt: skip
    assert any(label in predicted for label in ("apples", "pears", "plums")), predicted[-1500:]

    again = dvc(project, "exp", "run", *TINY, "explain@mine-simplecnn")
    assert not ran_stages(again), again[-2000:]  # an unchanged folder reruns nothing

    write_image(photos / "apples" / "new.jpg", seed=999, size=(48, 40))
    changed = dvc(project, "exp", "run", *TINY, "explain@mine-simplecnn")
    assert {"survey@mine", "download@mine", "prepare@mine", "train@mine-simplecnn"} <= ran_stages(changed)
    assert len(pd.read_csv(project / "data/prepared/mine/manifest.csv")) == 31

    shutil.move(photos, tmp_path / "moved")
    output = CliRunner().invoke(main, ["data", "inspect", str(photos)])
    assert output.exit_code == 1
    result = dvc_failing(project, "exp", "run", *TINY, "explain@mine-simplecnn")
    assert "failed to reproduce 'survey@mine'" in result
    assert f"No such file or directory: '{photos}'" in result


def dvc_failing(project, *args):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=project, capture_output=True, text=True, timeout=600,
        env={"PATH": f"{__import__('pathlib').Path(sys.executable).parent}:/usr/bin:/bin",
             "PYTHONPATH": str(project / "src"), "HOME": str(project)},
    )  # fmt: skip
    assert done.returncode != 0
    return done.stdout + done.stderr


def test_the_readmes_two_commands_give_a_folder_the_best_recipes_artifacts(tmp_path):
    """`data add mine FOLDER --like flowers-best`, then `dvc exp run explain@mine-best` (tiny -S)."""
    photos = tmp_path / "my_photos"
    photo_folder(photos, {"apples": 8, "pears": 8}, size=(96, 80))
    project = copy_project(tmp_path / "project")
    added = CliRunner().invoke(
        main,
        [
            "data",
            "add",
            "mine",
            str(photos),
            "--like",
            "flowers-best",
            "--params",
            str(project / "params.yaml"),
        ],
    )
    assert added.exit_code == 0, added.output
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "my photos")

    # Fine-tuned as the README's batch-norm knob says (the recipe's other knobs as shipped).
    held = ["-S", "train.finetune_batch_norm=frozen"]
    output = dvc(project, "exp", "run", *TINY, "-S", "augment.factor=2", *held, "explain@mine-best")

    assert {"augment@mine", "featurize@mine-best", "train@mine-best", "explain@mine-best"} <= ran_stages(
        output
    )
    summary = json.loads((project / "data/models/mine-best/summary.json").read_text())
    assert summary["trained_on"].startswith("cached")  # the activation cache, as flowers-best trains
    assert summary["best_phase"] == "finetune"  # epochs_cap 1: no head epoch, the top alone
    trained = torch.load(project / "data/models/mine-best/model.pt", weights_only=True)["state_dict"]
    pretrained = build_model(load_params(project / "params.yaml").model_of("mine-best"), 2).state_dict()
    statistics = [k for k in trained if "running_" in k]  # every batch norm: as Lite0 ships them
    assert statistics and all(torch.equal(trained[k], pretrained[k]) for k in statistics)
    kernel = "backbone.blocks.6.0.conv_pwl.weight"
    assert not torch.equal(trained[kernel], pretrained[kernel])  # while the top's kernels trained
    for artifact in ("results/mine-best/metrics.json", "results/mine-best/history.csv",
                     "data/eval/mine-best", "data/explain/mine-best/index.html"):  # fmt: skip
        assert (project / artifact).exists(), artifact


@pytest.mark.parametrize("layout", ["split folders", "csv"])
def test_the_owners_split_survives_the_real_prepare_stage_file_by_file(tmp_path, layout):
    """A pre-split folder, or a CSV with a split column, through `data add` and `dvc repro prepare@mine`."""
    photos, owner = tmp_path / "photos", {}
    rows = ["path,label,split"]
    for split, count in (("train", 6), ("validation", 2), ("test", 2)):
        for label in ("owls", "larks"):
            for n in range(count):
                rel = (
                    f"{split}/{label}/{n}.jpg"
                    if layout == "split folders"
                    else f"all/{split}-{label}-{n}.jpg"
                )
                write_image(photos / rel, seed=len(owner), size=(48, 40))
                owner[str(photos / rel)] = {"validation": "val"}.get(split, split)
                rows.append(f"{rel},{label},{split}")
    source = photos
    if layout == "csv":
        (photos / "labels.csv").write_text("\n".join(rows) + "\n")
        source = photos / "labels.csv"
    project = copy_project(tmp_path / "project")
    added = CliRunner().invoke(
        main, ["data", "add", "mine", str(source), "--params", str(project / "params.yaml")]
    )
    assert added.exit_code == 0, added.output
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "split photos")

    output = dvc(project, "repro", "prepare@mine")

    assert {"survey@mine", "download@mine", "prepare@mine"} <= ran_stages(output)
    manifest = pd.read_csv(project / "data/prepared/mine/manifest.csv")
    assert dict(zip(manifest.path, manifest.split, strict=True)) == owner
